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
use crate::protocols::poly::{MAX_DEGREE, PolyProtocol, Prescaled, binomial, degree};
use crate::protocols::truncation::{rescale_words, truncate_word};
use crate::ring::FixedPoint;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

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

/// The opened `c`: this party's part of it ([`opening_part`]) plus the peer's part `peer`,
/// in one pass.
pub(crate) fn opened(
    party: Party,
    x: &[u64],
    r: &Powers,
    peer: &[u64],
    degree: usize,
    f: u32,
) -> Vec<u64> {
    let shift = prescale(degree as u32, f);
    x.iter()
        .zip(r.power(1))
        .zip(peer)
        .map(|((&v, r), p)| {
            truncate_word(party, v, shift)
                .wrapping_sub(*r)
                .wrapping_add(*p)
        })
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

/// [`evaluate`] without the intermediate powers: opens `c` as [`powers`] does, then forms the
/// polynomial in one pass ([`poly_from_opening`]), bit for bit what [`powers`] and
/// [`combine`](super::combine) give.
fn evaluate_fused(s: &mut Session, x: &Share, coefficients: &[f64]) -> Result<Share, MpcError> {
    let d = degree(coefficients)?;
    if d < 2 {
        return super::combine(s, x, &[], coefficients);
    }
    let n = x.len();
    let f = s.fixed().frac_bits();
    let party = s.party();
    let r: Powers = s.correlation((n, d))?;
    let mine = opening_part(party, x.data(), &r, d, f);
    let peer = s.exchange(&mine, n)?;
    let mut c = mine;
    for (v, p) in c.iter_mut().zip(&peer) {
        *v = v.wrapping_add(*p);
    }
    let y = poly_from_opening(party, x.data(), &c, &r, coefficients, s.fixed());
    RingTensor::new(x.shape().to_vec(), y).map(Share::new)
}

/// Elements per block of [`poly_from_opening`]: the powers of `c` for a block stay in L1.
const BLOCK: usize = 64;

/// The constants of one polynomial layer, for [`poly_from_opening`]'s blocks.
struct PolyConsts {
    party: Party,
    degree: usize,
    frac_bits: u32,
    /// `encode(c_k)`, zeros above the degree.
    enc: [u64; MAX_DEGREE + 1],
    /// `C(m, j)`.
    binomials: [[u64; MAX_DEGREE + 1]; MAX_DEGREE + 1],
    /// Per power `m`: the scale it is formed at, `m (f - s)`.
    from: [u32; MAX_DEGREE + 1],
}

/// This party's share of `c_0 + sum_k c_k x^k` from its share `x`, the opened `c` and its
/// shares of the powers of `r`: [`powers_from_opening`] and [`combine`](super::combine) in
/// one pass over the elements, a block of them at a time, with no vector per power. The
/// arithmetic is theirs, word for word: the powers rescaled to `2^f`, the weighted sum at
/// `2^(2f)`, one truncation, `c_0` added by party 0. Coefficients are checked by the callers
/// (degree 2 to [`MAX_DEGREE`]).
pub(crate) fn poly_from_opening(
    party: Party,
    x: &[u64],
    c: &[u64],
    r: &Powers,
    coefficients: &[f64],
    fp: FixedPoint,
) -> Vec<u64> {
    let degree = coefficients.len().saturating_sub(1).min(MAX_DEGREE);
    let f = fp.frac_bits();
    let shift = prescale(degree as u32, f);
    let mut k = PolyConsts {
        party,
        degree,
        frac_bits: f,
        enc: [0; MAX_DEGREE + 1],
        binomials: [[0; MAX_DEGREE + 1]; MAX_DEGREE + 1],
        from: [0; MAX_DEGREE + 1],
    };
    for (e, &c) in k.enc.iter_mut().zip(coefficients) {
        *e = fp.encode(c);
    }
    for m in 0..=degree {
        for j in 0..=m {
            k.binomials[m][j] = binomial(m, j);
        }
        k.from[m] = m as u32 * (f - shift);
    }
    let powers: Vec<&[u64]> = (1..=degree).map(|j| r.power(j)).collect();
    let mut out = vec![0u64; x.len()];
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::avx512() {
        // SAFETY: the CPU was checked at run time for the features `poly_avx512` enables; the
        // function itself is safe Rust.
        #[allow(unsafe_code)]
        unsafe {
            poly_avx512(&k, x, c, &powers, &mut out)
        };
        return out;
    }
    poly_blocks(&k, x, c, &powers, &mut out);
    out
}

/// [`poly_blocks`] compiled for AVX-512DQ, whose `vpmullq` multiplies eight lanes at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn poly_avx512(k: &PolyConsts, x: &[u64], c: &[u64], r: &[&[u64]], out: &mut [u64]) {
    poly_blocks(k, x, c, r, out);
}

