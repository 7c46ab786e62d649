//! The graph: layers in topological order, each reading earlier values.
//!
//! Value 0 is the graph's input; node `i` produces value `i + 1`. Shapes here never include
//! the batch dimension: an image input is `[C, H, W]`, a flat one `[F]`.

use crate::error::NnError;
use crate::tensor::Tensor;

/// Index of a value: 0 for the graph input, `i + 1` for the output of node `i`.
pub type ValueId = usize;

/// A 2-d convolution, ONNX `Conv` with square stride and symmetric zero padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// `[O, C, kh, kw]`.
    pub weight: Tensor,
    /// `[O]`, if any.
    pub bias: Option<Tensor>,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

/// Batch normalisation with running statistics (inference form).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// Scale per channel.
    pub gamma: Vec<f32>,
    /// Shift per channel.
    pub beta: Vec<f32>,
    /// Running mean per channel.
    pub mean: Vec<f32>,
    /// Running variance per channel.
    pub var: Vec<f32>,
    /// Added to the variance.
    pub eps: f32,
}

impl BatchNorm {
    /// Per channel `(scale, shift)` with `bn(x) = scale x + shift`, in f64: the parameters
    /// are f32, but forming `beta - mean * scale` in f32 loses digits to cancellation, and
    /// folding then rounds once more.
    pub fn affine(&self) -> Vec<(f64, f64)> {
        (0..self.gamma.len())
            .map(|c| {
                let scale = f64::from(self.gamma[c])
                    / (f64::from(self.var[c]) + f64::from(self.eps)).sqrt();
                (
                    scale,
                    f64::from(self.beta[c]) - f64::from(self.mean[c]) * scale,
                )
            })
            .collect()
    }
}

/// A fully connected layer `x W^T + b` (ONNX `Gemm` with `transB = 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`, if any.
    pub bias: Option<Tensor>,
}

/// A pooling window without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Square window side.
    pub kernel: usize,
    /// Step.
    pub stride: usize,
}

/// The polynomial activation `sum_k c_k x^k`; `range` is where it was fitted (training clamps
/// to it; inference does not).
#[derive(Debug, Clone, PartialEq)]
pub struct PolyAct {
    /// `c_0..c_d`.
    pub coefficients: Vec<f64>,
    /// Fitting range `R`: the fit holds on `[-R, R]`.
    pub range: f64,
}

impl PolyAct {
    /// `p(x)` by Horner's rule.
    pub fn eval(&self, x: f64) -> f64 {
        self.coefficients
            .iter()
            .rev()
            .fold(0.0, |acc, c| acc * x + c)
    }
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Convolution.
    Conv2d(Conv2d),
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// Fully connected.
    Linear(Linear),
    /// Average pooling.
    AvgPool(Pool),
    /// Mean over each whole plane, to `[C, 1, 1]`.
    GlobalAvgPool,
    /// Max pooling.
    MaxPool(Pool),
    /// Elementwise sum of two values (residual connections).
    Add,
    /// To `[F]`.
    Flatten,
    /// `max(x, 0)`.
    Relu,
    /// A polynomial activation.
    PolyAct(PolyAct),
}

impl Op {
    /// The operator's name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "Conv",
            Op::BatchNorm(_) => "BatchNormalization",
            Op::Linear(_) => "Gemm",
            Op::AvgPool(_) => "AveragePool",
            Op::GlobalAvgPool => "GlobalAveragePool",
            Op::MaxPool(_) => "MaxPool",
            Op::Add => "Add",
            Op::Flatten => "Flatten",
            Op::Relu => "Relu",
            Op::PolyAct(_) => "PolyAct",
        }
    }

    /// How many values it reads.
    pub fn arity(&self) -> usize {
        match self {
            Op::Add => 2,
            _ => 1,
        }
    }

    /// Whether it is an activation function.
    pub fn is_activation(&self) -> bool {
        matches!(self, Op::Relu | Op::PolyAct(_))
    }
}

/// One layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique name (from ONNX, or given by the builder).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// The values it reads.
    pub inputs: Vec<ValueId>,
}

/// A network: an input shape and nodes in topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Input shape without the batch dimension.
    pub input_shape: Vec<usize>,
    /// The layers; node `i` produces value `i + 1`.
    pub nodes: Vec<Node>,
    /// The value the graph returns.
    pub output: ValueId,
}

impl Graph {
    /// An empty graph (it returns its input).
    pub fn new(input_shape: Vec<usize>) -> Self {
        Graph {
            input_shape,
            nodes: Vec::new(),
            output: 0,
        }
    }

    /// Appends a node reading `inputs`; it becomes the output. Returns its value.
    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: Vec<ValueId>) -> ValueId {
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
        });
        self.output = self.nodes.len();
        self.output
    }

    /// Appends a node reading the current output.
    pub fn chain(&mut self, name: impl Into<String>, op: Op) -> ValueId {
        let input = self.output;
        self.push(name, op, vec![input])
    }

    /// How many nodes read each value (the graph output counts as a reader).
    pub fn readers(&self) -> Vec<usize> {
        let mut n = vec![0; self.nodes.len() + 1];
        for node in &self.nodes {
            for &v in &node.inputs {
                if let Some(c) = n.get_mut(v) {
                    *c += 1;
                }
            }
        }
        if let Some(c) = n.get_mut(self.output) {
            *c += 1;
        }
        n
    }

    /// The shape of every value, checking every node against its operands.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>, NnError> {
        crate::shape::infer(self)
    }
}
