//! Polynomial activations written with standard operators, fused back into one
//! [`PolyAct`](crate::PolyAct).
//!
//! PyTorch exports `0.31 + 0.5 * x + 0.16 * x**2 - 0.003 * x**4` as a chain of `Pow`, `Mul`,
//! `Add` and `Sub` nodes with scalar constants. The importer does not pattern-match that
//! chain: it evaluates every elementwise node symbolically, as a polynomial in one activation
//! (a plain activation is the polynomial `x`, a scalar constant one of degree 0). A
//! polynomial becomes a `PolyAct` node only when something other than elementwise arithmetic
//! reads it, so any arrangement of the arithmetic (powers, Horner's rule, `x * x` chains,
//! subtraction, division by a constant) fuses, and whatever is not a polynomial in a single
//! activation is reported on the node that breaks it.
//!
//! The standard-operator form loses two things a `PolyAct` has: its fitting range, and
//! coefficients finer than f32. pillar's exporter keeps both in a model metadata entry
//! `pillar.poly:<node name>` (`range=5;coefficients=0.314453125,0.5,...`, exact decimal
//! f64), which the importer uses when it agrees with the fused f32 coefficients. A model with
//! no such entry gets its range from the entry `pillar.poly_range`, or
//! [`DEFAULT_POLY_RANGE`](super::DEFAULT_POLY_RANGE).

use super::error::OnnxError;
use crate::graph::{PolyAct, ValueId};

/// Highest degree a fused polynomial may reach; higher powers are refused rather than
/// expanded (pillar's activations have degree 2 to 4).
pub(crate) const MAX_DEGREE: usize = 16;

/// Metadata key prefix for one node's exact polynomial.
pub(crate) const POLY_KEY_PREFIX: &str = "pillar.poly:";

/// An elementwise value known as a polynomial in one activation.
#[derive(Debug, Clone)]
pub(crate) struct Poly {
    /// The activation it is a polynomial in; `None` for a constant.
    pub base: Option<ValueId>,
    /// `c_0..c_d` (trailing zeros allowed).
    pub coeffs: Vec<f64>,
    /// The ONNX node that computed it: a fused `PolyAct` takes this name.
    pub origin: String,
    /// Whether elementwise arithmetic built it (as opposed to a node of the graph producing
    /// it): only such a value can become a new `PolyAct`.
    pub computed: bool,
}

impl Poly {
    /// The activation `v` itself, as produced by node `origin`.
    pub(super) fn value(v: ValueId, origin: &str) -> Self {
        Poly {
            base: Some(v),
            coeffs: vec![0.0, 1.0],
            origin: origin.to_string(),
            computed: false,
        }
    }

    /// A scalar constant.
    pub(super) fn constant(c: f64, origin: &str) -> Self {
        Poly {
            base: None,
            coeffs: vec![c],
            origin: origin.to_string(),
            computed: false,
        }
    }

    /// The coefficients without trailing zeros (at least one).
    pub(super) fn trimmed(&self) -> &[f64] {
        let end = self
            .coeffs
            .iter()
            .rposition(|&c| c != 0.0)
            .map_or(1, |i| i + 1);
        &self.coeffs[..end.min(self.coeffs.len())]
    }

    /// The degree (0 for a constant).
    pub(super) fn degree(&self) -> usize {
        self.trimmed().len().saturating_sub(1)
    }

    /// Whether it is exactly its base activation.
    pub(super) fn is_identity(&self) -> bool {
        self.base.is_some() && self.trimmed() == [0.0, 1.0]
    }

    /// Its value, if it is a constant.
    pub(super) fn constant_value(&self) -> Option<f64> {
        match self.base {
            None => self.coeffs.first().copied(),
            Some(_) => None,
        }
    }

    fn base_with(&self, other: &Poly) -> Result<Option<ValueId>, String> {
        match (self.base, other.base) {
            (None, b) | (b, None) => Ok(b),
            (Some(a), Some(b)) if a == b => Ok(Some(a)),
            (Some(_), Some(_)) => Err(
                "combines two different activations; pillar fuses only polynomials in one \
                 activation"
                    .into(),
            ),
        }
    }

    fn computed(base: Option<ValueId>, coeffs: Vec<f64>, origin: &str) -> Self {
        Poly {
            base,
            coeffs,
            origin: origin.to_string(),
            computed: true,
        }
    }

