//! HoneyBadger: one opened value per input, powers by the binomial closed form.
//!
//! The dealer supplies shares of `r, r^2, .., r^d` for a uniformly random ring element `r`
//! (never a fixed one: `r = 1` would open `x` itself). Each party pre-scales its share of `x`
//! once, `y = x / 2^s` with `s = s_d` of ESPN (one opening must serve every power), the parties
//! open `c = y - r`, and locally `[y^m] = sum_j C(m, j) c^(m-j) [r^j]` with `[r^0] = 1` held by
//! party 0. That is exact in the ring; `y^m` at scale `2^(m (f - s))` is then rescaled to
//! `2^f`. The linear term uses `x` itself, at full precision.
//!
//! One round; one word (8 bytes) per element per party.

use pillar_fit::budget::prescale;

use crate::correlation::Powers;
use crate::dealer::Need;
use crate::error::MpcError;
use crate::party::Party;
use crate::protocols::poly::{PolyProtocol, Prescaled, binomial};
use crate::protocols::truncation::{rescale_words, truncate_word};
use crate::session::Session;
use crate::tensor::Share;

/// What [`evaluate`] asks the dealer for.
pub fn needs(n: usize, degree: usize) -> Vec<Need> {
    if degree < 2 {
        Vec::new()
    } else {
        vec![Need::Powers { n, degree }]
    }
}

/// `x^2..x^d` at scale `2^f`.
pub fn powers(s: &mut Session, x: &Share, degree: usize) -> Result<Vec<Vec<u64>>, MpcError> {
    if degree < 2 {
        return Ok(Vec::new());
    }
    let n = x.len();
    let f = s.fixed().frac_bits();
    let party = s.party();
    let r: Powers = s.correlation((n, degree))?;
    let mut c = opening_part(party, x.data(), &r, degree, f);
    let peer = s.exchange(&c, n)?;
    for (v, p) in c.iter_mut().zip(&peer) {
        *v = v.wrapping_add(*p);
    }
    Ok(powers_from_opening(party, &c, &r, degree, f))
}

/// This party's part of the opening `c = x / 2^s - r`: its share of `x` pre-scaled by the
/// shift of degree `degree` at `f` bits, minus its share of `r`.
pub(crate) fn opening_part(party: Party, x: &[u64], r: &Powers, degree: usize, f: u32) -> Vec<u64> {
    let shift = prescale(degree as u32, f);
    x.iter()
        .zip(r.power(1))
        .map(|(&v, r)| truncate_word(party, v, shift).wrapping_sub(*r))
        .collect()
}

/// This party's shares of `x^2..x^d` at scale `2^f` from the opened `c` and its shares of the
/// powers of `r`: `[y^m] = sum_j C(m, j) c^(m-j) [r^j]`, rescaled from `2^(m (f - s))`.
pub(crate) fn powers_from_opening(
    party: Party,
    c: &[u64],
    r: &Powers,
    degree: usize,
    f: u32,
) -> Vec<Vec<u64>> {
    let n = c.len();
    let shift = prescale(degree as u32, f);
    let binomials: Vec<Vec<u64>> = (0..=degree)
        .map(|m| (0..=m).map(|j| binomial(m, j)).collect())
        .collect();
    let mut out = vec![vec![0u64; n]; degree.saturating_sub(1)];
    let mut cpow = vec![1u64; degree + 1];
    for (e, &c) in c.iter().enumerate() {
        for j in 1..=degree {
            cpow[j] = cpow[j - 1].wrapping_mul(c);
        }
        // rj(0) is this party's share of r^0 = 1.
        let rj = |j: usize| -> u64 {
            if j == 0 {
                u64::from(party.is_server())
            } else {
                r.power(j)[e]
            }
        };
        for m in 2..=degree {
            let mut acc = 0u64;
            for j in 0..=m {
                acc = acc.wrapping_add(
                    binomials[m][j]
                        .wrapping_mul(cpow[m - j])
                        .wrapping_mul(rj(j)),
                );
            }
            out[m - 2][e] = acc;
        }
    }
    for (idx, p) in out.iter_mut().enumerate() {
        let m = idx as u32 + 2;
        rescale_words(party, p, m * (f - shift), f);
    }
    out
}

/// `sum_k c_k x^k` for coefficients `c_0..c_d`.
pub fn evaluate(s: &mut Session, x: &Share, coefficients: &[f64]) -> Result<Share, MpcError> {
    HONEYBADGER.evaluate(s, x, coefficients)
}

/// HoneyBadger as an activation protocol: one round, one word per element.
pub const HONEYBADGER: PolyProtocol = PolyProtocol {
    name: "honeybadger",
    rounds: |d| usize::from(d >= 2),
    words_sent: |n, d| if d >= 2 { n } else { 0 },
    needs,
    powers,
    // One opening serves every power: all from the same shift, the highest power's.
    plain: |f, d| Box::new(Prescaled::new(d, f, |_| prescale(d as u32, f))),
};
