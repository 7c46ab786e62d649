//! Compiling a folded graph into what the two parties run: a public [`Architecture`] and the
//! server's encoded [`Weights`]. [`Plan::compile`] is the only place a graph's parameters are
//! encoded into the ring; the mirror and the secure runner both walk its result.

mod architecture;
mod cost;
pub(crate) mod flow;
mod memory;

use pillar_mpc::FixedPoint;
use pillar_mpc::dealer::WeightMasks;
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::clip::Bounds;
use pillar_mpc::protocols::poly::MAX_DEGREE;
use pillar_mpc::protocols::pool::Window;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::protocols::weights::MaskedWeights;
use pillar_nn::{FoldedGraph, Node, Op, PolyAct, Tensor, ValueId};
use serde::{Deserialize, Serialize};

pub use architecture::{Architecture, UncheckedArchitecture};
pub use memory::{MemoryEstimate, Parties};

use crate::error::{InferError, NodeProblem, node_error as err};

/// The arithmetic a plan is compiled for: the fixed-point format and the protocol of the
/// polynomial activations. The architecture carries it to the client, hence serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedConfig {
    /// Fractional bits `f` (the secure engine's [`pillar_mpc::FRAC_BITS`] range).
    pub frac_bits: u32,
    /// The protocol of the polynomial activations. With `Relu`, [`Plan::compile`] runs every
    /// polynomial as an exact ReLU (the benchmarks' baseline).
    #[serde(with = "protocol_name")]
    pub activation: ActivationProtocol,
    /// The protocol of the linear layers. An older peer's architecture names none: it ran
    /// Beaver's.
    #[serde(default = "beaver", with = "linear_name")]
    pub linear: LinearProtocol,
}

/// What an architecture without a linear protocol ran.
fn beaver() -> LinearProtocol {
    LinearProtocol::Beaver
}

