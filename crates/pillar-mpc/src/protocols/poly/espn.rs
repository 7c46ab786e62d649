//! ESPN: all powers in one round, from the binomial expansion of the parties' shares.
//!
//! For each power `k = 2..d` each party pre-scales its own share of `x` locally,
//! `Y = x_i / 2^(s_k)` (the local truncation), so that `(Y_0 + Y_1)^k` stays inside the ring;
//! `s_k = max(0, ceil((k - 2) f / k))` from [`pillar_fit::budget::prescale`]. Then
//! `(Y_0 + Y_1)^k = sum_i C(k, i) Y_0^i Y_1^(k-i)`: the terms `i = 0` and `i = k` are local,
//! and the `k - 1` cross terms are products of a value party 0 holds and one party 1 holds,
//! all done by one batched cross product ([`cross_raw`]). The sum is `x^k` at scale
//! `2^(k (f - s_k))`, truncated by `D_k = k (f - s_k) - f` back to `2^f`.
//!
//! One round; `d (d - 1) / 2` words per element per party (6 words, 48 bytes, for `d = 4`).
//! The paper's version opens both operands of a general Beaver product, twice that.

use pillar_fit::budget::prescale;

use crate::dealer::Need;
use crate::error::MpcError;
use crate::party::Party;
use crate::protocols::beaver::cross_raw;
use crate::protocols::poly::{PolyProtocol, Prescaled, binomial};
use crate::protocols::truncation::{rescale_words, truncate_word};
use crate::session::Session;
use crate::tensor::Share;

/// Cross terms per element: `sum_{k=2..d} (k - 1)`.
pub fn cross_terms(degree: usize) -> usize {
    degree * degree.saturating_sub(1) / 2
}

/// What [`evaluate`] asks the dealer for.
pub fn needs(n: usize, degree: usize) -> Vec<Need> {
    match cross_terms(degree) {
        0 => Vec::new(),
        t => vec![Need::Cross { n: n * t }],
    }
}

/// `x^2..x^d` at scale `2^f`.
pub fn powers(s: &mut Session, x: &Share, degree: usize) -> Result<Vec<Vec<u64>>, MpcError> {
    let n = x.len();
    if cross_terms(degree) == 0 {
        return Ok(Vec::new());
    }
    let (party, f) = (s.party(), s.fixed().frac_bits());
    let (mine, local) = operands(party, x.data(), degree, f);
    let products = cross_raw(s, &mine)?;
    Ok(assemble(party, local, &products, n, degree, f))
}

/// This party's operand of every cross term of `x^2..x^d` (term-major, `n` words a term) from
/// its share `x` of `n` elements, and its local term of each power: the powers of its share
/// pre-scaled by each power's shift, party 0's operands times the binomial coefficient.
pub(crate) fn operands(
    party: Party,
    x: &[u64],
    degree: usize,
    f: u32,
) -> (Vec<u64>, Vec<Vec<u64>>) {
    let n = x.len();
    let server = party.is_server();
    let mut mine = Vec::with_capacity(cross_terms(degree) * n);
    let mut local: Vec<Vec<u64>> = Vec::with_capacity(degree.saturating_sub(1));
    let mut pow = vec![0u64; (degree + 1) * n];
    for k in 2..=degree {
        let shift = prescale(k as u32, f);
        // pow[j * n + e] = Y^j for element e.
        for (e, &v) in x.iter().enumerate() {
            let y = truncate_word(party, v, shift);
            let mut p = 1u64;
            for j in 0..=k {
                pow[j * n + e] = p;
                p = p.wrapping_mul(y);
            }
        }
        for i in 1..k {
            if server {
                let c = binomial(k, i);
                mine.extend(pow[i * n..(i + 1) * n].iter().map(|p| p.wrapping_mul(c)));
            } else {
                mine.extend_from_slice(&pow[(k - i) * n..(k - i + 1) * n]);
            }
        }
        local.push(pow[k * n..(k + 1) * n].to_vec());
    }
    (mine, local)
}

/// This party's shares of `x^2..x^d` at `2^f`: its local terms plus its shares of the cross
/// products (as [`operands`] laid them out), rescaled.
pub(crate) fn assemble(
    party: Party,
    mut local: Vec<Vec<u64>>,
    products: &[u64],
    n: usize,
    degree: usize,
    f: u32,
) -> Vec<Vec<u64>> {
    let mut offset = 0;
    for (idx, k) in (2..=degree).enumerate() {
        let acc = &mut local[idx];
        for _ in 1..k {
            for (a, p) in acc.iter_mut().zip(&products[offset..offset + n]) {
                *a = a.wrapping_add(*p);
            }
            offset += n;
        }
        let scale = k as u32 * (f - prescale(k as u32, f));
        rescale_words(party, acc, scale, f);
    }
    local
}

/// `sum_k c_k x^k` for coefficients `c_0..c_d`.
pub fn evaluate(s: &mut Session, x: &Share, coefficients: &[f64]) -> Result<Share, MpcError> {
    ESPN.evaluate(s, x, coefficients)
}

/// ESPN as an activation protocol: one round, `d (d - 1) / 2` words per element.
pub const ESPN: PolyProtocol = PolyProtocol {
    name: "espn",
    rounds: |d| usize::from(cross_terms(d) > 0),
    words_sent: |n, d| n * cross_terms(d),
    needs,
    powers,
    fused: None,
    // Each power from the input pre-scaled by its own shift.
    plain: |f, d| Box::new(Prescaled::new(d, f, |k| prescale(k as u32, f))),
};
