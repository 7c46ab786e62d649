//! The activation layer: exact ReLU or a polynomial (PolyReLU), optionally behind Sisyphus's
//! approximate min-max normalisation, recording what every call saw on a [`Tape`].
//!
//! The polynomial is evaluated in the power basis by Horner's rule, exactly the function the
//! secure protocols evaluate. In training mode (an autodiff device) PILLAR clamps the input to
//! `[-range, range]` after the penalty has seen it; at inference nothing is clamped, because
//! the secure engine cannot clamp without the comparisons the polynomial exists to avoid.
//!
//! On the CPU the clamp and polynomial, the penalty and the recorded statistics each run as
//! one pass with a handwritten backward ([`crate::fused`]); elsewhere they are burn tensor
//! compositions.

use burn::module::{Module, RunningState};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use crate::penalty::EpochPenalty;

/// What a layer computes.
#[derive(Debug, Clone, PartialEq)]
pub enum ActSpec {
    /// `max(x, 0)`.
    Relu,
    /// `sum_k c_k x^k`.
    Poly {
        /// `c_0..c_d`.
        coefficients: Vec<f64>,
        /// The fitting range `R`; the out-of-range ratio counts `|x| >= R`.
        range: f64,
        /// Clamp to `[-R, R]` in training (PILLAR); `false` is the naive swap.
        clamp: bool,
    },
}

/// One activation layer.
#[derive(Module, Debug)]
pub struct Activation {
    /// The function.
    #[module(skip)]
    pub spec: ActSpec,
    /// Approximate min-max normalisation before the function, if any.
    pub amm: Option<Amm>,
    /// Range the out-of-range ratio is counted against (the polynomial's range; ReLU layers
    /// count against the default range so that a ReLU run shows what a swap would face).
    #[module(skip)]
    pub range: f64,
}

impl Activation {
    /// Exact ReLU; `range` only matters for the recorded out-of-range ratio.
    pub fn relu(range: f64) -> Self {
        Activation {
            spec: ActSpec::Relu,
            amm: None,
            range,
        }
    }

    /// A polynomial activation.
    pub fn poly(coefficients: Vec<f64>, range: f64, clamp: bool) -> Self {
        Activation {
            spec: ActSpec::Poly {
                coefficients,
                range,
                clamp,
            },
            amm: None,
            range,
        }
    }

    /// Puts an approximate min-max normalisation of `channels` channels in front, mapping
    /// onto `[-target, target]`.
    pub fn with_amm(mut self, channels: usize, target: f64, device: &burn::tensor::Device) -> Self {
        self.amm = Some(Amm::new(channels, target, device));
        self
    }

    /// Applies the layer, recording its input on `tape`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, tape: &mut Tape) -> Tensor<D> {
        let training = x.device().is_autodiff();
        let x = match &self.amm {
            Some(amm) => amm.forward(x, training),
            None => x,
        };
        tape.record(&x, self.range);
        let y = match &self.spec {
            ActSpec::Relu => relu(x),
            ActSpec::Poly {
                coefficients,
                range,
                clamp,
            } => {
                tape.penalise(&x);
                let clamp = (*clamp && training).then_some(*range);
                crate::fused::poly(x, coefficients, clamp)
            }
        };
        tape.output(&y);
        y
    }

    /// The polynomial and its range, `None` for ReLU. With AMM it applies to the normalised
    /// input: the export puts the AMM's affine map in front (see [`Amm::affine`]).
    pub fn polynomial(&self) -> Option<(&[f64], f64)> {
        match &self.spec {
            ActSpec::Relu => None,
            ActSpec::Poly {
                coefficients,
                range,
                ..
            } => Some((coefficients, *range)),
        }
    }
}

/// `|x|^e` by repeated squaring: burn's CPU backend evaluates integer powers above 2 with a
/// scalar `powf` per element, which was 9% of a PILLAR training step; a handful of tensor
/// multiplications (forward and backward) are vectorised. Even powers skip the `abs`.
///
/// On the CPU the penalty goes through [`crate::fused::penalty`] (one pass); this composition
/// is the path for other backends and the definition the fused kernel is tested against.
pub fn abs_pow<const D: usize>(x: Tensor<D>, e: u32) -> Tensor<D> {
    let (mut base, mut e) = if e.is_multiple_of(2) {
        (x.clone().mul(x), e / 2)
    } else {
        (x.abs(), e)
    };
    let mut acc: Option<Tensor<D>> = None;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                Some(a) => a.mul(base.clone()),
                None => base.clone(),
            });
        }
        e >>= 1;
        if e > 0 {
            base = base.clone().mul(base);
        }
    }
    acc.unwrap_or_else(|| base.ones_like())
}

