//! `pillar bench`: the paper's speed measurements.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pillar_fit::{FitSpec, Method, Target};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::{FixedPoint, Transport};

use crate::bench::activations::{self, Config, Row};

/// Arguments of `pillar bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// One activation layer under each protocol over an emulated link (the paper's Figure 2).
    ///
    /// Both parties run in this process over an in-memory channel that delays every message by
    /// half the round-trip time (plus the serialisation delay under a bandwidth cap). The
    /// correlated randomness is fetched before each repeat and not timed; neither are sharing
    /// the input and opening the output. Inputs and the dealer use a fixed seed (--seed).
    Activations(ActivationsArgs),
    /// Images per second of a training step (forward, backward, SGD update) on random
    /// images; `scripts/bench_torch_train.py` times the same step in PyTorch.
    Train(super::bench_train::TrainBenchArgs),
    /// One secure inference of a whole network under each protocol over an emulated link
    /// (the paper's Figures 7-10): rounds, online and offline bytes, online time.
    ///
    /// Both parties run in this process over an in-memory channel that delays every message
    /// by half the round-trip time. Per protocol and link, one connection: its setup (opening
    /// the weight masks) is reported apart, then each repeat fetches its correlations (timed
    /// apart) and runs the online phase. Random weights; a fixed seed (--seed).
    Model(super::bench_model::ModelBenchArgs),
    /// Concurrent clients against one server for a bounded time: every result checked,
    /// throughput and peak memory reported.
    ///
    /// A dealer, a server and N client threads in this process, over loopback TCP (Noise by
    /// default). Each client opens connections one after another and sends single-image
    /// requests on each; its logits must equal the fixed-point executor's. Random weights and
    /// inputs from a fixed seed (--seed).
    Load(super::bench_load::LoadBenchArgs),
    /// Dealer, server and client as processes over a real TCP path with a round-trip time
    /// and an optional bandwidth cap: time to first answer, step by step (root only).
    ///
    /// Two network namespaces (dealer and server in one, the client in the other) joined by a
    /// delay line in this process that holds every packet for half the round-trip time and
    /// paces it to the cap, with a bounded drop-tail queue. Per point: fresh clients, each its
    /// own process and connection, as their own reports time them; a warm connection's later
    /// requests; and `pillar bench model` on the same link for comparison. Needs root,
    /// /dev/net/tun and `ip netns`; elsewhere it prints "skipped: ..." and exits 0.
    Net(super::bench_net::NetBenchArgs),
}

/// What both secure benchmarks vary and repeat (protocols, link bandwidth, repeats, format,
/// seed) and how they report.
#[derive(Debug, Args)]
pub(crate) struct ProtocolRuns {
    /// Protocols for the activation layers, comma-separated: relu, crypten, espn,
    /// honeybadger (`pillar bench model` runs each polynomial as an exact ReLU for `relu`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "relu,crypten,espn,honeybadger"
    )]
    pub protocols: Vec<ActivationProtocol>,

    /// Cap the link's bandwidth, in megabits per second, comma-separated to run each;
    /// `unlimited` for none [default: unlimited].
    #[arg(long, value_delimiter = ',')]
    pub bandwidth_mbps: Vec<Bandwidth>,

    /// Timed repeats per protocol and link.
    #[arg(short = 'k', long, default_value_t = 20)]
    pub repeats: usize,

    /// Fractional bits of the fixed point (8-20).
    #[arg(long, default_value_t = 16)]
    pub frac_bits: u32,

    /// Seed of the inputs, the weights and the dealer (benchmarks only: a fixed seed is not
    /// secure).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Print the rows as JSON.
    #[arg(long)]
    pub json: bool,

    /// Draw time against round-trip time, one line per protocol, into this PNG.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,

    /// Carry the messages over in-memory queues, or a loopback TCP connection in plaintext or
    /// inside Noise (what encryption and authentication cost).
    #[arg(long, value_enum, default_value_t = TransportArg::Memory)]
    pub transport: TransportArg,
}

impl ProtocolRuns {
    /// The transport between the two local parties.
    pub(crate) fn transport(&self) -> Transport {
        match self.transport {
            TransportArg::Memory => Transport::Memory,
            TransportArg::Tcp => Transport::Tcp,
            TransportArg::Noise => Transport::Noise,
        }
    }

    /// Checks these and the round-trip times; returns the fixed-point format.
    pub(crate) fn check(&self, rtt_ms: &[f64]) -> Result<FixedPoint> {
        if self.repeats == 0 {
            bail!("--repeats must be at least 1");
        }
        if self.protocols.is_empty() {
            bail!("--protocols lists no protocol");
        }
        for &rtt in rtt_ms {
            super::net::check_rtt_ms(rtt)?;
        }
        for b in &self.bandwidth_mbps {
            super::net::check_bandwidth_mbps(b.0)?;
        }
        Ok(FixedPoint::new(self.frac_bits)?)
    }

    /// The bandwidth caps to run: each given, or none.
    pub(crate) fn bandwidths(&self) -> Vec<Option<f64>> {
        if self.bandwidth_mbps.is_empty() {
            vec![None]
        } else {
            self.bandwidth_mbps.iter().map(|b| b.0).collect()
        }
    }
}

/// A bandwidth cap in megabits per second, or none (`unlimited`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bandwidth(pub Option<f64>);

