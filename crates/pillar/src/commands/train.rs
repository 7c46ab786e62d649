//! `pillar train`: a CNN with polynomial (or ReLU) activations on a data set, exported to ONNX
//! with its metrics and curves.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pillar_nn::write_atomic;
use pillar_train::data::{DataSet, DatasetKind};
use pillar_train::device::Compute;
use pillar_train::metrics::RunMetrics;
use pillar_train::model::export::to_graph;
use pillar_train::{ActivationKind, Architecture, Checkpoints, Event, TrainConfig};

/// Arguments of `pillar train`.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Architecture: convnet, minionn, minionn-no-bn, vgg16, resnet18, resnet20, resnet32,
    /// resnet56, resnet110, resnet50 [default: minionn].
    #[arg(long)]
    model: Option<Architecture>,

    /// Data set: mnist (embedded unless --data), cifar10, cifar100, imagenet [default: mnist].
    #[arg(long)]
    dataset: Option<DatasetKind>,

    /// Directory with the data set's files (MNIST IDX, CIFAR batches: binary or torchvision's
    /// pickled cifar-10-batches-py, or the folder above them; or an ImageNet-style train/ and
    /// val/ tree).
    #[arg(long)]
    data: Option<PathBuf>,

    /// relu, poly (PILLAR), naive-poly, quail, amm, quail+amm [default: poly].
    #[arg(long)]
    activation: Option<ActivationKind>,

    /// Training epochs [default: 20].
    #[arg(long)]
    epochs: Option<usize>,

    /// Output directory: model.onnx, metrics.json, curves.png, config.toml, checkpoint/.
    #[arg(long)]
    out: PathBuf,

    /// TOML file with any TrainConfig field (flags given here override it).
    #[arg(long)]
    config: Option<PathBuf>,

    /// Images per step [default: 128].
    #[arg(long)]
    batch_size: Option<usize>,

    /// Peak learning rate [default: the paper's for the model].
    #[arg(long)]
    lr: Option<f64>,

    /// Weight decay [default: the paper's for the model].
    #[arg(long)]
    weight_decay: Option<f64>,

    /// Penalty weight lambda [default: the paper's for the model].
    #[arg(long)]
    lambda: Option<f64>,

    /// Penalty range r [default: the paper's for the model].
    #[arg(long)]
    reg_range: Option<f64>,

    /// Epochs of learning-rate warm-up [default: 5].
    #[arg(long)]
    lr_warmup_epochs: Option<usize>,

    /// Seed of weights, shuffling, augmentation and the validation split [default: 1].
    #[arg(long)]
    seed: Option<u64>,

    /// Train on at most this many images (quick runs).
    #[arg(long)]
    limit: Option<usize>,

    /// Continue from OUT/checkpoint.
    #[arg(long)]
    resume: bool,

    /// Replace a run already in OUT (its model, metrics, curves, configuration and
    /// checkpoint are deleted first). Without it, or --resume, an existing run is refused.
    #[arg(long, conflicts_with = "resume")]
    force: bool,

    /// cpu, or gpu (Vulkan; needs a pillar built with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Compute,
}

