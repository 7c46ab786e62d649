//! pillar's ONNX export against onnxruntime: a graph with every operator, its polynomial
//! activations written as standard operators, must compute in onnxruntime what the float
//! reference computes.
//!
//! Needs a Python with `onnxruntime` and `numpy`: `$PILLAR_PYTHON`, else
//! `$HOME/.cache/pillar/venv/bin/python` if it exists, else `python3`. `.ci/run` creates that
//! venv; by hand:
//! `python3 -m venv ~/.cache/pillar/venv && ~/.cache/pillar/venv/bin/pip install onnxruntime numpy`
//! then `PILLAR_PYTHON=~/.cache/pillar/venv/bin/python cargo test -p pillar-nn`.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use pillar_nn::exec::float;
use pillar_nn::onnx::{self, SaveOptions};
use pillar_nn::testing::{every_op, pytorch_ops, values};
use pillar_nn::{Tensor, TypedGraph};

const SETUP: &str = "onnxruntime is needed for this test. Set it up with\n  \
    python3 -m venv ~/.cache/pillar/venv && ~/.cache/pillar/venv/bin/pip install onnxruntime numpy\n\
    and run the tests with PILLAR_PYTHON=~/.cache/pillar/venv/bin/python (.ci/run does both)";

/// The venv `.ci/run` makes, once it exists, so that a plain `cargo test` finds it; else
/// `python3`.
fn default_python() -> String {
    let venv = std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".cache/pillar/venv/bin/python"))
        .filter(|p| p.exists());
    venv.map_or("python3".into(), |p| p.to_string_lossy().into_owned())
}

/// Runs `g` on `x` in onnxruntime.
fn onnxruntime(g: &TypedGraph, x: &Tensor, name: &str) -> Tensor {
    let python = std::env::var("PILLAR_PYTHON").unwrap_or_else(|_| default_python());
    // One folder per model: tests run in parallel, and each removes its folder.
    let dir = std::env::temp_dir().join(format!("pillar-ort-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join(format!("{name}.onnx"));
    onnx::save_with(
        g,
        &model,
        &SaveOptions {
            poly_as_subgraph: true,
        },
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/onnxruntime_run.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python:?}: {e}\n{SETUP}"));
    let input = serde_json::json!({ "shape": x.shape(), "data": x.data() });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!(
            "{python:?} cannot import onnxruntime ({}).\n{SETUP}",
            stderr.trim()
        );
    }
    assert!(
        out.status.success(),
        "onnxruntime failed on {model:?}:\n{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
    let y: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shape = y["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = y["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    Tensor::new(shape, data).unwrap()
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    for (i, (a, b)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{what}: element {i}: onnxruntime {a}, pillar {b}"
        );
    }
}

#[test]
fn onnxruntime_computes_what_the_float_reference_computes() {
    let g = every_op().typed().unwrap();
    let x = Tensor::new(vec![3, 2, 8, 8], values(3 * 2 * 64, 7)).unwrap();
    let want = float::run(&g, &x).unwrap();
    assert_close(&onnxruntime(&g, &x, "every_op"), &want, "every_op");
    // Every prefix of the network, so that an error shows at the first layer that differs.
    for end in 1..=g.nodes.len() {
        let mut prefix = g.clone().into_graph();
        prefix.nodes.truncate(end);
        prefix.output = end;
        let prefix = prefix.typed().unwrap();
        let want = float::run(&prefix, &x).unwrap();
        let name = prefix.nodes[end - 1].name.clone();
        assert_close(
            &onnxruntime(&prefix, &x, &name),
            &want,
            &format!("up to {name}"),
        );
    }
}

#[test]
fn onnxruntime_computes_the_pytorch_operators_as_the_float_reference_does() {
    // Padded max and average pools at every edge, both Clips and the final softmax, as
    // pillar writes them.
    let g = pytorch_ops().typed().unwrap();
    let x = Tensor::new(vec![3, 2, 9, 9], values(3 * 2 * 81, 11)).unwrap();
    let want = float::run(&g, &x).unwrap();
    assert_close(&onnxruntime(&g, &x, "pytorch_ops"), &want, "pytorch_ops");
    // Without the softmax: the logits, which separate more than probabilities near 0.
    let mut logits = g.into_graph();
    logits.output_transform = None;
    let logits = logits.typed().unwrap();
    assert_close(
        &onnxruntime(&logits, &x, "pytorch_ops_logits"),
        &float::run(&logits, &x).unwrap(),
        "pytorch_ops without the softmax",
    );
}
