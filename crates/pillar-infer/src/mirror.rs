//! The fixed-point executor: the secure engine's arithmetic on plaintext, so that a secure
//! run can be checked against it value for value and its precision budget read off before
//! any party is started.
//!
//! # The arithmetic mirrored
//! Values are words of `Z_2^64` read as two's-complement fixed point with `f` fractional bits
//! ([`FixedPoint`]); inputs, weights, biases and coefficients are encoded by
//! [`FixedPoint::encode`] (truncation toward zero) from their `f64` value. Then, layer by
//! layer, exactly what `pillar_mpc::protocols` compute on the opened values:
//!
//! | layer | ring arithmetic | truncations |
//! |---|---|---|
//! | Conv2d, Linear | wrapping product at `2^(2f)`, then the bias (at `f`) | the product, by `f` |
//! | BatchNorm (unfolded) | `x * enc(scale)`, then `+ enc(shift)` per channel | the product, by `f` |
//! | AvgPool, GlobalAvgPool | wrapping window sum; size `2^j`: shift; otherwise `* round(2^f / size)` | by `j`, or by `f` |
//! | MaxPool | tournament `b + relu(a - b)` over adjacent pairs | none |
//! | Relu | `x` if `x >= 0` (signed), else 0 | none |
//! | Add, Flatten | wrapping sum; reshape | none |
//! | PolyAct | see below | see below |
//!
//! A polynomial `sum c_k x^k` is evaluated by the arithmetic of the protocol chosen in
//! [`FixedConfig::activation`], all three ending in `poly::combine`: `acc = x enc(c_1) +
//! sum_k x^k enc(c_k)` at `2^(2f)`, truncated by `f`, plus `enc(c_0)`. The powers:
//! - **ESPN**: for each `k >= 2`, `y = x >> s_k` with `s_k = prescale(k, f)`
//!   ([`pillar_fit::budget::prescale`]), `y^k` (exact in the ring) at scale `k (f - s_k)`,
//!   truncated by `k (f - s_k) - f`;
//! - **HoneyBadger**: one `y = x >> s_d` for all powers, `y^m` at `m (f - s_d)`, rescaled to
//!   `f` (a truncation, or an exact left shift when `m (f - s_d) < f`);
//! - **CrypTen**: `x^2 = (x x) >> f`, then round by round `x^(m+j) = (x^j x^m) >> f` for the
//!   highest known power `m`.
//!
//! A BatchNorm should be folded away first ([`pillar_nn::fold_batchnorm`]); one that is left (it
//! follows no convolution or linear layer) runs as a per-channel affine map with its scale and
//! shift computed in `f64` and encoded at `f` bits: one product and one truncation, as a secure
//! plan would run it.
//!
//! # The one difference
//! A secure truncation of a shared `v` by `k` bits (party 0 shifts its share, party 1 negates,
//! shifts and negates back) gives `floor(v / 2^k)` or one more, one more with probability
//! `(v mod 2^k) / 2^k` over party 0's random share (a stochastic rounding); here it is always
//! the floor (an arithmetic shift). So each truncation may differ by one unit. Most stay one
//! unit after them, but an error in ESPN's or HoneyBadger's pre-scaled `y` grows by about
//! `k y^(k-1)` through the power: for the paper's polynomial at `f = 16`, up to about 0.01
//! (600 units) at `|x| = 6`. Apart from that, and from the rare failed truncations, the secure
//! result is this executor's, word for word.
//!
//! # Counters
//! [`FixedOutput::layers`] gives, per node, the largest `|v|` of any ring value it formed
//! (against `2^63`: the precision budget), how many shared values it truncates, and the
//! expected number of failed truncations, `sum |v| / 2^64` over them: the chance, per value,
//! that party 0's uniform share lands within `|v|` of the wrap-around.
//!
//! Batches run in parallel, on a few images at a time per thread.

mod ops;
mod poly;
mod tally;

use std::thread;

use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::{FixedPoint, RingTensor};

use self::ops::Affine;
use self::poly::{Poly, Powers};
use self::tally::Tally;
use pillar_nn::{Graph, NnError, Node, Op, Pool, Tensor};

use crate::error::{InferError, node_error as err};

/// Images each thread runs through the whole graph at once: enough for the products to be
/// large, few enough that the intermediates of a MiniONN-sized net stay a few MiB.
const CHUNK: usize = 16;

/// What to mirror.
/// A secure plan is compiled from the same configuration ([`crate::Plan::compile`]),
/// and its architecture carries it to the client, hence serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedConfig {
    /// Fractional bits `f` (the secure engine's [`pillar_mpc::FRAC_BITS`] range).
    pub frac_bits: u32,
    /// The protocol whose arithmetic the polynomial activations follow. `Relu` is accepted
    /// only for graphs without polynomial activations (ReLU layers are exact either way).
    #[serde(with = "protocol_name")]
    pub activation: ActivationProtocol,
}

