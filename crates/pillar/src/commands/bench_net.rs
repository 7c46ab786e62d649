//! `pillar bench net`: dealer, server and client as separate processes over a real kernel TCP
//! path with a round-trip time and an optional bandwidth cap, made by a user-space delay line
//! between two network namespaces (this kernel has no `netem`). It reports what a fresh
//! client waits for, step by step, until its first answer, and what later requests on a warm
//! connection cost; next to it, the in-process emulator's figures (`pillar bench model`) for
//! the same network and link.
//!
//! Needs root, `/dev/net/tun` and `ip netns`; elsewhere it says it skipped and exits 0. Every
//! process it starts runs under a deadline, and the namespaces are removed on every exit,
//! Ctrl-C included.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_train::data::DatasetKind;
use serde::Serialize;
use serde_json::Value;

use crate::bench::delay_line::Shape;
use crate::bench::netns::{self, ADDR_A, ADDR_B, Path, TcpTuning, unsupported};
use crate::bench::stats::Summary;

/// Arguments of `pillar bench net`.
#[derive(Debug, Args)]
pub(crate) struct NetBenchArgs {
    /// A paper architecture (minionn, resnet18, resnet20/32/56/110, vgg16, resnet50, convnet)
    /// with random weights, or an ONNX file.
    #[arg(long, default_value = "minionn")]
    model: String,

    /// Input shape and classes of the built-in architectures: mnist, cifar10, cifar100,
    /// imagenet.
    #[arg(long, default_value = "cifar10")]
    dataset_shape: DatasetKind,

    /// Protocols for the activation layers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "honeybadger")]
    protocols: Vec<ActivationProtocol>,

    /// Linear-layer protocols (comma-separated): preprocessed, beaver.
    #[arg(long, value_delimiter = ',', default_value = "beaver,preprocessed")]
    linear: Vec<LinearProtocol>,

    /// Round-trip times of the path, in milliseconds (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,100",
        allow_negative_numbers = true
    )]
    rtt_ms: Vec<f64>,

    /// Bandwidth caps of the path in megabits per second, comma-separated; 0 for none.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    bandwidth_mbps: Vec<f64>,

    /// Bytes the bottleneck queues before it drops [default: one bandwidth-delay product
    /// plus 64 KiB].
    #[arg(long)]
    queue_bytes: Option<usize>,

    /// Fresh clients per point, one after another, each its own process and connection.
    #[arg(long, default_value_t = 3)]
    fresh: usize,

    /// Returning clients per point: each its own process and connection, with the weights'
    /// `F` kept from an earlier connection to the same server (`pillar infer
    /// --keep-weights`), so that the setup is skipped (0: none).
    #[arg(long, default_value_t = 3)]
    returning: usize,

    /// Single-image requests on one warm connection per point (0: none).
    #[arg(long, default_value_t = 4)]
    warm: usize,

    /// Also run `pillar bench model` (in-process emulator) for each point, with this many
    /// repeats (0: do not).
    #[arg(long, default_value_t = 5)]
    emulator_repeats: usize,

    /// Encrypted links (Noise, fresh keys) or plaintext.
    #[arg(long, value_enum, default_value_t = Links::Noise)]
    links: Links,

    /// initcwnd and initrwnd of the server side's route to the client (namespace A: dealer
    /// and server) [default: the kernel's, 10].
    #[arg(long)]
    initcwnd: Option<u32>,

    /// initcwnd and initrwnd of the client side's route to the server and the dealer
    /// (namespace B): what the client's host can set [default: the kernel's, 10].
    #[arg(long)]
    client_initcwnd: Option<u32>,

    /// Set net.ipv4.tcp_slow_start_after_idle=0 on the server side (namespace A).
    #[arg(long)]
    no_slow_start_after_idle: bool,

    /// TCP congestion control in both namespaces (bbr, cubic, reno) [default: the kernel's].
    #[arg(long)]
    congestion_control: Option<String>,

    /// Largest TCP send and receive buffers autotuning may reach in both namespaces, in bytes
    /// (the third value of net.ipv4.tcp_wmem and tcp_rmem) [default: the kernel's].
    #[arg(long)]
    tcp_buffer_max: Option<usize>,

    /// Fractional bits of the fixed point.
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,

    /// Seed of the random weights and the input.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Deadline of every process this command starts, in seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout_s: f64,

    /// Only check the path: round trip by TCP connects (and ping, if installed) and a bulk
    /// TCP transfer, per point.
    #[arg(long)]
    check: bool,

    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

