//! The two ways to fit: exact integer least squares, or plain float least squares.

use serde::{Deserialize, Serialize};

use crate::exact::{self, SolverStats};
use crate::lstsq::Vandermonde;
use crate::{FitError, FitSpec, Polynomial};

/// How to choose the coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Integer coefficients `a_j / 2^P` minimising the error to `trunc(f(x) * 2^P)`, exactly
    /// (PILLAR's quantization-aware fit).
    Exact,
    /// Real coefficients minimising the error to `f(x)` (`numpy.polyfit`).
    Float,
}

/// A fitted polynomial.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    spec: FitSpec,
    method: Method,
    integers: Option<Vec<i64>>,
    polynomial: Polynomial,
    stats: Option<SolverStats>,
}

impl Fit {
    /// What was fitted.
    pub fn spec(&self) -> &FitSpec {
        &self.spec
    }

    /// How it was fitted.
    pub fn method(&self) -> Method {
        self.method
    }

    /// `a_0..a_d` for an exact fit, `None` for a float fit.
    pub fn integers(&self) -> Option<&[i64]> {
        self.integers.as_deref()
    }

    /// The polynomial (`c_j = a_j / 2^P` for an exact fit).
    pub fn polynomial(&self) -> &Polynomial {
        &self.polynomial
    }

    /// How the exact search went (`None` for a float fit).
    pub fn stats(&self) -> Option<&SolverStats> {
        self.stats.as_ref()
    }
}

/// Fits `spec` by `method`.
pub fn fit(spec: &FitSpec, method: Method) -> Result<Fit, FitError> {
    match method {
        Method::Exact => {
            let solution = exact::solve(spec)?;
            Ok(Fit {
                spec: *spec,
                method,
                polynomial: Polynomial::from_integers(&solution.integers, spec.bits()),
                integers: Some(solution.integers),
                stats: Some(solution.stats),
            })
        }
        Method::Float => {
            let xs: Vec<f64> = spec.grid().xs().collect();
            let ys: Vec<f64> = xs.iter().map(|&x| spec.target().eval(x)).collect();
            let v = Vandermonde::new(&xs, spec.degree(), spec.range())?;
            Ok(Fit {
                spec: *spec,
                method,
                integers: None,
                polynomial: Polynomial::new(v.solve(&ys)),
                stats: None,
            })
        }
    }
}
