//! `pillar demo`: the whole system in one command, on the embedded MNIST digits.
//!
//! 1. fit the degree-4 polynomial that replaces ReLU (exact integer least squares);
//! 2. train a small CNN with it (PILLAR) and its twin with exact ReLU, and export both to ONNX;
//! 3. start a dealer and one server per network, and connect a client to each, over TCP on
//!    the loopback interface under an emulated WAN link;
//! 4. classify a handful of test digits securely, one request per digit, with both networks.
//!
//! It prints what a newcomer wants to see (accuracy in the clear and encrypted, time and
//! rounds per digit for polynomial and exact ReLU) and writes everything to one directory.
//! The parties run as threads of this process, through the same code as `pillar dealer`,
//! `pillar serve` and `pillar infer`, whose commands it prints for running them apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pillar_fit::budget::Precision;
use pillar_fit::{FitReport, FitSpec, Method, Target};
use pillar_infer::cluster::{Cluster, Deployment, start_server};
use pillar_infer::mirror;
use pillar_infer::{FixedConfig, Plan};
use pillar_mpc::channel::{DEFAULT_TIMEOUT, Link};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_nn::Tensor;
use pillar_train::data::{DataSet, DatasetKind};
use pillar_train::device::Compute;
use pillar_train::{ActivationKind, Architecture, TrainConfig};
use serde::Serialize;

use super::bench::bytes;

/// Arguments of `pillar demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory for the models, plots and report.
    #[arg(long, default_value = "pillar-demo")]
    out: PathBuf,

    /// Training epochs of each network.
    #[arg(long, default_value_t = 6)]
    epochs: usize,

    /// Test digits to classify securely with each network.
    #[arg(long, default_value_t = 8)]
    images: usize,

    /// Round-trip time of the emulated link between client and server, in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    rtt_ms: f64,

    /// Polynomial protocol: honeybadger, espn or crypten.
    #[arg(long, default_value = "honeybadger")]
    protocol: ActivationProtocol,

    /// How linear layers run: preprocessed (the client's input share of each is a mask fixed
    /// offline: half the online bytes, elementwise client work) or beaver (the older
    /// protocol, which opens each masked input both ways online).
    #[arg(long, default_value = "preprocessed")]
    linear: LinearProtocol,
}

/// One network's results.
#[derive(Debug, Serialize)]
struct Network {
    activation: String,
    protocol: String,
    model: PathBuf,
    /// Test accuracy in floating point, all 1,996 test digits.
    plain_accuracy: f64,
    /// Digits classified securely.
    images: usize,
    secure_correct: usize,
    /// Digits whose secure class is the floating-point class.
    agree_with_plain: usize,
    /// Largest |secure - float| logit.
    max_logit_error: f64,
    rounds_per_image: u64,
    online_s_per_image: f64,
    online_bytes_per_image: f64,
    offline_bytes_per_image: f64,
    setup_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    rtt_ms: f64,
    polynomial: Vec<f64>,
    polynomial_max_error: f64,
    indices: Vec<usize>,
    networks: Vec<Network>,
    speedup: f64,
}

/// Runs `pillar demo`.
pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    if args.images == 0 || args.epochs == 0 {
        bail!("--images and --epochs must be at least 1");
    }
    let link = super::net::emulated_link(args.rtt_ms, None)?;
    if args.protocol == ActivationProtocol::Relu {
        bail!("--protocol relu: the demo compares a polynomial protocol with exact ReLU");
    }
    let start = Instant::now();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    println!("[1/4] fit: ReLU on [-5, 5] by a degree-4 polynomial with 10-bit coefficients");
    let fit = fit(&args.out)?;

    println!(
        "[2/4] train: a small CNN on the embedded MNIST digits, {} each, with the \
         polynomial (PILLAR; its first epoch trains only the out-of-range penalty) and with \
         exact ReLU",
        super::infer::count(args.epochs, "epoch")
    );
    let data = DataSet::load(DatasetKind::Mnist, None)?;
    let poly = train(args, ActivationKind::Poly, &fit.coefficients, &data)?;
    let relu = train(args, ActivationKind::Relu, &fit.coefficients, &data)?;

    println!(
        "[3/4] serve: a dealer, one server per network and their client, over TCP on \
         127.0.0.1 with an emulated {} ms round trip",
        args.rtt_ms
    );
    let cluster = Cluster::start(Deployment::generate()).context("cannot start the dealer")?;
    let indices: Vec<usize> = (0..args.images.min(data.test.len())).collect();

    println!(
        "[4/4] classify: {} test digits, one secure request each, per network",
        indices.len()
    );
    let mut networks = Vec::new();
    for (name, dir, protocol) in [
        ("polynomial", &poly, args.protocol),
        ("exact ReLU", &relu, ActivationProtocol::Relu),
    ] {
        networks.push(classify(
            name,
            dir,
            (protocol, args.linear),
            (&cluster, link),
            &data,
            &indices,
        )?);
    }
    let speedup = networks[1].online_s_per_image / networks[0].online_s_per_image.max(1e-9);
    let report = Report {
        rtt_ms: args.rtt_ms,
        polynomial: fit.coefficients.clone(),
        polynomial_max_error: fit.max_error,
        indices,
        networks,
        speedup,
    };
    let json = args.out.join("report.json");
    pillar_nn::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("cannot write {}", json.display()))?;
    summarise(args, &report, start.elapsed().as_secs_f64());
    Ok(())
}

