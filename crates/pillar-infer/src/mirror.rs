//! The fixed-point mirror: a compiled [`Plan`] run on plaintext, with the secure engine's
//! arithmetic, so that a secure run can be checked against it value for value and its
//! precision budget read off before any party is started. It walks the same
//! [`Architecture`](crate::Architecture) and [`Weights`](crate::Weights), in the same
//! [`Schedule`](pillar_nn::Schedule), as the secure runner.
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
//! | AvgPool, GlobalAvgPool | wrapping sum of the window's input elements (padding adds 0); shift by `s = floor(log2 size)` for the whole window's `size`; unless size is `2^s`, `* round(2^(f+s) / size)` | by `s`, then by `f` |
//! | MaxPool | tournament `b + relu(a - b)` over adjacent pairs, a padded position read as the nearest input element | none |
//! | Relu | `x` if `x >= 0` (signed), else 0 | none |
//! | Clip | `lo + relu(x - lo) - relu(x - hi)` (a missing bound's term left out) | none |
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
//! A BatchNorm left after folding (it follows no convolution or linear layer) runs as a
//! per-channel affine map with its scale and shift computed in `f64` and encoded at `f` bits
//! by [`Plan::compile`]: one product and one truncation, as the secure run does it.
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
//! [`FixedOutput::layers`] gives, per step, the largest `|v|` of any ring value it formed
//! (against `2^63`: the precision budget), how many shared values it truncates, and the
//! expected number of failed truncations, `sum |v| / 2^64` over them: the chance, per value,
//! that party 0's uniform share lands within `|v|` of the wrap-around.
//!
//! Batches run in parallel, on a few images at a time per thread.

mod ops;

use std::thread;

use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::{FixedPoint, RingTensor};
use pillar_nn::{FoldedGraph, NnError, Tensor};

use pillar_mpc::protocols::clip::Bounds;
use pillar_mpc::protocols::mirror::{Mirror as LayerMirror, Tally};
use pillar_mpc::protocols::relu;

use crate::error::InferError;
use crate::plan::{FixedConfig, Layer, Plan};

/// Images each thread runs through the whole plan at once: enough for the products to be
/// large, few enough that the intermediates of a MiniONN-sized net stay a few MiB.
const CHUNK: usize = 16;

/// The counters of one step over the whole batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// The step's (the graph node's) name.
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
    /// The last node's output decoded, `[N, ...output_shape]`: the logits, before the
    /// graph's output transform (a final softmax), as a secure run opens them.
    pub logits: Tensor,
    /// What the model returns: [`FixedOutput::logits`] with the output transform applied in
    /// `f64`, as the client of a secure run applies it (the logits again without one).
    pub output: Tensor,
    /// The output as ring words: what a secure run opens (up to its truncation errors).
    pub ring: RingTensor,
    /// Per step of the plan, in order.
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