    /// `self + s * other`.
    pub(super) fn add_scaled(&self, other: &Poly, s: f64, origin: &str) -> Result<Poly, String> {
        let base = self.base_with(other)?;
        let n = self.coeffs.len().max(other.coeffs.len());
        let coeffs = (0..n)
            .map(|k| {
                self.coeffs.get(k).copied().unwrap_or(0.0)
                    + s * other.coeffs.get(k).copied().unwrap_or(0.0)
            })
            .collect();
        Ok(Poly::computed(base, coeffs, origin))
    }

    /// `self * other`.
    pub(super) fn mul(&self, other: &Poly, origin: &str) -> Result<Poly, String> {
        let base = self.base_with(other)?;
        let (a, b) = (self.trimmed(), other.trimmed());
        if self.degree() + other.degree() > MAX_DEGREE {
            return Err(format!(
                "the product has degree {}, more than the {MAX_DEGREE} pillar fuses",
                self.degree() + other.degree()
            ));
        }
        let mut coeffs = vec![0.0; (a.len() + b.len()).saturating_sub(1)];
        for (i, x) in a.iter().enumerate() {
            for (j, y) in b.iter().enumerate() {
                coeffs[i + j] += x * y;
            }
        }
        Ok(Poly::computed(base, coeffs, origin))
    }

    /// `self / c` for a constant `c` (divided, not multiplied by `1 / c`, so that the
    /// coefficients are what the graph computes).
    pub(super) fn div_const(&self, c: f64, origin: &str) -> Poly {
        let coeffs = self.coeffs.iter().map(|x| x / c).collect();
        Poly::computed(self.base, coeffs, origin)
    }

    /// `self ^ k`.
    pub(super) fn pow(&self, k: usize, origin: &str) -> Result<Poly, String> {
        if self.degree().saturating_mul(k) > MAX_DEGREE {
            return Err(format!(
                "raising a degree-{} polynomial to the power {k} exceeds the degree {MAX_DEGREE} \
                 pillar fuses",
                self.degree()
            ));
        }
        let mut acc = Poly::computed(self.base, vec![1.0], origin);
        for _ in 0..k {
            acc = acc.mul(self, origin)?;
        }
        Ok(acc)
    }
}

/// A node's polynomial as pillar's exporter recorded it in the model's metadata.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolyMeta {
    /// The fitting range.
    pub range: f64,
    /// Exact coefficients.
    pub coefficients: Vec<f64>,
}

/// The metadata value for `p`: exact decimal f64s (Rust prints the shortest string that
/// parses back to the same f64).
pub(crate) fn format_meta(p: &PolyAct) -> String {
    let coeffs: Vec<String> = p.coefficients.iter().map(|c| format!("{c:?}")).collect();
    format!("range={:?};coefficients={}", p.range, coeffs.join(","))
}

/// Parses a `pillar.poly:<node>` value.
pub(crate) fn parse_meta(key: &str, value: &str) -> Result<PolyMeta, OnnxError> {
    let bad = |detail: String| OnnxError::Metadata {
        key: key.to_string(),
        detail,
    };
    let mut range = None;
    let mut coefficients = None;
    for part in value.split(';') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(format!("{s:?} is not a finite number")))
        };
        match k.trim() {
            "range" => range = Some(num(v)?),
            "coefficients" => {
                coefficients = Some(v.split(',').map(num).collect::<Result<Vec<_>, _>>()?);
            }
            other => return Err(bad(format!("unknown field {other:?}"))),
        }
    }
    match (range, coefficients) {
        (Some(range), Some(coefficients)) if range > 0.0 => Ok(PolyMeta {
            range,
            coefficients,
        }),
        _ => Err(bad(format!(
            "{value:?} should be range=R;coefficients=c0,c1,... with R > 0"
        ))),
    }
}

/// The `PolyAct` for fused coefficients: the metadata's exact values when they round to the
/// same f32 coefficients the graph computes, otherwise an error (the metadata is stale).
pub(crate) fn resolve(
    fused: &[f64],
    meta: Option<(&str, &PolyMeta)>,
    default_range: f64,
) -> Result<PolyAct, OnnxError> {
    let Some((key, meta)) = meta else {
        return Ok(PolyAct {
            coefficients: fused.to_vec(),
            range: default_range,
        });
    };
    let n = fused.len().max(meta.coefficients.len());
    let at = |v: &[f64], k: usize| v.get(k).copied().unwrap_or(0.0) as f32;
    if (0..n).all(|k| at(fused, k) == at(&meta.coefficients, k)) {
        Ok(PolyAct {
            coefficients: meta.coefficients.clone(),
            range: meta.range,
        })
    } else {
        Err(OnnxError::Metadata {
            key: key.to_string(),
            detail: format!(
                "records coefficients {:?}, but the graph computes {fused:?}",
                meta.coefficients
            ),
        })
    }
}
