//! Compiling a graph into what the two parties run: a public [`Architecture`] and the
//! server's encoded [`Weights`].

use pillar_mpc::dealer::Need;
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::pool::Window;
use pillar_mpc::protocols::{maxpool, weights};
use pillar_mpc::{FixedPoint, RingTensor};
use serde::{Deserialize, Serialize};

use pillar_mpc::protocols::poly::MAX_DEGREE;
use pillar_nn::{Graph, NnError, Node, Op, PolyAct, Tensor, ValueId, fold_batchnorm};

use crate::error::{InferError, node_error as err};
use crate::mirror::FixedConfig;

/// One layer as both parties see it: shapes and public parameters, weights by number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Layer {
    /// Convolution of one image (`batch` 1; the run sets it) by weight `weight`, plus the
    /// server's bias if `bias`.
    Conv {
        /// Per-image geometry.
        geometry: ConvGeometry,
        /// Weight number.
        weight: usize,
        /// Whether the server adds a bias.
        bias: bool,
    },
    /// `x W^T + b` with `W^T` (`in x out`) as weight `weight`.
    Linear {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// Weight number.
        weight: usize,
        /// Whether the server adds a bias.
        bias: bool,
    },
    /// A BatchNorm that follows no convolution or linear layer (after a residual sum, say):
    /// a per-channel product by weight `weight`, then the server's shift.
    Scale {
        /// Weight number (`[C]`).
        weight: usize,
    },
    /// Average pooling.
    AvgPool(Window),
    /// Mean over each plane.
    GlobalAvgPool,
    /// Max pooling by the binary protocols.
    MaxPool(Window),
    /// Sum of two values.
    Add,
    /// To `[N, F]`.
    Flatten,
    /// Exact ReLU by the binary protocols.
    Relu,
    /// `sum c_k x^k` by the plan's protocol.
    Poly {
        /// `c_0..c_d`.
        coefficients: Vec<f64>,
    },
}

/// A layer with its place in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The graph node's name, for errors and reports.
    pub name: String,
    /// What it computes.
    pub layer: Layer,
    /// Values read (0 is the input, `i + 1` the output of step `i`).
    pub inputs: Vec<ValueId>,
}

/// What the server shows the client: the network without its weights. Everything here is
/// public: shapes, pooling, the activation polynomials, the fixed-point format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Per-image input shape.
    pub input_shape: Vec<usize>,
    /// Per-image shape of every value, input first.
    pub shapes: Vec<Vec<usize>>,
    /// The layers in order.
    pub steps: Vec<Step>,
    /// The value returned.
    pub output: ValueId,
    /// Shapes of the weights, by number.
    pub weight_shapes: Vec<Vec<usize>>,
    /// Format and activation protocol.
    pub options: FixedConfig,
}

/// The server's secret: weights and biases as ring words at `f` bits.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// By weight number.
    pub weights: Vec<Vec<u64>>,
    /// Per step: the bias (or BatchNorm shift) the server adds, if any.
    pub biases: Vec<Option<Vec<u64>>>,
}

/// A compiled network: the public part and the server's part.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What both parties know.
    pub architecture: Architecture,
    /// What only the server knows.
    pub weights: Weights,
}

/// Whether the secure engine (and so the mirror) can evaluate `p`: 1 to `MAX_DEGREE + 1`
/// finite coefficients.
pub(crate) fn check_poly(p: &PolyAct) -> Result<(), String> {
    let c = &p.coefficients;
    let max = MAX_DEGREE + 1;
    if c.is_empty() || c.len() > max || c.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "{} coefficients: the secure engine takes 1 to {max} finite ones",
            c.len()
        ));
    }
    Ok(())
}

fn encode(node: &Node, what: &str, fp: FixedPoint, values: &[f64]) -> Result<Vec<u64>, InferError> {
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(err(node, format!("{what} holds {v}, which is not finite")));
    }
    Ok(values.iter().map(|&v| fp.encode(v)).collect())
}

fn encode_tensor(
    node: &Node,
    what: &str,
    fp: FixedPoint,
    t: &Tensor,
) -> Result<Vec<u64>, InferError> {
    let values: Vec<f64> = t.data().iter().map(|&v| f64::from(v)).collect();
    encode(node, what, fp, &values)
}