/// `--links`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Links {
    /// Noise, with a key pair per process made for the run.
    Noise,
    /// Plaintext (`--insecure-plaintext`).
    Plaintext,
}

/// One protocol on one path.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NetRow {
    model: String,
    protocol: String,
    /// The linear layers' protocol.
    linear: String,
    rtt_ms: f64,
    bandwidth_mbps: Option<f64>,
    links: String,
    /// TCP: congestion control and largest send buffer (both namespaces), initcwnd and slow
    /// start after idle (the server side's).
    tcp: String,
    /// Fresh clients measured.
    fresh: usize,
    /// Medians over the fresh clients, from each client's own report (seconds from the start
    /// of connecting): the server's hello, the dealer session joined, the setup done, the
    /// first answer.
    hello_s: f64,
    dealer_joined_s: f64,
    setup_done_s: f64,
    first_answer_s: f64,
    /// Medians of the phases' own times: setup, dealer fetch (offline), online.
    setup_s: f64,
    offline_s: f64,
    online_s: f64,
    /// The client process from its start to its exit (wall clock, this process's view).
    process_s: f64,
    /// Per fresh client, for the spread.
    first_answer_all_s: Vec<f64>,
    online_all_s: Vec<f64>,
    rounds: u64,
    online_bytes_sent: u64,
    online_bytes_received: u64,
    offline_bytes: u64,
    setup_bytes: u64,
    /// Returning clients measured (they kept `F`: no setup), and their medians.
    returning: usize,
    returning_first_answer_s: Option<f64>,
    returning_offline_s: Option<f64>,
    returning_online_s: Option<f64>,
    /// Medians over the warm connection's requests after its first.
    warm_online_s: Option<f64>,
    warm_offline_s: Option<f64>,
    /// The in-process emulator (`pillar bench model`, memory transport) on the same link:
    /// online median, offline median, setup.
    emulator_online_s: Option<f64>,
    emulator_offline_s: Option<f64>,
    emulator_setup_s: Option<f64>,
    /// Packets the delay line dropped during this point (bandwidth cap's queue full).
    dropped_packets: u64,
}

/// A path check.
#[derive(Debug, Clone, Serialize)]
struct CheckRow {
    rtt_ms: f64,
    bandwidth_mbps: Option<f64>,
    /// Median time of a TCP connect across the path (one round trip).
    connect_rtt_ms: f64,
    /// ping's average, if ping is installed.
    ping_rtt_ms: Option<f64>,
    /// Bytes sent in one bulk transfer and its rate, connect to last byte.
    bulk_bytes: usize,
    bulk_mbps: f64,
    dropped_packets: u64,
}

