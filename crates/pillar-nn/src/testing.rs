//! Graphs for tests (feature `test-utils`): pseudo-random weights and networks that use every
//! operator pillar has, shared by this crate's tests and the secure stage's.
// Test fixtures: a shape that does not fit its data is a bug in the caller.
#![allow(clippy::unwrap_used)]

pub mod fixtures;
pub mod onnxruntime;

use crate::{
    BatchNorm, Clip, Conv2d, FoldedGraph, Graph, Linear, Op, OutputTransform, PolyAct, Pool, Tensor,
};

/// Largest `|a - b| / (1 + |b|)`: how far an output is from a reference, relative where the
/// reference is large. Panics if the shapes differ.
pub fn max_error(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

/// The polynomial activations of `g`, in node order.
pub fn poly_acts(g: &Graph) -> Vec<&PolyAct> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::PolyAct(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A tensor of `shape` with [`values`] times `scale`.
pub fn tensor(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let n = shape.iter().product();
    let data = values(n, seed).into_iter().map(|v| v * scale).collect();
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// A convolution with bias, weights scaled by the fan-in.
pub fn conv(o: usize, c: usize, k: usize, stride: usize, padding: usize, seed: u64) -> Op {
    let scale = 1.0 / ((c * k * k) as f32).sqrt();
    Op::Conv2d(Conv2d {
        weight: tensor(&[o, c, k, k], seed, scale),
        bias: Some(tensor(&[o], seed + 1, 0.1)),
        stride,
        padding,
    })
}

/// A BatchNorm with pseudo-random statistics.
pub fn bn(c: usize, seed: u64) -> Op {
    let v = values(4 * c, seed);
    Op::BatchNorm(BatchNorm {
        gamma: v[..c].iter().map(|x| 1.0 + 0.5 * x).collect(),
        beta: v[c..2 * c].iter().map(|x| 0.5 * x).collect(),
        mean: v[2 * c..3 * c].iter().map(|x| 0.5 * x).collect(),
        var: v[3 * c..].iter().map(|x| 0.5 + x.abs()).collect(),
        eps: 1e-5,
    })
}

/// A fully connected layer, weights scaled by the fan-in.
pub fn linear(out: usize, inp: usize, seed: u64, bias: bool) -> Op {
    Op::Linear(Linear {
        weight: tensor(&[out, inp], seed, 1.0 / (inp as f32).sqrt()),
        bias: bias.then(|| tensor(&[out], seed + 1, 0.1)),
    })
}

/// The PILLAR polynomial for ReLU on [-5, 5] at 10 bits.
pub fn pillar_poly() -> Op {
    Op::PolyAct(PolyAct {
        coefficients: vec![0.314453125, 0.5, 0.15625, 0.0, -0.0029296875],
        range: 5.0,
    })
}

/// Every operator: conv, BatchNorm, a polynomial, a residual add, both pools, a strided
/// convolution without bias, global average pooling, flatten, linear layers with and without
/// bias, and a polynomial with coefficients that f32 cannot hold. Input `[2, 8, 8]`.
pub fn every_op() -> Graph {
    let mut g = Graph::new(vec![2, 8, 8]);
    g.chain("conv1", conv(4, 2, 3, 1, 1, 1));
    g.chain("bn1", bn(4, 3));
    let a = g.chain("act1", pillar_poly());
    g.chain("conv2", conv(4, 4, 3, 1, 1, 5));
    let r = g.chain("relu2", Op::Relu);
    g.push("add", Op::Add, vec![a, r]);
    g.chain("avgpool", Op::AvgPool(Pool::new(2, 2)));
    let mut c3 = conv(6, 4, 3, 2, 1, 7);
    if let Op::Conv2d(c) = &mut c3 {
        c.bias = None;
    }
    g.chain("conv3", c3);
    g.chain("relu3", Op::Relu);
    g.chain("maxpool", Op::MaxPool(Pool::new(2, 1)));
    g.chain("gap", Op::GlobalAvgPool);
    g.chain("flatten", Op::Flatten);
    g.chain("fc1", linear(5, 6, 9, false));
    g.chain(
        "act2",
        Op::PolyAct(PolyAct {
            coefficients: vec![0.1, 0.7, 1.0 / 3.0, -0.05],
            range: 2.5,
        }),
    );
    g.chain("fc2", linear(3, 5, 11, true));
    g
}

/// The operators PyTorch's CNNs bring beyond [`every_op`]: torchvision's padded max-pool stem
/// (3x3, stride 2, padding 1), a two-sided and a one-sided `Clip`, a padded average pool, a
/// 2x2 max pool padded by 1 (corner windows hold one element of the input), and a softmax
/// at the end. Input `[2, 9, 9]`, odd so that windows meet every edge.
pub fn pytorch_ops() -> Graph {
    let mut g = Graph::new(vec![2, 9, 9]);
    g.chain("conv1", conv(4, 2, 3, 1, 1, 21));
    g.chain(
        "stem_pool",
        Op::MaxPool(Pool {
            kernel: 3,
            stride: 2,
            pad: 1,
        }),
    );
    g.chain(
        "clamp",
        Op::Clip(Clip {
            min: Some(-0.5),
            max: Some(0.75),
        }),
    );
    g.chain(
        "avgpool",
        Op::AvgPool(Pool {
            kernel: 3,
            stride: 2,
            pad: 1,
        }),
    );
    g.chain(
        "cap",
        Op::Clip(Clip {
            min: None,
            max: Some(0.3),
        }),
    );
    g.chain(
        "corner_pool",
        Op::MaxPool(Pool {
            kernel: 2,
            stride: 1,
            pad: 1,
        }),
    );
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(5, 64, 23, true));
    g.output_transform = Some(OutputTransform::Softmax);
    g
}

/// A BatchNorm after a residual sum cannot be folded: the plan runs it as a product.
pub fn with_loose_batchnorm() -> Graph {
    let mut g = Graph::new(vec![2, 6, 6]);
    g.chain("conv1", conv(3, 2, 3, 1, 1, 11));
    let a = g.chain("act1", pillar_poly());
    g.chain("conv2", conv(3, 3, 3, 1, 1, 13));
    let b = g.chain("act2", pillar_poly());
    g.push("add", Op::Add, vec![a, b]);
    g.chain("bn", bn(3, 17));
    g.chain("max", Op::MaxPool(Pool::new(2, 2)));
    g.chain("flat", Op::Flatten);
    g.chain("fc", linear(4, 27, 19, true));
    g
}

/// `g` checked and folded, as the secure stage takes it.
pub fn fold(g: &Graph) -> FoldedGraph {
    g.clone().typed().unwrap().fold_batchnorm().unwrap()
}