/// The blocks of [`poly_from_opening`]; `r[j - 1]` is this party's share of `r^j`.
#[inline(always)]
fn poly_blocks(k: &PolyConsts, x: &[u64], c: &[u64], r: &[&[u64]], out: &mut [u64]) {
    let d = k.degree;
    let server = k.party.is_server();
    let mut cp = [[0u64; BLOCK]; MAX_DEGREE + 1];
    let mut t = [0u64; BLOCK];
    for (b, out) in out.chunks_mut(BLOCK).enumerate() {
        let start = b * BLOCK;
        let len = out.len();
        let (x, c) = (&x[start..start + len], &c[start..start + len]);
        cp[1][..len].copy_from_slice(c);
        for j in 2..=d {
            let (lo, hi) = cp.split_at_mut(j);
            for ((p, q), c) in hi[0][..len].iter_mut().zip(&lo[j - 1][..len]).zip(c) {
                *p = q.wrapping_mul(*c);
            }
        }
        for (o, x) in out.iter_mut().zip(x) {
            *o = x.wrapping_mul(k.enc[1]);
        }
        for m in 2..=d {
            // j = 0: C(m, 0) c^m times party 0's share of r^0 = 1.
            if server {
                t[..len].copy_from_slice(&cp[m][..len]);
            } else {
                t[..len].fill(0);
            }
            // 0 < j < m: C(m, j) c^(m - j) [r^j].
            for j in 1..m {
                let (bin, rj) = (k.binomials[m][j], &r[j - 1][start..start + len]);
                for ((t, p), rj) in t[..len].iter_mut().zip(&cp[m - j][..len]).zip(rj) {
                    *t = t.wrapping_add(bin.wrapping_mul(*p).wrapping_mul(*rj));
                }
            }
            // j = m: [r^m].
            for (t, rm) in t[..len].iter_mut().zip(&r[m - 1][start..start + len]) {
                *t = t.wrapping_add(*rm);
            }
            rescale(k.party, &mut t[..len], k.from[m], k.frac_bits);
            let e = k.enc[m];
            for (o, t) in out.iter_mut().zip(&t[..len]) {
                *o = o.wrapping_add(t.wrapping_mul(e));
            }
        }
        let c0 = if server { k.enc[0] } else { 0 };
        for o in out.iter_mut() {
            *o = truncate_word(k.party, *o, k.frac_bits).wrapping_add(c0);
        }
    }
}

/// [`rescale_words`] inlined into the block loop.
#[inline(always)]
fn rescale(party: Party, words: &mut [u64], from: u32, to: u32) {
    if from > to {
        for w in words {
            *w = truncate_word(party, *w, from - to);
        }
    } else if to > from {
        for w in words {
            *w <<= to - from;
        }
    }
}

/// HoneyBadger as an activation protocol: one round, one word per element.
pub const HONEYBADGER: PolyProtocol = PolyProtocol {
    name: "honeybadger",
    rounds: |d| usize::from(d >= 2),
    words_sent: |n, d| if d >= 2 { n } else { 0 },
    needs,
    powers,
    fused: Some(evaluate_fused),
    // One opening serves every power: all from the same shift, the highest power's.
    plain: |f, d| Box::new(Prescaled::new(d, f, |_| prescale(d as u32, f))),
};