fn interrupted() -> Result<()> {
    if netns::interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Runs `pillar bench net`.
pub(crate) fn run(args: &NetBenchArgs) -> Result<()> {
    let timeout = super::net::seconds("--timeout-s", args.timeout_s)?;
    for &rtt in &args.rtt_ms {
        super::net::check_rtt_ms(rtt)?;
    }
    let caps = caps(&args.bandwidth_mbps)?;
    if args.protocols.is_empty() || args.rtt_ms.is_empty() || args.linear.is_empty() {
        bail!("--protocols, --linear and --rtt-ms must list at least one value");
    }
    if !args.check && args.fresh == 0 {
        bail!("--fresh must be at least 1");
    }
    if let Some(reason) = unsupported() {
        let line = format!("skipped: needs root and network namespaces ({reason})");
        if args.json {
            println!("{}", serde_json::json!({ "skipped": line }));
        } else {
            println!("{line}");
        }
        return Ok(());
    }
    netns::catch_signals();
    let tuning = TcpTuning {
        initcwnd: args.initcwnd,
        client_initcwnd: args.client_initcwnd,
        no_slow_start_after_idle: args.no_slow_start_after_idle,
        congestion_control: args.congestion_control.clone(),
        buffer_max: args.tcp_buffer_max,
    };
    let path = Path::new(Shape::new(0.0, None, args.queue_bytes), &tuning)?;
    let value = |key| Path::sysctl_value(&path.a, key).unwrap_or("?".into());
    let tcp = format!(
        "{}, initcwnd {} (client {}), slow start after idle {}, wmem max {}",
        value("net.ipv4.tcp_congestion_control"),
        args.initcwnd.map_or("10".into(), |w| w.to_string()),
        args.client_initcwnd.map_or("10".into(), |w| w.to_string()),
        value("net.ipv4.tcp_slow_start_after_idle"),
        value("net.ipv4.tcp_wmem")
            .split_whitespace()
            .last()
            .unwrap_or("?"),
    );
    eprintln!(
        "path: namespaces {} ({ADDR_A}: dealer, server) and {} ({ADDR_B}: client) through a delay line; TCP {tcp}",
        path.a, path.b,
    );
    if args.check {
        let rows = check(args, &path, &caps)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            print!("{}", check_table(&rows));
        }
        return Ok(());
    }
    let dir = TempDir::new()?;
    let files = prepare(args, &dir.0)?;
    let mut rows = measure(args, &path, &files, &caps, timeout)?;
    for r in &mut rows {
        r.tcp.clone_from(&tcp);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

/// `--bandwidth-mbps` as caps (`None`: uncapped), checked.
fn caps(mbps: &[f64]) -> Result<Vec<Option<f64>>> {
    if mbps.is_empty() {
        bail!("--bandwidth-mbps lists no value (0 for uncapped)");
    }
    mbps.iter()
        .map(|&b| {
            if b == 0.0 {
                return Ok(None);
            }
            super::net::check_bandwidth_mbps(Some(b))?;
            Ok(Some(b))
        })
        .collect()
}

/// A directory of this run's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("pillar-bench-net-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the processes read: the model, an input, keys.
struct Files {
    /// The run's temporary directory.
    dir: PathBuf,
    model: PathBuf,
    name: String,
    input: PathBuf,
    keys: Option<PathBuf>,
}

/// Writes the model (random weights for a paper architecture), one random input and, for
/// Noise, a key pair per process into `dir`.
fn prepare(args: &NetBenchArgs, dir: &FsPath) -> Result<Files> {
    let (graph, name) =
        super::bench_model::random_graph(&args.model, args.dataset_shape, args.seed)?;
    let model = dir.join("model.onnx");
    pillar_nn::onnx::save(&graph, &model).context("cannot write the model")?;
    let n: usize = graph.input_shape.iter().product();
    let mut state = pillar_mpc::derive_seed_u64(args.seed, "inputs") | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let input = dir.join("x.npy");
    std::fs::write(
        &input,
        pillar_train::data::npy::to_bytes(&graph.input_shape, &values),
    )
    .context("cannot write the input")?;
    let keys = match args.links {
        Links::Plaintext => None,
        Links::Noise => {
            for who in ["dealer", "server", "client"] {
                let status = Command::new(std::env::current_exe()?)
                    .args(["keygen", "--out"])
                    .arg(dir.join(who))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .context("cannot run pillar keygen")?;
                if !status.success() {
                    bail!("pillar keygen --out {} failed", dir.join(who).display());
                }
            }
            Some(dir.to_path_buf())
        }
    };
    Ok(Files {
        dir: dir.to_path_buf(),
        model,
        name,
        input,
        keys,
    })
}

/// A process this command started: killed and reaped when dropped.
struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    fn spawn(command: &mut Command, what: String) -> Result<Proc> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        netns::register_child(child.id());
        Ok(Proc { child, what })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        netns::unregister_child(self.child.id());
        let _ = self.child.wait();
    }
}