/// `sum_k c_k x^k` by Horner's rule.
///
/// On the CPU the activation goes through [`crate::fused::poly`] (one pass, same order of
/// operations); this composition is the path for other backends and its reference.
pub fn horner<const D: usize>(x: Tensor<D>, coefficients: &[f64]) -> Tensor<D> {
    let mut rev = coefficients.iter().rev();
    let top = rev.next().copied().unwrap_or(0.0);
    let Some(&next) = rev.next() else {
        return x.zeros_like().add_scalar(top);
    };
    let mut y = x.clone().mul_scalar(top).add_scalar(next);
    for &c in rev {
        y = y.mul(x.clone()).add_scalar(c);
    }
    y
}

/// Approximate min-max normalisation (Sisyphus), per channel: in training each channel's
/// batch minimum and width (`max - min`, over the batch and all positions) map it onto
/// `[-target, target]`, and moving averages of both are kept (the first batch sets them, then
/// smoothing 0.1); at inference the stored averages make it a fixed per-channel affine map,
/// exported as a BatchNorm node that folds into the layer before it.
///
/// As in Sisyphus's code, the gradient flows through the batch minimum and width: they are
/// functions of the input, and treating them as constants lets training push the extremes
/// outward unchecked.
#[derive(Module, Debug)]
pub struct Amm {
    /// Moving average of the per-channel minimum, `[C]`.
    pub min: RunningState<Tensor<1>>,
    /// Moving average of the per-channel width, `[C]`.
    pub width: RunningState<Tensor<1>>,
    /// Batches seen so far, `[1]` (the first one replaces the initial state).
    pub batches: RunningState<Tensor<1>>,
    /// Weight of the newest batch in the moving average.
    #[module(skip)]
    pub smoothing: f64,
    /// Half-width of the interval the input is mapped onto.
    #[module(skip)]
    pub target: f64,
}

impl Amm {
    /// A normalisation for `channels` channels (axis 1 of the input) onto `[-target, target]`.
    pub fn new(channels: usize, target: f64, device: &burn::tensor::Device) -> Self {
        Amm {
            min: RunningState::new(Tensor::zeros([channels], device)),
            width: RunningState::new(Tensor::ones([channels], device)),
            batches: RunningState::new(Tensor::zeros([1], device)),
            smoothing: 0.1,
            target,
        }
    }

    /// Per-channel minimum over every axis but 1, shaped `[1, C, 1, ...]`.
    fn channel_min<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        (0..D)
            .rev()
            .filter(|&d| d != 1)
            .fold(x, |x, d| x.min_dim(d))
    }

    fn channel_max<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        (0..D)
            .rev()
            .filter(|&d| d != 1)
            .fold(x, |x, d| x.max_dim(d))
    }

    fn forward<const D: usize>(&self, x: Tensor<D>, training: bool) -> Tensor<D> {
        let channels = x.dims()[1];
        let mut shape = [1; D];
        shape[1] = channels;
        let (lo, width) = if training {
            let lo = Self::channel_min(x.clone());
            let width = Self::channel_max(x.clone().sub(lo.clone())).clamp_min(1e-6);
            // The moving averages, on the device: no synchronisation per layer. `value_sync`,
            // because plain `value` lags one update behind.
            let seen = self.batches.value_sync().to_device(&x.device());
            let keep = seen.clone().equal_elem(0.0).float().neg().add_scalar(1.0);
            let keep = keep.mul_scalar(1.0 - self.smoothing);
            let blend = |old: Tensor<1>, new: Tensor<D>| {
                let new = new.detach().reshape([channels]);
                let old = old.to_device(&new.device());
                let k = keep.clone().expand([channels]);
                old.mul(k.clone())
                    .add(new.mul(k.neg().add_scalar(1.0)))
                    .detach()
            };
            self.min.update(blend(self.min.value_sync(), lo.clone()));
            self.width
                .update(blend(self.width.value_sync(), width.clone()));
            self.batches.update(seen.add_scalar(1.0).detach());
            (lo, width)
        } else {
            let device = x.device();
            (
                self.min.value().to_device(&device).reshape(shape),
                self.width.value().to_device(&device).reshape(shape),
            )
        };
        x.sub(lo)
            .div(width)
            .mul_scalar(2.0 * self.target)
            .sub_scalar(self.target)
    }

    /// Per channel `(a, b)` with `amm(x) = a x + b` at inference.
    pub fn affine(&self) -> Result<Vec<(f64, f64)>, String> {
        let read = |t: Tensor<1>| {
            t.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| format!("cannot read the AMM state: {e:?}"))
        };
        let lo = read(self.min.value_sync())?;
        let width = read(self.width.value_sync())?;
        Ok(lo
            .iter()
            .zip(&width)
            .map(|(&lo, &w)| {
                let a = 2.0 * self.target / f64::from(w).max(1e-6);
                (a, -f64::from(lo) * a - self.target)
            })
            .collect())
    }
}