impl std::str::FromStr for Bandwidth {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(Bandwidth(None));
        }
        s.trim()
            .parse()
            .map(|b| Bandwidth(Some(b)))
            .map_err(|_| format!("{s:?}: give a number of megabits per second, or unlimited"))
    }
}

/// Arguments of `pillar bench activations`.
#[derive(Debug, Args)]
pub(crate) struct ActivationsArgs {
    /// Elements in the activation layer.
    #[arg(short = 'n', long, default_value_t = 100_000)]
    elements: usize,

    /// Round-trip times to emulate, in milliseconds (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.25,50,100",
        allow_negative_numbers = true
    )]
    rtt_ms: Vec<f64>,

    #[command(flatten)]
    runs: ProtocolRuns,

    /// Degree of the ReLU fit used by the polynomial protocols (range 5, 10 bits, as
    /// `pillar fit`).
    #[arg(short, long, default_value_t = 4)]
    degree: usize,

    /// Use these coefficients c_0,..,c_d instead of a fit.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    coefficients: Option<Vec<f64>>,

    /// Inputs are uniform in [-RANGE, RANGE].
    #[arg(long, default_value_t = 6.0)]
    input_range: f64,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TransportArg {
    /// In-memory queues between two threads.
    Memory,
    /// A plaintext TCP connection over the loopback interface (the real framing and sockets).
    Tcp,
    /// The same inside Noise (encrypted and authenticated, fresh keys): what security costs.
    Noise,
}

/// Runs `pillar bench`.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    match &args.command {
        BenchCommand::Activations(a) => run_activations(a),
        BenchCommand::Train(a) => super::bench_train::run(a),
        BenchCommand::Model(a) => super::bench_model::run(a),
        BenchCommand::Load(a) => super::bench_load::run(a),
        BenchCommand::Net(a) => super::bench_net::run(a),
    }
}

/// Most elements in the benchmarked layer: each party holds several ring words per element
/// and the dealer more, so a typo of a few digits must be refused, not exhaust memory.
const MAX_ELEMENTS: usize = 10_000_000;

fn config(args: &ActivationsArgs) -> Result<Config> {
    if args.elements == 0 {
        bail!("--elements must be at least 1");
    }
    if args.elements > MAX_ELEMENTS {
        bail!("--elements {}: at most {MAX_ELEMENTS}", args.elements);
    }
    let fixed = args.runs.check(&args.rtt_ms)?;
    if !(args.input_range.is_finite() && args.input_range > 0.0) {
        bail!("--input-range {}: give a positive number", args.input_range);
    }
    let coefficients = match &args.coefficients {
        Some(c) => c.clone(),
        None => {
            let spec = FitSpec::new(Target::Relu, args.degree, 5.0, 10)?;
            pillar_fit::fit(&spec, Method::Exact)?
                .polynomial()
                .coefficients
                .clone()
        }
    };
    Ok(Config {
        elements: args.elements,
        rtt_ms: args.rtt_ms.clone(),
        protocols: args.runs.protocols.clone(),
        bandwidth_mbps: None,
        repeats: args.runs.repeats,
        fixed,
        coefficients,
        input_range: args.input_range,
        seed: args.runs.seed,
        transport: args.runs.transport(),
    })
}

fn run_activations(args: &ActivationsArgs) -> Result<()> {
    let mut config = config(args)?;
    let bandwidths = args.runs.bandwidths();
    let points = config.protocols.len() * config.rtt_ms.len() * bandwidths.len();
    let bar = ProgressBar::new((points * config.repeats) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} repeats, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut rows = Vec::with_capacity(points);
    for &bandwidth in &bandwidths {
        config.bandwidth_mbps = bandwidth;
        for &protocol in &config.protocols {
            for &rtt in &config.rtt_ms {
                bar.set_message(format!("{protocol} at {rtt} ms"));
                let tick = || bar.inc(1);
                let row = activations::measure(&config, protocol, rtt, &tick)
                    .with_context(|| format!("{protocol} at RTT {rtt} ms"))?;
                tracing::info!(
                    "{protocol} at {rtt} ms: median {:.3} ms",
                    row.median_s * 1e3
                );
                rows.push(row);
            }
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &args.runs.plot {
        crate::plot::activations(&rows, path)
            .with_context(|| format!("drawing {}", path.display()))?;
    }
    if args.runs.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", table(&config, &rows));
    }
    Ok(())
}

fn table(config: &Config, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "one activation layer of {} elements, f = {}, degree {}, {} transport, median of {} repeats",
        config.elements,
        config.fixed.frac_bits(),
        config.coefficients.len().saturating_sub(1),
        format!("{:?}", config.transport).to_lowercase(),
        config.repeats
    );
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>8} {:>7} {:>14} {:>12} {:>11} {:>10}",
        "protocol",
        "Mbit/s",
        "RTT ms",
        "rounds",
        "sent/party",
        "median ms",
        "95% CI ms",
        "max error"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>8} {:>7} {:>14} {:>12.2} {:>11} {:>10.2e}",
            r.protocol,
            bandwidth(r.bandwidth_mbps),
            r.rtt_ms,
            r.rounds,
            bytes(r.bytes_sent),
            r.median_s * 1e3,
            format!("+-{:.2}", r.ci95_s * 1e3),
            r.max_abs_error
        );
    }
    out
}

/// A bandwidth cap for people: its megabits per second, or "-" for none.
pub(crate) fn bandwidth(b: Option<f64>) -> String {
    b.map_or_else(|| "-".to_string(), |b| b.to_string())
}

/// A byte count for people.
pub(crate) fn bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
