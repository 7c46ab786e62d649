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

/// A square pooling window with symmetric padding, as PyTorch's `MaxPool2d(kernel, stride,
/// padding)` and `AvgPool2d(..., count_include_pad=True)` define it: outputs in floor mode,
/// `(h + 2 pad - kernel) / stride + 1`, and `pad <= kernel / 2` (PyTorch's own rule, which
/// also makes every window hold at least one element of the input). Max pooling never picks
/// the padding; average pooling counts it as zeros and divides by `kernel^2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Square window side.
    pub kernel: usize,
    /// Step.
    pub stride: usize,
    /// Padding on every side.
    pub pad: usize,
}

impl Pool {
    /// An unpadded window.
    pub fn new(kernel: usize, stride: usize) -> Pool {
        Pool {
            kernel,
            stride,
            pad: 0,
        }
    }

    /// Output `(height, width)` on an `h x w` plane, or why the window does not fit.
    pub fn output(&self, h: usize, w: usize) -> Result<(usize, usize), String> {
        if self.kernel == 0 || self.stride == 0 {
            return Err("kernel and stride must be positive".into());
        }
        if h == 0 || w == 0 {
            return Err(format!("empty {h}x{w} input"));
        }
        if self.pad > self.kernel / 2 {
            return Err(format!(
                "padding {} is more than half the {1}x{1} window (PyTorch's limit too)",
                self.pad, self.kernel
            ));
        }
        // pad <= kernel / 2: no overflow unless the input's sides are near usize::MAX.
        let (ph, pw) = (
            h.saturating_add(2 * self.pad),
            w.saturating_add(2 * self.pad),
        );
        if self.kernel > ph || self.kernel > pw {
            return Err(format!(
                "{0}x{0} window does not fit the {h}x{w} input padded by {1}",
                self.kernel, self.pad
            ));
        }
        Ok((
            (ph - self.kernel) / self.stride + 1,
            (pw - self.kernel) / self.stride + 1,
        ))
    }
}

/// `min(max(x, min), max)`, ONNX `Clip` (PyTorch's `clamp`), either bound optional.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    /// Lower bound, if any.
    pub min: Option<f32>,
    /// Upper bound, if any.
    pub max: Option<f32>,
}

impl Clip {
    /// `x` clamped to the bounds.
    pub fn eval(&self, x: f64) -> f64 {
        let x = self.min.map_or(x, |lo| x.max(f64::from(lo)));
        self.max.map_or(x, |hi| x.min(f64::from(hi)))
    }
}

/// What the graph applies to its output over the last axis, after the last node: ONNX
/// `Softmax` or `LogSoftmax` as the model's last operator. In a secure run the client, which
/// alone learns the logits, applies it; accuracy (argmax) does not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputTransform {
    /// `exp(x_i) / sum_j exp(x_j)`.
    Softmax,
    /// `x_i - log sum_j exp(x_j)`.
    LogSoftmax,
}

impl OutputTransform {
    /// The ONNX operator.
    pub fn name(&self) -> &'static str {
        match self {
            OutputTransform::Softmax => "Softmax",
            OutputTransform::LogSoftmax => "LogSoftmax",
        }
    }

    /// Applies the transform to one row of logits, in place (max subtracted first, so that
    /// no exponential overflows).
    pub fn apply(&self, row: &mut [f64]) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = row.iter().map(|v| (v - max).exp()).sum();
        match self {
            OutputTransform::Softmax => row.iter_mut().for_each(|v| *v = (*v - max).exp() / total),
            OutputTransform::LogSoftmax => {
                let log = max + total.ln();
                row.iter_mut().for_each(|v| *v -= log);
            }
        }
    }

    /// Applies the transform to every row of `k` values of `data`.
    pub fn apply_rows(&self, data: &mut [f64], k: usize) {
        data.chunks_mut(k.max(1)).for_each(|row| self.apply(row));
    }
}

impl std::str::FromStr for OutputTransform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Softmax" => Ok(OutputTransform::Softmax),
            "LogSoftmax" => Ok(OutputTransform::LogSoftmax),
            _ => Err(format!(
                "unknown output transform {s:?} (Softmax or LogSoftmax)"
            )),
        }
    }
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
    /// Clamping to bounds.
    Clip(Clip),
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
            Op::Clip(_) => "Clip",
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
    /// What is applied to that value before it is returned (a final softmax), if anything.
    pub output_transform: Option<OutputTransform>,
}

impl Graph {
    /// An empty graph (it returns its input).
    pub fn new(input_shape: Vec<usize>) -> Self {
        Graph {
            input_shape,
            nodes: Vec::new(),
            output: 0,
            output_transform: None,
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

    /// Advice on a graph that runs but costs more than it needs to: a `Clip` that feeds a
    /// polynomial activation directly is a training-time clamp (PILLAR clamps to the fitting
    /// range only while training), and in a secure run it costs the comparison rounds of a
    /// ReLU that the polynomial exists to avoid.
    pub fn warnings(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::PolyAct(_)))
            .filter_map(|n| {
                let src = self.nodes.get(n.inputs.first()?.checked_sub(1)?)?;
                matches!(src.op, Op::Clip(_)).then(|| {
                    format!(
                        "node {:?} (Clip) feeds the polynomial activation {:?}: in a secure run \
                         it costs the comparison rounds of a ReLU, which PILLAR does not need at \
                         inference (it clamps only in training); remove the clamp from \
                         forward() before exporting",
                        src.name, n.name
                    )
                })
            })
            .collect()
    }

    /// The shape of every value, checking every node against its operands.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>, NnError> {
        crate::shape::infer(self)
    }
}
