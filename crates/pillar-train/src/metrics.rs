//! What a run records: one [`EpochMetrics`] per epoch, and the run's summary in
//! `metrics.json`.

use serde::{Deserialize, Serialize};

/// One epoch of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// `train`, or QuaIL's `teacher`, `clone-K`, `finetune`.
    pub phase: String,
    /// 0-based epoch within the phase.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss (weighted cross-entropy or MSE, plus penalty).
    pub train_loss: f64,
    /// Mean penalty term (0 without one).
    pub penalty: f64,
    /// Training accuracy on the augmented batches, as the network was while learning.
    pub train_accuracy: f64,
    /// Accuracy on the held-out validation split (inference mode).
    pub val_accuracy: f64,
    /// Share of activation inputs with `|x| >= range` during training.
    pub oor_ratio: f64,
    /// Out-of-range ratio per activation layer.
    pub oor_per_layer: Vec<f64>,
    /// Largest `|x|` entering each activation layer during training.
    pub max_abs_per_layer: Vec<f64>,
    /// Training images per second (forward, backward and update).
    pub images_per_second: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// Where a run's activations escaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escape {
    /// Phase.
    pub phase: String,
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based batch within the epoch (or `None` when seen during validation).
    pub batch: Option<usize>,
    /// Activation layer name (as in the exported graph, e.g. `poly3`).
    pub layer: String,
    /// Largest `|x|` seen (NaN or infinite when that is what appeared).
    pub max_abs: f64,
    /// What happened, in words.
    pub what: String,
}

/// The summary a run writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Model name.
    pub model: String,
    /// Data set name.
    pub dataset: String,
    /// Activation name.
    pub activation: String,
    /// Epochs trained (all phases).
    pub epochs: usize,
    /// Accuracy of the selected checkpoint on the test split (`None` if no epoch finished).
    pub test_accuracy: Option<f64>,
    /// Its validation accuracy, by which it was selected.
    pub val_accuracy: Option<f64>,
    /// Out-of-range ratio of the selected checkpoint on the test split.
    pub oor_ratio: Option<f64>,
    /// Largest `|x|` entering each activation on the test split.
    pub test_max_abs_per_layer: Vec<f64>,
    /// Which epoch (of the last phase) was selected.
    pub best_epoch: Option<usize>,
    /// Set when the activations escaped and the run stopped.
    pub escape: Option<Escape>,
    /// Parameters of the model.
    pub parameters: usize,
    /// Per-epoch history.
    pub history: Vec<EpochMetrics>,
}
