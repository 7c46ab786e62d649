//! The training loop: SGD with momentum and weight decay, warm-up then cosine, PILLAR's
//! penalty schedule, validation-based checkpoint selection, escape detection, QuaIL's phases.
//!
//! The library reports progress through [`Event`]s; drawing progress bars is the caller's
//! business (the CLI does it with indicatif). QuaIL's phases are in `quail`, checkpoints
//! in `checkpoint`.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha12Rng;

use crate::activation::{Activation, CallStats, Tape};
use crate::config::{ActivationKind, TrainConfig};
use crate::data::{DataError, DataSet, Split};
use crate::metrics::{EpochMetrics, Escape, RunMetrics};
use crate::model::{Layer, Net};
use crate::schedule::learning_rate;

mod checkpoint;
mod quail;

pub use checkpoint::Checkpoints;
pub use checkpoint::check_resume;
use checkpoint::{State, load_best, load_checkpoint, save_checkpoint};

/// Why a run failed (an escape is not a failure: it is reported in the metrics).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Bad configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data set does not fit the run.
    #[error("data: {0}")]
    Data(String),
    /// An image could not be read while assembling a batch (image folders are decoded batch
    /// by batch, so a corrupt or vanished file shows up here, named).
    #[error("data: {0}")]
    Read(#[from] DataError),
    /// Checkpoint files.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Progress of a run.
#[derive(Debug)]
pub enum Event<'a> {
    /// A phase starts (`train`, or QuaIL's `teacher`, `clone-K`, `finetune`).
    Phase {
        /// Its name.
        name: &'a str,
        /// Its epochs.
        epochs: usize,
        /// Batches per epoch.
        batches: usize,
    },
    /// An epoch starts.
    EpochStart {
        /// 0-based epoch.
        epoch: usize,
    },
    /// A training step finished.
    Batch {
        /// Its loss.
        loss: f64,
        /// Its accuracy.
        accuracy: f64,
        /// Its out-of-range ratio.
        oor_ratio: f64,
    },
    /// An epoch finished.
    Epoch(&'a EpochMetrics),
    /// The activations escaped; the run stops.
    Escaped(&'a Escape),
}

/// A finished run.
pub struct Outcome {
    /// The selected network, in inference form.
    pub net: Net,
    /// Everything measured.
    pub metrics: RunMetrics,
}

/// Trains `cfg.model` on `data` as `cfg` says, on `device` (an autodiff device).
pub fn train(
    cfg: &TrainConfig,
    data: &DataSet,
    device: &Device,
    checkpoints: &Checkpoints,
    observer: &mut dyn FnMut(Event<'_>),
) -> Result<Outcome, TrainError> {
    cfg.validate().map_err(TrainError::Config)?;
    if checkpoints.resume && cfg.activation.is_quail() {
        return Err(TrainError::Config(
            "--resume is not supported for QuaIL runs (their phases restart)".into(),
        ));
    }
    let device = device.clone().autodiff();
    let mut rng = ChaCha12Rng::seed_from_u64(cfg.seed);
    let mut all: Vec<usize> = (0..data.train.len()).collect();
    all.shuffle(&mut rng);
    if let Some(limit) = cfg.limit_train {
        all.truncate(limit);
    }
    let n_val = ((all.len() as f64) * cfg.val_fraction).round() as usize;
    if all.len() <= n_val || all.is_empty() {
        return Err(TrainError::Data(format!(
            "{} training images leave none to train on after holding out {n_val} for validation",
            all.len()
        )));
    }
    let val = all[..n_val].to_vec();
    let train = all[n_val..].to_vec();
    let mut trainer = Trainer {
        cfg,
        data,
        train,
        val,
        device: device.clone(),
        rng,
        observer,
        history: Vec::new(),
        checkpoints,
    };
    let dims = data.dims();
    let build = |act: &dyn Fn() -> Activation| {
        burn::tensor::Device::seed(&device, cfg.seed);
        cfg.model
            .build(dims, data.classes, act, &device)
            .map_err(TrainError::Config)
    };
    let range = cfg.range;
    let coefficients = cfg.coefficients.clone();
    let quad = cfg.quad_coefficients.clone();
    let dev = device.clone();
    let amm_range = cfg.amm_range;
    let relu = move || Activation::relu(range);
    let (net, selected, escape) = match cfg.activation {
        ActivationKind::Relu => trainer.single(build(&relu)?, false)?,
        ActivationKind::Poly => trainer.single(
            build(&|| Activation::poly(coefficients.clone(), range, true))?,
            true,
        )?,
        ActivationKind::NaivePoly => trainer.single(
            build(&|| Activation::poly(coefficients.clone(), range, false))?,
            false,
        )?,
        ActivationKind::Amm => trainer.single(
            build(&|| Activation::poly(coefficients.clone(), range, false))?
                .map_activations(&|a, c| a.with_amm(c, amm_range, &dev)),
            false,
        )?,
        ActivationKind::Quail | ActivationKind::QuailAmm => {
            let amm = cfg.activation == ActivationKind::QuailAmm;
            let teacher = build(&relu)?;
            // AMM state is added after the teacher's weights are loaded: the teacher's record
            // has no AMM entries.
            let student = build(&|| Activation::poly(quad.clone(), range, false))?;
            let amm = amm.then_some(&dev);
            trainer.quail(teacher, student, amm)?
        }
    };
    // The test split, once, on the selected network.
    let test_indices: Vec<usize> = (0..data.test.len()).collect();
    let net = net.valid();
    let (test_accuracy, test_stats) = if selected.is_some() {
        let (acc, stats) = trainer.evaluate(&net, &data.test, &test_indices)?;
        (Some(acc), Some(stats))
    } else {
        (None, None)
    };
    let parameters = net.num_params();
    let metrics = RunMetrics {
        model: cfg.model.name().into(),
        dataset: cfg.dataset.name().into(),
        activation: cfg.activation.name().into(),
        epochs: trainer.history.len(),
        test_accuracy,
        val_accuracy: selected.map(|(_, v)| v),
        oor_ratio: test_stats.as_ref().map(|s| oor_ratio(s)),
        test_max_abs_per_layer: test_stats
            .as_ref()
            .map(|s| s.iter().map(|c| c.max_abs).collect())
            .unwrap_or_default(),
        best_epoch: selected.map(|(e, _)| e),
        escape,
        parameters,
        history: std::mem::take(&mut trainer.history),
    };
    Ok(Outcome { net, metrics })
}

/// Share of all recorded inputs that were out of range.
pub fn oor_ratio(stats: &[CallStats]) -> f64 {
    let (oor, n) = stats
        .iter()
        .fold((0.0, 0usize), |(o, n), s| (o + s.out_of_range, n + s.count));
    if n == 0 { 0.0 } else { oor / n as f64 }
}

/// Accumulates per-layer records over batches (the same layers every batch).
fn merge(into: &mut Vec<CallStats>, batch: &[CallStats]) {
    if into.is_empty() {
        into.extend_from_slice(batch);
        return;
    }
    for (a, b) in into.iter_mut().zip(batch) {
        a.out_of_range += b.out_of_range;
        a.count += b.count;
        a.max_abs = if a.max_abs.is_nan() || b.max_abs.is_nan() {
            f64::NAN
        } else {
            a.max_abs.max(b.max_abs)
        };
        a.finite &= b.finite;
    }
}

enum Objective<'t> {
    CrossEntropy { pillar: bool },
    Imitate { teacher: &'t Net, layer: usize },
}

struct Trainer<'a> {
    cfg: &'a TrainConfig,
    data: &'a DataSet,
    train: Vec<usize>,
    val: Vec<usize>,
    device: Device,
    rng: ChaCha12Rng,
    observer: &'a mut dyn FnMut(Event<'_>),
    history: Vec<EpochMetrics>,
    checkpoints: &'a Checkpoints,
}

type Selected = Option<(usize, f64)>;

struct PhaseEnd {
    net: Net,
    best: Option<(usize, f64, Net)>,
    escape: Option<Escape>,
}

/// PyTorch's SGD: momentum without dampening (burn defaults to 0.1), weight decay on every
/// parameter, no Nesterov.
pub fn optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(cfg.momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(cfg.weight_decay as f32)))
        .init()
}