/// Runs `g` on a batch `[N, ...input_shape]` of reals, encoded at `config.frac_bits`: the
/// graph compiled for `config` ([`Plan::compile`]), then [`run_plan`].
pub fn run(
    g: &FoldedGraph,
    input: &Tensor,
    config: &FixedConfig,
) -> Result<FixedOutput, InferError> {
    let fp = config.fixed()?;
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

/// Runs `g` on a batch `[N, ...input_shape]` already in the ring (at `config.frac_bits`). A
/// graph with polynomial activations needs a polynomial protocol in `config.activation`.
pub fn run_encoded(
    g: &FoldedGraph,
    input: &RingTensor,
    config: &FixedConfig,
) -> Result<FixedOutput, InferError> {
    run_plan(&Plan::compile_strict(g, *config)?, input)
}

/// The mirror of `plan` on a batch `[N, ...input_shape]` of ring words at the plan's `f`.
pub fn run_plan(plan: &Plan, input: &RingTensor) -> Result<FixedOutput, InferError> {
    let arch = &plan.architecture;
    let batch = arch.check_input(input)?;
    let fp = arch.fixed();
    let mirror = Mirror {
        plan,
        polys: arch
            .steps
            .iter()
            .map(|step| match &step.layer {
                Layer::Poly { coefficients } => {
                    arch.options.activation.mirror(fp, coefficients).map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?,
    };
    let in_len: usize = arch.input_shape.iter().product();
    let out_len: usize = arch.output_shape().iter().product();
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batch.div_ceil(CHUNK))
        .max(1);
    let per = batch.div_ceil(workers).max(1);
    let mirror = &mirror;
    let parts: Vec<Result<Part, InferError>> = thread::scope(|scope| {
        let handles: Vec<_> = input
            .data()
            .chunks(per * in_len.max(1))
            .map(|images| scope.spawn(move || mirror.run_images(images, in_len)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| InferError::WorkerPanicked))
            .collect()
    });

    let mut words = Vec::with_capacity(batch * out_len);
    let mut tallies = vec![Tally::default(); arch.steps.len()];
    for part in parts {
        let part = part?;
        words.extend(part.words);
        for (t, p) in tallies.iter_mut().zip(&part.tallies) {
            t.merge(p);
        }
    }
    let shape = arch.batch_shape(arch.output, batch);
    let logits = Tensor::new(
        shape.clone(),
        words.iter().map(|&v| fp.decode(v) as f32).collect(),
    )?;
    let output = Tensor::new(
        shape.clone(),
        arch.outputs(&RingTensor::new(shape.clone(), words.clone())?)
            .into_iter()
            .map(|v| v as f32)
            .collect(),
    )?;
    let ring = RingTensor::new(shape, words)?;
    let layers = arch
        .steps
        .iter()
        .zip(tallies)
        .map(|(step, t)| LayerStats {
            node: step.name.clone(),
            op: step.layer.op_name(),
            max_abs: t.max_abs,
            truncations: t.truncations,
            expected_failures: t.expected_failures(),
        })
        .collect();
    Ok(FixedOutput {
        logits,
        output,
        ring,
        layers,
    })
}

/// A plan ready for any part of the batch: the polynomial layers' encodings worked out once.
struct Mirror<'a> {
    plan: &'a Plan,
    /// Per step, the polynomial layer's arithmetic, from its protocol.
    polys: Vec<Option<Box<dyn LayerMirror>>>,
}

/// One thread's share of the batch: its output words and counters.
struct Part {
    words: Vec<u64>,
    tallies: Vec<Tally>,
}

impl Mirror<'_> {
    /// Runs the images of `data` (`in_len` words each), [`CHUNK`] at a time.
    fn run_images(&self, data: &[u64], in_len: usize) -> Part {
        let mut part = Part {
            words: Vec::new(),
            tallies: vec![Tally::default(); self.polys.len()],
        };
        for chunk in data.chunks(CHUNK * in_len.max(1)) {
            let batch = chunk.len().checked_div(in_len).unwrap_or(0);
            part.words
                .extend(self.run_chunk(chunk, batch, &mut part.tallies));
        }
        part
    }

    /// Runs the whole plan on `batch` images.
    fn run_chunk(&self, input: &[u64], batch: usize, tallies: &mut [Tally]) -> Vec<u64> {
        let arch = &self.plan.architecture;
        let weights = &self.plan.weights;
        let f = arch.fixed().frac_bits();
        arch.schedule().run(input.to_vec(), |i, operands| {
            let x = operands[0].as_slice();
            let t = &mut tallies[i];
            let in_shape = &arch.shapes[arch.steps[i].inputs[0]];
            let bias = weights.biases[i].as_deref();
            let plane = || (in_shape[1], in_shape[2]);
            let y = match &arch.steps[i].layer {
                Layer::Conv {
                    geometry, weight, ..
                } => {
                    let geometry = ConvGeometry { batch, ..*geometry };
                    ops::conv2d(&geometry, &weights.weights[*weight], bias, x, f, t)
                }
                Layer::Linear {
                    inputs,
                    outputs,
                    weight,
                    ..
                } => ops::linear(
                    &weights.weights[*weight],
                    bias,
                    x,
                    batch,
                    (*inputs, *outputs),
                    f,
                    t,
                ),
                Layer::Scale { weight } => {
                    let inner = in_shape.iter().skip(1).product::<usize>().max(1);
                    ops::scale(x, &weights.weights[*weight], bias, inner, f, t)
                }
                Layer::AvgPool(w) => ops::avg_pool(x, plane(), *w, f, t),
                Layer::MaxPool(w) => ops::max_pool(x, plane(), *w, t),
                Layer::GlobalAvgPool => ops::global_avg_pool(x, plane().0 * plane().1, f, t),
                Layer::Add => x
                    .iter()
                    .zip(operands[1])
                    .map(|(a, b)| {
                        let s = a.wrapping_add(*b);
                        t.see(s);
                        s
                    })
                    .collect(),
                Layer::Flatten => x.to_vec(),
                Layer::Relu => x.iter().map(|&v| relu::plain(v)).collect(),
                Layer::Clip { .. } => {
                    let b = arch.steps[i].layer.clip_bounds(arch.fixed());
                    let b = b.unwrap_or(Bounds { lo: None, hi: None });
                    x.iter()
                        .map(|&v| {
                            t.see(v.wrapping_sub(b.lo.unwrap_or(0)));
                            t.see(v.wrapping_sub(b.hi.unwrap_or(0)));
                            b.plain(v)
                        })
                        .collect()
                }
                Layer::Poly { .. } => self.polys[i]
                    .as_ref()
                    .expect("run_plan prepares every polynomial step")
                    .eval(x, t),
            };
            debug_assert_eq!(
                y.len(),
                batch * arch.shapes[i + 1].iter().product::<usize>()
            );
            y
        })
    }
}
