//! Everything `pillar fit` reports about a polynomial, in one serialisable value.

use serde::{Deserialize, Serialize};

use crate::budget::{self, Budget, Precision};
use crate::exact::SolverStats;
use crate::{FitError, FitSpec, Grid, Method, Polynomial, Target, fit};

/// `p(x)` next to `f(x)` at one point outside or on the edge of the range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TailValue {
    /// Where.
    pub x: f64,
    /// `p(x)`.
    pub value: f64,
    /// `f(x)`.
    pub target: f64,
}

/// A fit with its quality, the float fit it improves on, and its precision budget.
///
/// The JSON form (`pillar fit --json`) is this struct; `degree`, `range`, `bits`, `integers`,
/// `coefficients`, `max_error` and `mean_error` are the stable keys scripts rely on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Function approximated.
    pub target: Target,
    /// Degree `d`.
    pub degree: usize,
    /// Half-width `R` of the fitting range.
    pub range: f64,
    /// Coefficient bits `P`.
    pub bits: u32,
    /// `exact` or `float`.
    pub method: Method,
    /// Grid step.
    pub step: f64,
    /// Grid points, both ends included.
    pub points: usize,
    /// `a_0..a_d` (`null` for a float fit).
    pub integers: Option<Vec<i64>>,
    /// `c_0..c_d`.
    pub coefficients: Vec<f64>,
    /// `max |p(x) - f(x)|` on the grid.
    pub max_error: f64,
    /// Where the maximum error is attained.
    pub max_error_at: f64,
    /// Mean `|p(x) - f(x)|` on the grid.
    pub mean_error: f64,
    /// `p` at `-2R, -R, R, 2R`.
    pub tails: Vec<TailValue>,
    /// The float least-squares fit, for comparison.
    pub float_coefficients: Vec<f64>,
    /// The float fit's coefficients truncated to `P` bits (what naive encoding does).
    pub truncated_float_integers: Vec<i64>,
    /// Max error of that truncated float fit on the grid.
    pub truncated_float_max_error: f64,
    /// Exact-search statistics (`null` for a float fit).
    pub solver: Option<SolverStats>,
    /// Whether the polynomial can be evaluated securely, and at what cost.
    pub budget: Budget,
    /// Everything the user should act on.
    pub warnings: Vec<String>,
}

impl FitReport {
    /// Fits `spec` by `method` and analyses it for secure evaluation at `precision` on inputs
    /// `|x| <= bound`.
    pub fn new(
        spec: &FitSpec,
        method: Method,
        precision: Precision,
        bound: f64,
    ) -> Result<Self, FitError> {
        let main = fit(spec, method)?;
        let float = match method {
            Method::Float => main.polynomial().clone(),
            Method::Exact => fit(spec, Method::Float)?.polynomial().clone(),
        };
        let grid = spec.grid();
        let quality = main.polynomial().quality(spec.target(), grid);
        let truncated = float.truncated_integers(spec.bits());
        let truncated_quality =
            Polynomial::from_integers(&truncated, spec.bits()).quality(spec.target(), grid);
        let coefficients = main.polynomial().coefficients.clone();
        let budget = budget::analyze(precision, bound, &coefficients)?;

        let mut warnings = budget.warnings.clone();
        if method == Method::Exact && precision.frac_bits() < spec.bits() {
            warnings.push(format!(
                "the coefficients have {} fractional bits but f = {} keeps only {}: secure \
                 evaluation truncates them (by up to {:.3e})",
                spec.bits(),
                precision.frac_bits(),
                precision.frac_bits(),
                budget.coefficient_rounding
            ));
        }
        Ok(FitReport {
            target: spec.target(),
            degree: spec.degree(),
            range: spec.range(),
            bits: spec.bits(),
            method,
            step: 1.0 / Grid::STEPS_PER_UNIT as f64,
            points: grid.len(),
            integers: main.integers().map(<[i64]>::to_vec),
            max_error: quality.max_error,
            max_error_at: quality.max_error_at,
            mean_error: quality.mean_error,
            tails: main.polynomial().tails(spec),
            float_coefficients: float.coefficients,
            truncated_float_integers: truncated,
            truncated_float_max_error: truncated_quality.max_error,
            solver: main.stats().cloned(),
            coefficients,
            budget,
            warnings,
        })
    }

    /// The fitted polynomial.
    pub fn polynomial(&self) -> Polynomial {
        Polynomial::new(self.coefficients.clone())
    }
}