/// A linear protocol by its command-line name.
mod linear_name {
    use pillar_mpc::protocols::preprocessed::LinearProtocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(p: &LinearProtocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LinearProtocol, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A protocol by its command-line name.
mod protocol_name {
    use pillar_mpc::protocols::activation::ActivationProtocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        p: &ActivationProtocol,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<ActivationProtocol, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for FixedConfig {
    fn default() -> Self {
        FixedConfig {
            frac_bits: FixedPoint::default().frac_bits(),
            activation: ActivationProtocol::Espn,
            linear: LinearProtocol::default(),
        }
    }
}

impl FixedConfig {
    /// The fixed-point format, if `frac_bits` is one the engine supports.
    pub fn fixed(&self) -> Result<FixedPoint, InferError> {
        FixedPoint::new(self.frac_bits).map_err(|_| InferError::FracBits(self.frac_bits))
    }
}

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
    /// Clamping to public bounds by the binary protocols (`protocols::clip`).
    Clip {
        /// Lower bound, if any.
        min: Option<f64>,
        /// Upper bound, if any.
        max: Option<f64>,
    },
}

impl Layer {
    /// The ONNX operator it came from, for reports.
    pub fn op_name(&self) -> &'static str {
        match self {
            Layer::Conv { .. } => "Conv",
            Layer::Linear { .. } => "Gemm",
            Layer::Scale { .. } => "BatchNormalization",
            Layer::AvgPool(_) => "AveragePool",
            Layer::GlobalAvgPool => "GlobalAveragePool",
            Layer::MaxPool(_) => "MaxPool",
            Layer::Add => "Add",
            Layer::Flatten => "Flatten",
            Layer::Relu => "Relu",
            Layer::Poly { .. } => "PolyAct",
            Layer::Clip { .. } => "Clip",
        }
    }

    /// A `Clip`'s bounds as ring words at `fp` (what the secure run and the mirror both
    /// add), or `None` for another layer.
    pub fn clip_bounds(&self, fp: FixedPoint) -> Option<Bounds> {
        match self {
            Layer::Clip { min, max } => Some(Bounds {
                lo: min.map(|v| fp.encode(v)),
                hi: max.map(|v| fp.encode(v)),
            }),
            _ => None,
        }
    }

    /// The weight a linear layer multiplies by (its number), if it is one.
    pub fn weight(&self) -> Option<usize> {
        match self {
            Layer::Conv { weight, .. } | Layer::Linear { weight, .. } | Layer::Scale { weight } => {
                Some(*weight)
            }
            _ => None,
        }
    }

    /// How many values it reads.
    pub fn arity(&self) -> usize {
        match self {
            Layer::Add => 2,
            _ => 1,
        }
    }
}

/// A layer with its place in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The graph node's name, for the server's errors and reports. Never serialised: the
    /// client knows a step by its index, and a name can say what the model is or who made it
    /// (a decoded step's name is empty).
    #[serde(skip)]
    pub name: String,
    /// What it computes.
    pub layer: Layer,
    /// Values read (0 is the input, `i + 1` the output of step `i`).
    pub inputs: Vec<ValueId>,
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

/// Whether the secure engine (and so the mirror) can evaluate polynomial coefficients
/// `c_0..c_d`: 1 to `MAX_DEGREE + 1` finite ones.
pub(crate) fn poly_fits(coefficients: &[f64]) -> bool {
    !coefficients.is_empty()
        && coefficients.len() <= MAX_DEGREE + 1
        && coefficients.iter().all(|v| v.is_finite())
}

fn check_poly(p: &PolyAct) -> Result<(), NodeProblem> {
    if poly_fits(&p.coefficients) {
        Ok(())
    } else {
        Err(NodeProblem::Coefficients {
            count: p.coefficients.len(),
            max: MAX_DEGREE + 1,
        })
    }
}

/// Bits of the ring a parameter's products leave free: a weight at `2^f` times an activation
/// at `2^f` is formed at `2^(2f)` and must stay below `2^63` (README, "The precision budget")
/// with room for an activation of up to `2^12` (the polynomials' range, summed over a
/// layer's fan-in).
pub(crate) const PARAMETER_HEADROOM_BITS: u32 = 12;

/// The largest `|p|` a parameter may have at `f` fractional bits:
/// `2^(63 - 2f - PARAMETER_HEADROOM_BITS)` (524,288 at f = 16). A larger one would be
/// saturated by [`FixedPoint::encode`] or wrap the ring in its first product.
pub(crate) fn parameter_limit(fp: FixedPoint) -> f64 {
    f64::from(63 - 2 * fp.frac_bits() - PARAMETER_HEADROOM_BITS).exp2()
}

fn encode(
    node: &Node,
    what: &'static str,
    fp: FixedPoint,
    values: &[f64],
) -> Result<Vec<u64>, InferError> {
    if let Some(&value) = values.iter().find(|v| !v.is_finite()) {
        return Err(err(node, NodeProblem::NotFinite { what, value }));
    }
    let limit = parameter_limit(fp);
    if let Some(&value) = values.iter().find(|v| v.abs() >= limit) {
        return Err(err(
            node,
            NodeProblem::Range {
                what,
                value,
                limit,
                frac_bits: fp.frac_bits(),
            },
        ));
    }
    Ok(values.iter().map(|&v| fp.encode(v)).collect())
}

fn encode_tensor(
    node: &Node,
    what: &'static str,
    fp: FixedPoint,
    t: &Tensor,
) -> Result<Vec<u64>, InferError> {
    let values: Vec<f64> = t.data().iter().map(|&v| f64::from(v)).collect();
    encode(node, what, fp, &values)
}

impl Plan {
    /// The weights under masks drawn from the operating system's CSPRNG: what a server makes
    /// once per model and hands every connection ([`crate::ServerConnection::open`]). Make
    /// new ones whenever the weights change: one mask must never cover two different weights
    /// ([`WeightMasks`] says why).
    pub fn masked_weights(&self) -> Result<MaskedWeights, InferError> {
        self.masked_with(WeightMasks::generate(self.weight_lens()))
    }

    /// [`Plan::masked_weights`] from a fixed seed: reproducible, so for tests and benchmarks
    /// only.
    pub fn masked_weights_from_seed(&self, seed: u64) -> Result<MaskedWeights, InferError> {
        self.masked_with(WeightMasks::from_seed(seed, self.weight_lens()))
    }

    /// The weights under `masks`, one per weight and as long (deliberately broken ones in the
    /// privacy tests).
    pub fn masked_with(&self, masks: WeightMasks) -> Result<MaskedWeights, InferError> {
        let refs: Vec<&[u64]> = self.weights.weights.iter().map(Vec::as_slice).collect();
        MaskedWeights::new(&self.architecture.weight_shapes, &refs, masks)
            .map_err(|_| InferError::Weights)
    }

    fn weight_lens(&self) -> Vec<usize> {
        self.architecture
            .weight_shapes
            .iter()
            .map(|s| s.iter().product())
            .collect()
    }

