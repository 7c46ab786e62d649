//! The four ways to evaluate one activation layer, behind one enum: what `pillar bench` and
//! the secure plans choose between.

use std::fmt;
use std::str::FromStr;

use crate::dealer::Need;
use crate::error::MpcError;
use crate::protocols::poly::{crypten, espn, honeybadger};
use crate::protocols::relu;
use crate::session::Session;
use crate::tensor::Share;

/// An activation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationProtocol {
    /// Exact ReLU over the binary adder.
    Relu,
    /// The polynomial by square-and-multiply.
    Crypten,
    /// The polynomial by ESPN.
    Espn,
    /// The polynomial by HoneyBadger.
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

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ActivationProtocol::Relu => "relu",
            ActivationProtocol::Crypten => "crypten",
            ActivationProtocol::Espn => "espn",
            ActivationProtocol::HoneyBadger => "honeybadger",
        }
    }

    /// Whether it evaluates a polynomial (rather than the exact ReLU).
    pub fn is_polynomial(self) -> bool {
        self != ActivationProtocol::Relu
    }

    /// Rounds for one layer (of a polynomial of `degree` where that matters).
    pub fn rounds(self, degree: usize) -> usize {
        match self {
            ActivationProtocol::Relu => relu::ROUNDS,
            ActivationProtocol::Crypten => crypten::rounds(degree),
            ActivationProtocol::Espn | ActivationProtocol::HoneyBadger => usize::from(degree >= 2),
        }
    }

    /// Ring words each party sends for `n` elements.
    pub fn words_sent(self, n: usize, degree: usize) -> usize {
        match self {
            ActivationProtocol::Relu => 14 * n + n.div_ceil(64),
            ActivationProtocol::Crypten => crypten::needs(n, degree)
                .iter()
                .map(|need| match *need {
                    Need::Square { n } => n,
                    Need::FanOut { k, n } => (k + 1) * n,
                    _ => 0,
                })
                .sum(),
            ActivationProtocol::Espn => n * espn::cross_terms(degree),
            ActivationProtocol::HoneyBadger => {
                if degree >= 2 {
                    n
                } else {
                    0
                }
            }
        }
    }

    /// The correlations one layer of `n` elements asks for.
    pub fn needs(self, n: usize, degree: usize) -> Vec<Need> {
        match self {
            ActivationProtocol::Relu => relu::relu_needs(n),
            ActivationProtocol::Crypten => crypten::needs(n, degree),
            ActivationProtocol::Espn => espn::needs(n, degree),
            ActivationProtocol::HoneyBadger => honeybadger::needs(n, degree),
        }
    }

    /// Evaluates the layer on `x`; `coefficients` (`c_0..c_d`) are ignored by `Relu`.
    pub fn evaluate(
        self,
        s: &mut Session,
        x: &Share,
        coefficients: &[f64],
    ) -> Result<Share, MpcError> {
        match self {
            ActivationProtocol::Relu => relu::relu(s, x),
            ActivationProtocol::Crypten => crypten::evaluate(s, x, coefficients),
            ActivationProtocol::Espn => espn::evaluate(s, x, coefficients),
            ActivationProtocol::HoneyBadger => honeybadger::evaluate(s, x, coefficients),
        }
    }
}

impl fmt::Display for ActivationProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown protocol name.
#[derive(Debug, thiserror::Error)]
#[error("unknown protocol {0:?}: choose relu, crypten, espn or honeybadger")]
pub struct UnknownProtocol(pub String);

impl FromStr for ActivationProtocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActivationProtocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProtocol(s.to_string()))
    }
}
