//! Shapes, the float reference on hand-computed cases, and BatchNorm folding.
#![allow(clippy::unwrap_used)]

use pillar_nn::testing::values;

use pillar_nn::exec::float;
use pillar_nn::{BatchNorm, Conv2d, Graph, Linear, NnError, Op, PolyAct, Pool, Tensor, TypedGraph};
use proptest::prelude::*;

fn typed(g: &Graph) -> TypedGraph {
    g.clone().typed().unwrap()
}

fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), data).unwrap()
}

fn conv(o: usize, c: usize, k: usize, stride: usize, padding: usize, seed: u64) -> Op {
    Op::Conv2d(Conv2d {
        weight: t(&[o, c, k, k], values(o * c * k * k, seed)),
        bias: Some(t(&[o], values(o, seed + 1))),
        stride,
        padding,
    })
}

fn bn(c: usize, seed: u64) -> Op {
    let v = values(4 * c, seed);
    Op::BatchNorm(BatchNorm {
        gamma: v[..c].iter().map(|x| 1.0 + 0.5 * x).collect(),
        beta: v[c..2 * c].to_vec(),
        mean: v[2 * c..3 * c].to_vec(),
        var: v[3 * c..].iter().map(|x| 0.5 + x.abs()).collect(),
        eps: 1e-5,
    })
}

fn linear(out: usize, inp: usize, seed: u64) -> Op {
    Op::Linear(Linear {
        weight: t(&[out, inp], values(out * inp, seed)),
        bias: Some(t(&[out], values(out, seed + 1))),
    })
}

/// A MiniONN-shaped network with BatchNorm and a residual add, on 1x12x12 inputs.
fn network() -> Graph {
    let mut g = Graph::new(vec![1, 12, 12]);
    g.chain("conv1", conv(4, 1, 3, 1, 1, 1));
    g.chain("bn1", bn(4, 2));
    let a = g.chain("act1", Op::Relu);
    g.chain("conv2", conv(4, 4, 3, 1, 1, 3));
    g.chain("bn2", bn(4, 4));
    let b = g.chain(
        "act2",
        Op::PolyAct(PolyAct {
            coefficients: vec![0.3, 0.5, 0.15, 0.0, -0.003],
            range: 5.0,
        }),
    );
    g.push("res", Op::Add, vec![a, b]);
    g.chain("pool", Op::AvgPool(Pool::new(2, 2)));
    g.chain("mpool", Op::MaxPool(Pool::new(2, 1)));
    g.chain("conv3", conv(6, 4, 3, 2, 0, 5));
    g.chain("flat", Op::Flatten);
    g.chain("fc1", linear(10, 24, 6));
    g.chain("bn3", bn(10, 7));
    g.chain("fc2", linear(3, 10, 8));
    g
}

#[test]
fn shapes_follow_the_layers() {
    let g = network();
    let s = g.shapes().unwrap();
    assert_eq!(s[1], vec![4, 12, 12]);
    assert_eq!(s[8], vec![4, 6, 6]);
    assert_eq!(s[9], vec![4, 5, 5]);
    assert_eq!(s[10], vec![6, 2, 2]);
    assert_eq!(s[11], vec![24]);
    assert_eq!(g.typed().unwrap().output_shape(), [3]);
}

#[test]
fn shape_errors_name_the_node_and_operator() {
    let mut g = Graph::new(vec![3, 8, 8]);
    g.chain("stem", conv(4, 1, 3, 1, 0, 1));
    let e = g.shapes().unwrap_err().to_string();
    assert!(
        e.contains("\"stem\" (Conv)") && e.contains("1 input channels, the input has 3"),
        "{e}"
    );

    let mut g = Graph::new(vec![3, 8, 8]);
    g.chain("fc", linear(2, 192, 1));
    let e = g.shapes().unwrap_err().to_string();
    assert!(
        e.contains("\"fc\" (Gemm)") && e.contains("flat input"),
        "{e}"
    );

    let mut g = Graph::new(vec![1, 8, 8]);
    let a = g.chain("c", conv(2, 1, 3, 1, 0, 1));
    g.push("sum", Op::Add, vec![0, a]);
    let e = g.shapes().unwrap_err().to_string();
    assert!(
        e.contains("\"sum\" (Add)") && e.contains("[1, 8, 8]"),
        "{e}"
    );

    let mut g = Graph::new(vec![1, 4, 4]);
    g.push("early", Op::Relu, vec![3]);
    assert!(
        g.shapes()
            .unwrap_err()
            .to_string()
            .contains("not computed before")
    );

    let mut g = Graph::new(vec![1, 4, 4]);
    g.chain("big", Op::MaxPool(Pool::new(5, 1)));
    assert!(g.shapes().unwrap_err().to_string().contains("does not fit"));
}