impl Plan {
    /// Compiles `g` for the arithmetic `options` describes (the same configuration the fixed
    /// executor mirrors): folds BatchNorm into the layer before it, encodes the parameters at
    /// `options.frac_bits`, and checks every node against what the secure engine runs. Unlike
    /// the fixed executor, `options.activation = Relu` is accepted for polynomial graphs: every
    /// polynomial then runs as an exact ReLU (the benchmarks' baseline: the same network
    /// shape with the comparison-based activation). An
    /// unsupported node is an error naming it, before any party talks.
    pub fn compile(g: &Graph, options: FixedConfig) -> Result<Plan, InferError> {
        let fp = FixedPoint::new(options.frac_bits)
            .map_err(|_| InferError::FracBits(options.frac_bits))?;
        let g = fold_batchnorm(g)?;
        let shapes = g.shapes()?;
        let mut steps = Vec::with_capacity(g.nodes.len());
        let mut weights = Vec::new();
        let mut weight_shapes = Vec::new();
        let mut biases = Vec::with_capacity(g.nodes.len());
        for node in &g.nodes {
            let in_shape = &shapes[node.inputs[0]];
            let mut bias = None;
            let layer = match &node.op {
                Op::Conv2d(c) => {
                    let (&[ci, h, w], &[o, wc, kh, kw]) = (in_shape.as_slice(), c.weight.shape())
                    else {
                        return Err(err(
                            node,
                            "expects a [C, H, W] input and an [O, C, kh, kw] weight",
                        ));
                    };
                    if wc != ci {
                        return Err(err(
                            node,
                            format!("weight has {wc} input channels, input {ci}"),
                        ));
                    }
                    let geometry =
                        ConvGeometry::new([1, ci, h, w], [o, kh, kw], c.stride, c.padding)
                            .map_err(|e| err(node, e.to_string()))?;
                    weights.push(encode_tensor(node, "the weight", fp, &c.weight)?);
                    weight_shapes.push(geometry.weight_shape());
                    bias = c
                        .bias
                        .as_ref()
                        .map(|b| encode_tensor(node, "the bias", fp, b))
                        .transpose()?;
                    Layer::Conv {
                        geometry,
                        weight: weights.len() - 1,
                        bias: bias.is_some(),
                    }
                }
                Op::Linear(l) => {
                    let &[out, inp] = l.weight.shape() else {
                        return Err(err(node, "expects an [out, in] weight"));
                    };
                    let w = encode_tensor(node, "the weight", fp, &l.weight)?;
                    // The protocol multiplies by W^T, `in x out`.
                    weights.push(
                        (0..inp * out)
                            .map(|j| w[(j % out) * inp + j / out])
                            .collect(),
                    );
                    weight_shapes.push(vec![inp, out]);
                    bias = l
                        .bias
                        .as_ref()
                        .map(|b| encode_tensor(node, "the bias", fp, b))
                        .transpose()?;
                    Layer::Linear {
                        inputs: inp,
                        outputs: out,
                        weight: weights.len() - 1,
                        bias: bias.is_some(),
                    }
                }
                Op::BatchNorm(bn) => {
                    let (scale, shift): (Vec<f64>, Vec<f64>) = bn.affine().into_iter().unzip();
                    weights.push(encode(node, "the scale", fp, &scale)?);
                    weight_shapes.push(vec![scale.len()]);
                    bias = Some(encode(node, "the shift", fp, &shift)?);
                    Layer::Scale {
                        weight: weights.len() - 1,
                    }
                }
                Op::AvgPool(p) => Layer::AvgPool(Window::square(p.kernel, p.stride)),
                Op::MaxPool(p) => Layer::MaxPool(Window::square(p.kernel, p.stride)),
                Op::GlobalAvgPool => Layer::GlobalAvgPool,
                Op::Add => Layer::Add,
                Op::Flatten => Layer::Flatten,
                Op::Relu => Layer::Relu,
                Op::PolyAct(p) => {
                    check_poly(p).map_err(|e| err(node, e))?;
                    if options.activation == ActivationProtocol::Relu {
                        Layer::Relu
                    } else {
                        Layer::Poly {
                            coefficients: p.coefficients.clone(),
                        }
                    }
                }
            };
            if let Layer::AvgPool(w) | Layer::MaxPool(w) = &layer {
                let &[_, h, wd] = in_shape.as_slice() else {
                    return Err(err(node, "expects a [C, H, W] input"));
                };
                w.output(h, wd).map_err(|e| err(node, e.to_string()))?;
            }
            steps.push(Step {
                name: node.name.clone(),
                layer,
                inputs: node.inputs.clone(),
            });
            biases.push(bias);
        }
        Ok(Plan {
            architecture: Architecture {
                input_shape: g.input_shape.clone(),
                shapes,
                steps,
                output: g.output,
                weight_shapes,
                options,
            },
            weights: Weights { weights, biases },
        })
    }
}

impl Architecture {
    /// The fixed-point format.
    pub fn fixed(&self) -> Result<FixedPoint, InferError> {
        FixedPoint::new(self.options.frac_bits)
            .map_err(|_| InferError::FracBits(self.options.frac_bits))
    }

    /// Shape of value `v` for a batch of `batch`.
    pub fn batch_shape(&self, v: ValueId, batch: usize) -> Vec<usize> {
        std::iter::once(batch)
            .chain(self.shapes[v].iter().copied())
            .collect()
    }

