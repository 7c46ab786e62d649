//! The operators PyTorch's CNNs bring (padded pools, `Clip`, a final softmax) in the float
//! executor, with answers worked out by hand, and through ONNX export and import.
#![allow(clippy::unwrap_used)]

use pillar_nn::exec::float;
use pillar_nn::onnx::{self, SaveOptions};
use pillar_nn::testing::{pytorch_ops, values};
use pillar_nn::{Clip, Graph, Op, OutputTransform, Pool, Tensor};

fn one(input: Vec<usize>, op: Op) -> Graph {
    let mut g = Graph::new(input);
    g.chain("op", op);
    g
}

fn run(g: &Graph, shape: &[usize], data: Vec<f32>) -> Vec<f32> {
    let x = Tensor::new(shape.to_vec(), data).unwrap();
    float::run(&g.clone().typed().unwrap(), &x)
        .unwrap()
        .data()
        .to_vec()
}

#[test]
fn padded_max_pool_ignores_the_padding() {
    // All negative: zero padding would win every window at the edge.
    let x: Vec<f32> = (1..=16).map(|v| -(v as f32)).collect();
    let g = one(
        vec![1, 4, 4],
        Op::MaxPool(Pool {
            kernel: 3,
            stride: 2,
            pad: 1,
        }),
    );
    // Windows start at rows/columns -1 and 1: {0, 1} and {1, 2, 3}.
    assert_eq!(run(&g, &[1, 1, 4, 4], x), [-1.0, -2.0, -5.0, -6.0]);
}

#[test]
fn padded_average_pool_counts_the_padding_as_zeros() {
    let g = one(
        vec![1, 4, 4],
        Op::AvgPool(Pool {
            kernel: 3,
            stride: 2,
            pad: 1,
        }),
    );
    // Ones: the corner window holds 4 of them, the edge ones 6, the inner one 9; all / 9.
    let y = run(&g, &[1, 1, 4, 4], vec![1.0; 16]);
    let want = [4.0 / 9.0, 6.0 / 9.0, 6.0 / 9.0, 1.0];
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{y:?}");
    }
}

#[test]
fn clip_clamps_to_either_bound() {
    let x = vec![-3.0, -0.5, 0.25, 2.0];
    let clip = |min, max| one(vec![4], Op::Clip(Clip { min, max }));
    assert_eq!(
        run(&clip(Some(-1.0), Some(1.0)), &[1, 4], x.clone()),
        [-1.0, -0.5, 0.25, 1.0]
    );
    assert_eq!(
        run(&clip(None, Some(0.0)), &[1, 4], x.clone()),
        [-3.0, -0.5, 0.0, 0.0]
    );
    assert_eq!(
        run(&clip(Some(0.0), None), &[1, 4], x),
        [0.0, 0.0, 0.25, 2.0]
    );
    let err = clip(Some(1.0), Some(-1.0)).typed().unwrap_err().to_string();
    assert!(
        err.contains("\"op\" (Clip)") && err.contains("min <= max"),
        "{err}"
    );
}

#[test]
fn a_final_softmax_is_applied_by_run_and_not_by_logits() {
    let mut g = Graph::new(vec![3]);
    g.chain(
        "id",
        Op::Clip(Clip {
            min: None,
            max: Some(100.0),
        }),
    );
    let x = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0]).unwrap();
    for (t, want) in [
        (
            OutputTransform::Softmax,
            [0.090_030_57, 0.244_728_48, 0.665_240_94],
        ),
        (
            OutputTransform::LogSoftmax,
            [-2.407_606, -1.407_606, -0.407_606],
        ),
    ] {
        g.output_transform = Some(t);
        let typed = g.clone().typed().unwrap();
        let y = float::run(&typed, &x).unwrap();
        for (a, b) in y.data()[..3].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{t:?}: {y:?}");
        }
        assert_eq!(float::logits(&typed, &x).unwrap().data(), x.data());
    }
    // Over the classes of a flat output only.
    let mut image = one(vec![2, 2, 2], Op::Relu);
    image.output_transform = Some(OutputTransform::Softmax);
    let err = image.typed().unwrap_err().to_string();
    assert!(err.contains("flatten first"), "{err}");
}

#[test]
fn pytorch_ops_save_and_load_as_they_were() {
    let g = pytorch_ops();
    for poly_as_subgraph in [false, true] {
        let bytes = onnx::to_bytes_with(
            &g.clone().typed().unwrap(),
            &SaveOptions { poly_as_subgraph },
        )
        .unwrap();
        assert_eq!(onnx::from_bytes(&bytes).unwrap().into_graph(), g);
    }
    let typed = g.typed().unwrap();
    let x = Tensor::new(vec![3, 2, 9, 9], values(3 * 162, 5)).unwrap();
    let y = float::run(&typed, &x).unwrap();
    assert_eq!(y.shape(), [3, 5]);
    for row in y.data().chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
    }
}
