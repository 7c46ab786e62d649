//! Polynomial activations `sum_k c_k x^k`, by three protocols that differ only in how the
//! powers `x^2..x^d` are formed:
//!
//! - [`crypten`]: square-and-multiply, `ceil(log2 d)` rounds (the CrypTen baseline);
//! - [`espn`]: the binomial expansion of the pre-scaled shares, one round;
//! - [`honeybadger`]: one opened `x - r` per input and the dealer's powers of `r`, one round.
//!
//! All three then combine the powers with the coefficients locally and truncate once;
//! [`reference`](mod@reference) computes the same in plain integers, with the error bound of a
//! secure run. Each protocol's [`Mirror`] (its arithmetic on plaintext, for the fixed-point mirror
//! of a network) is a `PolyMirror` over how it forms the powers.

pub mod crypten;
pub mod espn;
pub mod honeybadger;
pub mod reference;

use crate::dealer::Need;
use crate::error::MpcError;
use crate::protocols::activation::Activation;
use crate::protocols::mirror::{Mirror, Tally};
use crate::protocols::truncation::truncate_words;
use crate::ring::FixedPoint;
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
pub fn combine(
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

/// How a protocol forms `x^2..x^d` at scale `2^f` in shares.
pub type PowersFn = fn(&mut Session, &Share, usize) -> Result<Vec<Vec<u64>>, MpcError>;

/// A protocol's whole evaluation in one pass, bit for bit what `powers` then [`combine`] give.
pub type FusedFn = fn(&mut Session, &Share, &[f64]) -> Result<Share, MpcError>;

/// A polynomial protocol: how it forms the powers `x^2..x^d`, in shares and on plaintext, and
/// what that costs. Every one then combines the powers the same way (`combine`), so a new
/// polynomial protocol is a module that defines one of these; its [`Activation`] follows.
#[derive(Clone, Copy)]
pub struct PolyProtocol {
    /// Its name on the command line and in architectures.
    pub name: &'static str,
    /// Rounds to form the powers up to degree `d`.
    pub rounds: fn(usize) -> usize,
    /// Ring words each party sends for `n` elements of degree `d`.
    pub words_sent: fn(usize, usize) -> usize,
    /// The correlations for `n` elements of degree `d`, in order.
    pub needs: fn(usize, usize) -> Vec<Need>,
    /// `x^2..x^d` at scale `2^f`, in shares.
    pub powers: PowersFn,
    /// The evaluation without a vector per power, where the protocol has one: what
    /// [`PolyProtocol::evaluate`] runs.
    pub fused: Option<FusedFn>,
    /// The same on plaintext at `f` fractional bits, up to degree `d`.
    pub plain: fn(u32, usize) -> Box<dyn PlainPowers>,
}

impl std::fmt::Debug for PolyProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolyProtocol")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PolyProtocol {
    /// `sum_k c_k x^k` for coefficients `c_0..c_d`: the powers, then `combine`.
    pub fn evaluate(&self, s: &mut Session, x: &Share, c: &[f64]) -> Result<Share, MpcError> {
        if let Some(fused) = self.fused {
            return fused(s, x, c);
        }
        self.evaluate_unfused(s, x, c)
    }

    /// `powers`, then [`combine`]: what `fused` must equal.
    pub fn evaluate_unfused(
        &self,
        s: &mut Session,
        x: &Share,
        c: &[f64],
    ) -> Result<Share, MpcError> {
        let d = degree(c)?;
        let p = (self.powers)(s, x, d)?;
        combine(s, x, &p, c)
    }
}

impl Activation for PolyProtocol {
    fn name(&self) -> &'static str {
        self.name
    }

    fn rounds(&self, degree: usize) -> usize {
        (self.rounds)(degree)
    }

    fn words_sent(&self, n: usize, degree: usize) -> usize {
        (self.words_sent)(n, degree)
    }

    fn needs(&self, n: usize, degree: usize) -> Vec<Need> {
        (self.needs)(n, degree)
    }

    fn evaluate(&self, s: &mut Session, x: &Share, c: &[f64]) -> Result<Share, MpcError> {
        PolyProtocol::evaluate(self, s, x, c)
    }

    fn mirror(&self, fp: FixedPoint, c: &[f64]) -> Result<Box<dyn Mirror>, MpcError> {
        let powers = (self.plain)(fp.frac_bits(), degree(c)?);
        Ok(Box::new(PolyMirror::new(fp, c, powers)?))
    }
}

