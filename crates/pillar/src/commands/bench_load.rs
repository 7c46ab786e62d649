//! `pillar bench load`: N honest clients at once against one server, for a bounded time.
//! What a deployment needs to know beyond one inference's latency: that concurrent clients
//! each get their own correct result, how many images per second the server sustains, and
//! how much memory that takes.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use pillar_infer::FixedConfig;
use pillar_infer::cluster::{Cluster, Deployment, start_server};
use pillar_infer::mirror;
use pillar_infer::remote::ServeOptions;
use pillar_infer::{Architecture, Parties, Plan};
use pillar_mpc::channel::{Admission, DEFAULT_TIMEOUT};
use pillar_mpc::dealer::remote::ServiceConfig;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::protocols::weights::KeptWeights;
use pillar_mpc::{FixedPoint, RingTensor};
use pillar_train::data::DatasetKind;
use serde::Serialize;

use crate::memory::{Budget, MemoryArgs, Size, resident};

/// Arguments of `pillar bench load`.
#[derive(Debug, Args)]
pub(crate) struct LoadBenchArgs {
    /// A paper architecture with random weights, or an ONNX file.
    #[arg(long, default_value = "convnet")]
    model: String,

    /// Input shape and classes of the built-in architectures.
    #[arg(long, default_value = "mnist")]
    dataset_shape: DatasetKind,

    /// Numbers of concurrent clients to try, in turn (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    clients: Vec<usize>,

    /// How long each number of clients runs, in seconds (requests under way finish).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,

    /// Single-image requests per connection.
    #[arg(long, default_value_t = 4)]
    requests: usize,

    /// How polynomial activations run.
    #[arg(long, default_value = "honeybadger")]
    protocol: ActivationProtocol,

    /// How linear layers run: preprocessed (the client's input share of each is a mask fixed
    /// offline: half the online bytes, elementwise client work) or beaver (the older
    /// protocol, which opens each masked input both ways online).
    #[arg(long, default_value = "preprocessed")]
    linear: LinearProtocol,

    /// Whether every connection receives the model's `F = W - B` (`fresh`) or uses one kept
    /// from an earlier visit (`kept`, as `pillar infer --keep-weights` does: the setup is
    /// skipped; one connection fetches `F` before the clock starts, and the clients of this
    /// process share that copy, as a process that holds many clients would).
    #[arg(long, value_enum, default_value_t = WeightsArg::Kept)]
    weights: WeightsArg,

    /// Encrypted links (fresh keys per process) or plaintext.
    #[arg(long, value_enum, default_value_t = LinksArg::Noise)]
    links: LinksArg,

    /// Emulated round-trip time between clients and server, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    rtt_ms: f64,

    /// Seed of the weights and inputs (benchmarks only).
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,

    /// Memory: the most clients asked for are estimated before any starts.
    #[command(flatten)]
    memory: MemoryArgs,
}

/// `--weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WeightsArg {
    /// Every connection receives `F`.
    Fresh,
    /// A connection after the first uses the `F` kept from it.
    Kept,
}

/// `--links`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LinksArg {
    /// Noise XX with pinned keys.
    Noise,
    /// No encryption or authentication.
    Plaintext,
}

/// One number of clients.
#[derive(Debug, Clone, Serialize)]
struct LoadRow {
    clients: usize,
    links: String,
    seconds: f64,
    images: u64,
    connections: u64,
    images_per_s: f64,
    /// Results that differed from the fixed-point executor's (must be 0).
    wrong: u64,
    /// Requests or connections that failed (must be 0).
    failed: u64,
    /// Largest resident memory of this process (dealer, server and clients together) seen
    /// while these clients ran, sampled every 50 ms.
    peak_rss_mib: f64,
}

/// This process's resident memory now, from /proc (Linux), in MiB.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Most concurrent clients: each is a thread of this process, and the server takes twice as
/// many connections; beyond it spawning threads fails (a panic).
const MAX_CLIENTS: usize = 256;

