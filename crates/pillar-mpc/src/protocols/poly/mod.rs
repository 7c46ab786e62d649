//! Polynomial activations `sum_k c_k x^k`, by three protocols that differ only in how the
//! powers `x^2..x^d` are formed:
//!
//! - [`crypten`]: square-and-multiply, `ceil(log2 d)` rounds (the CrypTen baseline);
//! - [`espn`]: the binomial expansion of the pre-scaled shares, one round;
//! - [`honeybadger`]: one opened `x - r` per input and the dealer's powers of `r`, one round.
//!
//! All three then combine the powers with the coefficients locally and truncate once;
//! [`reference`] computes the same in plain integers, with the error bound of a secure run.

pub mod crypten;
pub mod espn;
pub mod honeybadger;
pub mod reference;

use crate::error::MpcError;
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// Highest degree accepted (as `pillar fit`).
pub const MAX_DEGREE: usize = 12;

/// Checks coefficients `c_0..c_d` and returns `d`.
pub(crate) fn degree(coefficients: &[f64]) -> Result<usize, MpcError> {
    if coefficients.is_empty() || coefficients.len() > MAX_DEGREE + 1 {
        return Err(MpcError::invalid(
            "polynomial",
            format!(
                "{} coefficients: give c_0..c_d for a degree d of 0 to {MAX_DEGREE}",
                coefficients.len()
            ),
        ));
    }
    if let Some(c) = coefficients.iter().find(|c| !c.is_finite()) {
        return Err(MpcError::invalid(
            "polynomial",
            format!("coefficient {c} is not a finite number"),
        ));
    }
    Ok(coefficients.len() - 1)
}

/// `C(m, j)` in the ring (exact for the degrees allowed).
pub(crate) fn binomial(m: usize, j: usize) -> u64 {
    (0..j).fold(1u64, |acc, i| acc * (m - i) as u64 / (i as u64 + 1))
}

/// `c_0 + sum_k c_k x^k` from `x` and the powers `x^2..x^d`, all at scale `2^f`: the
/// coefficient products are summed at scale `2^(2f)` and truncated once.
pub(crate) fn combine(
    s: &Session,
    x: &Share,
    powers: &[Vec<u64>],
    coefficients: &[f64],
) -> Result<Share, MpcError> {
    let fp = s.fixed();
    let enc: Vec<u64> = coefficients.iter().map(|&c| fp.encode(c)).collect();
    let mut acc: Vec<u64> = x
        .data()
        .iter()
        .map(|v| v.wrapping_mul(enc.get(1).copied().unwrap_or(0)))
        .collect();
    for (k, p) in powers.iter().enumerate() {
        let c = enc[k + 2];
        for (a, v) in acc.iter_mut().zip(p) {
            *a = a.wrapping_add(v.wrapping_mul(c));
        }
    }
    truncate_words(s.party(), &mut acc, fp.frac_bits());
    if s.party().is_server() {
        for a in &mut acc {
            *a = a.wrapping_add(enc[0]);
        }
    }
    RingTensor::new(x.shape().to_vec(), acc).map(Share::new)
}

#[cfg(test)]
mod tests {
    #[test]
    fn binomials() {
        assert_eq!(super::binomial(4, 2), 6);
        assert_eq!(super::binomial(12, 6), 924);
        assert_eq!(super::binomial(5, 0), 1);
        assert_eq!(super::binomial(5, 5), 1);
    }
}
