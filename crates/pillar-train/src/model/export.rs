//! A trained [`Net`] as a pillar-nn [`Graph`]: the form ONNX export, the float and fixed-point
//! executors and the secure engine all read.

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::tensor::Tensor;
use pillar_nn::{BatchNorm, Conv2d, Graph, Linear, Op, PolyAct, Pool, TypedGraph, ValueId};

use super::net::{Layer, Net};
use crate::activation::Activation;

/// Why a network could not be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A layer with settings the graph cannot express.
    #[error("layer {layer}: {detail}")]
    Unsupported {
        /// The layer's name in the exported graph.
        layer: String,
        /// What is wrong.
        detail: String,
    },
    /// A tensor could not be read back from the device.
    #[error("layer {layer}: cannot read its weights: {detail}")]
    Read {
        /// The layer.
        layer: String,
        /// The backend's message.
        detail: String,
    },
    /// The exported graph fails its own shape check.
    #[error("the exported graph is inconsistent: {0}")]
    Graph(#[from] pillar_nn::NnError),
}

/// Converts `net` (in inference form: running BN and AMM statistics) into a checked graph.
pub fn to_graph(net: &Net) -> Result<TypedGraph, ExportError> {
    let mut exporter = Exporter {
        graph: Graph::new(net.input_shape.to_vec()),
        counts: Default::default(),
    };
    let mut flat = false;
    let mut value = 0;
    for layer in &net.layers {
        value = exporter.layer(layer, value, &mut flat)?;
    }
    exporter.graph.output = value;
    Ok(exporter.graph.typed()?)
}

struct Exporter {
    graph: Graph,
    counts: std::collections::HashMap<&'static str, usize>,
}

fn values<const D: usize>(
    t: Tensor<D>,
    layer: &str,
) -> Result<(Vec<usize>, Vec<f32>), ExportError> {
    let dims = t.dims().to_vec();
    let data = t
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| ExportError::Read {
            layer: layer.to_string(),
            detail: format!("{e:?}"),
        })?;
    Ok((dims, data))
}

fn tensor<const D: usize>(
    p: &Param<Tensor<D>>,
    layer: &str,
) -> Result<pillar_nn::Tensor, ExportError> {
    let (dims, data) = values(p.val(), layer)?;
    pillar_nn::Tensor::new(dims, data).map_err(ExportError::Graph)
}

impl Exporter {
    fn name(&mut self, kind: &'static str) -> String {
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        format!("{kind}{n}")
    }

    fn push(&mut self, kind: &'static str, op: Op, inputs: Vec<ValueId>) -> ValueId {
        let name = self.name(kind);
        self.graph.push(name, op, inputs)
    }

