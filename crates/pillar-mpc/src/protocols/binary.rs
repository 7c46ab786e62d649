//! The sign of a shared value: arithmetic-to-binary conversion of `x_0 + x_1` by a
//! Kogge-Stone adder over XOR shares, keeping only the top bit.
//!
//! Party 0's share `x_0` and party 1's `x_1` are the adder's inputs, each known to one party.
//! Propagate bits `p = x_0 ^ x_1` are local; generate bits `g = x_0 & x_1` cost one round of
//! cross ANDs (each operand known whole to one party, so one word each way). Then six levels
//! `G ^= P & (G << s)`, `P &= P << s` for `s = 1, 2, .., 32`, one round each: both ANDs of a
//! level share the operand `P`, and `P << s` is a shift of it, so opening `P ^ a` and `G ^ b`
//! (two words each way) serves both with the level's correlation `a & (a << s)`,
//! `a & (b << s)`. The carry into bit 63 is then `G` at bit 62, and the sign is
//! `p_63 ^ G_62`. Seven rounds in all.

use crate::correlation::{CrossAnd, PrefixAnd};
use crate::dealer::Need;
use crate::error::MpcError;
use crate::session::Session;

/// The Kogge-Stone shifts, one round each.
const SHIFTS: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// Rounds of [`sign_bits`].
pub(crate) const SIGN_ROUNDS: usize = 1 + SHIFTS.len();

/// Ring words each party sends in [`sign_bits`] for `n` elements (without the piggyback):
/// one word of the cross AND, then two per Kogge-Stone level.
pub(crate) fn sign_words(n: usize) -> usize {
    n + 2 * n * SHIFTS.len()
}

/// What [`sign_bits`] asks the dealer for.
pub(crate) fn sign_needs(n: usize) -> Vec<Need> {
    let mut needs = vec![Need::CrossAnd { n }];
    needs.extend(SHIFTS.iter().map(|&shift| Need::PrefixAnd { n, shift }));
    needs
}

/// XOR shares of the sign bit (1 for negative) of each element of `x`, in bit 0 of each word.
/// `piggyback` is sent along in the first round; the peer's words of the same length come
/// back with the signs.
pub(crate) fn sign_bits(
    s: &mut Session,
    x: &[u64],
    piggyback: &[u64],
) -> Result<(Vec<u64>, Vec<u64>), MpcError> {
    let n = x.len();
    let server = s.party().is_server();

    // Round 1: g = x_0 & x_1 with a cross AND.
    let t: CrossAnd = s.correlation(n)?;
    let (mask, c) = (t.mask(), t.c());
    let mut send: Vec<u64> = x.iter().zip(mask).map(|(x, m)| x ^ m).collect();
    send.extend_from_slice(piggyback);
    let peer = s.exchange(&send, n + piggyback.len())?;
    let mut g: Vec<u64> = (0..n)
        .map(|i| {
            // Party 0 knows a and e = x_0 ^ a, party 1 knows b and f = x_1 ^ b:
            // x_0 & x_1 = e&f ^ e&b ^ a&f ^ a&b.
            if server {
                let (e, f) = (send[i], peer[i]);
                (e & f) ^ (mask[i] & f) ^ c[i]
            } else {
                (peer[i] & mask[i]) ^ c[i]
            }
        })
        .collect();
    let piggy_peer = peer[n..].to_vec();
    let top: Vec<u64> = x.iter().map(|v| v >> 63).collect();
    let mut p = x.to_vec();

    for &shift in &SHIFTS {
        let t: PrefixAnd = s.correlation((n, shift))?;
        let (a, b, aa, ab) = (t.a(), t.b(), t.aa(), t.ab());
        let mut send = Vec::with_capacity(2 * n);
        send.extend(p.iter().zip(a).map(|(p, a)| p ^ a));
        send.extend(g.iter().zip(b).map(|(g, b)| g ^ b));
        let peer = s.exchange(&send, 2 * n)?;
        for i in 0..n {
            let e = send[i] ^ peer[i];
            let f = send[n + i] ^ peer[n + i];
            // P & (G << s) = e&(f<<s) ^ e&(b<<s) ^ a&(f<<s) ^ a&(b<<s)
            let mut pg = (e & (b[i] << shift)) ^ (a[i] & (f << shift)) ^ ab[i];
            // P & (P << s) = e&(e<<s) ^ e&(a<<s) ^ a&(e<<s) ^ a&(a<<s)
            let mut pp = (e & (a[i] << shift)) ^ (a[i] & (e << shift)) ^ aa[i];
            if server {
                pg ^= e & (f << shift);
                pp ^= e & (e << shift);
            }
            g[i] ^= pg;
            p[i] = pp;
        }
    }
    let signs = top
        .iter()
        .zip(&g)
        .map(|(t, g)| (t ^ (g >> 62)) & 1)
        .collect();
    Ok((signs, piggy_peer))
}

/// Packs bit 0 of each word, 64 to a word.
pub(crate) fn pack_bits(bits: &[u64]) -> Vec<u64> {
    bits.chunks(64)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u64, |acc, (i, b)| acc | ((b & 1) << i))
        })
        .collect()
}

/// Bit `i` of a packed vector.
#[inline]
pub(crate) fn packed_bit(packed: &[u64], i: usize) -> u64 {
    (packed[i / 64] >> (i % 64)) & 1
}