    /// Per-image output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.shapes[self.output]
    }

    /// The correlations of the per-connection setup: one weight mask per weight.
    pub fn setup_needs(&self) -> Vec<Need> {
        let lens: Vec<usize> = self
            .weight_shapes
            .iter()
            .map(|s| s.iter().product())
            .collect();
        weights::open_weights_needs(&lens)
    }

    /// The correlations one inference of `batch` images consumes, in the order the run asks
    /// for them: what the offline phase fetches.
    pub fn needs(&self, batch: usize) -> Result<Vec<Need>, InferError> {
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let x = self.batch_shape(step.inputs[0], batch);
            let n: usize = x.iter().product();
            match &step.layer {
                Layer::Conv {
                    geometry, weight, ..
                } => out.extend(weights::conv2d_needs(
                    ConvGeometry { batch, ..*geometry },
                    *weight,
                )),
                Layer::Linear {
                    inputs,
                    outputs,
                    weight,
                    ..
                } => out.extend(weights::matmul_needs(batch, *inputs, *outputs, *weight)),
                Layer::Scale { weight } => {
                    let channels = x.get(1).copied().unwrap_or(0);
                    let inner = x.iter().skip(2).product();
                    out.extend(weights::scale_needs(n, channels, inner, *weight));
                }
                Layer::MaxPool(w) => {
                    out.extend(maxpool::needs(&x, *w).map_err(|e| self.step_err(i, e.to_string()))?)
                }
                Layer::Relu => out.extend(ActivationProtocol::Relu.needs(n, 1)),
                Layer::Poly { coefficients } => out.extend(
                    self.options
                        .activation
                        .needs(n, coefficients.len().saturating_sub(1)),
                ),
                Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => {}
            }
        }
        Ok(out)
    }

    /// Communication rounds of one inference: the layers' rounds, plus one to deliver the
    /// logits to the client.
    pub fn rounds(&self) -> usize {
        self.layer_rounds() + 1
    }

    /// Rounds of the layers alone (the paper's count: linear layers plus activation layers
    /// for the single-round polynomial protocols).
    pub fn layer_rounds(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match &s.layer {
                Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => 1,
                Layer::MaxPool(w) => maxpool::rounds(w.kernel_h * w.kernel_w),
                Layer::Relu => ActivationProtocol::Relu.rounds(1),
                Layer::Poly { coefficients } => self
                    .options
                    .activation
                    .rounds(coefficients.len().saturating_sub(1)),
                Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => 0,
            })
            .sum()
    }

    /// Ring words `party` sends in the online phase of a batch of `batch`: the openings of
    /// every layer, and the server's share of the logits.
    pub fn online_words(&self, batch: usize, party: pillar_mpc::Party) -> usize {
        let layers: usize = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let x: usize = self.batch_shape(step.inputs[0], batch).iter().product();
                match &step.layer {
                    Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => x,
                    Layer::MaxPool(w) => {
                        let out: usize = self.batch_shape(i + 1, batch).iter().product();
                        maxpool::levels(w.kernel_h * w.kernel_w)
                            .into_iter()
                            .map(|pairs| ActivationProtocol::Relu.words_sent(out * pairs, 1))
                            .sum()
                    }
                    Layer::Relu => ActivationProtocol::Relu.words_sent(x, 1),
                    Layer::Poly { coefficients } => self
                        .options
                        .activation
                        .words_sent(x, coefficients.len().saturating_sub(1)),
                    Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => 0,
                }
            })
            .sum();
        let reveal = if party.is_server() {
            batch * self.output_shape().iter().product::<usize>()
        } else {
            0
        };
        layers + reveal
    }

    /// Ring words each party sends in the setup: `W - B` for every weight.
    pub fn setup_words(&self) -> usize {
        self.weight_shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }

    /// Words the dealer sends the client for one inference of `batch` (the offline phase's
    /// traffic; the server's share comes from a 32-byte seed).
    pub fn offline_words(&self, batch: usize) -> Result<usize, InferError> {
        Ok(self.needs(batch)?.iter().map(Need::correction_words).sum())
    }

    fn step_err(&self, i: usize, detail: String) -> InferError {
        NnError::Graph(format!("step {:?}: {detail}", self.steps[i].name)).into()
    }

    /// Checks a client's input batch against the architecture.
    pub fn check_input(&self, input: &RingTensor) -> Result<usize, InferError> {
        let shape = input.shape();
        if shape.len() != self.input_shape.len() + 1 || shape[1..] != self.input_shape[..] {
            return Err(NnError::Input {
                expected: self.input_shape.clone(),
                got: shape.to_vec(),
            }
            .into());
        }
        Ok(shape[0])
    }
}
