//! The ways to evaluate one activation layer: each protocol is one module implementing
//! [`Activation`] (its correlations, rounds and words, its secure evaluation and its plaintext
//! mirror), and [`ActivationProtocol`] names them for the command line, the plans and the
//! benchmarks.
//!
//! Adding a protocol takes one module with a value implementing [`Activation`] (for a
//! polynomial protocol, a [`PolyProtocol`](crate::protocols::poly::PolyProtocol): its powers in
//! shares and on plaintext, and their costs), one variant of [`ActivationProtocol`] with its
//! line in [`ActivationProtocol::protocol`] and in [`ActivationProtocol::ALL`]; the plans,
//! their costs, the fixed-point mirror, the CLI and the benchmarks take it from there.

use std::fmt;
use std::str::FromStr;

use crate::dealer::Need;
use crate::error::MpcError;
use crate::protocols::mirror::Mirror;
use crate::protocols::poly::{crypten, espn, honeybadger};
use crate::protocols::relu;
use crate::ring::FixedPoint;
use crate::session::Session;
use crate::tensor::Share;

/// One way to evaluate an activation layer securely. `degree` is the polynomial's (ignored by
/// the exact ReLU); `n` counts elements.
pub trait Activation: Sync {
    /// Its name on the command line and in architectures.
    fn name(&self) -> &'static str;

    /// Communication rounds of one layer.
    fn rounds(&self, degree: usize) -> usize;

    /// Ring words each party sends for one layer of `n` elements.
    fn words_sent(&self, n: usize, degree: usize) -> usize;

    /// The correlations one layer of `n` elements asks the dealer for, in order.
    fn needs(&self, n: usize, degree: usize) -> Vec<Need>;

    /// The layer on the shared `x`, for coefficients `c_0..c_d`.
    fn evaluate(&self, s: &mut Session, x: &Share, c: &[f64]) -> Result<Share, MpcError>;

    /// The same layer on plaintext at `fp`, as [`Activation::evaluate`] computes it on the
    /// opened values with every truncation an exact floor.
    fn mirror(&self, fp: FixedPoint, c: &[f64]) -> Result<Box<dyn Mirror>, MpcError>;
}

/// An activation protocol, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationProtocol {
    /// Exact ReLU over the binary adder ([`relu::Relu`]).
    Relu,
    /// The polynomial by square-and-multiply ([`crypten::CRYPTEN`]).
    Crypten,
    /// The polynomial by ESPN ([`espn::ESPN`]).
    Espn,
    /// The polynomial by HoneyBadger ([`honeybadger::HONEYBADGER`]).
    HoneyBadger,
}

impl ActivationProtocol {
    /// All four, in the order of the paper's figures.
    pub const ALL: [ActivationProtocol; 4] = [
        ActivationProtocol::Relu,
        ActivationProtocol::Crypten,
        ActivationProtocol::Espn,
        ActivationProtocol::HoneyBadger,
    ];

    /// The protocol itself.
    pub fn protocol(self) -> &'static dyn Activation {
        match self {
            ActivationProtocol::Relu => &relu::Relu,
            ActivationProtocol::Crypten => &crypten::CRYPTEN,
            ActivationProtocol::Espn => &espn::ESPN,
            ActivationProtocol::HoneyBadger => &honeybadger::HONEYBADGER,
        }
    }

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        self.protocol().name()
    }

    /// Whether it evaluates a polynomial (rather than the exact ReLU).
    pub fn is_polynomial(self) -> bool {
        self != ActivationProtocol::Relu
    }

    /// Rounds for one layer (of a polynomial of `degree` where that matters).
    pub fn rounds(self, degree: usize) -> usize {
        self.protocol().rounds(degree)
    }

    /// Ring words each party sends for `n` elements.
    pub fn words_sent(self, n: usize, degree: usize) -> usize {
        self.protocol().words_sent(n, degree)
    }

    /// The correlations one layer of `n` elements asks for.
    pub fn needs(self, n: usize, degree: usize) -> Vec<Need> {
        self.protocol().needs(n, degree)
    }

    /// Evaluates the layer on `x`; `coefficients` (`c_0..c_d`) are ignored by `Relu`.
    pub fn evaluate(
        self,
        s: &mut Session,
        x: &Share,
        coefficients: &[f64],
    ) -> Result<Share, MpcError> {
        self.protocol().evaluate(s, x, coefficients)
    }

    /// The layer's plaintext mirror at `fp`.
    pub fn mirror(self, fp: FixedPoint, coefficients: &[f64]) -> Result<Box<dyn Mirror>, MpcError> {
        self.protocol().mirror(fp, coefficients)
    }
}

impl fmt::Display for ActivationProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown protocol name.
#[derive(Debug, thiserror::Error)]
#[error("unknown protocol {0:?}: choose {choices}", choices = choices())]
pub struct UnknownProtocol(pub String);

/// `relu, crypten, espn or honeybadger`.
fn choices() -> String {
    let names: Vec<&str> = ActivationProtocol::ALL.iter().map(|p| p.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

impl FromStr for ActivationProtocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActivationProtocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProtocol(s.to_string()))
    }
}