/// A protocol by its command-line name.
mod protocol_name {
    use pillar_mpc::protocols::activation::ActivationProtocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &ActivationProtocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ActivationProtocol, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for FixedConfig {
    fn default() -> Self {
        FixedConfig {
            frac_bits: FixedPoint::default().frac_bits(),
            activation: ActivationProtocol::Espn,
        }
    }
}

/// The counters of one node over the whole batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// The node's name.
    pub node: String,
    /// Its operator.
    pub op: &'static str,
    /// Largest `|v|` of any ring value the layer formed (products before truncation
    /// included), read as a signed word: it must stay well below `2^63`.
    pub max_abs: u64,
    /// Shared values the secure layer truncates.
    pub truncations: u64,
    /// `sum |v| / 2^64` over the truncated values: the expected number of failed
    /// truncations in a secure run on the same batch.
    pub expected_failures: f64,
}

impl LayerStats {
    /// Bits between the largest value and `2^63`.
    pub fn headroom_bits(&self) -> f64 {
        63.0 - (self.max_abs.max(1) as f64).log2()
    }
}

/// The result of a fixed-point run.
#[derive(Debug, Clone)]
pub struct FixedOutput {
    /// The output decoded, `[N, ...output_shape]`.
    pub logits: Tensor,
    /// The output as ring words: what a secure run opens (up to its truncation errors).
    pub ring: RingTensor,
    /// Per node, in graph order.
    pub layers: Vec<LayerStats>,
}

impl FixedOutput {
    /// Expected failed truncations of the whole batch, all layers.
    pub fn expected_failures(&self) -> f64 {
        self.layers.iter().map(|l| l.expected_failures).sum()
    }

    /// Largest `|v|` of any layer.
    pub fn max_abs(&self) -> u64 {
        self.layers.iter().map(|l| l.max_abs).max().unwrap_or(0)
    }
}

/// Encodes a tensor's values at `fp`, as the secure engine encodes inputs and weights.
pub fn encode(fp: FixedPoint, t: &Tensor) -> Result<RingTensor, InferError> {
    let words = t.data().iter().map(|&v| fp.encode(f64::from(v))).collect();
    Ok(RingTensor::new(t.shape().to_vec(), words)?)
}

/// Runs `g` on a batch `[N, ...input_shape]` of reals, encoded at `f` bits.
pub fn run(g: &Graph, input: &Tensor, config: &FixedConfig) -> Result<FixedOutput, InferError> {
    let fp = fixed_point(config)?;
    check_shape(g, input.shape())?;
    if let Some((index, &value)) = input
        .data()
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
    {
        return Err(NnError::InputValue { index, value }.into());
    }
    run_encoded(g, &encode(fp, input)?, config)
}

/// Runs `g` on a batch `[N, ...input_shape]` already in the ring (at `config.frac_bits`).
pub fn run_encoded(
    g: &Graph,
    input: &RingTensor,
    config: &FixedConfig,
) -> Result<FixedOutput, InferError> {
    let fp = fixed_point(config)?;
    let shapes = g.shapes()?;
    check_shape(g, input.shape())?;
    let steps = g
        .nodes
        .iter()
        .map(|node| prepare(node, &shapes[node.inputs[0]], fp, config))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = Plan {
        g,
        shapes: &shapes,
        steps: &steps,
        frac_bits: fp.frac_bits(),
    };

    let batch = input.shape()[0];
    let in_len: usize = g.input_shape.iter().product();
    let out_shape = &shapes[g.output];
    let out_len: usize = out_shape.iter().product();
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batch.div_ceil(CHUNK))
        .max(1);
    let per = batch.div_ceil(workers).max(1);
    let plan = &plan;
    let parts: Vec<Result<Part, InferError>> = thread::scope(|scope| {
        let handles: Vec<_> = input
            .data()
            .chunks(per * in_len.max(1))
            .map(|images| scope.spawn(move || plan.run_images(images, in_len)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(NnError::Graph("a worker thread panicked".into()).into())
                })
            })
            .collect()
    });

    let mut words = Vec::with_capacity(batch * out_len);
    let mut tallies = vec![Tally::default(); g.nodes.len()];
    for part in parts {
        let part = part?;
        words.extend(part.words);
        for (t, p) in tallies.iter_mut().zip(&part.tallies) {
            t.merge(p);
        }
    }
    let shape: Vec<usize> = std::iter::once(batch)
        .chain(out_shape.iter().copied())
        .collect();
    let logits = Tensor::new(
        shape.clone(),
        words.iter().map(|&v| fp.decode(v) as f32).collect(),
    )?;
    let ring = RingTensor::new(shape, words)?;
    let layers = g
        .nodes
        .iter()
        .zip(tallies)
        .map(|(node, t)| LayerStats {
            node: node.name.clone(),
            op: node.op.name(),
            max_abs: t.max_abs,
            truncations: t.truncations,
            expected_failures: t.expected_failures(),
        })
        .collect();
    Ok(FixedOutput {
        logits,
        ring,
        layers,
    })
}

