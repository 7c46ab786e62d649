//! `pillar eval`: the accuracy of an ONNX model on a data set's test split, in floating point
//! (`plain`) or in the secure engine's fixed-point arithmetic without the cryptography
//! (`fixed`), which predicts the encrypted accuracy quickly, or through real two-party
//! computation (`secure`: both parties as threads of this process over an in-memory channel,
//! with an in-process trusted dealer), compared image by image with the fixed executor. With
//! `--input`, the logits of given files instead ([`inputs`]).

mod inputs;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pillar_infer::FixedConfig;
use pillar_infer::compare::{Agreement, argmax};
use pillar_infer::mirror;
use pillar_infer::{Parties, Plan, run_local};
use pillar_mpc::Local;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_nn::{FoldedGraph, Graph, Tensor};
use pillar_train::data::{DataSet, DatasetKind};
use serde::Serialize;

use crate::memory::{Budget, MemoryArgs, Size, fit_batch, resident};

/// Images per executor call unless `--batch` says otherwise.
const DEFAULT_BATCH: usize = 100;

/// How the model is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Floating point (the reference).
    Plain,
    /// The secure engine's fixed-point arithmetic, in the clear.
    Fixed,
    /// Two-party computation, both parties in this process.
    Secure,
}

/// Arguments of `pillar eval`.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The ONNX model (from `pillar train`, or exported by PyTorch).
    #[arg(long)]
    model: PathBuf,

    /// Data set: mnist (embedded unless --data), cifar10, cifar100, imagenet.
    #[arg(long, default_value = "mnist")]
    dataset: DatasetKind,

    /// Directory with the data set's files.
    #[arg(long)]
    data: Option<PathBuf>,

    /// Instead of the data set: print the logits of these inputs, images (PNG or JPEG,
    /// normalised as --dataset's, or as the data set of the model's input shape when
    /// --dataset's images have other channels) or NumPy .npy float32 tensors taken as they
    /// are, one input [C, H, W] or a batch [N, C, H, W].
    #[arg(long, num_args = 1.., conflicts_with_all = ["data", "limit"])]
    input: Vec<PathBuf>,

    /// With --input: invert grey images (dark digits on a light background).
    #[arg(long, requires = "input")]
    invert: bool,

    /// plain (float), fixed (fixed-point, as the secure engine computes) or secure (two-party
    /// computation).
    #[arg(long, value_enum, default_value_t = Mode::Plain)]
    mode: Mode,

    /// Evaluate only the first N test images.
    #[arg(long)]
    limit: Option<usize>,

    /// Images per executor call [default: 100; in secure mode fewer when the run's estimated
    /// peak memory would not fit --max-memory].
    #[arg(long)]
    batch: Option<usize>,

    /// Memory for secure mode.
    #[command(flatten)]
    memory: MemoryArgs,

    /// Fractional bits of the fixed-point encoding (fixed mode).
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,

    /// Polynomial protocol (secure mode) or whose arithmetic to mirror (fixed mode): espn,
    /// honeybadger, crypten.
    #[arg(long, default_value = "espn")]
    protocol: ActivationProtocol,

    /// How linear layers run (secure mode): preprocessed (the client's input share of each is a mask fixed
    /// offline: half the online bytes, elementwise client work) or beaver (the older
    /// protocol, which opens each masked input both ways online).
    #[arg(long, default_value = "preprocessed")]
    linear: LinearProtocol,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl EvalArgs {
    /// The arithmetic the flags ask for: the secure run's, or the one the fixed mode mirrors.
    fn config(&self) -> FixedConfig {
        FixedConfig {
            frac_bits: self.frac_bits,
            activation: self.protocol,
            linear: self.linear,
        }
    }
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
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    secure: Option<SecureReport>,
    seconds: f64,
}

/// What secure mode adds: the comparison with the float and fixed-point executors, and the
/// cost of the two-party computation.
#[derive(Debug, Default, Serialize)]
struct SecureReport {
    /// Accuracy of the float executor on the same images.
    plain_accuracy: f64,
    /// Accuracy the fixed executor predicts.
    fixed_accuracy: f64,
    /// Share of images whose secure argmax equals the fixed executor's.
    agreement: f64,
    /// Largest |secure - fixed| logit, over images without a failed truncation.
    max_logit_error: f64,
    /// Images whose logits are off by more than 1.0: a share truncation wrapped around
    /// (its error is about 2^(64 - 2f)); the fixed executor's expectation is
    /// `expected_truncation_failures`.
    truncation_failures: usize,
    /// Images whose argmax differs from the fixed executor's although no truncation failed:
    /// each is a near tie, its two largest fixed logits closer than twice its logit error.
    near_ties: usize,
    /// Images per batch.
    batch: usize,
    /// The process's estimated peak memory, bytes: what it held before the run (the model,
    /// the data, the inputs) and the run's estimate for a batch (client, server and dealer),
    /// what `--max-memory` is checked against.
    memory_estimate_bytes: usize,
    /// The per-connection setup (opening the weight masks), seconds.
    setup_s: f64,
    /// Offline phase (fetching correlations), seconds per image, client side.
    offline_s_per_image: f64,
    /// Online phase, seconds per image, client side.
    online_s_per_image: f64,
    /// Online rounds per batch.
    rounds_per_batch: u64,
    /// Online bytes each party sent, per image (client + server).
    online_bytes_per_image: f64,
    /// Bytes the dealer sends the client, per image.
    offline_bytes_per_image: f64,
}

