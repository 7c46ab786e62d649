//! Polynomial approximations of activation functions for secure inference.
//!
//! Two-party computation evaluates additions and multiplications cheaply but comparisons
//! (and so ReLU) expensively. PILLAR replaces every ReLU by a low-degree polynomial, and this
//! crate finds that polynomial the way the paper does (section 5.2):
//!
//! * The coefficients must survive fixed-point encoding. A float least-squares fit whose small
//!   high-order coefficients are truncated to `P` fractional bits can lose its `x^4` term and
//!   diverge inside the fitted range (the paper's Appendix B). So the unknowns are integers
//!   `a_j` in `[-2^(P-1), 2^(P-1)]` with `c_j = a_j / 2^P`, fitted to the integer targets
//!   `trunc(f(x) * 2^P)` on the grid `x = -R, -R + 0.01, ..., R`.
//! * That is an integer least-squares problem. [`fit`] solves it exactly: a Schnorr-Euchner
//!   sphere decoder enumerates every integer point of the ellipsoid around the best one found,
//!   and ties are broken in exact big-integer arithmetic (see [`exact`]).
//! * [`budget`] answers whether the resulting polynomial can be evaluated in a 64-bit ring at a
//!   given fixed-point precision by the single-round protocols (ESPN, HoneyBadger): the largest
//!   intermediate value, the local pre-scaling each power needs, and the truncation failure rate.
//!
//! ```
//! use pillar_fit::{fit, FitSpec, Method, Target};
//! let spec = FitSpec::new(Target::Relu, 4, 5.0, 10)?;
//! let fitted = fit(&spec, Method::Exact)?;
//! assert_eq!(fitted.integers(), Some(&[322, 512, 160, 0, -3][..]));
//! # Ok::<(), pillar_fit::FitError>(())
//! ```

pub mod budget;
pub mod exact;
mod fit;
mod grid;
mod lstsq;
mod polynomial;
mod report;
mod spec;
mod target;

pub use fit::{Fit, Method, fit};
pub use grid::Grid;
pub use polynomial::{Polynomial, Quality};
pub use report::{FitReport, TailValue};
pub use spec::{FitError, FitSpec, MAX_BITS, MAX_DEGREE, MAX_RANGE, MIN_BITS};
pub use target::Target;

/// The paper's polynomial (FACTS.md section 1): the exact fit of ReLU at `d = 4`, `R = 5`,
/// `P = 10`, `c_j = a_j / 2^10` with `a = [322, 512, 160, 0, -3]`. The default activation of
/// training and the polynomial the protocol tests run; `pillar fit` recomputes it, and a test
/// checks that the two agree.
pub const PAPER_RELU: [f64; 5] = [
    322.0 / 1024.0,
    512.0 / 1024.0,
    160.0 / 1024.0,
    0.0,
    -3.0 / 1024.0,
];