    fn layer(
        &mut self,
        layer: &Layer,
        input: ValueId,
        flat: &mut bool,
    ) -> Result<ValueId, ExportError> {
        Ok(match layer {
            Layer::Conv(conv) => {
                let name = format!("conv{}", self.counts.get("conv").copied().unwrap_or(0) + 1);
                let unsupported = |detail: String| ExportError::Unsupported {
                    layer: name.clone(),
                    detail,
                };
                let [s0, s1] = conv.stride;
                if s0 != s1 || conv.dilation != [1, 1] || conv.groups != 1 {
                    return Err(unsupported(format!(
                        "stride {:?}, dilation {:?}, groups {}: only square strides, no dilation, one group",
                        conv.stride, conv.dilation, conv.groups
                    )));
                }
                let padding = match &conv.padding {
                    PaddingConfig2d::Valid => 0,
                    PaddingConfig2d::Explicit(t, l, b, r) if t == l && t == b && t == r => *t,
                    other => {
                        return Err(unsupported(format!(
                            "padding {other:?}: only symmetric padding"
                        )));
                    }
                };
                let weight = tensor(&conv.weight, &name)?;
                let bias = conv.bias.as_ref().map(|b| tensor(b, &name)).transpose()?;
                self.push(
                    "conv",
                    Op::Conv2d(Conv2d {
                        weight,
                        bias,
                        stride: s0,
                        padding,
                    }),
                    vec![input],
                )
            }
            Layer::Bn(bn) => {
                let name = format!("bn{}", self.counts.get("bn").copied().unwrap_or(0) + 1);
                let read = |t: Tensor<1>| values(t, &name).map(|(_, v)| v);
                let op = Op::BatchNorm(BatchNorm {
                    gamma: read(bn.gamma.val())?,
                    beta: read(bn.beta.val())?,
                    mean: read(bn.running_mean.value_sync())?,
                    var: read(bn.running_var.value_sync())?,
                    eps: bn.epsilon as f32,
                });
                self.push("bn", op, vec![input])
            }
            Layer::Linear(linear) => {
                let mut input = input;
                if !*flat {
                    input = self.push("flatten", Op::Flatten, vec![input]);
                    *flat = true;
                }
                let name = format!("fc{}", self.counts.get("fc").copied().unwrap_or(0) + 1);
                // burn stores [in, out]; the graph (like PyTorch and ONNX Gemm transB) [out, in].
                let (_, data) = values(linear.weight.val().transpose(), &name)?;
                let [d_in, d_out] = linear.weight.dims();
                let weight = pillar_nn::Tensor::new(vec![d_out, d_in], data)?;
                let bias = linear.bias.as_ref().map(|b| tensor(b, &name)).transpose()?;
                self.push("fc", Op::Linear(Linear { weight, bias }), vec![input])
            }
            Layer::Act(act) => self.activation(act, input)?,
            Layer::AvgPool(p) => self.push(
                "avgpool",
                Op::AvgPool(Pool::new(p.kernel, p.stride)),
                vec![input],
            ),
            Layer::MaxPool(p) => self.push(
                "maxpool",
                Op::MaxPool(Pool::new(p.kernel, p.stride)),
                vec![input],
            ),
            Layer::GlobalAvgPool(_) => {
                let pooled = self.push("gap", Op::GlobalAvgPool, vec![input]);
                *flat = true;
                self.push("flatten", Op::Flatten, vec![pooled])
            }
            Layer::Flatten(_) => {
                *flat = true;
                self.push("flatten", Op::Flatten, vec![input])
            }
            Layer::Residual(block) => {
                let mut main = input;
                for l in &block.body {
                    main = self.layer(l, main, flat)?;
                }
                let mut skip = input;
                for l in &block.shortcut {
                    skip = self.layer(l, skip, flat)?;
                }
                let sum = self.push("add", Op::Add, vec![main, skip]);
                self.activation(&block.act, sum)?
            }
        })
    }

    fn activation(&mut self, act: &Activation, input: ValueId) -> Result<ValueId, ExportError> {
        let Some((coefficients, range)) = act.polynomial() else {
            return Ok(self.push("relu", Op::Relu, vec![input]));
        };
        let mut input = input;
        if let Some(amm) = &act.amm {
            // The frozen normalisation is a per-channel affine map: a BatchNorm with mean 0
            // and variance 1, which folding merges into the layer before it.
            let name = format!("amm{}", self.counts.get("amm").copied().unwrap_or(0) + 1);
            let affine = amm.affine().map_err(|detail| ExportError::Read {
                layer: name,
                detail,
            })?;
            let op = Op::BatchNorm(BatchNorm {
                gamma: affine.iter().map(|&(a, _)| a as f32).collect(),
                beta: affine.iter().map(|&(_, b)| b as f32).collect(),
                mean: vec![0.0; affine.len()],
                var: vec![1.0; affine.len()],
                eps: 0.0,
            });
            input = self.push("amm", op, vec![input]);
        }
        Ok(self.push(
            "poly",
            Op::PolyAct(PolyAct {
                coefficients: coefficients.to_vec(),
                range,
            }),
            vec![input],
        ))
    }
}
