//! `pillar train` and `pillar eval` as a user runs them: files written, JSON keys, errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::pillar;
use predicates::str::contains;

/// Runs `pillar eval ARGS --json`, which must succeed, and returns its report.
fn eval_json(args: &[&str]) -> serde_json::Value {
    common::json(&[&["eval"], args].concat())
}

#[test]
fn train_writes_model_metrics_and_curves_and_eval_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    pillar()
        .args([
            "train",
            "--model",
            "convnet",
            "--activation",
            "poly",
            "--epochs",
            "1",
            "--limit",
            "200",
            "--batch-size",
            "50",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("test accuracy"));
    for file in [
        "model.onnx",
        "metrics.json",
        "curves.png",
        "config.toml",
        "checkpoint/state.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in ["test_accuracy", "val_accuracy", "oor_ratio", "epochs"] {
        assert!(!metrics[key].is_null(), "{key} missing in {metrics}");
    }
    let test_accuracy = metrics["test_accuracy"].as_f64().unwrap();
    // The exported model evaluates to the accuracy training measured on the same test split.
    let model = out.join("model.onnx");
    let model = model.to_str().unwrap();
    let run = |mode: &str| eval_json(&["--dataset", "mnist", "--mode", mode, "--model", model]);
    let plain = run("plain");
    assert!(
        (plain["accuracy"].as_f64().unwrap() - test_accuracy).abs() < 1e-9,
        "{plain} vs {test_accuracy}"
    );
    let fixed = run("fixed");
    assert!(
        (fixed["accuracy"].as_f64().unwrap() - test_accuracy).abs() < 0.01,
        "{fixed}"
    );
    assert_eq!(fixed["images"], 1996);
    // Through two-party computation: the fixed executor's argmax on every image unless a
    // truncation failed or its logits are a near tie (this barely trained model has many),
    // logits within rounding of its.
    let secure = eval_json(&[
        "--mode",
        "secure",
        "--protocol",
        "honeybadger",
        "--limit",
        "30",
        "--batch",
        "16",
        "--model",
        model,
    ]);
    for key in [
        "accuracy",
        "plain_accuracy",
        "fixed_accuracy",
        "agreement",
        "max_logit_error",
        "truncation_failures",
        "near_ties",
        "online_s_per_image",
        "offline_bytes_per_image",
    ] {
        assert!(!secure[key].is_null(), "{key} missing in {secure}");
    }
    let failures = (secure["truncation_failures"].as_u64().unwrap()
        + secure["near_ties"].as_u64().unwrap()) as f64;
    assert!(
        secure["agreement"].as_f64().unwrap() >= 1.0 - failures / 30.0,
        "{secure}"
    );
    assert!(
        secure["max_logit_error"].as_f64().unwrap() < 0.05,
        "{secure}"
    );
    assert_eq!(secure["images"], 30);
    assert!(secure["rounds_per_batch"].as_u64().unwrap() > 0);
}

#[test]
fn train_and_eval_explain_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    pillar()
        .args(["train", "--model", "resnet7", "--out"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(contains("resnet18"));
    pillar()
        .args(["train", "--dataset", "cifar10", "--epochs", "1", "--out"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(contains("--data"));
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "epochz = 3\n").unwrap();
    pillar()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(contains("epochz"));
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"definitely not protobuf").unwrap();
    pillar()
        .args(["eval", "--model"])
        .arg(&junk)
        .assert()
        .failure()
        .stderr(contains("junk.onnx"));
}
