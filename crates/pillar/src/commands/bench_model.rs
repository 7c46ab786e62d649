//! `pillar bench model`: one secure inference of a whole network under each protocol and
//! emulated link (the paper's Figures 7-10).
//!
//! Both parties run in this process, a thread each, over an in-memory channel (or loopback
//! TCP, plaintext or Noise: `--transport`) that delays
//! every message by half the round-trip time (plus the serialisation delay under a bandwidth
//! cap). One connection per protocol and link: its setup (opening the weight masks) runs once
//! and is reported apart; then each repeat fetches its correlations (offline, timed apart)
//! and runs the online phase, which is what `median_s` measures. Random weights, as in the
//! paper: timing does not depend on them. Inputs and the dealer use a fixed seed.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pillar_infer::FixedConfig;
use pillar_infer::{Parties, Plan, run_local};
use pillar_mpc::channel::Link;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::{Local, Party, RingTensor};
use pillar_nn::{FoldedGraph, TypedGraph};
use pillar_train::Architecture;
use pillar_train::activation::Activation;
use pillar_train::data::DatasetKind;
use serde::Serialize;

use crate::bench::stats::Summary;
use crate::memory::{Budget, MemoryArgs, fit_batch, peak_resident, reset_peak_resident, resident};
use crate::plot::{Timed, time_against_rtt};

/// Arguments of `pillar bench model`.
#[derive(Debug, Args)]
pub(crate) struct ModelBenchArgs {
    /// A paper architecture (minionn, resnet18, resnet20/32/56/110, vgg16, resnet50, convnet)
    /// with random weights, or an ONNX file.
    #[arg(long, default_value = "minionn")]
    model: String,

    /// Input shape and classes of the built-in architectures: mnist, cifar10, cifar100,
    /// imagenet.
    #[arg(long, default_value = "cifar10")]
    dataset_shape: DatasetKind,

    /// Round-trip times to emulate, in milliseconds (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,100",
        allow_negative_numbers = true
    )]
    rtt_ms: Vec<f64>,

    /// Protocols, link, repeats (each after one untimed inference) and format.
    #[command(flatten)]
    runs: super::bench::ProtocolRuns,

    /// Linear-layer protocols to compare (comma-separated): preprocessed, beaver.
    #[arg(long, value_delimiter = ',', default_value = "beaver,preprocessed")]
    linear: Vec<LinearProtocol>,

    /// Print the rows as a Markdown table (what the README shows).
    #[arg(long, conflicts_with = "json")]
    markdown: bool,

    /// Memory: each protocol's run is estimated before any starts.
    #[command(flatten)]
    memory: MemoryArgs,
}

/// One protocol on one link.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelRow {
    model: String,
    protocol: String,
    /// The linear layers' protocol.
    linear: String,
    /// `protocol/linear`, the series of a plot.
    #[serde(skip)]
    series: String,
    /// memory, tcp (plaintext) or noise.
    transport: String,
    rtt_ms: f64,
    bandwidth_mbps: Option<f64>,
    /// Online rounds of one inference (the layers', plus one to deliver the logits).
    rounds: u64,
    /// The layers' rounds alone.
    layer_rounds: usize,
    /// Online payload bytes the client sends (under the Beaver protocol, the server sends
    /// as many plus the logits; under the preprocessed one, the server sends the opened
    /// activations and the client the masked linear inputs).
    online_bytes: u64,
    online_bytes_server: u64,
    /// Bytes the dealer sends the client per inference (the server expands a seed).
    offline_bytes: u64,
    /// Bytes the client sends the server in the offline phase (preprocessed: its posts of
    /// shares known offline).
    offline_post_bytes: u64,
    /// Bytes the server sends once per connection: the weights' `F = W - B`.
    setup_bytes: u64,
    /// Bytes the client sends in the setup (none).
    setup_bytes_client: u64,
    /// Online time of one inference (client side), median over the repeats.
    median_s: f64,
    /// Half-width of the median's 95% confidence interval.
    ci95_s: f64,
    /// Offline time (fetching the correlations from the in-process dealer), median.
    offline_median_s: f64,
    /// The setup, once per connection.
    setup_s: f64,
    /// A fresh connection's first answer: the setup, then the first inference's offline and
    /// online phases (client side).
    first_answer_s: f64,
    /// The process's peak resident memory during this row's runs (both parties and the
    /// dealer), if the system can say.
    peak_bytes: Option<u64>,
    repeats: usize,
}

impl Timed for ModelRow {
    fn point(&self) -> (&str, f64, f64) {
        (&self.series, self.rtt_ms, self.median_s)
    }
}

