//! One activation layer of `N` elements under each protocol, over an emulated link: the
//! paper's Figure 2.
//!
//! Both parties run as threads of this process over the in-memory channel (or loopback TCP)
//! wrapped in the link emulator. Per repeat: the correlated randomness is fetched first (offline, not timed), both
//! parties meet at a barrier, and the layer is timed on each side until it has its output
//! share; a repeat takes the slower party. Inputs are shared once beforehand and outputs opened
//! afterwards, untimed, as CrypTen times its "op". The dealer and the inputs use a fixed seed,
//! as benchmarks may.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use pillar_mpc::channel::Link;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::arith::reveal;
use pillar_mpc::testing::input;
use pillar_mpc::{FixedPoint, Local, Party, RingTensor, Transport};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::Serialize;

use super::stats::Summary;

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Elements in the layer.
    pub elements: usize,
    /// Round-trip times to emulate, milliseconds.
    pub rtt_ms: Vec<f64>,
    /// Protocols to compare.
    pub protocols: Vec<ActivationProtocol>,
    /// Bandwidth cap, megabits per second.
    pub bandwidth_mbps: Option<f64>,
    /// Timed repeats per point.
    pub repeats: usize,
    /// Fixed-point format.
    pub fixed: FixedPoint,
    /// Polynomial coefficients `c_0..c_d`.
    pub coefficients: Vec<f64>,
    /// Inputs are uniform in `[-input_range, input_range]`.
    pub input_range: f64,
    /// Seed of the inputs and the dealer.
    pub seed: u64,
    /// In-memory queues or loopback TCP between the parties.
    pub transport: Transport,
}

/// One measured point.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// Protocol name.
    pub protocol: String,
    /// Emulated round-trip time, ms.
    pub rtt_ms: f64,
    /// Bandwidth cap, Mbit/s (`null`: none).
    pub bandwidth_mbps: Option<f64>,
    /// Elements in the layer.
    pub elements: usize,
    /// Communication rounds of one layer.
    pub rounds: u64,
    /// Bytes each party sends for one layer.
    pub bytes_sent: u64,
    /// Median time of one layer, seconds.
    pub median_s: f64,
    /// Half-width of the median's 95% confidence interval, seconds.
    pub ci95_s: f64,
    /// Largest `|secure - plaintext|` over all repeats' outputs.
    pub max_abs_error: f64,
    /// Timed repeats.
    pub repeats: usize,
}

/// Plaintext reference of the activation on a real input.
fn plaintext(protocol: ActivationProtocol, coefficients: &[f64], x: f64) -> f64 {
    if protocol.is_polynomial() {
        coefficients.iter().rev().fold(0.0, |acc, c| acc * x + c)
    } else {
        x.max(0.0)
    }
}

/// Measures one protocol at one link; `tick` is called after every repeat.
pub(crate) fn measure(
    config: &Config,
    protocol: ActivationProtocol,
    rtt_ms: f64,
    tick: &(dyn Fn() + Sync),
) -> Result<Row> {
    ensure!(config.repeats > 0, "at least one repeat is needed");
    ensure!(config.elements > 0, "at least one element is needed");
    let n = config.elements;
    let fp = config.fixed;
    let degree = config.coefficients.len().saturating_sub(1);
    // The inputs' own stream: the dealer and the masks derive theirs from the same seed.
    let mut rng = ChaCha12Rng::from_seed(*pillar_mpc::derive_seed(config.seed, "inputs"));
    let xs: Vec<f64> = (0..n)
        .map(|_| rng.random_range(-config.input_range..=config.input_range))
        .collect();
    let x = RingTensor::encode(fp, vec![n], &xs)?;
    let barrier = Barrier::new(2);
    let local = Local {
        fixed: fp,
        link: Link::new(rtt_ms, config.bandwidth_mbps),
        seed: Some(config.seed),
        transport: config.transport,
        ..Local::default()
    };
    let [server, client] = local.run(|s| {
        let shared = input(s, Party::Client, &x)?;
        let mut times = Vec::with_capacity(config.repeats);
        let mut costs = Vec::with_capacity(config.repeats);
        let mut outputs = Vec::with_capacity(config.repeats);
        for _ in 0..config.repeats {
            s.prefetch(&protocol.needs(n, degree))?;
            barrier.wait();
            let before = s.stats();
            let start = Instant::now();
            let y = protocol.evaluate(s, &shared, &config.coefficients)?;
            times.push(start.elapsed());
            costs.push(s.stats().since(&before));
            outputs.push(reveal(s, &y)?);
            if s.party() == Party::Server {
                tick();
            }
        }
        Ok((times, costs, outputs))
    })?;
    let times: Vec<Duration> = server
        .0
        .iter()
        .zip(&client.0)
        .map(|(a, b)| *a.max(b))
        .collect();
    let cost = server.1[0];
    ensure!(
        server.1.iter().all(|c| *c == cost),
        "{protocol}: the repeats communicated differently"
    );
    let mut max_abs_error = 0.0f64;
    for out in &server.2 {
        for (y, &xi) in out.decode(fp).iter().zip(x.data()) {
            let want = plaintext(protocol, &config.coefficients, fp.decode(xi));
            max_abs_error = max_abs_error.max((y - want).abs());
        }
    }
    let summary = Summary::of(&times);
    Ok(Row {
        protocol: protocol.name().to_string(),
        rtt_ms,
        bandwidth_mbps: config.bandwidth_mbps,
        elements: n,
        rounds: cost.rounds,
        bytes_sent: cost.bytes_sent,
        median_s: summary.median_s,
        ci95_s: summary.ci95_s,
        max_abs_error,
        repeats: config.repeats,
    })
}
