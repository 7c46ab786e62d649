//! The activation layer: exact ReLU or a polynomial (PolyReLU), optionally behind Sisyphus's
//! approximate min-max normalisation, recording what every call saw on a [`Tape`].
//!
//! The polynomial is evaluated in the power basis by Horner's rule, exactly the function the
//! secure protocols evaluate. In training mode (an autodiff device) PILLAR clamps the input to
//! `[-range, range]` after the penalty has seen it; at inference nothing is clamped, because
//! the secure engine cannot clamp without the comparisons the polynomial exists to avoid.

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

    /// Puts an approximate min-max normalisation in front (mapping to `[-range, range]`).
    pub fn with_amm(mut self, device: &burn::tensor::Device) -> Self {
        self.amm = Some(Amm::new(self.range, device));
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
                let x = if *clamp && training {
                    x.clamp(-range, *range)
                } else {
                    x
                };
                horner(x, coefficients)
            }
        };
        tape.output(&y);
        y
    }

    /// The polynomial this layer computes at inference as a function of its raw input: the
    /// AMM affine map folded into the coefficients, so the exported graph needs no extra op.
    /// `None` for ReLU.
    pub fn inference_polynomial(&self) -> Option<(Vec<f64>, f64)> {
        let ActSpec::Poly {
            coefficients,
            range,
            ..
        } = &self.spec
        else {
            return None;
        };
        match &self.amm {
            None => Some((coefficients.clone(), *range)),
            Some(amm) => {
                let (scale, shift) = amm.affine();
                // The raw inputs that map onto [-R, R]; the wider side is the range to report.
                let reach = ((range - shift) / scale)
                    .abs()
                    .max(((-range - shift) / scale).abs());
                Some((compose_affine(coefficients, scale, shift), reach))
            }
        }
    }
}

/// `sum_k c_k x^k` by Horner's rule.
pub fn horner<const D: usize>(x: Tensor<D>, coefficients: &[f64]) -> Tensor<D> {
    let mut rev = coefficients.iter().rev();
    let top = rev.next().copied().unwrap_or(0.0);
    let mut y = x.zeros_like().add_scalar(top);
    for &c in rev {
        y = y.mul(x.clone()).add_scalar(c);
    }
    y
}

/// Coefficients of `p(a x + b)` from those of `p`.
pub fn compose_affine(coefficients: &[f64], a: f64, b: f64) -> Vec<f64> {
    // Horner on polynomials: q <- q * (a x + b) + c_k.
    let mut q: Vec<f64> = Vec::new();
    for &c in coefficients.iter().rev() {
        let mut next = vec![0.0; q.len() + 1];
        for (i, &qi) in q.iter().enumerate() {
            next[i] += qi * b;
            next[i + 1] += qi * a;
        }
        next[0] += c;
        q = next;
    }
    q
}

/// Approximate min-max normalisation (Sisyphus): in training the batch's true minimum and
/// maximum map the input onto `[-target, target]`, and a moving average of them (smoothing
/// 0.1) is kept; at inference the stored averages are used, so the layer is a fixed affine map.
/// The batch extremes are treated as constants in the backward pass.
#[derive(Module, Debug)]
pub struct Amm {
    /// Moving averages `[min, max]`.
    pub extremes: RunningState<Tensor<1>>,
    /// Weight of the newest batch in the moving average.
    #[module(skip)]
    pub smoothing: f64,
    /// Half-width of the interval the input is mapped onto.
    #[module(skip)]
    pub target: f64,
}

impl Amm {
    fn new(target: f64, device: &burn::tensor::Device) -> Self {
        Amm {
            extremes: RunningState::new(Tensor::from_floats([-1.0, 1.0], device)),
            smoothing: 0.1,
            target,
        }
    }

    fn forward<const D: usize>(&self, x: Tensor<D>, training: bool) -> Tensor<D> {
        let (lo, hi) = if training {
            let flat = x.clone().detach().flatten::<1>(0, D - 1);
            let batch = Tensor::cat(vec![flat.clone().min(), flat.max()], 0);
            // `value_sync`: plain `value` lags one update behind, which would turn the moving
            // average into a recurrence over every other batch.
            let old = self.extremes.value_sync().to_device(&batch.device());
            self.extremes.update(
                old.mul_scalar(1.0 - self.smoothing)
                    .add(batch.clone().mul_scalar(self.smoothing))
                    .detach(),
            );
            (batch.clone().narrow(0, 0, 1), batch.narrow(0, 1, 1))
        } else {
            let stored = self.extremes.value().to_device(&x.device());
            (stored.clone().narrow(0, 0, 1), stored.narrow(0, 1, 1))
        };
        let width = hi.sub(lo.clone()).clamp_min(1e-6);
        let shape = [1; D];
        let lo = lo.reshape(shape);
        let width = width.reshape(shape);
        x.sub(lo)
            .div(width)
            .mul_scalar(2.0 * self.target)
            .sub_scalar(self.target)
    }

    /// `(a, b)` with `amm(x) = a x + b` at inference.
    pub fn affine(&self) -> (f64, f64) {
        let v: Vec<f32> = self
            .extremes
            .value_sync()
            .into_data()
            .try_to_vec()
            .unwrap_or_else(|_| vec![-1.0, 1.0]);
        let (lo, hi) = (f64::from(v[0]), f64::from(v[1]));
        let width = (hi - lo).max(1e-6);
        let a = 2.0 * self.target / width;
        (a, -lo * a - self.target)
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
        let abs = x.clone().detach().abs().flatten::<1>(0, D - 1);
        let oor = abs.clone().greater_equal_elem(range).float().sum();
        let stats = Tensor::cat(vec![oor, abs.clone().max(), abs.sum()], 0);
        self.records.push((stats, count));
    }

    fn penalise<const D: usize>(&mut self, x: &Tensor<D>) {
        if let Some((p, r)) = self.penalty {
            let scaled = x.clone().div_scalar(r).abs();
            self.terms.push(scaled.powi_scalar(p.exponent as i32).sum());
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