/// `model` as a graph: an ONNX file, or a paper architecture for `dataset_shape` with random
/// weights drawn from `seed`. Also its name for reports.
pub(crate) fn random_graph(
    model: &str,
    dataset_shape: DatasetKind,
    seed: u64,
) -> Result<(TypedGraph, String)> {
    if model.ends_with(".onnx") || Path::new(model).exists() {
        let g = super::load_model(Path::new(model))?;
        return Ok((g, model.to_string()));
    }
    let arch: Architecture = model.parse().map_err(anyhow::Error::msg)?;
    let (shape, classes) = match dataset_shape {
        DatasetKind::Mnist => ([1, 28, 28], 10),
        DatasetKind::Cifar10 => ([3, 32, 32], 10),
        DatasetKind::Cifar100 => ([3, 32, 32], 100),
        DatasetKind::Imagenet => ([3, 224, 224], 1000),
    };
    let device = burn::tensor::Device::flex();
    device.seed(pillar_mpc::derive_seed_u64(seed, "weights"));
    let coefficients = pillar_fit::PAPER_RELU.to_vec();
    let act = move || Activation::poly(coefficients.clone(), 5.0, true);
    let net = arch
        .build(shape, classes, &act, &device)
        .map_err(anyhow::Error::msg)?;
    let g = pillar_train::model::export::to_graph(&net)
        .context("cannot export the network to a graph")?;
    Ok((g, format!("{arch} ({dataset_shape})")))
}