/// Starts a service (`pillar dealer` or `pillar serve`) in namespace `ns` and reads the
/// address it prints, within `timeout`.
fn start_service(
    ns: &str,
    args: &[String],
    what: &str,
    timeout: Duration,
) -> Result<(Proc, String)> {
    let exe = std::env::current_exe()?;
    let mut proc = Proc::spawn(
        Path::command(ns, &exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        what.to_string(),
    )?;
    let stdout = proc.child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let deadline = Instant::now() + timeout;
    let line = loop {
        interrupted()?;
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => break line,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => bail!("{what} did not start within {timeout:?}"),
        }
    };
    if !line.contains("listening on") {
        let mut err = String::new();
        if let Some(mut e) = proc.child.stderr.take() {
            let _ = proc.child.kill();
            let _ = e.read_to_string(&mut err);
        }
        bail!("{} did not start: {}", proc.what, err.trim());
    }
    let addr = line
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    // Its stderr (one line per client) is drained so that it never blocks on a full pipe.
    if let Some(mut e) = proc.child.stderr.take() {
        std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::sink()));
    }
    Ok((proc, addr))
}

/// Runs `pillar ARGS` in namespace `ns` (or here, for `None`) to its end within `timeout`;
/// returns its stdout and its wall time.
fn run_to_end(ns: Option<&str>, args: &[String], timeout: Duration) -> Result<(String, Duration)> {
    let exe = std::env::current_exe()?;
    let mut command = match ns {
        Some(ns) => Path::command(ns, &exe),
        None => Command::new(&exe),
    };
    let start = Instant::now();
    let mut proc = Proc::spawn(
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        format!("pillar {}", args.first().map_or("", String::as_str)),
    )?;
    let readers = [
        proc.child.stdout.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = o.read_to_string(&mut s);
                s
            })
        }),
        proc.child.stderr.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = o.read_to_string(&mut s);
                s
            })
        }),
    ];
    let deadline = start + timeout;
    let status = loop {
        interrupted()?;
        if let Some(status) = proc.child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!("{} did not finish within {timeout:?}", proc.what);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = start.elapsed();
    let [out, err] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    if !status.success() {
        bail!("{} failed ({status}): {}", proc.what, err.trim());
    }
    Ok((out, wall))
}