fn fixed_point(config: &FixedConfig) -> Result<FixedPoint, InferError> {
    FixedPoint::new(config.frac_bits).map_err(|_| InferError::FracBits(config.frac_bits))
}

fn check_shape(g: &Graph, shape: &[usize]) -> Result<(), InferError> {
    if shape.len() != g.input_shape.len() + 1 || shape[1..] != g.input_shape[..] {
        return Err(NnError::Input {
            expected: g.input_shape.clone(),
            got: shape.to_vec(),
        }
        .into());
    }
    Ok(())
}

/// A node with its parameters encoded, ready for any part of the batch.
#[derive(Debug)]
enum Step {
    /// Per-image geometry (its `batch` is set per call).
    Conv(ConvGeometry, Affine),
    /// `(in, out)` features.
    Linear((usize, usize), Affine),
    /// Encoded scale and shift per channel, and the elements per channel.
    BatchNorm {
        scale: Vec<u64>,
        shift: Vec<u64>,
        inner: usize,
    },
    /// Input plane `(h, w)`.
    AvgPool((usize, usize), Pool),
    /// Input plane `(h, w)`.
    MaxPool((usize, usize), Pool),
    /// Elements per plane.
    GlobalAvgPool(usize),
    Add,
    Flatten,
    Relu,
    Poly(Poly),
}

/// Encodes a weight tensor, naming the node if a value cannot be encoded.
fn encode_param(
    node: &Node,
    what: &str,
    fp: FixedPoint,
    t: &Tensor,
) -> Result<Vec<u64>, InferError> {
    if let Some(v) = t.data().iter().find(|v| !v.is_finite()) {
        return Err(err(node, format!("{what} holds {v}, which is not finite")));
    }
    Ok(encode(fp, t)?.into_data())
}

fn affine(
    node: &Node,
    fp: FixedPoint,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Affine, InferError> {
    Ok(Affine {
        weight: encode_param(node, "the weight", fp, weight)?,
        bias: bias
            .map(|b| encode_param(node, "the bias", fp, b))
            .transpose()?,
    })
}

/// `[C, H, W]` of an image-shaped value (shape inference has checked it).
fn chw(node: &Node, s: &[usize]) -> Result<(usize, usize, usize), InferError> {
    match *s {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(err(node, format!("expects a [C, H, W] input, got {s:?}"))),
    }
}

fn prepare(
    node: &Node,
    in_shape: &[usize],
    fp: FixedPoint,
    config: &FixedConfig,
) -> Result<Step, InferError> {
    Ok(match &node.op {
        Op::Conv2d(c) => {
            let (in_channels, height, width) = chw(node, in_shape)?;
            let &[out_channels, _, kernel_h, kernel_w] = c.weight.shape() else {
                return Err(err(node, "expects an [O, C, kh, kw] weight"));
            };
            let g = ConvGeometry::new(
                [1, in_channels, height, width],
                [out_channels, kernel_h, kernel_w],
                c.stride,
                c.padding,
            )
            .map_err(|e| err(node, e.to_string()))?;
            Step::Conv(g, affine(node, fp, &c.weight, c.bias.as_ref())?)
        }
        Op::Linear(l) => {
            let &[out, inp] = l.weight.shape() else {
                return Err(err(node, "expects an [out, in] weight"));
            };
            let mut a = affine(node, fp, &l.weight, l.bias.as_ref())?;
            // linear::linear multiplies by W^T, `in x out`.
            let w = std::mem::take(&mut a.weight);
            a.weight = (0..inp * out)
                .map(|j| w[(j % out) * inp + j / out])
                .collect();
            Step::Linear((inp, out), a)
        }
        Op::BatchNorm(bn) => {
            // At least 1, so that an empty plane is an empty loop.
            let inner = in_shape.iter().skip(1).product::<usize>().max(1);
            let mut scale = Vec::with_capacity(bn.gamma.len());
            let mut shift = Vec::with_capacity(bn.gamma.len());
            for c in 0..bn.gamma.len() {
                let s = f64::from(bn.gamma[c]) / (f64::from(bn.var[c]) + f64::from(bn.eps)).sqrt();
                let t = f64::from(bn.beta[c]) - f64::from(bn.mean[c]) * s;
                if !s.is_finite() || !t.is_finite() {
                    return Err(err(
                        node,
                        format!("channel {c} has scale {s} and shift {t}: not finite"),
                    ));
                }
                scale.push(fp.encode(s));
                shift.push(fp.encode(t));
            }
            Step::BatchNorm {
                scale,
                shift,
                inner,
            }
        }
        Op::AvgPool(p) => {
            let (_, h, w) = chw(node, in_shape)?;
            Step::AvgPool((h, w), *p)
        }
        Op::MaxPool(p) => {
            let (_, h, w) = chw(node, in_shape)?;
            Step::MaxPool((h, w), *p)
        }
        Op::GlobalAvgPool => {
            let (_, h, w) = chw(node, in_shape)?;
            if h * w == 0 {
                return Err(err(node, "an empty plane has no mean"));
            }
            Step::GlobalAvgPool(h * w)
        }
        Op::Add => Step::Add,
        Op::Flatten => Step::Flatten,
        Op::Relu => Step::Relu,
        Op::PolyAct(p) => {
            let powers = match config.activation {
                ActivationProtocol::Espn => Powers::Espn,
                ActivationProtocol::HoneyBadger => Powers::HoneyBadger,
                ActivationProtocol::Crypten => Powers::Crypten,
                ActivationProtocol::Relu => {
                    return Err(err(
                        node,
                        "the relu protocol cannot evaluate a polynomial: choose espn, \
                         honeybadger or crypten",
                    ));
                }
            };
            crate::plan::check_poly(p).map_err(|e| err(node, e))?;
            Step::Poly(Poly::new(fp, &p.coefficients, powers))
        }
    })
}

/// Everything a worker thread needs, shared.
struct Plan<'a> {
    g: &'a Graph,
    shapes: &'a [Vec<usize>],
    steps: &'a [Step],
    frac_bits: u32,
}