/// Runs `pillar eval`.
pub(crate) fn run(args: &EvalArgs) -> Result<()> {
    if args.batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    let graph = super::load_model(&args.model)?;
    let graph = graph
        .fold_batchnorm()
        .with_context(|| format!("cannot fold the BatchNorms of {}", args.model.display()))?;
    if !args.input.is_empty() {
        return inputs::run(args, &graph);
    }
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
    let config = args.config();
    let pixels: usize = dims.iter().product();
    let (batch, plan, held) = batch_and_plan(args, &graph, &config, n, pixels)?;
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
    let indices: Vec<usize> = (0..n).collect();
    let mut inputs = Vec::new();
    for chunk in indices.chunks(batch) {
        let pixels = data.normalise(&data.test, chunk, None)?;
        let mut shape = vec![chunk.len()];
        shape.extend_from_slice(&dims);
        inputs.push(Tensor::new(shape, pixels)?);
    }
    let (mut correct, mut failures) = (0usize, 0.0f64);
    let mut secure = None;
    match args.mode {
        Mode::Plain | Mode::Fixed => {
            // The mirror runs the plan the secure run would: compiled once.
            let fp = config.fixed()?;
            for (chunk, input) in indices.chunks(batch).zip(&inputs) {
                let logits = match &plan {
                    None => pillar_nn::exec::float::run(&graph, input)?,
                    Some(plan) => {
                        let out = mirror::run_plan(plan, &mirror::encode(fp, input)?)?;
                        failures += out.expected_failures();
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
        }
        Mode::Secure => {
            let plan = plan.context("secure mode compiles its plan first")?;
            let run = SecureRun {
                plan: &plan,
                batch,
                held,
            };
            let (c, f, r) = run_secure(&run, &graph, &data, &indices, &inputs, &bar)?;
            (correct, failures, secure) = (c, f, Some(r));
        }
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
        frac_bits: (args.mode != Mode::Plain).then_some(args.frac_bits),
        protocol: (args.mode != Mode::Plain).then(|| args.protocol.to_string()),
        expected_truncation_failures: (args.mode != Mode::Plain).then_some(failures),
        secure,
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
                Mode::Secure => format!("secure (f = {}, {})", args.frac_bits, args.protocol),
            },
            report.seconds
        );
        if let Some(r) = &report.secure {
            println!(
                "  plain {:.2}%, fixed {:.2}%; argmax agreement with fixed {:.2}% ({} near ties), \
                 max logit error {:.2e}, truncation failures {} (expected {:.2})",
                100.0 * r.plain_accuracy,
                100.0 * r.fixed_accuracy,
                100.0 * r.agreement,
                r.near_ties,
                r.max_logit_error,
                r.truncation_failures,
                failures
            );
            println!(
                "  per image: online {:.1} ms, {:.1} KB sent by both parties; offline {:.1} ms, \
                 {:.1} KB from the dealer; {} rounds per batch of {} (estimated peak memory {}); \
                 setup {:.2} s",
                1e3 * r.online_s_per_image,
                r.online_bytes_per_image / 1e3,
                1e3 * r.offline_s_per_image,
                r.offline_bytes_per_image / 1e3,
                r.rounds_per_batch,
                r.batch,
                Size(r.memory_estimate_bytes),
                r.setup_s
            );
        }
    }
    Ok(())
}

/// What secure mode runs: the plan, its batch, and the bytes the process holds besides.
struct SecureRun<'a> {
    plan: &'a Plan,
    batch: usize,
    held: usize,
}

