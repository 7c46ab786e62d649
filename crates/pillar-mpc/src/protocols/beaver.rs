//! Elementwise products by Beaver triples.
//!
//! With a triple `c = a b`, the parties open `e = x - a` and `f = y - b` together (one round)
//! and each sets `z = c + e b + f a`, party 0 adding `e f`. Fixed-point products are then
//! truncated once by `2^f`.

use crate::correlation::{Beaver, Cross, Square};
use crate::dealer::Need;
use crate::error::MpcError;
use crate::party::Party;
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::{RingTensor, Share, check_same_shape};

/// What [`mul`] asks the dealer for.
pub fn mul_needs(n: usize) -> Vec<Need> {
    vec![Need::Beaver { n }]
}

/// What [`square`] asks the dealer for.
pub fn square_needs(n: usize) -> Vec<Need> {
    vec![Need::Square { n }]
}

/// `x * y` elementwise, at fixed-point scale (truncated by `2^f`). One round; each party
/// sends `2n` words.
pub fn mul(s: &mut Session, x: &Share, y: &Share) -> Result<Share, MpcError> {
    let mut z = mul_raw(s, x, y)?;
    truncate_words(s.party(), &mut z, s.fixed().frac_bits());
    Ok(Share::new(RingTensor::new(x.shape().to_vec(), z)?))
}

/// `x * y` elementwise without truncation: ring products, for integer or mixed-scale values.
pub fn mul_raw(s: &mut Session, x: &Share, y: &Share) -> Result<Vec<u64>, MpcError> {
    check_same_shape("mul", x.shape(), y.shape())?;
    let n = x.len();
    let t: Beaver = s.correlation(n)?;
    let (a, b, c) = (t.a(), t.b(), t.c());
    let mut send = Vec::with_capacity(2 * n);
    send.extend(x.data().iter().zip(a).map(|(x, a)| x.wrapping_sub(*a)));
    send.extend(y.data().iter().zip(b).map(|(y, b)| y.wrapping_sub(*b)));
    let peer = s.exchange(&send, 2 * n)?;
    let server = s.party().is_server();
    Ok((0..n)
        .map(|i| {
            let e = send[i].wrapping_add(peer[i]);
            let f = send[n + i].wrapping_add(peer[n + i]);
            let mut z = c[i]
                .wrapping_add(e.wrapping_mul(b[i]))
                .wrapping_add(f.wrapping_mul(a[i]));
            if server {
                z = z.wrapping_add(e.wrapping_mul(f));
            }
            z
        })
        .collect())
}

/// `x^2` elementwise at fixed-point scale. One round; each party sends `n` words (a squaring
/// pair needs only `e = x - a` opened).
pub fn square(s: &mut Session, x: &Share) -> Result<Share, MpcError> {
    let mut z = square_raw(s, x.data())?;
    truncate_words(s.party(), &mut z, s.fixed().frac_bits());
    Ok(Share::new(RingTensor::new(x.shape().to_vec(), z)?))
}

/// `x^2` without truncation, on raw share words.
pub(crate) fn square_raw(s: &mut Session, x: &[u64]) -> Result<Vec<u64>, MpcError> {
    let n = x.len();
    let t: Square = s.correlation(n)?;
    let (a, aa) = (t.a(), t.aa());
    let send: Vec<u64> = x.iter().zip(a).map(|(x, a)| x.wrapping_sub(*a)).collect();
    let peer = s.exchange(&send, n)?;
    let server = s.party().is_server();
    Ok((0..n)
        .map(|i| {
            // x^2 = (e + a)^2 = a^2 + 2 e a + e^2.
            let e = send[i].wrapping_add(peer[i]);
            let mut z = aa[i].wrapping_add(e.wrapping_mul(a[i]).wrapping_mul(2));
            if server {
                z = z.wrapping_add(e.wrapping_mul(e));
            }
            z
        })
        .collect())
}

/// What [`cross_raw`] asks the dealer for.
pub fn cross_needs(n: usize) -> Vec<Need> {
    vec![Need::Cross { n }]
}

/// Shares of `u * v` elementwise, where party 0 holds `u` and party 1 holds `v` in the clear
/// (each passes its own vector as `mine`). No truncation.
///
/// Because each operand is known whole to one party, the dealer gives party 0 its whole mask
/// `a` and party 1 its whole mask `b`: party 0 sends `u - a`, party 1 sends `v - b`, and the
/// shares are `u (v - b) + c_0` and `(u - a) b + c_1`. One round, `n` words each way: half
/// a general Beaver product, where each operand's zero share would be opened too.
pub fn cross_raw(s: &mut Session, mine: &[u64]) -> Result<Vec<u64>, MpcError> {
    let n = mine.len();
    let t: Cross = s.correlation(n)?;
    let send = cross_open(mine, &t);
    let peer = s.exchange(&send, n)?;
    Ok(cross_shares(s.party(), mine, &t, &peer))
}

/// What this party opens of its operand `mine` in [`cross_raw`]: `mine` minus its mask.
pub(crate) fn cross_open(mine: &[u64], t: &Cross) -> Vec<u64> {
    mine.iter()
        .zip(t.mask())
        .map(|(v, m)| v.wrapping_sub(*m))
        .collect()
}

/// This party's share of the products in [`cross_raw`], from its operand `mine` and what the
/// peer opened of its own.
pub(crate) fn cross_shares(party: Party, mine: &[u64], t: &Cross, peer: &[u64]) -> Vec<u64> {
    let (mask, c) = (t.mask(), t.c());
    if party.is_server() {
        // u (v - b) + c_0
        (0..mine.len())
            .map(|i| mine[i].wrapping_mul(peer[i]).wrapping_add(c[i]))
            .collect()
    } else {
        // (u - a) b + c_1
        (0..mine.len())
            .map(|i| peer[i].wrapping_mul(mask[i]).wrapping_add(c[i]))
            .collect()
    }
}
