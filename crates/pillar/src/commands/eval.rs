//! `pillar eval`: the accuracy of an ONNX model on a data set's test split, in floating point
//! (`plain`) or in the secure engine's fixed-point arithmetic without the cryptography
//! (`fixed`), which predicts the encrypted accuracy quickly.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_nn::exec::fixed::FixedConfig;
use pillar_nn::{Graph, Tensor, fold_batchnorm};
use pillar_train::data::{DataSet, DatasetKind};
use serde::Serialize;

/// How the model is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Floating point (the reference).
    Plain,
    /// The secure engine's fixed-point arithmetic, in the clear.
    Fixed,
}

/// Arguments of `pillar eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The ONNX model (from `pillar train`, or exported by PyTorch).
    #[arg(long)]
    model: PathBuf,

    /// Data set: mnist (embedded unless --data), cifar10, cifar100, imagenet.
    #[arg(long, default_value = "mnist")]
    dataset: DatasetKind,

    /// Directory with the data set's files.
    #[arg(long)]
    data: Option<PathBuf>,

    /// plain (float) or fixed (fixed-point, as the secure engine computes).
    #[arg(long, value_enum, default_value_t = Mode::Plain)]
    mode: Mode,

    /// Evaluate only the first N test images.
    #[arg(long)]
    limit: Option<usize>,

    /// Images per executor call.
    #[arg(long, default_value_t = 100)]
    batch: usize,

    /// Fractional bits of the fixed-point encoding (fixed mode).
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,

    /// Whose polynomial arithmetic to mirror in fixed mode: espn, honeybadger, crypten.
    #[arg(long, default_value = "espn")]
    protocol: ActivationProtocol,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    dataset: String,
    mode: Mode,
    images: usize,
    correct: usize,
    accuracy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    frac_bits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_truncation_failures: Option<f64>,
    seconds: f64,
}

/// Runs `pillar eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let graph = pillar_nn::onnx::load(&args.model)
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    let graph = fold_batchnorm(&graph)
        .with_context(|| format!("cannot fold the BatchNorms of {}", args.model.display()))?;
    let data = DataSet::load(args.dataset, args.data.as_deref())
        .with_context(|| format!("cannot load {}", args.dataset))?;
    let dims = data.test.dims();
    if graph.input_shape != dims {
        bail!(
            "{} expects inputs of shape {:?}, but {} images are {:?}",
            args.model.display(),
            graph.input_shape,
            args.dataset,
            dims
        );
    }
    let n = args.limit.unwrap_or(data.test.len()).min(data.test.len());
    let config = FixedConfig {
        frac_bits: args.frac_bits,
        activation: args.protocol,
    };
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(n as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("eval [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let t0 = Instant::now();
    let (mut correct, mut failures) = (0usize, 0.0f64);
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(args.batch) {
        let pixels = data.normalise(&data.test, chunk, None)?;
        let mut shape = vec![chunk.len()];
        shape.extend_from_slice(&dims);
        let input = Tensor::new(shape, pixels)?;
        let logits = match args.mode {
            Mode::Plain => pillar_nn::exec::float::run(&graph, &input)?,
            Mode::Fixed => {
                let out = pillar_nn::exec::fixed::run(&graph, &input, &config)?;
                failures += out.layers.iter().map(|l| l.expected_failures).sum::<f64>();
                out.logits
            }
        };
        correct += count_correct(&graph, &logits, chunk, &data)?;
        bar.inc(chunk.len() as u64);
        bar.set_message(format!(
            "{:.2}%",
            100.0 * correct as f64 / bar.position().max(1) as f64
        ));
    }
    bar.finish_and_clear();
    let report = Report {
        model: args.model.display().to_string(),
        dataset: args.dataset.to_string(),
        mode: args.mode,
        images: n,
        correct,
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        frac_bits: (args.mode == Mode::Fixed).then_some(args.frac_bits),
        protocol: (args.mode == Mode::Fixed).then(|| args.protocol.to_string()),
        expected_truncation_failures: (args.mode == Mode::Fixed).then_some(failures),
        seconds: t0.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {:.2}% ({}/{}) on {} test images, {} mode in {:.1}s",
            args.model.display(),
            report.accuracy * 100.0,
            correct,
            n,
            args.dataset,
            match args.mode {
                Mode::Plain => "plain".to_string(),
                Mode::Fixed => format!(
                    "fixed (f = {}, {} arithmetic; expected share-truncation failures {:.1e})",
                    args.frac_bits, args.protocol, failures
                ),
            },
            report.seconds
        );
    }
    Ok(())
}

fn count_correct(graph: &Graph, logits: &Tensor, chunk: &[usize], data: &DataSet) -> Result<usize> {
    let classes = logits.shape().get(1).copied().unwrap_or(0);
    if logits.shape().len() != 2 || classes == 0 {
        bail!(
            "the model's output has shape {:?}, expected [batch, classes]",
            logits.shape()
        );
    }
    if classes != data.classes {
        bail!(
            "the model has {classes} outputs but {} has {} classes (output node {:?})",
            data.kind,
            data.classes,
            graph
                .nodes
                .last()
                .map(|n| n.name.as_str())
                .unwrap_or("input")
        );
    }
    let mut correct = 0;
    for (row, &i) in logits.data().chunks_exact(classes).zip(chunk) {
        let predicted = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, _)| k);
        if predicted == data.test.label(i).map(usize::from) {
            correct += 1;
        }
    }
    Ok(correct)
}