/// Secure mode: every batch through two-party computation over one connection, and the
/// float and fixed executors on the same images to compare with.
fn run_secure(
    run: &SecureRun<'_>,
    graph: &FoldedGraph,
    data: &DataSet,
    indices: &[usize],
    inputs: &[Tensor],
    bar: &ProgressBar,
) -> Result<(usize, f64, SecureReport)> {
    let (plan, batch) = (run.plan, run.batch);
    let fp = plan.architecture.fixed();
    let encoded = inputs
        .iter()
        .map(|t| mirror::encode(fp, t))
        .collect::<Result<Vec<_>, _>>()?;
    let (secure, costs) = run_local(plan, &encoded, &Local::default(), &|k| bar.inc(k as u64))
        .context("the two-party computation failed")?;
    let mut r = SecureReport {
        batch,
        memory_estimate_bytes: plan
            .architecture
            .memory_bytes(batch, Parties::Local)?
            .saturating_add(run.held),
        ..SecureReport::default()
    };
    let (mut correct, mut failures) = (0, 0.0);
    let (mut plain, mut fixed) = (0, 0);
    let mut agreement = Agreement::default();
    for (((chunk, input), ring), enc) in
        indices.chunks(batch).zip(inputs).zip(&secure).zip(&encoded)
    {
        let want = mirror::run_plan(plan, enc)?;
        failures += want.expected_failures();
        let got = Tensor::new(
            ring.shape().to_vec(),
            ring.data().iter().map(|&v| fp.decode(v) as f32).collect(),
        )?;
        correct += count_correct(graph, &got, chunk, data)?;
        fixed += count_correct(graph, &want.logits, chunk, data)?;
        plain += count_correct(
            graph,
            &pillar_nn::exec::float::run(graph, input)?,
            chunk,
            data,
        )?;
        agreement.add(&got, &want.logits);
    }
    let n = indices.len().max(1) as f64;
    r.plain_accuracy = plain as f64 / n;
    r.fixed_accuracy = fixed as f64 / n;
    r.agreement = agreement.rate();
    r.max_logit_error = agreement.max_logit_error;
    r.truncation_failures = agreement.truncation_failures;
    r.near_ties = agreement.near_ties;
    r.setup_s = costs.setup.time.as_secs_f64();
    r.offline_s_per_image = costs
        .client
        .iter()
        .map(|b| b.offline.time.as_secs_f64())
        .sum::<f64>()
        / n;
    r.online_s_per_image = costs
        .client
        .iter()
        .map(|b| b.online.time.as_secs_f64())
        .sum::<f64>()
        / n;
    r.rounds_per_batch = costs.client.first().map_or(0, |b| b.online.stats.rounds);
    r.online_bytes_per_image = costs
        .client
        .iter()
        .zip(&costs.server)
        .map(|(c, s)| (c.online.stats.bytes_sent + s.online.stats.bytes_sent) as f64)
        .sum::<f64>()
        / n;
    let offline_words: usize = indices
        .chunks(batch)
        .map(|c| plan.architecture.offline_words(c.len()))
        .sum::<Result<usize, _>>()?;
    r.offline_bytes_per_image = 8.0 * offline_words as f64 / n;
    Ok((correct, failures, r))
}

/// The batch, the plan (fixed and secure modes) and the bytes the process holds besides the
/// run, for evaluating `n` inputs of `pixels` values each. Secure mode sizes its batch by the
/// memory the run will take, before it makes its inputs: what the process holds now (the model
/// and the data; the plan's weights are the estimate's), the inputs (float and encoded), and
/// the run. A batch beyond the inputs evaluated is only as large as they are.
pub(super) fn batch_and_plan(
    args: &EvalArgs,
    graph: &FoldedGraph,
    config: &FixedConfig,
    n: usize,
    pixels: usize,
) -> Result<(usize, Option<Plan>, usize)> {
    Ok(match args.mode {
        Mode::Secure => {
            let budget = Budget::new(&args.memory)?;
            let held = resident()
                .unwrap_or(0)
                .saturating_add(n.saturating_mul(pixels).saturating_mul(4 + 8));
            let plan = compile(args, graph, config)?;
            let batch = fit_batch(
                &plan.architecture,
                Parties::Local,
                args.batch.map(|b| b.min(n.max(1))),
                DEFAULT_BATCH,
                n,
                held,
                budget,
            )?;
            (batch, Some(plan), held)
        }
        Mode::Fixed => (
            args.batch.unwrap_or(DEFAULT_BATCH),
            Some(compile(args, graph, config)?),
            0,
        ),
        Mode::Plain => (args.batch.unwrap_or(DEFAULT_BATCH), None, 0),
    })
}

/// The graph compiled for secure inference (and its mirror).
fn compile(args: &EvalArgs, graph: &FoldedGraph, config: &FixedConfig) -> Result<Plan> {
    Plan::compile_strict(graph, *config).with_context(|| {
        format!(
            "cannot compile {} for secure inference",
            args.model.display()
        )
    })
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
        let predicted = argmax(row);
        if predicted == data.test.label(i).map(usize::from) {
            correct += 1;
        }
    }
    Ok(correct)
}