/// Merges defaults (the paper's recipe for the model), the config file, and the flags.
fn config(args: &TrainArgs) -> Result<TrainConfig> {
    let file: toml::Table = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?
        }
        None => toml::Table::new(),
    };
    let model = match (args.model, file.get("model")) {
        (Some(m), _) => m,
        (None, Some(v)) => v
            .as_str()
            .context("config: model must be a string")?
            .parse()
            .map_err(anyhow::Error::msg)?,
        (None, None) => Architecture::Minionn,
    };
    let mut merged = toml::Table::try_from(TrainConfig::recipe(model))?;
    overlay(&mut merged, file);
    let mut cfg: TrainConfig = merged.try_into().with_context(|| match &args.config {
        Some(p) => format!("{}: invalid configuration", p.display()),
        None => "invalid configuration".into(),
    })?;
    cfg.model = model;
    if let Some(v) = args.dataset {
        cfg.dataset = v;
    }
    if let Some(v) = args.activation {
        cfg.activation = v;
    }
    if let Some(v) = args.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = args.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = args.lr {
        cfg.lr = v;
    }
    if let Some(v) = args.weight_decay {
        cfg.weight_decay = v;
    }
    if let Some(v) = args.lambda {
        cfg.penalty.lambda = v;
    }
    if let Some(v) = args.reg_range {
        cfg.penalty.reg_range = v;
    }
    if let Some(v) = args.lr_warmup_epochs {
        cfg.lr_warmup_epochs = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    if args.limit.is_some() {
        cfg.limit_train = args.limit;
    }
    cfg.validate().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

/// Deep-merges `top` into `base`.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => overlay(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Runs `pillar train`.
pub(crate) fn run(args: &TrainArgs) -> Result<()> {
    let cfg = config(args)?;
    let start = if args.resume {
        Start::Resume
    } else if args.force {
        Start::Replace
    } else {
        Start::New
    };
    // Before the data loads: a refused output directory or checkpoint is known at once.
    start.check(&cfg, &args.out)?;
    let device = pillar_train::device::open(args.device)?;
    let data = DataSet::load(cfg.dataset, args.data.as_deref())
        .with_context(|| format!("cannot load {}", cfg.dataset))?;
    eprintln!(
        "training {} with {} activations on {} ({} training images, {} test), {} epochs",
        cfg.model,
        cfg.activation,
        cfg.dataset,
        cfg.limit_train
            .map_or(data.train.len(), |l| l.min(data.train.len())),
        data.test.len(),
        cfg.epochs
    );
    if let Some(warning) = warm_up_warning(&cfg) {
        eprintln!("warning: {warning}");
    }
    let outcome = train_to(&cfg, &data, &device, &args.out, start)?;
    report(&outcome.metrics, &args.out)
}

/// What a PILLAR run too short for its penalty's warm-up should be told: its first epochs
/// train only the penalty, so the model it writes is near chance.
fn warm_up_warning(cfg: &TrainConfig) -> Option<String> {
    use pillar_train::penalty::{PENALTY_ONLY_EPOCHS, WARMUP_EPOCHS};
    if cfg.activation != ActivationKind::Poly || cfg.epochs > WARMUP_EPOCHS {
        return None;
    }
    let first = if PENALTY_ONLY_EPOCHS == 1 {
        "the first epoch trains".to_string()
    } else {
        format!("the first {PENALTY_ONLY_EPOCHS} epochs train")
    };
    let outcome = if cfg.epochs <= PENALTY_ONLY_EPOCHS {
        "this model will be near chance"
    } else {
        "this model will be far from trained"
    };
    Some(format!(
        "--epochs {}: with --activation poly {first} only the out-of-range penalty, and the \
         penalty warms up over {WARMUP_EPOCHS} epochs, so {outcome}; pass --epochs {} or \
         more (the paper trains 20 or more)",
        cfg.epochs,
        WARMUP_EPOCHS + 1
    ))
}

/// The files a run writes to its directory: one of them there means a run is there.
const RUN_FILES: [&str; 5] = [
    "config.toml",
    "metrics.json",
    "curves.png",
    "model.onnx",
    "checkpoint",
];

/// How a run treats its output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// A new run: an existing one is refused, never overwritten.
    New,
    /// A new run over an existing one (`--force`), whose files are deleted first so that an
    /// interrupted run does not leave the old model next to the new checkpoint.
    Replace,
    /// Continue the checkpoint (`--resume`); nothing is written until it has loaded.
    Resume,
}

impl Start {
    /// Refuses what would lose or mix up a run, before anything is written.
    fn check(self, cfg: &TrainConfig, out: &Path) -> Result<()> {
        match self {
            Start::New => {
                if let Some(file) = RUN_FILES.iter().find(|f| out.join(f).exists()) {
                    bail!(
                        "{} already holds a run ({file}): pass --resume to continue it, or --force to replace it",
                        out.display()
                    );
                }
                Ok(())
            }
            Start::Replace => Ok(()),
            Start::Resume => Ok(pillar_train::check_resume(&out.join("checkpoint"), cfg)?),
        }
    }

    /// Prepares `out` for the run: checked, created, the old run removed if replaced.
    fn prepare(self, cfg: &TrainConfig, out: &Path) -> Result<()> {
        self.check(cfg, out)?;
        if self == Start::Replace {
            for file in RUN_FILES {
                let path = out.join(file);
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match removed {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                    }
                    _ => {}
                }
            }
        }
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
    }
}

/// Trains `cfg` on `data` with a progress bar per epoch, and writes to `out` what `pillar
/// train` writes: `config.toml`, `metrics.json`, `curves.png`, `model.onnx` (if an epoch was
/// selected) and `checkpoint/`, each file atomically. A resumed run writes nothing before
/// its checkpoint has loaded.
pub(crate) fn train_to(
    cfg: &TrainConfig,
    data: &DataSet,
    device: &burn::tensor::Device,
    out: &Path,
    start: Start,
) -> Result<pillar_train::Outcome> {
    let resume = start == Start::Resume;
    if !resume {
        start.prepare(cfg, out)?;
        write_config(cfg, out)?;
    }
    let checkpoints = Checkpoints {
        dir: Some(out.join("checkpoint")),
        resume,
    };
    let mut progress = Progress::default();
    let outcome = pillar_train::train(cfg, data, device, &checkpoints, &mut |e| progress.event(e))?;
    progress.finish();
    if resume {
        write_config(cfg, out)?;
    }
    write_outputs(out, &outcome)?;
    Ok(outcome)
}