    /// [`Plan::compile`] for a run that must compute what the graph does: a polynomial
    /// activation under the relu protocol is an error naming its node, not an exact ReLU. What
    /// the mirror and `pillar eval` compile; the benchmarks' ReLU baseline uses `compile`.
    pub fn compile_strict(g: &FoldedGraph, options: FixedConfig) -> Result<Plan, InferError> {
        if options.activation == ActivationProtocol::Relu
            && let Some(node) = g.nodes.iter().find(|n| matches!(n.op, Op::PolyAct(_)))
        {
            return Err(err(node, NodeProblem::ReluPolynomial));
        }
        Plan::compile(g, options)
    }

    /// Compiles `g` for the arithmetic `options` describes: encodes the parameters at
    /// `options.frac_bits` (a BatchNorm left after folding becomes a per-channel scale and
    /// shift) and checks every node against what the secure engine runs. With
    /// `options.activation = Relu` every polynomial runs as an exact ReLU (the benchmarks'
    /// baseline: the same network shape with the comparison-based activation). An unsupported
    /// node is an error naming it, before any party talks.
    pub fn compile(g: &FoldedGraph, options: FixedConfig) -> Result<Plan, InferError> {
        let fp = options.fixed()?;
        let shapes = g.shapes();
        let mut steps = Vec::with_capacity(g.nodes.len());
        let mut weights = Vec::new();
        let mut weight_shapes = Vec::new();
        let mut biases = Vec::with_capacity(g.nodes.len());
        for node in &g.nodes {
            let in_shape = &shapes[node.inputs[0]];
            let encode_bias = |b: Option<&Tensor>| {
                b.map(|b| encode_tensor(node, "the bias", fp, b))
                    .transpose()
            };
            let mut bias = None;
            let layer = match &node.op {
                Op::Conv2d(c) => {
                    // Shapes the typed graph has checked: the input is [C, H, W] and the
                    // weight [O, C, kh, kw].
                    let (&[ci, h, w], &[o, _, kh, kw]) = (in_shape.as_slice(), c.weight.shape())
                    else {
                        return Err(err(
                            node,
                            NodeProblem::Shape {
                                expected: "a [C, H, W] input",
                                got: in_shape.clone(),
                            },
                        ));
                    };
                    let geometry =
                        ConvGeometry::new([1, ci, h, w], [o, kh, kw], c.stride, c.padding)
                            .map_err(|e| err(node, NodeProblem::Geometry(e)))?;
                    weights.push(encode_tensor(node, "the weight", fp, &c.weight)?);
                    weight_shapes.push(geometry.weight_shape());
                    bias = encode_bias(c.bias.as_ref())?;
                    Layer::Conv {
                        geometry,
                        weight: weights.len() - 1,
                        bias: bias.is_some(),
                    }
                }
                Op::Linear(l) => {
                    let &[out, inp] = l.weight.shape() else {
                        return Err(err(
                            node,
                            NodeProblem::Shape {
                                expected: "an [out, in] weight",
                                got: l.weight.shape().to_vec(),
                            },
                        ));
                    };
                    let w = encode_tensor(node, "the weight", fp, &l.weight)?;
                    // The protocol multiplies by W^T, `in x out`.
                    weights.push(
                        (0..inp * out)
                            .map(|j| w[(j % out) * inp + j / out])
                            .collect(),
                    );
                    weight_shapes.push(vec![inp, out]);
                    bias = encode_bias(l.bias.as_ref())?;
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
                Op::AvgPool(p) => Layer::AvgPool(Window::padded(p.kernel, p.stride, p.pad)),
                Op::MaxPool(p) => Layer::MaxPool(Window::padded(p.kernel, p.stride, p.pad)),
                Op::Clip(c) => {
                    let (min, max) = (c.min.map(f64::from), c.max.map(f64::from));
                    let bounds: Vec<f64> = min.into_iter().chain(max).collect();
                    encode(node, "the clip bound", fp, &bounds)?;
                    Layer::Clip { min, max }
                }
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
            steps.push(Step {
                name: node.name.clone(),
                layer,
                inputs: node.inputs.clone(),
            });
            biases.push(bias);
        }
        // The typed graph has checked every node (pool windows included); the architecture
        // checks what it was compiled into once more, as a client checks a server's.
        let architecture = Architecture::try_from(UncheckedArchitecture {
            input_shape: g.input_shape.clone(),
            shapes: shapes.to_vec(),
            steps,
            output: g.output,
            weight_shapes,
            options,
            output_transform: g.output_transform,
        })?;
        Ok(Plan {
            architecture,
            weights: Weights { weights, biases },
        })
    }
}
