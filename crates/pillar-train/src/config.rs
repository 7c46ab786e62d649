//! Everything a training run is configured by, readable from TOML (`--config FILE.toml`).

use serde::{Deserialize, Serialize};

use crate::data::DatasetKind;
use crate::data::augment::Augment;
use crate::model::Architecture;
use crate::penalty::Penalty;

/// The activation a run trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    /// Exact ReLU (the baseline).
    Relu,
    /// PILLAR: the polynomial with clamping, the out-of-range penalty and its warm-up.
    Poly,
    /// The same polynomial swapped in with nothing else (no penalty, no clamp).
    NaivePoly,
    /// Sisyphus's quadratic imitation learning from a ReLU teacher.
    Quail,
    /// The polynomial behind approximate min-max normalisation.
    Amm,
    /// QuaIL with approximate min-max normalisation.
    QuailAmm,
}

impl ActivationKind {
    /// Every kind, for help texts.
    pub const ALL: [ActivationKind; 6] = [
        ActivationKind::Relu,
        ActivationKind::Poly,
        ActivationKind::NaivePoly,
        ActivationKind::Quail,
        ActivationKind::Amm,
        ActivationKind::QuailAmm,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ActivationKind::Relu => "relu",
            ActivationKind::Poly => "poly",
            ActivationKind::NaivePoly => "naive-poly",
            ActivationKind::Quail => "quail",
            ActivationKind::Amm => "amm",
            ActivationKind::QuailAmm => "quail+amm",
        }
    }

    /// Whether the run goes through QuaIL's teacher and cloning phases.
    pub fn is_quail(self) -> bool {
        matches!(self, ActivationKind::Quail | ActivationKind::QuailAmm)
    }
}

