//! What to fit, validated once so that everything downstream can trust it.

use serde::{Deserialize, Serialize};

use crate::{Grid, Target};

/// Highest supported degree. Beyond 12 the powers of `x` outgrow any useful fixed-point
/// precision in a 64-bit ring (see [`crate::budget`]).
pub const MAX_DEGREE: usize = 12;
/// Fewest coefficient bits: with fewer, every coefficient is 0 or +-1/2.
pub const MIN_BITS: u32 = 2;
/// Most coefficient bits: keeps `a_j` and the search's arithmetic well inside 64 bits.
pub const MAX_BITS: u32 = 30;
/// Largest fitting range: 20,001 grid points.
pub const MAX_RANGE: f64 = 100.0;

/// Why a fit cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FitError {
    /// Degree outside `1..=MAX_DEGREE`.
    #[error("degree must be between 1 and {MAX_DEGREE}, got {0}")]
    Degree(usize),
    /// Range not a finite number in `(0, MAX_RANGE]`.
    #[error("range must be a number in (0, {MAX_RANGE}], got {0}")]
    Range(f64),
    /// Range that does not fall on the 0.01 grid.
    #[error("range {0} is not a multiple of the grid step 0.01 (try {1})")]
    RangeOffGrid(f64, f64),
    /// Fewer grid points than coefficients: the fit is not determined.
    #[error(
        "range {range} gives only {points} grid points, too few for degree {degree} \
         (needs at least {})", degree + 1
    )]
    TooFewPoints {
        /// Requested range.
        range: f64,
        /// Grid points in it.
        points: usize,
        /// Requested degree.
        degree: usize,
    },
    /// Coefficient bits outside `MIN_BITS..=MAX_BITS`.
    #[error("bits must be between {MIN_BITS} and {MAX_BITS}, got {0}")]
    Bits(u32),
    /// A target name that is not one of [`Target::ALL`].
    #[error("unknown target `{0}` (expected one of relu, sigmoid, silu, gelu)")]
    UnknownTarget(String),
    /// The precision budget could not be analysed.
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetError),
    /// The exact search would take unreasonably long.
    #[error(
        "the exact search gave up after {nodes} nodes: on this range the high powers nearly \
         vanish and are pinned at the coefficient bound; widen the range, lower the degree or \
         the bits, or use --float"
    )]
    SearchTooLarge {
        /// Nodes visited.
        nodes: u64,
    },
    /// Floating-point error exceeded what the search could allow for.
    #[error(
        "could not certify the exact fit for degree {degree}, range {range}, {bits} bits: \
         floating-point error too large"
    )]
    Uncertified {
        /// Requested degree.
        degree: usize,
        /// Requested range.
        range: f64,
        /// Requested bits.
        bits: u32,
    },
    /// The least-squares matrix is numerically singular.
    #[error("the fit is numerically ill-conditioned for degree {degree} on range {range}")]
    IllConditioned {
        /// Requested degree.
        degree: usize,
        /// Requested range.
        range: f64,
    },
}

/// A validated fitting problem: approximate `target` on `[-range, range]` by a polynomial of
/// `degree` whose coefficients are multiples of `2^-bits`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitSpec {
    target: Target,
    degree: usize,
    range: f64,
    bits: u32,
}

impl FitSpec {
    /// Checks every parameter and says which one is wrong.
    pub fn new(target: Target, degree: usize, range: f64, bits: u32) -> Result<Self, FitError> {
        if !(1..=MAX_DEGREE).contains(&degree) {
            return Err(FitError::Degree(degree));
        }
        if !(range.is_finite() && range > 0.0 && range <= MAX_RANGE) {
            return Err(FitError::Range(range));
        }
        let steps = range * Grid::STEPS_PER_UNIT as f64;
        let rounded = steps.round();
        if (steps - rounded).abs() > 1e-6 * steps.max(1.0) || rounded < 1.0 {
            let nearest = (rounded.max(1.0)) / Grid::STEPS_PER_UNIT as f64;
            return Err(FitError::RangeOffGrid(range, nearest));
        }
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(FitError::Bits(bits));
        }
        let spec = FitSpec {
            target,
            degree,
            range,
            bits,
        };
        let points = spec.grid().len();
        if points <= degree {
            return Err(FitError::TooFewPoints {
                range,
                points,
                degree,
            });
        }
        Ok(spec)
    }

    /// The function approximated.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Polynomial degree `d` (there are `d + 1` coefficients).
    pub fn degree(&self) -> usize {
        self.degree
    }

    /// Half-width `R` of the fitting interval `[-R, R]`.
    pub fn range(&self) -> f64 {
        self.range
    }

    /// Fractional bits `P` of the coefficients.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The sample points.
    pub fn grid(&self) -> Grid {
        Grid::new((self.range * Grid::STEPS_PER_UNIT as f64).round() as i64)
    }

    /// `2^P` as a float.
    pub(crate) fn scale(&self) -> f64 {
        f64::from(self.bits).exp2()
    }

    /// The integer targets `trunc(f(x_i) * 2^P)`, one per grid point.
    pub(crate) fn integer_targets(&self) -> Vec<i64> {
        let scale = self.scale();
        self.grid()
            .xs()
            .map(|x| (self.target.eval(x) * scale).trunc() as i64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_each_bad_parameter_with_its_own_error() {
        let ok = |d, r, p| FitSpec::new(Target::Relu, d, r, p);
        assert_eq!(ok(0, 5.0, 10), Err(FitError::Degree(0)));
        assert_eq!(ok(13, 5.0, 10), Err(FitError::Degree(13)));
        assert_eq!(ok(4, 0.0, 10), Err(FitError::Range(0.0)));
        assert_eq!(ok(4, -1.0, 10), Err(FitError::Range(-1.0)));
        assert!(matches!(ok(4, f64::NAN, 10), Err(FitError::Range(_))));
        assert!(matches!(ok(4, f64::INFINITY, 10), Err(FitError::Range(_))));
        assert_eq!(ok(4, 5.005, 10), Err(FitError::RangeOffGrid(5.005, 5.01)));
        assert_eq!(ok(4, 5.0, 1), Err(FitError::Bits(1)));
        assert_eq!(ok(4, 5.0, 31), Err(FitError::Bits(31)));
        assert_eq!(
            ok(12, 0.05, 10),
            Err(FitError::TooFewPoints {
                range: 0.05,
                points: 11,
                degree: 12
            })
        );
        assert!(ok(4, 4.8, 10).is_ok());
        assert!(ok(12, 5.0, 30).is_ok());
    }

    #[test]
    fn relu_targets_are_exact_truncations() {
        let spec = FitSpec::new(Target::Relu, 4, 5.0, 10).unwrap();
        let t = spec.integer_targets();
        assert_eq!(t.len(), 1001);
        assert!(t[..=500].iter().all(|&v| v == 0));
        assert_eq!(t[500 + 29], 296); // trunc(0.29 * 1024) = trunc(296.96)
        assert_eq!(t[500 + 25], 256); // 0.25 * 1024 exactly
        assert_eq!(t[1000], 5120);
    }
}