fn fit(out: &Path) -> Result<FitReport> {
    let spec = FitSpec::new(Target::Relu, 4, 5.0, 10)?;
    let report = FitReport::new(&spec, Method::Exact, Precision::default(), 5.0)?;
    let scale = f64::from(report.bits).exp2();
    let terms: Vec<String> = report
        .coefficients
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let a = c * scale;
            let sign = if j == 0 {
                ""
            } else if a < 0.0 {
                "- "
            } else {
                "+ "
            };
            let a = if j == 0 { a } else { a.abs() };
            match j {
                0 => format!("{a}"),
                1 => format!("{sign}{a} x"),
                _ => format!("{sign}{a} x^{j}"),
            }
        })
        .collect();
    let plot = out.join("fit.png");
    crate::plot::fit(&report, &plot).with_context(|| format!("cannot draw {}", plot.display()))?;
    let json = out.join("fit.json");
    pillar_nn::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!(
        "      p(x) = ({}) / {scale}; max error {:.3} on the range (plot: {})",
        terms.join(" "),
        report.max_error,
        plot.display()
    );
    Ok(report)
}

/// Trains one network as `pillar train --model convnet --activation ACTIVATION --force` would,
/// with the fitted polynomial, and returns its directory and test accuracy. The demo owns its
/// directory: running it again replaces its networks.
fn train(
    args: &DemoArgs,
    activation: ActivationKind,
    coefficients: &[f64],
    data: &DataSet,
) -> Result<Trained> {
    let dir = args.out.join(activation.name());
    let mut cfg = TrainConfig::recipe(Architecture::Convnet);
    cfg.dataset = data.kind;
    cfg.activation = activation;
    cfg.epochs = args.epochs;
    cfg.lr_warmup_epochs = 1;
    cfg.coefficients = coefficients.to_vec();
    let device = pillar_train::device::open(Compute::Cpu)?;
    let outcome = super::train::train_to(&cfg, data, &device, &dir, super::train::Start::Replace)?;
    Ok(Trained {
        test_accuracy: outcome.metrics.test_accuracy.unwrap_or(f64::NAN),
        dir,
    })
}

/// A trained network: where it was written, and its accuracy in floating point.
struct Trained {
    dir: PathBuf,
    test_accuracy: f64,
}