/// `--key`, `--trust` and `--dealer-key` flags for `who`, or `--insecure-plaintext`.
fn key_flags(keys: Option<&FsPath>, who: &str) -> Vec<String> {
    let Some(dir) = keys else {
        return vec!["--insecure-plaintext".into()];
    };
    let file = |name: &str| dir.join(name).display().to_string();
    match who {
        "dealer" => vec![
            "--key".into(),
            file("dealer.key"),
            "--trust-server".into(),
            file("server.pub"),
            "--trust-client".into(),
            file("client.pub"),
        ],
        "server" => vec![
            "--key".into(),
            file("server.key"),
            "--trust".into(),
            file("client.pub"),
            "--dealer-key".into(),
            file("dealer.pub"),
        ],
        _ => vec![
            "--key".into(),
            file("client.key"),
            "--trust".into(),
            file("server.pub"),
            "--dealer-key".into(),
            file("dealer.pub"),
        ],
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(ToString::to_string).collect()
}

/// Every point: per protocol a dealer and a server in A; per path the fresh clients, the warm
/// connection and the emulator.
fn measure(
    args: &NetBenchArgs,
    path: &Path,
    files: &Files,
    caps: &[Option<f64>],
    timeout: Duration,
) -> Result<Vec<NetRow>> {
    let secs = format!("{}", timeout.as_secs_f64());
    let keys = files.keys.as_deref();
    let mut rows = Vec::new();
    for (&linear, &protocol) in args
        .linear
        .iter()
        .flat_map(|l| args.protocols.iter().map(move |p| (l, p)))
    {
        let mut dealer_args = strings(&["dealer", "--listen", &format!("{ADDR_A}:0")]);
        dealer_args.extend(strings(&[
            "--timeout-s",
            &format!("{}", timeout.as_secs().max(1)),
        ]));
        dealer_args.extend(key_flags(keys, "dealer"));
        let (_dealer, dealer_addr) =
            start_service(&path.a, &dealer_args, "pillar dealer", timeout)?;
        let mut serve_args = strings(&["serve", "--model"]);
        serve_args.push(files.model.display().to_string());
        serve_args.extend(strings(&[
            "--listen",
            &format!("{ADDR_A}:0"),
            "--dealer",
            &dealer_addr,
            "--protocol",
            &protocol.to_string(),
            "--linear",
            &linear.to_string(),
            "--frac-bits",
            &args.frac_bits.to_string(),
            "--timeout-s",
            &secs,
        ]));
        serve_args.extend(key_flags(keys, "server"));
        let (_server, server_addr) = start_service(&path.a, &serve_args, "pillar serve", timeout)?;
        let mut infer_args = strings(&[
            "infer",
            "--connect",
            &server_addr,
            "--dealer",
            &dealer_addr,
            "--json",
            "--timeout-s",
            &secs,
        ]);
        infer_args.extend(key_flags(keys, "client"));
        // The returning clients' `F`, fetched once from this server (whose masks are its
        // own) on an unshaped path.
        let kept_dir = files.dir.join(format!("kept-{protocol}-{linear}"));
        let mut returning_args = infer_args.clone();
        returning_args.push("--keep-weights".into());
        returning_args.push(kept_dir.display().to_string());
        if args.returning > 0 {
            path.set(Shape::new(0.0, None, args.queue_bytes));
            classify(path, files, &returning_args, timeout)?;
        }
        for &rtt in &args.rtt_ms {
            for &cap in caps {
                interrupted()?;
                eprintln!(
                    "{} {protocol}/{linear}, RTT {rtt} ms, {}",
                    files.name,
                    cap.map_or("uncapped".into(), |b| format!("{b} Mbit/s"))
                );
                path.set(Shape::new(rtt, cap, args.queue_bytes));
                let before = path.counts();
                let mut reports = Vec::with_capacity(args.fresh);
                let mut walls = Vec::with_capacity(args.fresh);
                for _ in 0..args.fresh {
                    let (report, wall) = classify(path, files, &infer_args, timeout)?;
                    reports.push(report);
                    walls.push(wall);
                }
                let mut returning = Vec::with_capacity(args.returning);
                for _ in 0..args.returning {
                    let (report, _) = classify(path, files, &returning_args, timeout)?;
                    if report["weights_kept"] != Value::Bool(true) {
                        bail!("a returning client did not use the weights it kept");
                    }
                    returning.push(report);
                }
                let warm = if args.warm > 0 {
                    let mut a = infer_args.clone();
                    a.extend(strings(&["--batch", "1", "--input"]));
                    a.extend((0..args.warm).map(|_| files.input.display().to_string()));
                    let (out, _) = run_to_end(Some(&path.b), &a, timeout)?;
                    Some(serde_json::from_str::<Value>(&out).context("no JSON report")?)
                } else {
                    None
                };
                let dropped = path.counts().dropped - before.dropped;
                let emulator = if args.emulator_repeats > 0 {
                    Some(emulate(args, (protocol, linear), rtt, cap, timeout)?)
                } else {
                    None
                };
                rows.push(row(
                    args,
                    files,
                    (protocol, linear),
                    rtt,
                    cap,
                    &reports,
                    &walls,
                    &returning,
                    warm.as_ref(),
                    emulator,
                    dropped,
                ));
            }
        }
    }
    Ok(rows)
}

/// One client process (`pillar infer` with `infer_args`) classifying the input across the
/// path: its JSON report and its wall time.
fn classify(
    path: &Path,
    files: &Files,
    infer_args: &[String],
    timeout: Duration,
) -> Result<(Value, Duration)> {
    let mut a = infer_args.to_vec();
    a.push("--input".into());
    a.push(files.input.display().to_string());
    let (out, wall) = run_to_end(Some(&path.b), &a, timeout)?;
    let report = serde_json::from_str(&out).context("pillar infer printed no JSON report")?;
    Ok((report, wall))
}

/// `pillar bench model` on the same network and link, in this namespace: its row.
fn emulate(
    args: &NetBenchArgs,
    (protocol, linear): (ActivationProtocol, LinearProtocol),
    rtt: f64,
    cap: Option<f64>,
    timeout: Duration,
) -> Result<Value> {
    let mut a = strings(&[
        "bench",
        "model",
        "--model",
        &args.model,
        "--dataset-shape",
        &args.dataset_shape.to_string(),
        "--protocols",
        &protocol.to_string(),
        "--linear",
        &linear.to_string(),
        "--rtt-ms",
        &rtt.to_string(),
        "-k",
        &args.emulator_repeats.to_string(),
        "--frac-bits",
        &args.frac_bits.to_string(),
        "--seed",
        &args.seed.to_string(),
        "--json",
    ]);
    if let Some(b) = cap {
        a.extend(strings(&["--bandwidth-mbps", &b.to_string()]));
    }
    let (out, _) = run_to_end(None, &a, timeout)?;
    let rows: Vec<Value> = serde_json::from_str(&out).context("bench model printed no JSON")?;
    rows.into_iter()
        .next()
        .context("bench model printed no row")
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

fn median(values: &[f64]) -> f64 {
    let d: Vec<Duration> = values
        .iter()
        .map(|&s| Duration::from_secs_f64(s.max(0.0)))
        .collect();
    Summary::of(&d).median_s
}

#[allow(clippy::too_many_arguments)]
fn row(
    args: &NetBenchArgs,
    files: &Files,
    (protocol, linear): (ActivationProtocol, LinearProtocol),
    rtt: f64,
    cap: Option<f64>,
    reports: &[Value],
    walls: &[Duration],
    returning: &[Value],
    warm: Option<&Value>,
    emulator: Option<Value>,
    dropped: u64,
) -> NetRow {
    let med = |key: &str| median(&reports.iter().map(|r| f(r, key)).collect::<Vec<_>>());
    let first = &reports[0];
    let later: Option<Vec<&Value>> = warm.and_then(|w| {
        w["per_request"]
            .as_array()
            .map(|reqs| reqs.iter().skip(1).collect())
    });
    let returning_med = |key: &str| {
        (!returning.is_empty())
            .then(|| median(&returning.iter().map(|r| f(r, key)).collect::<Vec<_>>()))
    };
    let warm_med = |key: &str| {
        later
            .as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| median(&l.iter().map(|r| f(r, key)).collect::<Vec<_>>()))
    };
    NetRow {
        model: files.name.clone(),
        protocol: protocol.to_string(),
        linear: linear.to_string(),
        rtt_ms: rtt,
        bandwidth_mbps: cap,
        links: format!("{:?}", args.links).to_lowercase(),
        tcp: String::new(),
        fresh: reports.len(),
        hello_s: med("hello_s"),
        dealer_joined_s: med("dealer_joined_s"),
        setup_done_s: med("setup_done_s"),
        first_answer_s: med("first_answer_s"),
        setup_s: med("setup_s"),
        offline_s: med("offline_s"),
        online_s: med("online_s"),
        process_s: median(&walls.iter().map(Duration::as_secs_f64).collect::<Vec<_>>()),
        first_answer_all_s: reports.iter().map(|r| f(r, "first_answer_s")).collect(),
        online_all_s: reports.iter().map(|r| f(r, "online_s")).collect(),
        rounds: u(first, "rounds_per_request"),
        online_bytes_sent: u(first, "online_bytes_sent"),
        online_bytes_received: u(first, "online_bytes_received"),
        offline_bytes: u(first, "offline_bytes"),
        setup_bytes: u(first, "setup_bytes_sent"),
        returning: returning.len(),
        returning_first_answer_s: returning_med("first_answer_s"),
        returning_offline_s: returning_med("offline_s"),
        returning_online_s: returning_med("online_s"),
        warm_online_s: warm_med("online_s"),
        warm_offline_s: warm_med("offline_s"),
        emulator_online_s: emulator.as_ref().map(|e| f(e, "median_s")),
        emulator_offline_s: emulator.as_ref().map(|e| f(e, "offline_median_s")),
        emulator_setup_s: emulator.as_ref().map(|e| f(e, "setup_s")),
        dropped_packets: dropped,
    }
}

fn table(rows: &[NetRow]) -> String {
    let mut out = String::new();
    let Some(first) = rows.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "{}, batch 1, {} links, real TCP path through the delay line (TCP {}); medians over {} fresh clients and {} returning ones, which kept the weights' F (seconds)",
        first.model, first.links, first.tcp, first.fresh, first.returning
    );
    let _ = writeln!(
        out,
        "{:<25} {:>6} {:>8} | {:>6} {:>6} {:>6} {:>7} {:>7} | {:>6} {:>7} {:>6} {:>7} | {:>6} {:>6} {:>5} {:>10} {:>10} | {:>6} {:>7} {:>6} | {:>5}",
        "protocol/linear",
        "RTT ms",
        "Mbit/s",
        "hello",
        "dealer",
        "setup",
        "answer",
        "kept F",
        "setup",
        "offline",
        "online",
        "process",
        "warm",
        "warm",
        "rnds",
        "online/pty",
        "offline",
        "emu",
        "emu",
        "emu",
        "drops"
    );
    let _ = writeln!(
        out,
        "{:<25} {:>6} {:>8} | {:>6} {:>6} {:>6} {:>7} {:>7} | {:>6} {:>7} {:>6} {:>7} | {:>6} {:>6} {:>5} {:>10} {:>10} | {:>6} {:>7} {:>6} | {:>5}",
        "",
        "",
        "",
        "at",
        "at",
        "at",
        "at",
        "answer",
        "",
        "",
        "",
        "",
        "online",
        "offln",
        "",
        "",
        "",
        "setup",
        "offline",
        "online",
        ""
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for r in rows {
        let _ = writeln!(
            out,
            "{:<25} {:>6} {:>8} | {:>6.3} {:>6.3} {:>6.3} {:>7.3} {:>7} | {:>6.3} {:>7.3} {:>6.3} {:>7.3} | {:>6} {:>6} {:>5} {:>10} {:>10} | {:>6} {:>7} {:>6} | {:>5}",
            format!("{}/{}", r.protocol, r.linear),
            r.rtt_ms,
            r.bandwidth_mbps.map_or("-".into(), |b| b.to_string()),
            r.hello_s,
            r.dealer_joined_s,
            r.setup_done_s,
            r.first_answer_s,
            opt(r.returning_first_answer_s),
            r.setup_s,
            r.offline_s,
            r.online_s,
            r.process_s,
            opt(r.warm_online_s),
            opt(r.warm_offline_s),
            r.rounds,
            super::bench::bytes(r.online_bytes_sent),
            super::bench::bytes(r.offline_bytes),
            opt(r.emulator_setup_s),
            opt(r.emulator_offline_s),
            opt(r.emulator_online_s),
            r.dropped_packets
        );
    }
    out
}

/// Bytes of the bulk transfer of `--check`.
const BULK_BYTES: usize = 32 << 20;

/// `--check`: per point, the round trip by TCP connects (and ping) and one bulk transfer.
fn check(args: &NetBenchArgs, path: &Path, caps: &[Option<f64>]) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    for &rtt in &args.rtt_ms {
        for &cap in caps {
            interrupted()?;
            path.set(Shape::new(rtt, cap, args.queue_bytes));
            let before = path.counts();
            let listener = Path::within(&path.a, || TcpListener::bind((ADDR_A, 0)))??;
            let addr = listener.local_addr()?;
            // Round trip: the time of a TCP connect is one SYN / SYN-ACK exchange.
            let connects = Path::within(&path.b, || -> std::io::Result<Vec<Duration>> {
                (0..10)
                    .map(|_| {
                        let t = Instant::now();
                        let s = TcpStream::connect(addr)?;
                        let d = t.elapsed();
                        drop(s);
                        Ok(d)
                    })
                    .collect()
            })??;
            drop(listener);
            let ping = ping(&path.b, ADDR_A);
            let (bytes, took) = bulk(path)?;
            rows.push(CheckRow {
                rtt_ms: rtt,
                bandwidth_mbps: cap,
                connect_rtt_ms: Summary::of(&connects).median_s * 1e3,
                ping_rtt_ms: ping,
                bulk_bytes: bytes,
                bulk_mbps: bytes as f64 * 8.0 / took.as_secs_f64() / 1e6,
                dropped_packets: path.counts().dropped - before.dropped,
            });
        }
    }
    Ok(rows)
}