impl Trainer<'_> {
    fn optimizer(&self) -> ModuleOptimizer {
        optimizer(self.cfg)
    }

    /// One phase of cross-entropy training, selecting the best validation epoch.
    fn single(
        &mut self,
        net: Net,
        pillar: bool,
    ) -> Result<(Net, Selected, Option<Escape>), TrainError> {
        let end = self.phase(
            net,
            "train",
            self.cfg.epochs,
            Objective::CrossEntropy { pillar },
            &|_| 0,
        )?;
        Ok(finish(end))
    }

    fn batch_tensors(
        &mut self,
        split: &Split,
        indices: &[usize],
        augment: bool,
        device: &Device,
    ) -> Result<(Tensor<4>, Tensor<1, Int>), DataError> {
        let [c, h, w] = split.dims();
        let aug = if augment {
            Some((
                self.cfg.augment.unwrap_or(self.data.kind.default_augment()),
                &mut self.rng,
            ))
        } else {
            None
        };
        let pixels = self.data.normalise(split, indices, aug)?;
        let labels: Vec<i64> = indices
            .iter()
            .map(|&i| i64::from(split.label(i).unwrap_or(0)))
            .collect();
        let x = Tensor::from_data(TensorData::new(pixels, [indices.len(), c, h, w]), device);
        let y = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
        Ok((x, y))
    }

    /// Accuracy and per-layer records of `net` (inference form) on `indices` of `split`.
    fn evaluate(
        &mut self,
        net: &Net,
        split: &Split,
        indices: &[usize],
    ) -> Result<(f64, Vec<CallStats>), DataError> {
        let device = self.device.clone().without_autodiff();
        let mut correct = 0.0;
        let mut stats = Vec::new();
        for chunk in indices.chunks(self.cfg.batch_size.max(1)) {
            let (x, y) = self.batch_tensors(split, chunk, false, &device)?;
            let mut tape = Tape::recording();
            let logits = net.forward(x, &mut tape);
            correct += count_correct(logits, y);
            merge(&mut stats, &tape.finish());
        }
        Ok((correct / indices.len().max(1) as f64, stats))
    }

    fn phase(
        &mut self,
        mut net: Net,
        phase: &str,
        epochs: usize,
        objective: Objective<'_>,
        frozen: &dyn Fn(usize) -> usize,
    ) -> Result<PhaseEnd, TrainError> {
        let cfg = self.cfg;
        let batches = self.train.len().div_ceil(cfg.batch_size);
        (self.observer)(Event::Phase {
            name: phase,
            epochs,
            batches,
        });
        let mut optim = self.optimizer();
        let mut best: Option<(usize, f64, Net)> = None;
        let mut start = 0;
        if let (Some(dir), true) = (&self.checkpoints.dir, self.checkpoints.resume) {
            let (n, o, state) = load_checkpoint(dir, net, optim, cfg)?;
            net = n;
            optim = o;
            start = state.next_epoch;
            self.history = state.history;
            if let Some((e, v)) = state.best {
                let best_net = load_best(dir, Net::clone(&net).valid(), e)?;
                best = Some((e, v, best_net));
            }
        }
        let names = layer_names(&net);
        for epoch in start..epochs {
            (self.observer)(Event::EpochStart { epoch });
            let t0 = Instant::now();
            let lr = learning_rate(cfg.lr, epoch, epochs, cfg.lr_warmup_epochs);
            let schedule = cfg.penalty.at_epoch(epoch);
            // Freeze the leading layers this epoch asks for.
            let k = frozen(epoch);
            net.layers = std::mem::take(&mut net.layers)
                .into_iter()
                .enumerate()
                .map(|(i, l)| if i < k { l.freeze() } else { l.unfreeze() })
                .collect();
            let mut order = self.train.clone();
            order.shuffle(&mut self.rng);
            let (mut loss_sum, mut penalty_sum, mut correct, mut seen) = (0.0, 0.0, 0.0, 0usize);
            let mut stats = Vec::new();
            let mut train_time = 0.0;
            for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
                let tb = Instant::now();
                let device = self.device.clone();
                let data = self.data;
                let (x, y) = self.batch_tensors(&data.train, chunk, true, &device)?;
                let mut tape = match objective {
                    Objective::CrossEntropy { pillar: true } => {
                        Tape::with_penalty(schedule, cfg.penalty.reg_range)
                    }
                    _ => Tape::recording(),
                };
                if let Objective::Imitate { layer, .. } = objective {
                    tape.capture(layer);
                }
                let logits = net.forward(x.clone(), &mut tape);
                let (mut loss, ce_weight) = match &objective {
                    Objective::CrossEntropy { pillar } => {
                        let w = if *pillar { schedule.ce_weight } else { 1.0 };
                        (cross_entropy(logits.clone(), y.clone()).mul_scalar(w), w)
                    }
                    Objective::Imitate { teacher, layer } => {
                        let out = tape.captured();
                        let mut t_tape = Tape::recording();
                        t_tape.capture(*layer);
                        teacher.forward(x.inner(), &mut t_tape);
                        let target = t_tape.captured();
                        match (out, target) {
                            (Some(o), Some(t)) => (o.sub(t.autodiff()).square().mean(), 1.0),
                            _ => {
                                return Err(TrainError::Config(
                                    "QuaIL: activation layer not reached".into(),
                                ));
                            }
                        }
                    }
                };
                let mut penalty = 0.0;
                if let Some(p) = tape.penalty_loss() {
                    penalty = scalar(p.clone());
                    loss = loss.add(p);
                }
                let _ = ce_weight;
                let batch_stats = tape.finish();
                let loss_value = scalar(loss.clone());
                if !loss.is_tracked() {
                    return Err(TrainError::Config(format!(
                        "{phase}: nothing trainable influences the loss"
                    )));
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(lr, net, grads);
                train_time += tb.elapsed().as_secs_f64();
                let batch_correct = count_correct(logits.inner(), y.inner());
                loss_sum += loss_value * chunk.len() as f64;
                penalty_sum += penalty * chunk.len() as f64;
                correct += batch_correct;
                seen += chunk.len();
                (self.observer)(Event::Batch {
                    loss: loss_value,
                    accuracy: batch_correct / chunk.len() as f64,
                    oor_ratio: oor_ratio(&batch_stats),
                });
                if let Some(escape) = escaped(
                    &batch_stats,
                    loss_value,
                    cfg.escape_threshold,
                    &names,
                    phase,
                    epoch,
                    Some(b),
                ) {
                    (self.observer)(Event::Escaped(&escape));
                    return Ok(PhaseEnd {
                        net,
                        best,
                        escape: Some(escape),
                    });
                }
                merge(&mut stats, &batch_stats);
            }
            let valid = net.valid();
            let val_indices = self.val.clone();
            let (val_accuracy, val_stats) = if val_indices.is_empty() {
                (f64::NAN, Vec::new())
            } else {
                let data = self.data;
                self.evaluate(&valid, &data.train, &val_indices)?
            };
            let m = EpochMetrics {
                phase: phase.to_string(),
                epoch,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                penalty: penalty_sum / seen.max(1) as f64,
                train_accuracy: correct / seen.max(1) as f64,
                val_accuracy,
                oor_ratio: oor_ratio(&stats),
                oor_per_layer: stats
                    .iter()
                    .map(|s| s.out_of_range / s.count.max(1) as f64)
                    .collect(),
                max_abs_per_layer: stats.iter().map(|s| s.max_abs).collect(),
                images_per_second: seen as f64 / train_time.max(1e-9),
                seconds: t0.elapsed().as_secs_f64(),
            };
            (self.observer)(Event::Epoch(&m));
            self.history.push(m);
            if let Some(escape) = escaped(
                &val_stats,
                0.0,
                cfg.escape_threshold,
                &names,
                phase,
                epoch,
                None,
            ) {
                (self.observer)(Event::Escaped(&escape));
                return Ok(PhaseEnd {
                    net,
                    best,
                    escape: Some(escape),
                });
            }
            // Later epochs win ties: they have seen more data at a lower learning rate.
            if best
                .as_ref()
                .is_none_or(|(_, v, _)| val_accuracy >= *v || v.is_nan())
            {
                best = Some((epoch, val_accuracy, valid));
            }
            if let Some(dir) = &self.checkpoints.dir {
                save_checkpoint(
                    dir,
                    &net,
                    &optim,
                    &best,
                    State {
                        phase: phase.to_string(),
                        next_epoch: epoch + 1,
                        history: self.history.clone(),
                        best: best.as_ref().map(|(e, v, _)| (*e, *v)),
                        config: cfg.clone(),
                    },
                )?;
            }
        }
        Ok(PhaseEnd {
            net,
            best,
            escape: None,
        })
    }
}