/// Serves `dir/model.onnx` and classifies `indices` through it, one request per digit.
fn classify(
    name: &str,
    trained: &Trained,
    (protocol, linear): (ActivationProtocol, LinearProtocol),
    (cluster, link): (&Cluster, Link),
    data: &DataSet,
    indices: &[usize],
) -> Result<Network> {
    let model = trained.dir.join("model.onnx");
    let graph = pillar_nn::onnx::load(&model)?.fold_batchnorm()?;
    let config = FixedConfig {
        frac_bits: 16,
        activation: protocol,
        linear,
    };
    let plan = Arc::new(Plan::compile(&graph, config)?);
    let server = start_server(
        Arc::clone(&plan),
        cluster.options(link, 1, 4),
        Arc::new(|peer, outcome| {
            if let Err(e) = outcome {
                tracing::warn!("demo server: client {peer}: {e}");
            }
        }),
    )
    .context("cannot start the server")?;
    let client = cluster.connect(&server, link, DEFAULT_TIMEOUT)?;
    let fp = client.architecture().fixed();
    let pixels = data.normalise(&data.test, indices, None)?;
    let plain_input = Tensor::new(vec![indices.len(), 1, 28, 28], pixels.clone())?;
    // Logits, before any final softmax: what the secure run opens.
    let plain = pillar_nn::exec::float::logits(&graph, &plain_input)?;
    let batches = pixels
        .chunks(28 * 28)
        .map(|p| mirror::encode(fp, &Tensor::new(vec![1, 1, 28, 28], p.to_vec())?))
        .collect::<Result<Vec<_>, _>>()?;
    let bar = ProgressBar::new(indices.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("      {msg:12} [{bar:30}] {pos}/{len} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(name.to_string());
    let (logits, report) = client.run(&batches, &|n| bar.inc(n as u64))?;
    bar.finish();

    let classes = plain.shape()[1];
    let argmax = |v: &[f64]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i)
    };
    let (mut correct, mut agree, mut worst) = (0, 0, 0.0f64);
    for (i, (&index, l)) in indices.iter().zip(&logits).enumerate() {
        let secure = l.decode(fp);
        let float: Vec<f64> = plain.data()[i * classes..(i + 1) * classes]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let label = data.test.label(index).map(usize::from);
        correct += usize::from(label == Some(argmax(&secure)));
        agree += usize::from(argmax(&secure) == argmax(&float));
        for (a, b) in secure.iter().zip(&float) {
            worst = worst.max((a - b).abs());
        }
    }
    let n = indices.len() as f64;
    let per = |f: &dyn Fn(&pillar_infer::BatchReport) -> f64| {
        report.batches.iter().map(f).sum::<f64>() / n
    };
    Ok(Network {
        activation: name.to_string(),
        protocol: protocol.to_string(),
        model,
        plain_accuracy: trained.test_accuracy,
        images: indices.len(),
        secure_correct: correct,
        agree_with_plain: agree,
        max_logit_error: worst,
        rounds_per_image: report.batches.first().map_or(0, |b| b.online.stats.rounds),
        online_s_per_image: per(&|b| b.online.time.as_secs_f64()),
        online_bytes_per_image: per(&|b| {
            (b.online.stats.bytes_sent + b.online.stats.bytes_received) as f64
        }),
        offline_bytes_per_image: 8.0 * plan.architecture.offline_words(1)? as f64,
        setup_s: report.setup.time.as_secs_f64(),
    })
}

fn summarise(args: &DemoArgs, r: &Report, seconds: f64) {
    println!();
    println!(
        "{:<12} {:>14} {:>16} {:>7} {:>16} {:>19}",
        "network",
        "plain accuracy",
        "secure correct",
        "rounds",
        "time per digit",
        "traffic per digit"
    );
    for n in &r.networks {
        println!(
            "{:<12} {:>13.2}% {:>11}/{:<4} {:>7} {:>14.3} s {:>19}",
            n.activation,
            100.0 * n.plain_accuracy,
            n.secure_correct,
            n.images,
            n.rounds_per_image,
            n.online_s_per_image,
            bytes(n.online_bytes_per_image as u64)
        );
    }
    let poly = &r.networks[0];
    println!(
        "\nAt {} ms round trip, the polynomial network classifies a digit {:.1}x faster than \
         exact ReLU ({} rounds instead of {}), and its secure classes equal the plaintext \
         ones on {}/{} digits (largest logit error {:.3}).",
        r.rtt_ms,
        r.speedup,
        poly.rounds_per_image,
        r.networks[1].rounds_per_image,
        poly.agree_with_plain,
        poly.images,
        poly.max_logit_error
    );
    let out = args.out.display();
    println!("\nWritten to {out}/ in {seconds:.0} s:");
    println!("  report.json            everything above, per network");
    println!("  fit.png, fit.json      the polynomial against ReLU");
    println!("  poly/, relu/           model.onnx, metrics.json, curves.png (training curves)");
    println!("\nThe same, as three processes (keys once, then each in its own terminal):");
    println!("  for p in dealer server client; do pillar keygen --out keys/$p; done");
    println!(
        "  pillar dealer --listen 127.0.0.1:7879 --key keys/dealer.key \
         --trust-server keys/server.pub --trust-client keys/client.pub"
    );
    println!(
        "  pillar serve --model {out}/poly/model.onnx --listen 127.0.0.1:7878 \
         --dealer 127.0.0.1:7879 --protocol {} --linear {} --rtt-ms {} --key keys/server.key \
         --trust keys/client.pub --dealer-key keys/dealer.pub",
        args.protocol, args.linear, r.rtt_ms
    );
    println!(
        "  pillar infer --connect 127.0.0.1:7878 --dealer 127.0.0.1:7879 --index 0,1,2 \
         --rtt-ms {} --key keys/client.key --trust keys/server.pub --dealer-key keys/dealer.pub",
        r.rtt_ms
    );
}