/// `ping -c 10` from namespace `ns` to `to`: the average round trip in ms, if ping runs.
fn ping(ns: &str, to: &str) -> Option<f64> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-q", "-c", "10", "-i", "0.05", to,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // rtt min/avg/max/mdev = 100.071/100.160/100.334/0.071 ms
    let stats = text.lines().find(|l| l.contains("min/avg/max"))?;
    stats
        .split('=')
        .nth(1)?
        .trim()
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// Sends [`BULK_BYTES`] from namespace B to the listener in A: bytes and the time from the
/// connect to the last byte read.
fn bulk(path: &Path) -> Result<(usize, Duration)> {
    use std::io::Write;
    let listener = Path::within(&path.a, || TcpListener::bind((ADDR_A, 0)))??;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let b = path.b.clone();
    let sender = std::thread::spawn(move || {
        Path::within(&b, || -> std::io::Result<()> {
            let start = Instant::now();
            let mut s = TcpStream::connect(addr)?;
            s.set_write_timeout(Some(Duration::from_secs(60)))?;
            let _ = tx.send(start);
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..BULK_BYTES >> 20 {
                s.write_all(&chunk)?;
            }
            Ok(())
        })
    });
    let (mut conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < BULK_BYTES {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let start = rx.recv().context("the bulk sender did not connect")?;
    let took = start.elapsed();
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the bulk sender panicked"))???;
    Ok((got, took))
}

fn check_table(rows: &[CheckRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:>8} {:>14} {:>12} {:>10} {:>10} {:>7}",
        "RTT ms", "Mbit/s", "connect RTT ms", "ping RTT ms", "bulk MiB", "bulk Mbit/s", "drops"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>7} {:>8} {:>14.2} {:>12} {:>10} {:>10.1} {:>7}",
            r.rtt_ms,
            r.bandwidth_mbps.map_or("-".into(), |b| b.to_string()),
            r.connect_rtt_ms,
            r.ping_rtt_ms.map_or("-".into(), |p| format!("{p:.2}")),
            r.bulk_bytes >> 20,
            r.bulk_mbps,
            r.dropped_packets
        );
    }
    out
}