/// Runs `pillar bench model`.
pub(crate) fn run(args: &ModelBenchArgs) -> Result<()> {
    let fp = args.runs.check(&args.rtt_ms)?;
    let (graph, name) = random_graph(&args.model, args.dataset_shape, args.runs.seed)?;
    let folded = graph
        .fold_batchnorm()
        .with_context(|| format!("cannot fold the BatchNorms of {name}"))?;
    // The folded copy is what the runs compile; the graph's weights would only add to the
    // peak memory each row reports.
    let input_shape = graph.input_shape.clone();
    drop(graph);
    check_memory(args, &folded, &name)?;
    let n: usize = input_shape.iter().product();
    // The inputs' own stream: the weights, the dealer and the masks derive theirs from the
    // same seed.
    let mut rng_state = pillar_mpc::derive_seed_u64(args.runs.seed, "inputs") | 1;
    let pixels: Vec<f64> = (0..n)
        .map(|_| {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            (rng_state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let mut shape = vec![1];
    shape.extend_from_slice(&input_shape);
    let input = RingTensor::encode(fp, shape, &pixels)?;
    let batches = vec![input; args.runs.repeats + 1];

    if args.linear.is_empty() {
        bail!("--linear lists no protocol");
    }
    let bandwidths = args.runs.bandwidths();
    let points =
        args.linear.len() * args.runs.protocols.len() * args.rtt_ms.len() * bandwidths.len();
    let bar = ProgressBar::new((points * (args.runs.repeats + 1)) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} inferences, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut rows = Vec::with_capacity(points);
    for (&linear, &protocol) in args
        .linear
        .iter()
        .flat_map(|l| args.runs.protocols.iter().map(move |p| (l, p)))
    {
        let plan = compile(&folded, args.runs.frac_bits, (protocol, linear), &name)?;
        let arch = &plan.architecture;
        for (&bandwidth, &rtt) in bandwidths
            .iter()
            .flat_map(|b| args.rtt_ms.iter().map(move |r| (b, r)))
        {
            bar.set_message(format!("{protocol}/{linear} at {rtt} ms"));
            let measured_peak = reset_peak_resident();
            let local = Local {
                link: Link::new(rtt, bandwidth),
                seed: Some(args.runs.seed),
                transport: args.runs.transport(),
                ..Local::default()
            };
            let (_, report) = run_local(&plan, &batches, &local, &|k| bar.inc(k as u64))
                .with_context(|| format!("{protocol}/{linear} at RTT {rtt} ms"))?;
            let timed = &report.client[1..];
            let online: Vec<Duration> = timed.iter().map(|b| b.online.time).collect();
            let offline: Vec<Duration> = timed.iter().map(|b| b.offline.time).collect();
            let s = Summary::of(&online);
            let first = report.client[0].online.stats;
            let first_answer =
                report.setup.time + report.client[0].offline.time + report.client[0].online.time;
            let peak_bytes = peak_resident().filter(|_| measured_peak).map(|b| b as u64);
            rows.push(ModelRow {
                model: name.clone(),
                protocol: protocol.to_string(),
                linear: linear.to_string(),
                series: format!("{protocol}/{linear}"),
                transport: format!("{:?}", args.runs.transport()).to_lowercase(),
                rtt_ms: rtt,
                bandwidth_mbps: bandwidth,
                rounds: first.rounds,
                layer_rounds: arch.layer_rounds(),
                online_bytes: first.bytes_sent,
                online_bytes_server: report.server[0].online.stats.bytes_sent,
                offline_bytes: 8 * arch.offline_words(1)? as u64,
                offline_post_bytes: 8 * arch.offline_post_words(1) as u64,
                setup_bytes: report.setup.stats.bytes_sent,
                setup_bytes_client: report.client_setup.stats.bytes_sent,
                median_s: s.median_s,
                ci95_s: s.ci95_s,
                offline_median_s: Summary::of(&offline).median_s,
                setup_s: report.setup.time.as_secs_f64(),
                first_answer_s: first_answer.as_secs_f64(),
                peak_bytes,
                repeats: args.runs.repeats,
            });
            debug_assert_eq!(
                first.bytes_sent,
                8 * arch.online_words(1, Party::Client) as u64
            );
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &args.runs.plot {
        time_against_rtt(
            &rows,
            &format!("one secure inference of {name}, batch 1"),
            "online time per inference (s)",
            path,
        )
        .with_context(|| format!("drawing {}", path.display()))?;
    }
    if args.runs.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if args.markdown {
        print!("{}", markdown(&rows));
    } else {
        print!("{}", table(args, &name, &rows));
    }
    Ok(())
}

/// Refuses, before anything runs, a network whose single-image run under one of the
/// protocols would not fit `--max-memory` (or the memory available): each protocol's plan is
/// compiled and dropped in turn, so that only one is held at a time, as in the runs.
fn check_memory(args: &ModelBenchArgs, folded: &FoldedGraph, name: &str) -> Result<()> {
    let budget = Budget::new(&args.memory)?;
    let held = resident().unwrap_or(0);
    for &protocol in &args.runs.protocols {
        let plan = compile(
            folded,
            args.runs.frac_bits,
            (protocol, linear_for_memory(args)),
            name,
        )?;
        fit_batch(
            &plan.architecture,
            Parties::Local,
            Some(1),
            1,
            1,
            held,
            budget,
        )
        .with_context(|| format!("{name} under {protocol}"))?;
    }
    Ok(())
}

/// The linear protocol whose run the memory check sizes: the preprocessed one's client holds
/// the shares it knows offline besides what the Beaver one holds, so it is the larger.
fn linear_for_memory(args: &ModelBenchArgs) -> LinearProtocol {
    if args.linear.contains(&LinearProtocol::Preprocessed) {
        LinearProtocol::Preprocessed
    } else {
        LinearProtocol::Beaver
    }
}

/// `folded` compiled for `protocol` and `linear`.
fn compile(
    folded: &FoldedGraph,
    frac_bits: u32,
    (protocol, linear): (ActivationProtocol, LinearProtocol),
    name: &str,
) -> Result<Plan> {
    Plan::compile(
        folded,
        FixedConfig {
            frac_bits,
            activation: protocol,
            linear,
        },
    )
    .with_context(|| format!("cannot compile {name} for {protocol}/{linear}"))
}

/// What both tables show first of a row: the protocols, the link, the rounds and the bytes.
fn leading_cells(r: &ModelRow) -> [String; 8] {
    use super::bench::{bandwidth, bytes};
    [
        r.protocol.clone(),
        r.linear.clone(),
        bandwidth(r.bandwidth_mbps),
        r.rtt_ms.to_string(),
        r.rounds.to_string(),
        bytes(r.online_bytes),
        bytes(r.online_bytes_server),
        bytes(r.offline_bytes + r.offline_post_bytes),
    ]
}

/// The rows as the README's Markdown table.
fn markdown(rows: &[ModelRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| protocol | linear | Mbit/s | RTT ms | rounds | client sends | server sends | offline | online | first answer | peak memory |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.3} s | {:.2} s | {} |",
            leading_cells(r).join(" | "),
            r.median_s,
            r.first_answer_s,
            r.peak_bytes.map_or("-".to_string(), super::bench::bytes),
        );
    }
    out
}

fn table(args: &ModelBenchArgs, name: &str, rows: &[ModelRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name}, batch 1, f = {}, {} transport, median of {} inferences (online phase)",
        args.runs.frac_bits,
        format!("{:?}", args.runs.transport()).to_lowercase(),
        args.runs.repeats
    );
    let _ = writeln!(
        out,
        "{:<12} {:<12} {:>7} {:>7} {:>7} {:>12} {:>12} {:>12} {:>12} {:>11} {:>11} {:>12}",
        "protocol",
        "linear",
        "Mbit/s",
        "RTT ms",
        "rounds",
        "client sends",
        "server sends",
        "offline",
        "median s",
        "95% CI s",
        "offline s",
        "setup (srv)"
    );
    for r in rows {
        let [protocol, linear, mbps, rtt, rounds, client, server, offline] = leading_cells(r);
        let _ = writeln!(
            out,
            "{protocol:<12} {linear:<12} {mbps:>7} {rtt:>7} {rounds:>7} {client:>12} {server:>12} {offline:>12} {:>12.3} {:>11} {:>11.3} {:>12}",
            r.median_s,
            format!("+-{:.3}", r.ci95_s),
            r.offline_median_s,
            super::bench::bytes(r.setup_bytes),
        );
    }
    out
}