fn write_config(cfg: &TrainConfig, out: &Path) -> Result<()> {
    let path = out.join("config.toml");
    write_atomic(&path, toml::to_string_pretty(cfg)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_outputs(out: &Path, outcome: &pillar_train::Outcome) -> Result<()> {
    let metrics = &outcome.metrics;
    let metrics_path = out.join("metrics.json");
    write_atomic(
        &metrics_path,
        serde_json::to_string_pretty(metrics)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", metrics_path.display()))?;
    let curves = out.join("curves.png");
    if !metrics.history.is_empty() {
        crate::plot::training(metrics, &curves)
            .with_context(|| format!("cannot draw {}", curves.display()))?;
    }
    if metrics.best_epoch.is_some() {
        let graph = to_graph(&outcome.net).context("cannot export the trained network")?;
        let onnx = out.join("model.onnx");
        pillar_nn::onnx::save(&graph, &onnx)
            .with_context(|| format!("cannot write {}", onnx.display()))?;
    }
    Ok(())
}

/// Prints the run's result; a run in which no epoch finished is a failure.
fn report(metrics: &RunMetrics, out: &Path) -> Result<()> {
    if let Some(e) = &metrics.escape {
        eprintln!(
            "activations escaped in phase {}, epoch {}{}, layer {}: {}; training stopped",
            e.phase,
            e.epoch + 1,
            e.batch.map(|b| format!(", batch {b}")).unwrap_or_default(),
            e.layer,
            e.what
        );
    }
    match (
        metrics.test_accuracy,
        metrics.val_accuracy,
        metrics.best_epoch,
    ) {
        (Some(test), Some(val), Some(epoch)) => println!(
            "selected epoch {} by validation accuracy {:.2}%: test accuracy {:.2}%, out-of-range ratio {:.2e}",
            epoch + 1,
            val * 100.0,
            test * 100.0,
            metrics.oor_ratio.unwrap_or(0.0)
        ),
        _ => bail!(
            "no epoch finished: no model was written (metrics in {})",
            out.join("metrics.json").display()
        ),
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// One progress bar per epoch, with the running loss, accuracy and out-of-range ratio.
#[derive(Default)]
struct Progress {
    bar: Option<ProgressBar>,
    phase: String,
    epochs: usize,
    batches: usize,
    loss: f64,
    correct: f64,
    oor: f64,
    steps: usize,
}

impl Progress {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Phase {
                name,
                epochs,
                batches,
            } => {
                self.phase = name.to_string();
                self.epochs = epochs;
                self.batches = batches;
            }
            Event::EpochStart { epoch } => {
                let bar = ProgressBar::new(self.batches as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{} {}/{}", self.phase, epoch + 1, self.epochs));
                self.bar = Some(bar);
                (self.loss, self.correct, self.oor, self.steps) = (0.0, 0.0, 0.0, 0);
            }
            Event::Batch {
                loss,
                accuracy,
                oor_ratio,
            } => {
                self.loss += loss;
                self.correct += accuracy;
                self.oor += oor_ratio;
                self.steps += 1;
                if let Some(bar) = &self.bar {
                    let n = self.steps as f64;
                    bar.set_message(format!(
                        "loss {:.4} acc {:.2}% oor {:.1e}",
                        self.loss / n,
                        100.0 * self.correct / n,
                        self.oor / n
                    ));
                    bar.inc(1);
                }
            }
            Event::Epoch(m) => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let max = m.max_abs_per_layer.iter().copied().fold(0.0, f64::max);
                eprintln!(
                    "{} epoch {}/{}: lr {:.2e} loss {:.4} train {:.2}% val {:.2}% oor {:.2e} max|x| {:.2} ({:.0} img/s, {:.1}s)",
                    m.phase,
                    m.epoch + 1,
                    self.epochs,
                    m.lr,
                    m.train_loss,
                    m.train_accuracy * 100.0,
                    m.val_accuracy * 100.0,
                    m.oor_ratio,
                    max,
                    m.images_per_second,
                    m.seconds
                );
            }
            Event::Escaped(_) => {
                if let Some(bar) = self.bar.take() {
                    bar.abandon();
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_poly_runs_within_the_penalty_warm_up_are_warned() {
        let cfg = |activation, epochs| TrainConfig {
            activation,
            epochs,
            ..TrainConfig::default()
        };
        let one = warm_up_warning(&cfg(ActivationKind::Poly, 1)).unwrap();
        assert!(
            one.contains("near chance") && one.contains("--epochs 5"),
            "{one}"
        );
        let four = warm_up_warning(&cfg(ActivationKind::Poly, 4)).unwrap();
        assert!(four.contains("far from trained"), "{four}");
        assert_eq!(warm_up_warning(&cfg(ActivationKind::Poly, 5)), None);
        assert_eq!(warm_up_warning(&cfg(ActivationKind::Relu, 1)), None);
        assert_eq!(warm_up_warning(&cfg(ActivationKind::NaivePoly, 1)), None);
    }
}