#[test]
fn float_reference_on_hand_computed_layers() {
    // 1x3x3 input 1..9; a 2x2 kernel of ones, stride 1, padding 0, bias 0.5.
    let mut g = Graph::new(vec![1, 3, 3]);
    g.chain(
        "c",
        Op::Conv2d(Conv2d {
            weight: t(&[1, 1, 2, 2], vec![1.0; 4]),
            bias: Some(t(&[1], vec![0.5])),
            stride: 1,
            padding: 0,
        }),
    );
    let x = t(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
    let y = float::run(&typed(&g), &x).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[12.5, 16.5, 24.5, 28.5]);

    // Padding 1, stride 2 on the same input: corners of the padded 5x5.
    g.nodes[0].op = Op::Conv2d(Conv2d {
        weight: t(&[1, 1, 2, 2], vec![1.0; 4]),
        bias: None,
        stride: 2,
        padding: 1,
    });
    let y = float::run(&typed(&g), &x).unwrap();
    assert_eq!(y.data(), &[1.0, 5.0, 11.0, 28.0]);

    // Linear, relu, poly, pools.
    let mut g = Graph::new(vec![2]);
    g.chain(
        "fc",
        Op::Linear(Linear {
            weight: t(&[3, 2], vec![1.0, 2.0, -1.0, 0.0, 0.5, 0.5]),
            bias: Some(t(&[3], vec![0.0, 1.0, -1.0])),
        }),
    );
    g.chain("r", Op::Relu);
    g.chain(
        "p",
        Op::PolyAct(PolyAct {
            coefficients: vec![1.0, 0.0, 2.0],
            range: 5.0,
        }),
    );
    let y = float::run(&typed(&g), &t(&[2, 2], vec![1.0, 1.0, -2.0, 4.0])).unwrap();
    // Rows: (3, 0, 0) -> relu -> poly 1 + 2x^2; (6, 3, 0).
    assert_eq!(y.data(), &[19.0, 1.0, 1.0, 73.0, 19.0, 1.0]);

    let mut g = Graph::new(vec![1, 4, 4]);
    let a = g.chain("avg", Op::AvgPool(Pool::new(2, 2)));
    g.push("max", Op::MaxPool(Pool::new(2, 2)), vec![0]);
    g.push("sum", Op::Add, vec![a, 2]);
    g.chain("gap", Op::GlobalAvgPool);
    let x = t(&[1, 1, 4, 4], (0..16).map(|v| v as f32).collect());
    let y = float::run(&typed(&g), &x).unwrap();
    // avg: 2.5 4.5 10.5 12.5; max: 5 7 13 15; sum mean = (30 + 40) / 4.
    assert_eq!(y.shape(), &[1, 1, 1, 1]);
    assert_eq!(y.data(), &[17.5]);

    let err = float::run(&typed(&g), &t(&[1, 2, 4, 4], vec![0.0; 32])).unwrap_err();
    assert!(matches!(err, NnError::Input { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Folding every BatchNorm changes no output by more than 1e-5 (relative to the output's
    /// size), removes the three foldable ones and keeps the network's structure.
    #[test]
    fn batchnorm_folding_is_exact(seed in 0u64..1000, batch in 1usize..4) {
        let g = network();
        let folded = typed(&g).fold_batchnorm().unwrap();
        let bns = |g: &Graph| g.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm(_))).count();
        prop_assert_eq!(bns(&g), 3);
        prop_assert_eq!(bns(&folded), 0);
        prop_assert_eq!(folded.nodes.len(), g.nodes.len() - 3);
        let x = t(&[batch, 1, 12, 12], values(batch * 144, seed));
        let a = float::run(&typed(&g), &x).unwrap();
        let b = float::run(&folded, &x).unwrap();
        prop_assert_eq!(a.shape(), b.shape());
        for (u, v) in a.data().iter().zip(b.data()) {
            prop_assert!((u - v).abs() <= 1e-5 * (1.0 + u.abs()), "{} vs {}", u, v);
        }
    }
}

#[test]
fn a_batchnorm_whose_input_is_shared_stays() {
    let mut g = Graph::new(vec![2, 4, 4]);
    let c = g.chain("c", conv(2, 2, 3, 1, 1, 1));
    let b = g.chain("bn", bn(2, 2));
    g.push("res", Op::Add, vec![c, b]);
    let folded = typed(&g).fold_batchnorm().unwrap();
    assert_eq!(folded.nodes.len(), 3);
    // A BatchNorm reading the input directly also stays.
    let mut g = Graph::new(vec![2, 4, 4]);
    g.chain("bn0", bn(2, 3));
    assert_eq!(typed(&g).fold_batchnorm().unwrap().nodes.len(), 1);
}