/// How a protocol forms the powers on plaintext.
pub trait PlainPowers: Send + Sync {
    /// Sets `p[k]` to `x^k` at scale `2^f` for `k = 2..=d`, as the protocol computes it, with
    /// every truncation counted in `t`.
    fn powers(&self, x: u64, p: &mut [u64; MAX_DEGREE + 1], t: &mut Tally);
}

/// A polynomial layer on plaintext: the powers as its protocol forms them, then [`combine`]'s
/// weighted sum at `2^(2f)`, one truncation, and `c_0`. Every product is exact in the ring
/// (Beaver products, ESPN's binomial expansion and HoneyBadger's closed form all sum to the
/// true product mod 2^64), so only the truncations differ from a secure run, each by at most
/// one unit.
struct PolyMirror {
    /// `encode(c_0)..encode(c_d)` at `f` bits, zeros above `d`.
    enc: [u64; MAX_DEGREE + 1],
    degree: usize,
    frac_bits: u32,
    powers: Box<dyn PlainPowers>,
}

impl PolyMirror {
    /// The layer for coefficients `c_0..c_d` (checked here) at `fp`.
    fn new(
        fp: FixedPoint,
        coefficients: &[f64],
        powers: Box<dyn PlainPowers>,
    ) -> Result<Self, MpcError> {
        let degree = degree(coefficients)?;
        let mut enc = [0; MAX_DEGREE + 1];
        for (e, &c) in enc.iter_mut().zip(coefficients) {
            *e = fp.encode(c);
        }
        Ok(PolyMirror {
            enc,
            degree,
            frac_bits: fp.frac_bits(),
            powers,
        })
    }
}

impl Mirror for PolyMirror {
    fn eval(&self, x: &[u64], t: &mut Tally) -> Vec<u64> {
        let f = self.frac_bits;
        x.iter()
            .map(|&x| {
                t.see(x);
                let mut p = [0u64; MAX_DEGREE + 1];
                self.powers.powers(x, &mut p, t);
                let acc = (2..=self.degree).fold(x.wrapping_mul(self.enc[1]), |acc, k| {
                    acc.wrapping_add(p[k].wrapping_mul(self.enc[k]))
                });
                let y = t.truncate(acc, f).wrapping_add(self.enc[0]);
                t.see(y);
                y
            })
            .collect()
    }
}

/// Powers from a pre-scaled input, as ESPN and HoneyBadger form them: for each `k`,
/// `y = x >> s_k` (exact floor), `y^k` exact in the ring at scale `k (f - s_k)`, rescaled to
/// `f` (a truncation, or an exact left shift when `k (f - s_k) < f`).
pub(crate) struct Prescaled {
    degree: usize,
    frac_bits: u32,
    /// At index `k`: the shift applied to `x` before raising it to the `k`-th power, and the
    /// scale (bits) at which that power is formed.
    shift: [u32; MAX_DEGREE + 1],
    scale: [u32; MAX_DEGREE + 1],
}

impl Prescaled {
    /// Powers up to `degree` at `f` bits, the `k`-th from `x` shifted by `shift(k)`.
    pub(crate) fn new(degree: usize, frac_bits: u32, shift: impl Fn(usize) -> u32) -> Self {
        let degree = degree.min(MAX_DEGREE);
        let (mut shifts, mut scale) = ([0; MAX_DEGREE + 1], [0; MAX_DEGREE + 1]);
        for k in 2..=degree {
            shifts[k] = shift(k);
            scale[k] = k as u32 * (frac_bits - shifts[k]);
        }
        Prescaled {
            degree,
            frac_bits,
            shift: shifts,
            scale,
        }
    }
}

impl PlainPowers for Prescaled {
    // The loop indexes the powers with their shifts and scales.
    #[allow(clippy::needless_range_loop)]
    fn powers(&self, x: u64, p: &mut [u64; MAX_DEGREE + 1], t: &mut Tally) {
        // ESPN pre-scales the same shares of x once per power, HoneyBadger once: either way
        // one failure event.
        if self.shift.iter().any(|&s| s > 0) {
            t.count_truncation(x);
        }
        for k in 2..=self.degree {
            let y = ((x as i64) >> self.shift[k]) as u64;
            let mut yk = y;
            for _ in 1..k {
                yk = yk.wrapping_mul(y);
            }
            p[k] = t.rescale(yk, self.scale[k], self.frac_bits);
        }
    }
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