/// One thread's share of the batch: its output words and counters.
struct Part {
    words: Vec<u64>,
    tallies: Vec<Tally>,
}

impl Plan<'_> {
    /// Runs the images of `data` (`in_len` words each), [`CHUNK`] at a time.
    fn run_images(&self, data: &[u64], in_len: usize) -> Result<Part, InferError> {
        let mut part = Part {
            words: Vec::new(),
            tallies: vec![Tally::default(); self.steps.len()],
        };
        for chunk in data.chunks(CHUNK * in_len.max(1)) {
            let batch = chunk.len().checked_div(in_len).unwrap_or(0);
            part.words
                .extend(self.run_chunk(chunk, batch, &mut part.tallies)?);
        }
        Ok(part)
    }

    /// Runs the whole graph on `batch` images.
    fn run_chunk(
        &self,
        input: &[u64],
        batch: usize,
        tallies: &mut [Tally],
    ) -> Result<Vec<u64>, InferError> {
        let g = self.g;
        let f = self.frac_bits;
        let mut readers = g.readers();
        let mut values: Vec<Option<Vec<u64>>> = vec![None; g.nodes.len() + 1];
        values[0] = Some(input.to_vec());
        let freed = |v: usize| NnError::Graph(format!("value {v} was freed early"));
        for (i, (node, step)) in g.nodes.iter().zip(self.steps).enumerate() {
            let x = values[node.inputs[0]]
                .as_deref()
                .ok_or_else(|| InferError::from(freed(node.inputs[0])))?;
            let t = &mut tallies[i];
            let data = match step {
                Step::Conv(geometry, p) => {
                    let geometry = ConvGeometry { batch, ..*geometry };
                    ops::conv2d(&geometry, p, x, f, t)
                }
                Step::Linear(dims, p) => ops::linear(p, x, batch, *dims, f, t),
                Step::BatchNorm {
                    scale,
                    shift,
                    inner,
                } => ops::batchnorm(x, scale, shift, *inner, f, t),
                Step::AvgPool(hw, p) => ops::avg_pool(x, *hw, *p, f, t),
                Step::MaxPool(hw, p) => ops::max_pool(x, *hw, *p, t),
                Step::GlobalAvgPool(plane) => ops::global_avg_pool(x, *plane, f, t),
                Step::Add => {
                    let y = values[node.inputs[1]]
                        .as_deref()
                        .ok_or_else(|| InferError::from(freed(node.inputs[1])))?;
                    x.iter()
                        .zip(y)
                        .map(|(a, b)| {
                            let s = a.wrapping_add(*b);
                            t.see(s);
                            s
                        })
                        .collect()
                }
                Step::Flatten => x.to_vec(),
                Step::Relu => x.iter().map(|&v| ops::relu(v)).collect(),
                Step::Poly(p) => x.iter().map(|&v| p.eval(v, t)).collect(),
            };
            debug_assert_eq!(
                data.len(),
                batch * self.shapes[i + 1].iter().product::<usize>()
            );
            for &v in &node.inputs {
                readers[v] -= 1;
                if readers[v] == 0 {
                    values[v] = None;
                }
            }
            values[i + 1] = Some(data);
        }
        values[g.output]
            .take()
            .ok_or_else(|| NnError::Graph("the output was never computed".into()).into())
    }
}
