//! `--max-memory` as a user meets it: a secure evaluation whose batch cannot fit is refused
//! before it starts, naming a batch that fits; without `--batch` the batch shrinks to fit and
//! the command says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::pillar;
use pillar_nn::{Conv2d, Graph, Linear, Op, Tensor};

/// A tensor of small deterministic values.
fn weights(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// A tiny MNIST network with exact ReLUs, whose secure run needs a few MiB per image.
fn write_tiny(path: &Path) {
    let mut g = Graph::new(vec![1, 28, 28]);
    g.chain(
        "conv",
        Op::Conv2d(Conv2d {
            weight: weights(&[8, 1, 3, 3]),
            bias: Some(weights(&[8])),
            stride: 1,
            padding: 1,
        }),
    );
    g.chain("relu", Op::Relu);
    g.chain("flatten", Op::Flatten);
    g.chain(
        "fc",
        Op::Linear(Linear {
            weight: weights(&[10, 8 * 28 * 28]),
            bias: Some(weights(&[10])),
        }),
    );
    pillar_nn::onnx::save(&g.typed().unwrap(), path).unwrap();
}

/// `pillar eval --mode secure` on `model` with `args`.
fn eval(model: &Path, args: &[&str]) -> std::process::Output {
    pillar()
        .args(["eval", "--mode", "secure", "--protocol", "relu", "--model"])
        .arg(model)
        .args(args)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap()
}

/// The number after `before` in `text`.
fn number_after(text: &str, before: &str) -> usize {
    let at = text
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} in {text}"))
        + before.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_batch_that_cannot_fit_is_refused_before_the_run_naming_one_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    write_tiny(&model);
    let limit = "400MiB";

    let out = eval(
        &model,
        &["--limit", "100", "--batch", "100", "--max-memory", limit],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "the run started: {stderr}");
    assert!(
        stderr.contains("batch 100 needs about") && stderr.contains("--max-memory is 400 MiB"),
        "{stderr}"
    );
    let fits = number_after(&stderr, "--batch ");
    assert!((1..100).contains(&fits), "{stderr}");

    // The batch named runs under the same limit.
    let fits_text = fits.to_string();
    let out = eval(
        &model,
        &[
            "--limit",
            &fits_text,
            "--batch",
            &fits_text,
            "--max-memory",
            limit,
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["batch"], fits);
    assert!(report["memory_estimate_bytes"].as_u64().unwrap() <= 400 << 20);

    // Without --batch the default of 100 shrinks to about the same batch, and says why.
    let out = eval(&model, &["--limit", "100", "--max-memory", limit, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let chosen = number_after(&stderr, "batch ");
    assert!(chosen.abs_diff(fits) <= 1, "{stderr}");
    assert!(stderr.contains("batch 100 would need about"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["batch"], chosen);

    // A batch beyond the images evaluated is only as large as they are.
    let out = eval(
        &model,
        &[
            "--limit",
            "5",
            "--batch",
            "100",
            "--max-memory",
            limit,
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["batch"], 5);

    // A network whose single image does not fit is refused as such.
    let out = eval(&model, &["--limit", "1", "--max-memory", "1MiB"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("one image of this network needs about") && stderr.contains("--max-memory"),
        "{stderr}"
    );

    // A size without a unit is ambiguous.
    let out = eval(&model, &["--limit", "1", "--max-memory", "4096"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("4096MiB"), "{stderr}");
}

#[test]
fn the_benchmarks_refuse_a_network_that_cannot_fit_before_running_it() {
    let out = pillar()
        .args([
            "bench", "model", "--model", "minionn", "--rtt-ms", "0", "-k", "1",
        ])
        .args(["--protocols", "espn,relu", "--max-memory", "20MiB"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    assert!(
        stderr.contains("under espn")
            && stderr.contains("one image of this network needs about")
            && stderr.contains("--max-memory is 20 MiB"),
        "{stderr}"
    );
    let out = pillar()
        .args(["bench", "load", "--clients", "1,256", "--seconds", "1"])
        .args(["--max-memory", "1GiB"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    let fits = number_after(&stderr, "--clients ");
    assert!(
        stderr.contains("256 clients need about") && (1..256).contains(&fits),
        "{stderr}"
    );
}
