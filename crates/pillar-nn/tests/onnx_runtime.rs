//! pillar's ONNX export against onnxruntime: a graph with every operator, its polynomial
//! activations written as standard operators, must compute in onnxruntime what the float
//! reference computes.
//!
//! Needs a Python with `onnxruntime` and `numpy`: run the tests with `scripts/test`, which
//! makes one (see [`pillar_nn::testing::onnxruntime`]).
#![allow(clippy::unwrap_used)]

use pillar_nn::exec::float;
use pillar_nn::onnx;
use pillar_nn::testing::{every_op, pytorch_ops, values};
use pillar_nn::{Tensor, TypedGraph};

/// Runs `g`, saved as pillar saves models, on `x` in onnxruntime.
fn onnxruntime(g: &TypedGraph, x: &Tensor, name: &str) -> Tensor {
    // One folder per model: tests run in parallel, and each removes its folder.
    let dir = std::env::temp_dir().join(format!("pillar-ort-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join(format!("{name}.onnx"));
    onnx::save(g, &model).unwrap();
    let y = pillar_nn::testing::onnxruntime::run(&model, x);
    std::fs::remove_dir_all(&dir).ok();
    y
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