impl std::str::FromStr for ActivationKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        ActivationKind::ALL
            .into_iter()
            .find(|k| k.name() == s || (s == "quail-amm" && *k == ActivationKind::QuailAmm))
            .ok_or_else(|| {
                let names: Vec<&str> = ActivationKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown activation {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl std::fmt::Display for ActivationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// QuaIL's phase lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuailConfig {
    /// Epochs of the ReLU teacher (default: the run's `epochs`).
    pub teacher_epochs: Option<usize>,
    /// Epochs of layer-wise imitation per activation layer.
    pub clone_epochs: usize,
    /// Epochs of cross-entropy fine-tuning with gradual unfreezing (default: `epochs`).
    pub finetune_epochs: Option<usize>,
}

impl Default for QuailConfig {
    fn default() -> Self {
        QuailConfig {
            teacher_epochs: None,
            clone_epochs: 1,
            finetune_epochs: None,
        }
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Architecture.
    pub model: Architecture,
    /// Data set.
    pub dataset: DatasetKind,
    /// Activation.
    pub activation: ActivationKind,
    /// Epochs (of the main phase).
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// L2 weight decay on every parameter.
    pub weight_decay: f64,
    /// SGD momentum (no dampening, no Nesterov: PyTorch's SGD).
    pub momentum: f64,
    /// Epochs of linear learning-rate warm-up (from 1%).
    pub lr_warmup_epochs: usize,
    /// PILLAR's penalty (used by `poly` only).
    pub penalty: Penalty,
    /// Polynomial coefficients `c_0..c_d` (default: the exact d=4, R=5, P=10 fit).
    pub coefficients: Vec<f64>,
    /// Coefficients of QuaIL's quadratic (default: the exact d=2, R=5, P=10 fit).
    pub quad_coefficients: Vec<f64>,
    /// The polynomial's range `R`: clamp bound and out-of-range threshold.
    pub range: f64,
    /// AMM maps each channel onto `[-amm_range, amm_range]` (Sisyphus: 1).
    pub amm_range: f64,
    /// Seed of weights, shuffling, augmentation and the validation split.
    pub seed: u64,
    /// Share of the training split held out for checkpoint selection.
    pub val_fraction: f64,
    /// Augmentation (default: the data set's).
    pub augment: Option<Augment>,
    /// An activation input beyond this magnitude counts as escaped and stops the run.
    pub escape_threshold: f64,
    /// Train on at most this many images (quick runs).
    pub limit_train: Option<usize>,
    /// QuaIL phases.
    pub quail: QuailConfig,
}

/// The exact quantisation-aware fits (FACTS.md section 1): degree 2 (QuaIL's quadratic,
/// `[479, 512, 96] / 1024`), otherwise the paper's degree 4.
pub fn default_coefficients(degree: usize) -> Vec<f64> {
    match degree {
        2 => [479.0, 512.0, 96.0].iter().map(|a| a / 1024.0).collect(),
        _ => pillar_fit::PAPER_RELU.to_vec(),
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: Architecture::Minionn,
            dataset: DatasetKind::Mnist,
            activation: ActivationKind::Poly,
            epochs: 20,
            batch_size: 128,
            lr: 0.06,
            weight_decay: 5e-4,
            momentum: 0.9,
            lr_warmup_epochs: 5,
            penalty: Penalty::default(),
            coefficients: default_coefficients(4),
            quad_coefficients: default_coefficients(2),
            range: 5.0,
            amm_range: 1.0,
            seed: 1,
            val_fraction: 0.1,
            augment: None,
            escape_threshold: 1e4,
            limit_train: None,
            quail: QuailConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The paper's hyperparameters for `model` (FACTS.md section 2), everything else default.
    /// Models without a row use MiniONN's.
    pub fn recipe(model: Architecture) -> Self {
        let base = TrainConfig {
            model,
            ..TrainConfig::default()
        };
        let (lr, weight_decay, reg_range, lambda) = match model {
            Architecture::Resnet18
            | Architecture::Resnet110
            | Architecture::Resnet20
            | Architecture::Resnet56 => (0.013, 5e-4, 4.8, 5e-5),
            Architecture::Vgg16 => (0.0025, 5e-4, 4.8, 1e-6),
            Architecture::Resnet32 => (0.1, 1e-4, 4.0, 0.01),
            Architecture::Resnet50 => (0.03, 2e-5, 4.8, 1e-4),
            Architecture::Convnet | Architecture::Minionn | Architecture::MinionnNoBn => {
                (0.06, 5e-4, 4.4, 5e-5)
            }
        };
        TrainConfig {
            lr,
            weight_decay,
            penalty: Penalty {
                lambda,
                reg_range,
                exponent: 10,
            },
            ..base
        }
    }

    /// Checks values a run cannot start with, or that would train something else than asked
    /// (a negative penalty weight rewards escaping activations; a NaN learning rate trains
    /// nothing), each with the field's name and the values it accepts.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_counts()?;
        self.validate_rates()?;
        self.validate_polynomials()?;
        self.validate_penalty()
    }

    fn validate_counts(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!(
                "batch_size must be from 1 to {MAX_BATCH_SIZE}, got {}",
                self.batch_size
            ));
        }
        if self.limit_train == Some(0) {
            return Err("limit_train must be at least 1".into());
        }
        let quail = &self.quail;
        if quail.clone_epochs == 0
            || quail.teacher_epochs == Some(0)
            || quail.finetune_epochs == Some(0)
        {
            return Err(
                "quail.teacher_epochs, quail.clone_epochs and quail.finetune_epochs must be at least 1"
                    .into(),
            );
        }
        if let Some(a) = self.augment
            && a.pad > MAX_AUGMENT_PAD
        {
            return Err(format!(
                "augment.pad must be at most {MAX_AUGMENT_PAD}, got {}",
                a.pad
            ));
        }
        Ok(())
    }

    fn validate_rates(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr must be positive and finite, got {}", self.lr));
        }
        non_negative("weight_decay", self.weight_decay)?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return Err(format!(
                "val_fraction must be in [0, 0.9), got {}",
                self.val_fraction
            ));
        }
        if self.escape_threshold.is_nan() || self.escape_threshold <= 0.0 {
            return Err(format!(
                "escape_threshold must be positive, got {}",
                self.escape_threshold
            ));
        }
        Ok(())
    }

    fn validate_polynomials(&self) -> Result<(), String> {
        for (name, c) in [
            ("coefficients", &self.coefficients),
            ("quad_coefficients", &self.quad_coefficients),
        ] {
            if c.is_empty() || c.iter().any(|c| !c.is_finite()) {
                return Err(format!("{name} must be finite and non-empty"));
            }
        }
        positive("range", self.range)?;
        positive("amm_range", self.amm_range)
    }

    fn validate_penalty(&self) -> Result<(), String> {
        non_negative("penalty.lambda", self.penalty.lambda)?;
        positive("penalty.reg_range", self.penalty.reg_range)?;
        if !(1..=MAX_PENALTY_EXPONENT).contains(&self.penalty.exponent) {
            return Err(format!(
                "penalty.exponent must be from 1 to {MAX_PENALTY_EXPONENT}, got {}",
                self.penalty.exponent
            ));
        }
        Ok(())
    }
}

/// Most images per step: a batch's tensors (and every layer's activations for the backward
/// pass) are allocated whole, so a batch of the whole data set exhausts memory.
pub const MAX_BATCH_SIZE: usize = 8_192;

/// Largest augmentation padding: beyond it a random crop is mostly padding, and a huge one
/// wraps negative where the crop offset is drawn, which panics.
pub const MAX_AUGMENT_PAD: usize = 64;

/// Largest penalty exponent: `|x / r|^e` overflows to infinity for any input out of range
/// long before, and the exponent must fit the `i32` of `powi`.
pub const MAX_PENALTY_EXPONENT: u32 = 64;

fn positive(name: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("{name} must be positive and finite, got {value}"))
    }
}

fn non_negative(name: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{name} must be zero or positive and finite, got {value}"
        ))
    }
}