/// Runs `pillar bench load`.
pub(crate) fn run(args: &LoadBenchArgs) -> Result<()> {
    crate::memory::no_huge_pages();
    if args.clients.is_empty() || args.clients.contains(&0) || args.requests == 0 {
        bail!("--clients and --requests must be at least 1");
    }
    if let Some(n) = args.clients.iter().find(|&&n| n > MAX_CLIENTS) {
        bail!("--clients {n}: at most {MAX_CLIENTS} (one thread each, in this process)");
    }
    let seconds = super::net::seconds("--seconds", args.seconds)?;
    let link = super::net::emulated_link(args.rtt_ms, None)?;
    let held = resident().unwrap_or(0);
    let (graph, name) =
        super::bench_model::random_graph(&args.model, args.dataset_shape, args.seed)?;
    let config = FixedConfig {
        frac_bits: 16,
        activation: args.protocol,
        linear: args.linear,
    };
    let plan = Arc::new(
        Plan::compile(&graph.fold_batchnorm()?, config)
            .with_context(|| format!("cannot run {name}"))?,
    );
    check_memory(args, &plan.architecture, held)?;
    let fp = FixedPoint::new(config.frac_bits)?;
    let mut shape = vec![1];
    shape.extend_from_slice(&graph.input_shape);
    // The inputs' own stream: the weights derive theirs from the same seed.
    let inputs_seed = pillar_mpc::derive_seed_u64(args.seed, "inputs");
    let inputs: Vec<RingTensor> = (0..16u64)
        .map(|k| {
            let t = pillar_nn::Tensor::new(
                shape.clone(),
                (0..shape.iter().product::<usize>())
                    .map(|i| {
                        let h = (i as u64 ^ (k << 32) ^ inputs_seed)
                            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        (h >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
                    })
                    .collect(),
            )?;
            Ok(mirror::encode(fp, &t)?)
        })
        .collect::<Result<_>>()?;
    let expected: Vec<RingTensor> = inputs
        .iter()
        .map(|x| Ok(mirror::run_plan(&plan, x)?.ring))
        .collect::<Result<_>>()?;

    // Every client reconnects as soon as its last connection ends, so the dealer and the
    // server see up to one handshake per client (the dealer two: the server's session and
    // the client's join) at once: their admission is sized to the load, not to the default
    // that bounds what strangers may hold on a real deployment.
    let most = args.clients.iter().copied().max().unwrap_or(1);
    let admission = Admission {
        max_handshakes: Admission::default().max_handshakes.max(2 * most),
        ..Admission::default()
    };
    let cluster = Cluster::start_with(
        match args.links {
            LinksArg::Noise => Deployment::generate(),
            LinksArg::Plaintext => Deployment::plaintext(),
        },
        ServiceConfig {
            admission,
            ..ServiceConfig::default()
        },
    )
    .context("cannot start the dealer")?;

    eprintln!(
        "{name}: {} under {}, {} links, {} single-image requests per connection, weights {} on \
         reconnecting, {} s per row",
        plan.architecture.rounds(),
        args.protocol,
        format!("{:?}", args.links).to_lowercase(),
        args.requests,
        format!("{:?}", args.weights).to_lowercase(),
        args.seconds
    );
    let mut rows = Vec::new();
    for &clients in &args.clients {
        // Headroom in max_clients: a client that reconnects at once may arrive before the
        // server has freed the slot of its last connection (the busy refusal is tested
        // elsewhere).
        let options = ServeOptions {
            admission,
            ..cluster.options(link, 1, 2 * clients)
        };
        let server = start_server(Arc::clone(&plan), options, Arc::new(|_, _| {}))
            .context("cannot start the server")?;
        let (images, connections, wrong, failed) = (
            AtomicU64::new(0),
            AtomicU64::new(0),
            AtomicU64::new(0),
            AtomicU64::new(0),
        );
        let done = AtomicBool::new(false);
        let peak = std::sync::Mutex::new(rss_mib().unwrap_or(0.0));
        // Clients that kept `F` from an earlier visit: one connection, before the clock
        // starts, fetches it from this server (its masks are its own).
        let kept: std::sync::Mutex<Option<KeptWeights>> = std::sync::Mutex::new(None);
        if args.weights == WeightsArg::Kept {
            let (_, report) = cluster
                .connect(&server, link, DEFAULT_TIMEOUT)
                .and_then(|m| m.run(&inputs[..1], &|_| {}))
                .context("the connection that fetches the weights failed")?;
            *kept.lock().unwrap_or_else(|p| p.into_inner()) = report.weights;
        }
        let deadline = Instant::now() + seconds;
        let start = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if let (Some(now), Ok(mut p)) = (rss_mib(), peak.lock()) {
                        *p = p.max(now);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let workers: Vec<_> = (0..clients)
                .map(|c| {
                    let (server, cluster) = (&server, &cluster);
                    let (inputs, expected) = (&inputs, &expected);
                    let (images, connections, wrong, failed) =
                        (&images, &connections, &wrong, &failed);
                    let kept = &kept;
                    scope.spawn(move || {
                        let mut k = c;
                        while Instant::now() < deadline {
                            let batch: Vec<usize> =
                                (0..args.requests).map(|j| (k + j) % inputs.len()).collect();
                            k += args.requests;
                            let xs: Vec<RingTensor> =
                                batch.iter().map(|&i| inputs[i].clone()).collect();
                            let outcome =
                                cluster
                                    .connect(server, link, DEFAULT_TIMEOUT)
                                    .and_then(|mut m| {
                                        let held = kept.lock().ok().and_then(|k| k.clone());
                                        if let Some(k) = held {
                                            m.with_kept_weights(k);
                                        }
                                        m.run(&xs, &|_| {})
                                    });
                            match outcome {
                                Ok((logits, _)) => {
                                    connections.fetch_add(1, Ordering::Relaxed);
                                    for (got, &i) in logits.iter().zip(&batch) {
                                        images.fetch_add(1, Ordering::Relaxed);
                                        let off = got.data().iter().zip(expected[i].data()).any(
                                            |(a, b)| (*a as i64 - *b as i64).unsigned_abs() >= 400,
                                        );
                                        if off {
                                            wrong.fetch_add(1, Ordering::Relaxed);
                                        }
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!("client {c}: {e}");
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                let _ = w.join();
            }
            done.store(true, Ordering::Relaxed);
        });
        let seconds = start.elapsed().as_secs_f64();
        let images = images.into_inner();
        let row = LoadRow {
            clients,
            links: format!("{:?}", args.links).to_lowercase(),
            seconds,
            images,
            connections: connections.into_inner(),
            images_per_s: images as f64 / seconds,
            wrong: wrong.into_inner(),
            failed: failed.into_inner(),
            peak_rss_mib: peak.into_inner().unwrap_or(0.0),
        };
        if !args.json {
            eprintln!(
                "{:>3} clients: {:>6} images in {:.1} s, {:>7.1} images/s, {} wrong, {} failed, peak RSS {:.0} MiB",
                row.clients,
                row.images,
                row.seconds,
                row.images_per_s,
                row.wrong,
                row.failed,
                row.peak_rss_mib
            );
        }
        rows.push(row);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", table(&name, &rows));
    }
    let bad: u64 = rows.iter().map(|r| r.wrong + r.failed).sum();
    if bad > 0 {
        bail!("{bad} requests failed or gave wrong logits");
    }
    Ok(())
}

fn table(name: &str, rows: &[LoadRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{name}: concurrent clients, every result checked");
    let _ = writeln!(
        out,
        "{:>8} {:>10} {:>8} {:>12} {:>10} {:>6} {:>7} {:>10}",
        "clients", "links", "images", "connections", "images/s", "wrong", "failed", "peak MiB"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>8} {:>10} {:>8} {:>12} {:>10.1} {:>6} {:>7} {:>10.0}",
            r.clients,
            r.links,
            r.images,
            r.connections,
            r.images_per_s,
            r.wrong,
            r.failed,
            r.peak_rss_mib
        );
    }
    out
}

/// Refuses, before any client starts, more concurrent clients than fit `--max-memory` (or the
/// memory available): each holds a connection's client and server sides and its
/// correlations. With `--weights fresh`, a local run of one image by
/// [`Architecture::memory`]'s estimate each (which counts the shared weights once per
/// connection, an upper bound); with `--weights kept`, one such run and then
/// [`Architecture::resumed_connection_bytes`] per further client. `held` is what the process
/// held before it built the network.
fn check_memory(args: &LoadBenchArgs, arch: &Architecture, held: usize) -> Result<()> {
    let budget = Budget::new(&args.memory)?;
    let first = arch.memory_bytes(1, Parties::Local)?;
    let one = match args.weights {
        WeightsArg::Fresh => first,
        WeightsArg::Kept => arch.resumed_connection_bytes(1)?,
    };
    let most = args.clients.iter().copied().max().unwrap_or(1);
    let needs = one
        .saturating_mul(most - 1)
        .saturating_add(first)
        .saturating_add(held);
    if needs <= budget.bytes {
        return Ok(());
    }
    let Some(room) = budget.bytes.checked_sub(held.saturating_add(first)) else {
        bail!(
            "one client needs about {} ({} with what this process holds), {}",
            Size(first),
            Size(first.saturating_add(held)),
            budget.describe()
        );
    };
    let fit = 1 + room / one.max(1);
    bail!(
        "{most} clients need about {}, {}; --clients {fit} fits",
        Size(needs),
        budget.describe()
    );
}
