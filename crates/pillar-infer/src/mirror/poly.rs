//! The plaintext arithmetic of the three polynomial protocols of `pillar_mpc::protocols::poly`,
//! one element at a time.
//!
//! Each protocol forms the powers `x^2..x^d` at scale `2^f` in its own way and then combines
//! them the same way (`poly::combine`). Every product the protocols form is exact in the ring
//! (Beaver products, ESPN's binomial expansion and HoneyBadger's closed form all sum to the
//! true product mod 2^64), so only the truncations differ from this code, each by at most one
//! unit (see [`super`]).

use pillar_fit::budget::prescale;
use pillar_mpc::FixedPoint;
use pillar_mpc::protocols::poly::MAX_DEGREE;

use super::tally::Tally;

/// Which protocol's arithmetic a polynomial layer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Powers {
    /// Per power `k`, `x` pre-scaled by `s_k`, raised, rescaled.
    Espn,
    /// `x` pre-scaled once by `s_d`; every power raised from it and rescaled.
    HoneyBadger,
    /// Square-and-multiply with a truncation after every product.
    Crypten,
}

/// A polynomial layer ready to run: coefficients encoded as `poly::combine` encodes them,
/// and each power's pre-scaling shift and formation scale worked out once.
#[derive(Debug, Clone)]
pub(crate) struct Poly {
    /// Degree `d`.
    degree: usize,
    /// `encode(c_0)..encode(c_d)` at `f` bits, zeros above `d`.
    enc: [u64; MAX_DEGREE + 1],
    /// How the powers are formed.
    powers: Powers,
    /// `f`.
    frac_bits: u32,
    /// For `k = 2..=d` (at index `k`): the shift applied to `x` before raising it to the
    /// `k`-th power, and the scale (bits) at which that power is formed.
    shift: [u32; MAX_DEGREE + 1],
    scale: [u32; MAX_DEGREE + 1],
    /// Whether any power pre-scales `x` (a truncation of the shared input).
    prescaled: bool,
}

impl Poly {
    /// `coefficients` must be finite and at most `MAX_DEGREE + 1` (checked by the caller).
    pub(crate) fn new(fp: FixedPoint, coefficients: &[f64], powers: Powers) -> Poly {
        let f = fp.frac_bits();
        let degree = coefficients.len().clamp(1, MAX_DEGREE + 1) - 1;
        let mut enc = [0; MAX_DEGREE + 1];
        for (e, &c) in enc.iter_mut().zip(coefficients) {
            *e = fp.encode(c);
        }
        let (mut shift, mut scale) = ([0; MAX_DEGREE + 1], [0; MAX_DEGREE + 1]);
        for k in 2..=degree {
            let s = match powers {
                Powers::Espn => prescale(k as u32, f),
                Powers::HoneyBadger => prescale(degree as u32, f),
                Powers::Crypten => 0,
            };
            shift[k] = s;
            scale[k] = k as u32 * (f - s);
        }
        Poly {
            degree,
            enc,
            powers,
            frac_bits: f,
            shift,
            scale,
            prescaled: shift.iter().any(|&s| s > 0),
        }
    }

    /// `sum_k c_k x^k` of the encoded `x`, as the protocol computes it.
    // The loops index the powers, their shifts, scales and coefficients together.
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn eval(&self, x: u64, t: &mut Tally) -> u64 {
        let d = self.degree;
        let f = self.frac_bits;
        // p[k] = x^k at scale 2^f, for k in 2..=d.
        let mut p = [0u64; MAX_DEGREE + 1];
        t.see(x);
        // ESPN pre-scales the same shares of x once per power, HoneyBadger once: either way
        // one failure event.
        if self.prescaled {
            t.count_truncation(x);
        }
        match self.powers {
            Powers::Espn | Powers::HoneyBadger => {
                for k in 2..=d {
                    let y = shr(x, self.shift[k]);
                    let mut yk = y;
                    for _ in 1..k {
                        yk = yk.wrapping_mul(y);
                    }
                    p[k] = t.rescale(yk, self.scale[k], f);
                }
            }
            Powers::Crypten => {
                // p[1] = x; each round multiplies x^1..x^new by the highest known power x^m
                // (crypten::schedule), truncating every product.
                p[1] = x;
                let mut m = 1;
                while m < d {
                    let new = (2 * m).min(d) - m;
                    for j in 1..=new {
                        p[m + j] = t.truncate(p[j].wrapping_mul(p[m]), f);
                    }
                    m += new;
                }
            }
        }
        // poly::combine: the weighted sum at 2^(2f), one truncation, then c_0.
        let mut acc = x.wrapping_mul(self.enc[1]);
        for k in 2..=d {
            acc = acc.wrapping_add(p[k].wrapping_mul(self.enc[k]));
        }
        let y = t.truncate(acc, f).wrapping_add(self.enc[0]);
        t.see(y);
        y
    }
}

/// The signed value shifted right: exact floor of `v / 2^s` (no counting; the caller counts).
#[inline]
fn shr(v: u64, s: u32) -> u64 {
    ((v as i64) >> s) as u64
}