fn finish(end: PhaseEnd) -> (Net, Selected, Option<Escape>) {
    match end.best {
        Some((e, v, net)) => (net, Some((e, v)), end.escape),
        None => (end.net, None, end.escape),
    }
}

/// Names of the activation layers as the exported graph calls them.
fn layer_names(net: &Net) -> Vec<String> {
    let (mut relu, mut poly) = (0, 0);
    net.activations()
        .iter()
        .map(|a| match a.spec {
            crate::activation::ActSpec::Relu => {
                relu += 1;
                format!("relu{relu}")
            }
            crate::activation::ActSpec::Poly { .. } => {
                poly += 1;
                format!("poly{poly}")
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn escaped(
    stats: &[CallStats],
    loss: f64,
    threshold: f64,
    names: &[String],
    phase: &str,
    epoch: usize,
    batch: Option<usize>,
) -> Option<Escape> {
    let name = |i: usize| {
        names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("activation {}", i + 1))
    };
    if let Some((i, s)) = stats
        .iter()
        .enumerate()
        .find(|(_, s)| !s.finite || !s.max_abs.is_finite() || s.max_abs > threshold)
    {
        let what = if s.finite && s.max_abs.is_finite() {
            format!(
                "inputs reached |x| = {:.3e}, beyond the escape threshold {threshold:.0e}",
                s.max_abs
            )
        } else {
            "NaN or infinite inputs appeared".to_string()
        };
        return Some(Escape {
            phase: phase.to_string(),
            epoch,
            batch,
            layer: name(i),
            max_abs: s.max_abs,
            what,
        });
    }
    if !loss.is_finite() {
        return Some(Escape {
            phase: phase.to_string(),
            epoch,
            batch,
            layer: "loss".into(),
            max_abs: loss,
            what: "the loss became NaN or infinite".into(),
        });
    }
    None
}

/// Mean cross-entropy of `logits [N, K]` against class indices `[N]`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let n = labels.dims()[0];
    let logp = log_softmax(logits, 1);
    logp.gather(1, labels.reshape([n, 1])).mean().neg()
}

fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> f64 {
    let n = labels.dims()[0];
    let predicted = logits.argmax(1).reshape([n]);
    scalar(predicted.equal(labels).float().sum())
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .map_or(f64::NAN, f64::from)
}

/// The number of layers of a network that hold parameters, for messages.
pub fn trainable_layers(net: &Net) -> usize {
    net.layers
        .iter()
        .filter(|l| {
            !matches!(
                l,
                Layer::Act(_)
                    | Layer::Flatten(_)
                    | Layer::GlobalAvgPool(_)
                    | Layer::AvgPool(_)
                    | Layer::MaxPool(_)
            )
        })
        .count()
}
