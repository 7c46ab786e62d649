//! `pillar eval --input` and `pillar infer --input` with `.npy` tensors as a PyTorch user
//! writes them (`numpy.save("x.npy", x.numpy())`): the logits printed are the float, fixed-point
//! and secure executors' for exactly that tensor, and a tensor of the wrong shape or type is a
//! clear error.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{pillar, start};
use pillar_infer::FixedConfig;
use pillar_infer::mirror;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_nn::Tensor;
use pillar_train::data::npy;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;

/// PyTorch's export of a small polynomial CNN (input [1, 8, 8], 10 classes), with a batch of
/// two inputs and what PyTorch computed for them.
fn fixture() -> (PathBuf, Tensor, Vec<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pillar-nn/tests/fixtures");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("poly_cnn_op18.json")).unwrap())
            .unwrap();
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let input = Tensor::new(vec![2, 1, 8, 8], floats(&json["input"]["data"])).unwrap();
    (
        dir.join("poly_cnn_op18.onnx"),
        input,
        floats(&json["output"]["data"]),
    )
}

/// `x` batch as one .npy `[2, 1, 8, 8]`, and its first input alone as `[1, 8, 8]`.
fn write_inputs(dir: &Path, x: &Tensor) -> (PathBuf, PathBuf) {
    let batch = dir.join("batch.npy");
    std::fs::write(&batch, npy::to_bytes(x.shape(), x.data())).unwrap();
    let one = dir.join("one.npy");
    std::fs::write(&one, npy::to_bytes(&[1, 8, 8], &x.data()[..64])).unwrap();
    (batch, one)
}

fn logits(report: &Value) -> Vec<Vec<f32>> {
    report["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn eval_input_prints_the_logits_each_executor_computes_for_a_npy_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (model, x, pytorch) = fixture();
    let (batch, one) = write_inputs(dir.path(), &x);
    let model_arg = model.to_str().unwrap();
    let files = [batch.to_str().unwrap(), one.to_str().unwrap()];
    let run = |mode: &str| {
        common::json(
            &[
                &["eval", "--model", model_arg, "--mode", mode, "--input"][..],
                &files,
            ]
            .concat(),
        )
    };
    // The three inputs as the executors see them in this process: one batch.
    let all = Tensor::new(vec![3, 1, 8, 8], [x.data(), &x.data()[..64]].concat()).unwrap();
    let graph = pillar_nn::onnx::load(&model)
        .unwrap()
        .fold_batchnorm()
        .unwrap();
    let float = pillar_nn::exec::float::run(&graph, &all).unwrap();
    let config = FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::Espn,
        ..FixedConfig::default()
    };
    let fixed = mirror::run(&graph, &all, &config).unwrap().logits;

    let plain = run("plain");
    assert_eq!(plain["mode"], "plain");
    let inputs = plain["inputs"].as_array().unwrap();
    let places: Vec<(&str, u64)> = inputs
        .iter()
        .map(|i| (i["file"].as_str().unwrap(), i["index"].as_u64().unwrap()))
        .collect();
    assert_eq!(places, [(files[0], 0), (files[0], 1), (files[1], 0)]);
    let got = logits(&plain);
    for (i, row) in got.iter().enumerate() {
        assert_eq!(row.len(), 10);
        assert_eq!(
            max_diff(row, &float.data()[i * 10..(i + 1) * 10]),
            0.0,
            "input {i}"
        );
        // And what PyTorch computed for the same tensor.
        let torch = &pytorch[(i % 2) * 10..(i % 2 + 1) * 10];
        assert!(
            max_diff(row, torch) < 1e-4,
            "input {i}: {row:?} vs {torch:?}"
        );
        let argmax = inputs[i]["argmax"].as_u64().unwrap() as usize;
        assert!(row.iter().all(|&v| v <= row[argmax]), "input {i}");
    }
    // The single-input file is the batch's first input.
    assert_eq!(got[2], got[0]);

    let fixed_report = run("fixed");
    assert_eq!(fixed_report["frac_bits"], 16);
    assert!(
        fixed_report["expected_truncation_failures"]
            .as_f64()
            .is_some()
    );
    for (i, row) in logits(&fixed_report).iter().enumerate() {
        assert_eq!(
            max_diff(row, &fixed.data()[i * 10..(i + 1) * 10]),
            0.0,
            "input {i}"
        );
    }
    // Secure: both parties in this process open what the fixed executor computes, up to the
    // last bits of a share truncation.
    for (i, row) in logits(&run("secure")).iter().enumerate() {
        let want = &fixed.data()[i * 10..(i + 1) * 10];
        assert!(max_diff(row, want) < 1e-3, "input {i}: {row:?} vs {want:?}");
    }

    // A readable table without --json.
    pillar()
        .args(["eval", "--model", model_arg, "--input"])
        .args(files)
        .assert()
        .success()
        .stdout(contains("argmax  logits"))
        .stdout(contains(format!("{}[1]", files[0])));

    // Wrong shape, wrong type, a missing file, and --input with a data set's flags.
    let wrong = dir.path().join("wrong.npy");
    std::fs::write(&wrong, npy::to_bytes(&[3, 8, 8], &[0.0; 192])).unwrap();
    let mut ints = npy::to_bytes(&[1, 8, 8], &[0.0; 64]);
    let at = ints.windows(3).position(|w| w == b"<f4").unwrap();
    ints[at..at + 3].copy_from_slice(b"<i4");
    let ints_path = dir.path().join("ints.npy");
    std::fs::write(&ints_path, ints).unwrap();
    for (args, says) in [
        (
            vec!["--input", wrong.to_str().unwrap()],
            "holds an array of shape [3, 8, 8], but the model takes inputs of shape [1, 8, 8]",
        ),
        (
            vec!["--input", ints_path.to_str().unwrap()],
            "dtype \"<i4\"",
        ),
        (vec!["--input", "no-such.npy"], "no-such.npy is not a file"),
        (
            vec!["--input", files[1], "--data", "somewhere"],
            "cannot be used with",
        ),
    ] {
        pillar()
            .args(["eval", "--model", model_arg])
            .args(args)
            .assert()
            .failure()
            .stderr(contains(says));
    }
}

