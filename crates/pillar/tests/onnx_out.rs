//! What `pillar train` writes runs outside pillar: a polynomial model's `model.onnx` runs in
//! onnxruntime and computes what pillar's float reference computes, and pillar reads it back
//! with one polynomial layer per activation, its coefficients and range exact.
//!
//! Needs onnxruntime: run the tests with `scripts/test` (see `pillar_nn::testing::onnxruntime`).
#![allow(clippy::unwrap_used)]

mod common;

use common::pillar;
use pillar_nn::Tensor;
use pillar_nn::exec::float;
use pillar_nn::testing::{max_error, onnxruntime, poly_acts, tensor};
use pillar_train::data::npy;

#[test]
fn a_trained_poly_model_runs_in_onnxruntime_as_in_pillar() {
    let dir = tempfile::tempdir().unwrap();
    // Coefficients that f32 cannot hold and a range other than the default, so that reading
    // them back exactly shows they travelled in the file.
    let coefficients = [0.3, 0.5, 0.16, 0.0, -0.003];
    let range = 4.5;
    let config = dir.path().join("poly.toml");
    std::fs::write(
        &config,
        format!("coefficients = {coefficients:?}\nrange = {range:?}\n"),
    )
    .unwrap();
    let out = dir.path().join("run");
    pillar()
        .args(["train", "--model", "convnet", "--activation", "poly"])
        .args(["--epochs", "1", "--limit", "100", "--batch-size", "50"])
        .args(["--lr-warmup-epochs", "0", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let model = out.join("model.onnx");
    let bytes = std::fs::read(&model).unwrap();
    // Only standard operators: pillar's own is nowhere in the file.
    assert!(!bytes.windows(7).any(|w| w == b"PolyAct"));
    let recorded = bytes
        .windows(b"pillar.poly:".len())
        .filter(|w| *w == b"pillar.poly:")
        .count();

    let g = pillar_nn::onnx::load(&model).unwrap();
    let polys: Vec<_> = poly_acts(&g);
    // One polynomial layer per activation the exporter recorded, none split into arithmetic.
    assert!(recorded > 0);
    assert_eq!(polys.len(), recorded);
    for p in polys {
        assert_eq!(p.coefficients, coefficients);
        assert_eq!(p.range, range);
    }

    // The same batch through onnxruntime and pillar's float reference.
    let mut shape = vec![4];
    shape.extend(&g.input_shape);
    let x = tensor(&shape, 3, 1.5);
    let want = float::run(&g, &x).unwrap();
    let got = onnxruntime::run(&model, &x);
    let err = max_error(&got, &want);
    eprintln!("onnxruntime against pillar: largest error {err:.1e}");
    assert!(err < 1e-4, "onnxruntime differs from pillar by {err}");

    // And as a user compares them: the logits `pillar eval --mode plain --input x.npy --json`
    // prints for the tensor onnxruntime ran.
    let npy_path = dir.path().join("x.npy");
    std::fs::write(&npy_path, npy::to_bytes(x.shape(), x.data())).unwrap();
    let printed = pillar()
        .args(["eval", "--mode", "plain", "--json", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&npy_path)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let report: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    let inputs = report["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 4);
    let logits: Vec<f32> = inputs
        .iter()
        .flat_map(|i| i["logits"].as_array().unwrap().clone())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let eval = Tensor::new(got.shape().to_vec(), logits).unwrap();
    let err = max_error(&got, &eval);
    eprintln!("onnxruntime against pillar eval --input: largest error {err:.1e}");
    assert!(err < 1e-4, "onnxruntime differs from pillar eval by {err}");
}
