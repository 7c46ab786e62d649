//! `pillar bench train`: images per second of one training step, to compare with PyTorch
//! (`scripts/bench_torch_train.py` runs the same model, batch and step there).

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use pillar_train::config::MAX_BATCH_SIZE;
use pillar_train::data::DatasetKind;
use pillar_train::device::Compute;
use pillar_train::{ActivationKind, Architecture};
use serde::Serialize;

use crate::bench::stats::Summary;

/// Arguments of `pillar bench train`.
#[derive(Debug, Args)]
pub(crate) struct TrainBenchArgs {
    /// Architecture.
    #[arg(long, default_value = "minionn")]
    model: Architecture,

    /// Input shape and classes of this data set (random images are used).
    #[arg(long, default_value = "mnist")]
    dataset_shape: DatasetKind,

    /// relu, poly (with clamp and penalty), naive-poly.
    #[arg(long, default_value = "poly")]
    activation: ActivationKind,

    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch: usize,

    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,

    /// Timed steps.
    #[arg(short = 'k', long, default_value_t = 20)]
    steps: usize,

    /// cpu, or gpu (Vulkan; needs a pillar built with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Compute,

    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    model: String,
    activation: String,
    batch: usize,
    steps: usize,
    median_step_s: f64,
    ci95_s: f64,
    images_per_second: f64,
    threads: usize,
    device: String,
}

/// Runs `pillar bench train`.
pub(crate) fn run(args: &TrainBenchArgs) -> Result<()> {
    if args.batch == 0 || args.steps == 0 {
        bail!("--batch and --steps must be at least 1");
    }
    if args.batch > MAX_BATCH_SIZE {
        bail!("--batch {}: at most {MAX_BATCH_SIZE}", args.batch);
    }
    let (shape, classes) = match args.dataset_shape {
        DatasetKind::Mnist => ([1, 28, 28], 10),
        DatasetKind::Cifar10 => ([3, 32, 32], 10),
        DatasetKind::Cifar100 => ([3, 32, 32], 100),
        DatasetKind::Imagenet => ([3, 224, 224], 1000),
    };
    let device = pillar_train::device::open(args.device)?;
    let times = pillar_train::bench::training_steps(
        args.model,
        args.activation,
        shape,
        classes,
        args.batch,
        args.warmup,
        args.steps,
        &device,
    )
    .map_err(anyhow::Error::msg)?;
    let durations: Vec<Duration> = times.iter().map(|&t| Duration::from_secs_f64(t)).collect();
    let s = Summary::of(&durations);
    let row = Row {
        model: args.model.to_string(),
        activation: args.activation.to_string(),
        batch: args.batch,
        steps: args.steps,
        median_step_s: s.median_s,
        ci95_s: s.ci95_s,
        images_per_second: args.batch as f64 / s.median_s,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        device: args.device.to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&row)?);
    } else {
        println!(
            "{} / {} / batch {}: {:.1} ms per step (±{:.1}), {:.0} images/s ({}, {} threads)",
            row.model,
            row.activation,
            row.batch,
            row.median_step_s * 1e3,
            row.ci95_s * 1e3,
            row.images_per_second,
            row.device,
            row.threads
        );
    }
    Ok(())
}