#[test]
fn infer_input_classifies_a_npy_batch_as_the_fixed_executor_does() {
    let dir = tempfile::tempdir().unwrap();
    let (model, x, _) = fixture();
    let (batch, one) = write_inputs(dir.path(), &x);
    let plain = "--insecure-plaintext";
    let dealer = start(&["dealer", "--listen", "127.0.0.1:0", plain]);
    let server = start(&[
        "serve",
        "--model",
        model.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--dealer",
        &dealer.addr,
        "--protocol",
        "espn",
        plain,
    ]);
    let infer = |args: &[&str]| {
        let mut cmd = pillar();
        cmd.args([
            "infer",
            "--connect",
            &server.addr,
            "--dealer",
            &dealer.addr,
            plain,
        ])
        .args(args);
        cmd
    };
    // The model's input [1, 8, 8] is no known data set's: a .npy needs none.
    let files = [batch.to_str().unwrap(), one.to_str().unwrap()];
    let out = infer(&[&["--top-k", "10", "--json", "--input"][..], &files].concat())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = report["images"].as_array().unwrap();
    let names: Vec<&str> = images
        .iter()
        .map(|i| i["input"].as_str().unwrap())
        .collect();
    let batch_name = files[0];
    assert_eq!(
        names,
        [
            format!("{batch_name}[0]"),
            format!("{batch_name}[1]"),
            files[1].to_string()
        ]
    );
    assert_eq!(images[1]["index"], 1);
    assert!(images[2]["index"].is_null());

    let graph = pillar_nn::onnx::load(&model)
        .unwrap()
        .fold_batchnorm()
        .unwrap();
    let config = FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::Espn,
        ..FixedConfig::default()
    };
    let want = mirror::run(&graph, &x, &config).unwrap().logits;
    for (i, img) in images.iter().enumerate() {
        let want = &want.data()[(i % 2) * 10..(i % 2 + 1) * 10];
        let got: Vec<f32> = img["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert!(
            max_diff(&got, want) < 1e-3,
            "input {i}: {got:?} vs {want:?}"
        );
        let top = img["top"].as_array().unwrap();
        assert_eq!(top.len(), 10);
        for class in top {
            let c = class["class"].as_u64().unwrap() as usize;
            assert_eq!(class["logit"].as_f64().unwrap() as f32, got[c]);
        }
        assert_eq!(img["predicted"], top[0]["class"]);
    }

    // Text: each input's classes with their logits (the model ends in no softmax).
    infer(&["--input", files[1]])
        .assert()
        .success()
        .stdout(contains(files[1]))
        .stdout(contains(" (logit "))
        .stdout(contains("%").not());

    // A tensor of another shape is refused naming both shapes; an image needs --dataset here.
    let wrong = dir.path().join("wrong.npy");
    std::fs::write(&wrong, npy::to_bytes(&[2, 3, 8, 8], &[0.0; 384])).unwrap();
    infer(&["--input", wrong.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(contains(
            "holds an array of shape [2, 3, 8, 8], but the model takes inputs of shape [1, 8, 8]",
        ));
    let png = dir.path().join("x.png");
    image::GrayImage::from_raw(8, 8, vec![128; 64])
        .unwrap()
        .save(&png)
        .unwrap();
    infer(&["--input", png.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(contains("pass --dataset"));
    // With the data set's normalisation named, the image goes through.
    infer(&["--input", png.to_str().unwrap(), "--dataset", "mnist"])
        .assert()
        .success()
        .stdout(contains("x.png"));
}
