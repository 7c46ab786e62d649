//! `pillar train` and `pillar eval` as a user runs them: files written, JSON keys, errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::pillar;
use predicates::prelude::PredicateBooleanExt;
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
        .stdout(contains("test accuracy"))
        // One epoch of PILLAR trains only the penalty: the user is told, and how many to ask.
        .stderr(contains("warning: --epochs 1: with --activation poly"))
        .stderr(contains("near chance"))
        .stderr(contains("pass --epochs 5 or more"));
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

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// `pillar train` of a tiny convnet into `out`, with `extra` flags (one epoch unless they
/// say).
fn quick_train(out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    let epochs: &[&str] = if extra.contains(&"--epochs") {
        &[]
    } else {
        &["--epochs", "1"]
    };
    pillar()
        .args(["train", "--model", "convnet", "--limit", "100"])
        .args(["--batch-size", "50", "--lr-warmup-epochs", "0", "--out"])
        .arg(out)
        .args(epochs)
        .args(extra)
        .assert()
}

/// `pillar train` of a tiny convnet with the configuration file `toml`, which must fail
/// cleanly (no panic) with an error that contains `says`.
fn config_refused(dir: &Path, toml: &str, says: &str) {
    // A quick run unless the file sets these itself (TOML refuses a key given twice).
    let quick: String = ["epochs = 1", "limit_train = 100", "batch_size = 50"]
        .iter()
        .filter(|line| {
            let key = line.split(' ').next().unwrap();
            !toml.lines().any(|l| l.split(' ').next() == Some(key))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let config = dir.join("bad.toml");
    std::fs::write(&config, quick + toml).unwrap();
    let out = dir.join("refused");
    let output = pillar()
        .args(["train", "--model", "convnet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{toml:?} was accepted");
    assert_ne!(output.status.code(), Some(101), "{toml:?}: panic: {stderr}");
    assert!(stderr.contains(says), "{toml:?}: {stderr}");
    assert!(!out.exists(), "{toml:?}: wrote {}", out.display());
}

#[test]
fn a_second_run_into_the_same_directory_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    quick_train(&out, &[]).success();
    let first = snapshot(&out);
    assert!(first.contains_key(&out.join("model.onnx")));
    quick_train(&out, &["--seed", "2"])
        .failure()
        .stderr(contains("already holds a run"))
        .stderr(contains("--resume"))
        .stderr(contains("--force"));
    assert!(
        snapshot(&out) == first,
        "a refused run changed the first one"
    );
    quick_train(&out, &["--seed", "2", "--force"])
        .success()
        .stdout(contains("wrote"));
    let second = snapshot(&out);
    let config = String::from_utf8_lossy(&second[&out.join("config.toml")]).into_owned();
    assert!(config.contains("seed = 2"), "{config}");
    assert_ne!(
        second[&out.join("model.onnx")],
        first[&out.join("model.onnx")],
        "--force did not replace the model"
    );
    // Nothing is left half-written beside the outputs.
    let stray: Vec<_> = second
        .keys()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn a_refused_resume_changes_nothing_and_a_broken_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    quick_train(&out, &[]).success();
    let first = snapshot(&out);
    // Another configuration than the checkpoint's.
    quick_train(&out, &["--resume", "--epochs", "2", "--lr", "0.5"])
        .failure()
        .stderr(contains("different configuration"));
    assert!(
        snapshot(&out) == first,
        "a refused --resume changed the run"
    );
    // No checkpoint at all.
    let empty = dir.path().join("empty");
    quick_train(&empty, &["--resume"])
        .failure()
        .stderr(contains("no checkpoint to resume"));
    assert!(!empty.join("config.toml").exists());
    // Checkpoint files cut short (a full disk, a copy interrupted) or gone.
    for file in ["best-1.bpk", "model-1.bpk", "optimizer-1.bpk"] {
        let path = out.join("checkpoint").join(file);
        let bytes = &first[&path];
        for broken in [Some(&bytes[..bytes.len() / 2]), None] {
            match broken {
                Some(b) => std::fs::write(&path, b).unwrap(),
                None => std::fs::remove_file(&path).unwrap(),
            }
            let before = snapshot(&out);
            let output = pillar()
                .args([
                    "train", "--model", "convnet", "--epochs", "2", "--limit", "100",
                ])
                .args([
                    "--batch-size",
                    "50",
                    "--lr-warmup-epochs",
                    "0",
                    "--resume",
                    "--out",
                ])
                .arg(&out)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{file} {broken:?}: resumed");
            assert_ne!(output.status.code(), Some(101), "{file}: panic: {stderr}");
            assert!(stderr.contains(file), "{file}: {stderr}");
            assert!(snapshot(&out) == before, "{file}: the failed resume wrote");
        }
        std::fs::write(&path, bytes).unwrap();
    }
}

#[test]
fn a_run_in_which_no_epoch_finishes_fails() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("escape.toml");
    // Every activation input escapes this threshold: the run stops in its first batch.
    std::fs::write(&config, "escape_threshold = 1e-30\n").unwrap();
    let out = dir.path().join("run");
    quick_train(&out, &["--config", config.to_str().unwrap()])
        .failure()
        .stdout(contains("wrote").not())
        .stderr(contains("no epoch finished"));
    assert!(!out.join("model.onnx").exists());
}

#[test]
fn hyperparameters_that_cannot_train_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, says) in [
        ("[penalty]\nlambda = -1.0\n", "penalty.lambda"),
        ("[penalty]\nlambda = nan\n", "penalty.lambda"),
        ("[penalty]\nexponent = 4000000000\n", "penalty.exponent"),
        ("[penalty]\nreg_range = inf\n", "penalty.reg_range"),
        ("lr = nan\n", "lr"),
        ("lr = -0.1\n", "lr"),
        ("weight_decay = -1.0\n", "weight_decay"),
        ("weight_decay = inf\n", "weight_decay"),
        ("momentum = 1.5\n", "momentum"),
        ("momentum = nan\n", "momentum"),
        ("escape_threshold = nan\n", "escape_threshold"),
        ("escape_threshold = -1.0\n", "escape_threshold"),
        ("epochs = 0\n", "epochs"),
        ("batch_size = 0\n", "batch_size"),
        ("batch_size = 100000000\n", "batch_size"),
        ("limit_train = 0\n", "limit_train"),
        ("quad_coefficients = [nan]\n", "quad_coefficients"),
        ("coefficients = []\n", "coefficients"),
        ("range = 0.0\n", "range"),
        ("[quail]\nclone_epochs = 0\n", "quail"),
        ("[augment]\npad = 100000\nflip = false\n", "augment.pad"),
    ] {
        config_refused(dir.path(), toml, says);
    }
    quick_train(&dir.path().join("flag"), &["--lambda=-1"])
        .failure()
        .stderr(contains("penalty.lambda"));
}

#[test]
fn a_save_cut_short_leaves_the_previous_checkpoint_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    quick_train(&out, &[]).success();
    // What a run killed while saving its second checkpoint leaves: the new weight files
    // half-written, state.json still the first epoch's.
    let checkpoint = out.join("checkpoint");
    for (done, cut) in [
        ("model-1.bpk", "model-2.bpk"),
        ("optimizer-1.bpk", "optimizer-2.bpk"),
    ] {
        let bytes = std::fs::read(checkpoint.join(done)).unwrap();
        std::fs::write(checkpoint.join(cut), &bytes[..bytes.len() / 3]).unwrap();
    }
    quick_train(&out, &["--resume", "--epochs", "2"])
        .success()
        .stdout(contains("wrote"));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["epochs"], 2, "{metrics}");
    // Only the second checkpoint's files remain, whole.
    let mut files: Vec<String> = std::fs::read_dir(&checkpoint)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(
        files.contains(&"model-2.bpk".to_string())
            && files.contains(&"optimizer-2.bpk".to_string())
            && !files
                .iter()
                .any(|f| f.ends_with("-1.bpk") && !f.starts_with("best")),
        "{files:?}"
    );
}