/// What the activation calls of one forward pass saw, and the penalty they add up to.
///
/// Each call pushes small detached tensors; [`Tape::finish`] reads them all back in one
/// transfer, so recording costs one synchronisation per batch, not one per layer.
pub struct Tape {
    penalty: Option<(EpochPenalty, f64)>,
    terms: Vec<Tensor<1>>,
    records: Vec<(Tensor<1>, usize)>,
    capture: Option<usize>,
    captured: Option<Tensor<2>>,
}

/// The record of one activation call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallStats {
    /// Inputs with `|x| >= range`.
    pub out_of_range: f64,
    /// Inputs seen.
    pub count: usize,
    /// Largest `|x|` (NaN or infinite once the activations have escaped).
    pub max_abs: f64,
    /// Whether every input was finite.
    pub finite: bool,
}

impl Tape {
    /// A tape that records only (evaluation, ReLU runs, no penalty).
    pub fn recording() -> Self {
        Tape {
            penalty: None,
            terms: Vec::new(),
            records: Vec::new(),
            capture: None,
            captured: None,
        }
    }

    /// Keeps the output of the `index`-th activation call (0-based), flattened per example:
    /// QuaIL imitates a teacher layer by layer.
    pub fn capture(&mut self, index: usize) {
        self.capture = Some(index);
    }

    /// The captured output, if that call happened.
    pub fn captured(&mut self) -> Option<Tensor<2>> {
        self.captured.take()
    }

    fn output<const D: usize>(&mut self, y: &Tensor<D>) {
        if self.capture.is_some_and(|k| k + 1 == self.records.len()) {
            self.captured = Some(y.clone().flatten::<2>(1, D - 1));
        }
    }

    /// A tape that also accumulates PILLAR's penalty with this epoch's exponent and weight.
    pub fn with_penalty(penalty: EpochPenalty, reg_range: f64) -> Self {
        Tape {
            penalty: Some((penalty, reg_range)),
            ..Self::recording()
        }
    }

    fn record<const D: usize>(&mut self, x: &Tensor<D>, range: f64) {
        let count = x.shape().num_elements();
        self.records.push((crate::fused::stats(x, range), count));
    }

    fn penalise<const D: usize>(&mut self, x: &Tensor<D>) {
        if let Some((p, r)) = self.penalty {
            self.terms
                .push(crate::fused::penalty(x.clone(), r, p.exponent));
        }
    }

    /// `lambda * mean over calls of sum |x/r|^e`, or `None` without a penalty.
    pub fn penalty_loss(&mut self) -> Option<Tensor<1>> {
        let (p, _) = self.penalty?;
        if self.terms.is_empty() {
            return None;
        }
        let calls = self.terms.len() as f64;
        let total = Tensor::cat(std::mem::take(&mut self.terms), 0).sum();
        Some(total.div_scalar(calls).mul_scalar(p.lambda))
    }

    /// Reads back the per-call records, in call order.
    pub fn finish(&mut self) -> Vec<CallStats> {
        let records = std::mem::take(&mut self.records);
        if records.is_empty() {
            return Vec::new();
        }
        let counts: Vec<usize> = records.iter().map(|(_, n)| *n).collect();
        let all = Tensor::cat(records.into_iter().map(|(t, _)| t).collect(), 0);
        let values: Vec<f32> = all.into_data().try_to_vec().unwrap_or_default();
        values
            .chunks_exact(3)
            .zip(counts)
            .map(|(v, count)| CallStats {
                out_of_range: f64::from(v[0]),
                count,
                max_abs: f64::from(v[1]),
                finite: v[2].is_finite() && v[1].is_finite(),
            })
            .collect()
    }
}
