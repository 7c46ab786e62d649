//! The activation functions a polynomial can stand in for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::FitError;

/// An activation function to approximate. ReLU is the paper's; the smooth ones are what its
/// follow-ups (and transformer-style models) replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `x * sigmoid(x)` (also called swish).
    Silu,
    /// `x * Phi(x)` with the exact normal CDF (not the tanh approximation).
    Gelu,
}

impl Target {
    /// Every target, in the order the CLI lists them.
    pub const ALL: [Target; 4] = [Target::Relu, Target::Sigmoid, Target::Silu, Target::Gelu];

    /// The function's value at `x`.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Target::Relu => x.max(0.0),
            Target::Sigmoid => sigmoid(x),
            Target::Silu => x * sigmoid(x),
            Target::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        }
    }

    /// The lower-case name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Target::Relu => "relu",
            Target::Sigmoid => "sigmoid",
            Target::Silu => "silu",
            Target::Gelu => "gelu",
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    // Written so that neither branch overflows `exp` for large |x|.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = FitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| FitError::UnknownTarget(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_at_known_points() {
        assert_eq!(Target::Relu.eval(-2.0), 0.0);
        assert_eq!(Target::Relu.eval(2.5), 2.5);
        assert!((Target::Sigmoid.eval(0.0) - 0.5).abs() < 1e-15);
        assert!((Target::Sigmoid.eval(-800.0)).abs() < 1e-300);
        assert!((Target::Silu.eval(1.0) - 0.731_058_578_630_004_9).abs() < 1e-12);
        // GELU(1) = Phi(1) = 0.841344746...
        assert!((Target::Gelu.eval(1.0) - 0.841_344_746_068_542_9).abs() < 1e-12);
    }

    #[test]
    fn parses_names_and_rejects_others() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>().unwrap(), t);
        }
        assert_eq!("ReLU".parse::<Target>().unwrap(), Target::Relu);
        let err = "tanh".parse::<Target>().unwrap_err();
        assert!(err.to_string().contains("tanh"), "{err}");
        assert!(
            err.to_string().contains("relu, sigmoid, silu, gelu"),
            "{err}"
        );
    }
}
