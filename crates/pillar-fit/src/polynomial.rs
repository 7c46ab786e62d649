//! Polynomials in the power basis and how well they approximate their target.

use serde::{Deserialize, Serialize};

use crate::{FitSpec, Grid, Target};

/// `p(x) = sum_j c_j x^j`, coefficients from the constant term up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Polynomial {
    /// `c_0..c_d`.
    pub coefficients: Vec<f64>,
}

impl Polynomial {
    /// Wraps coefficients `c_0..c_d`.
    pub fn new(coefficients: Vec<f64>) -> Self {
        Polynomial { coefficients }
    }

    /// The polynomial with coefficients `a_j / 2^bits`.
    pub fn from_integers(integers: &[i64], bits: u32) -> Self {
        let scale = f64::from(bits).exp2();
        Polynomial::new(integers.iter().map(|&a| a as f64 / scale).collect())
    }

    /// `p(x)` by Horner's rule.
    pub fn eval(&self, x: f64) -> f64 {
        self.coefficients
            .iter()
            .rev()
            .fold(0.0, |acc, &c| acc * x + c)
    }

    /// Each coefficient truncated toward zero to a multiple of `2^-bits`: what encoding a float
    /// fit in fixed point does to it (the paper's Appendix B).
    pub fn truncated_integers(&self, bits: u32) -> Vec<i64> {
        let scale = f64::from(bits).exp2();
        self.coefficients
            .iter()
            .map(|c| (c * scale).trunc() as i64)
            .collect()
    }

    /// Error against `target` on `grid`.
    pub fn quality(&self, target: Target, grid: Grid) -> Quality {
        let mut max_error = 0.0f64;
        let mut max_error_at = 0.0;
        let mut sum = 0.0;
        for x in grid.xs() {
            let e = (self.eval(x) - target.eval(x)).abs();
            if e > max_error {
                max_error = e;
                max_error_at = x;
            }
            sum += e;
        }
        Quality {
            max_error,
            max_error_at,
            mean_error: sum / grid.len() as f64,
        }
    }

    /// `p` at `-2R, -R, R, 2R`: inside the range it should track the target, outside it
    /// diverges, which is why PILLAR trains activations to stay in range.
    pub fn tails(&self, spec: &FitSpec) -> Vec<crate::TailValue> {
        let r = spec.range();
        [-2.0 * r, -r, r, 2.0 * r]
            .into_iter()
            .map(|x| crate::TailValue {
                x,
                value: self.eval(x),
                target: spec.target().eval(x),
            })
            .collect()
    }
}

/// Approximation error on the fitting grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// `max |p(x) - f(x)|` over the grid.
    pub max_error: f64,
    /// Where that maximum is attained (the first such point).
    pub max_error_at: f64,
    /// Mean of `|p(x) - f(x)|` over the grid.
    pub mean_error: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horner_and_truncation() {
        let p = Polynomial::new(vec![0.29326, 0.5, 0.1639, 1e-17, -0.0032714]);
        assert!((p.eval(2.0) - (0.29326 + 1.0 + 0.6556 - 0.0523424)).abs() < 1e-12);
        // 8 bits: -0.0032714 * 256 = -0.84 truncates to 0, the lost x^4 term.
        assert_eq!(p.truncated_integers(8), vec![75, 128, 41, 0, 0]);
        assert_eq!(p.truncated_integers(10), vec![300, 512, 167, 0, -3]);
    }
}
