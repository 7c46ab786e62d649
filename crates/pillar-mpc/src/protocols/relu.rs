//! Exact ReLU, comparison and maximum (the CrypTen baseline), in 8 rounds.
//!
//! `relu(x) = x (1 - sign(x))`. The sign comes from `sign_bits` (7 rounds). It is turned into
//! an arithmetic product with a random bit `r` shared both ways (a "daBit"): the parties open
//! `c = sign ^ r` (one round, one bit per element), so `sign = c + r - 2 c r`. The product
//! `x r` needs no round of its own: `x - a` for the dealer's mask `a` travels in the first
//! round of the sign, and `x r = (x - a) [r] + [a r]`. Per element and party: 14 words and one
//! bit (`14n + ceil(n/64)` words, [`words_sent`]), 8 rounds, against CrypTen's 9 or more.

use crate::correlation::{Bit, BitProduct};
use crate::dealer::Need;
use crate::error::MpcError;
use crate::protocols::activation::Activation;
use crate::protocols::arith;
use crate::protocols::binary::{
    SIGN_ROUNDS, pack_bits, packed_bit, sign_bits, sign_needs, sign_words,
};
use crate::protocols::mirror::{Elementwise, Mirror};
use crate::ring::FixedPoint;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// Rounds of [`relu`], [`ge_zero`] and [`max`].
pub const ROUNDS: usize = SIGN_ROUNDS + 1;

/// Ring words each party sends in [`relu`] of `n` elements: the sign's, `x - a` riding on its
/// first round, and the opened bits packed 64 to a word.
pub fn words_sent(n: usize) -> usize {
    sign_words(n) + n + n.div_ceil(64)
}

/// What [`relu`] (and [`max`]) ask the dealer for.
pub fn relu_needs(n: usize) -> Vec<Need> {
    let mut needs = vec![Need::BitProduct { n }];
    needs.extend(sign_needs(n));
    needs
}

/// What [`ge_zero`] asks the dealer for.
pub fn ge_needs(n: usize) -> Vec<Need> {
    let mut needs = vec![Need::Bit { n }];
    needs.extend(sign_needs(n));
    needs
}

/// Opens `sign ^ rb`, packed, and returns the public bits `c`.
fn open_bits(s: &mut Session, signs: &[u64], rb: &[u64]) -> Result<Vec<u64>, MpcError> {
    let masked: Vec<u64> = signs.iter().zip(rb).map(|(s, r)| (s ^ r) & 1).collect();
    let packed = pack_bits(&masked);
    let peer = s.exchange(&packed, packed.len())?;
    Ok(packed.iter().zip(&peer).map(|(a, b)| a ^ b).collect())
}

/// `max(x, 0)` elementwise, exactly.
pub fn relu(s: &mut Session, x: &Share) -> Result<Share, MpcError> {
    let n = x.len();
    let t: BitProduct = s.correlation(n)?;
    let (rb, a, r, ar) = (t.rb(), t.a(), t.r(), t.ar());
    let eps_mine: Vec<u64> = x
        .data()
        .iter()
        .zip(a)
        .map(|(x, a)| x.wrapping_sub(*a))
        .collect();
    let (signs, eps_peer) = sign_bits(s, x.data(), &eps_mine)?;
    let c = open_bits(s, &signs, rb)?;
    let out = (0..n)
        .map(|i| {
            let eps = eps_mine[i].wrapping_add(eps_peer[i]);
            // This party's share of x r.
            let xr = eps.wrapping_mul(r[i]).wrapping_add(ar[i]);
            // sign = c ^ r: c = 0 gives x (1 - r), c = 1 gives x r.
            if packed_bit(&c, i) == 0 {
                x.data()[i].wrapping_sub(xr)
            } else {
                xr
            }
        })
        .collect();
    Ok(Share::new(RingTensor::new(x.shape().to_vec(), out)?))
}

/// Shares of the integer bit `x >= 0` (1 or 0, not fixed point).
pub fn ge_zero(s: &mut Session, x: &Share) -> Result<Share, MpcError> {
    let n = x.len();
    let t: Bit = s.correlation(n)?;
    let (rb, r) = (t.rb(), t.r());
    let (signs, _) = sign_bits(s, x.data(), &[])?;
    let c = open_bits(s, &signs, rb)?;
    let server = u64::from(s.party().is_server());
    let out = (0..n)
        .map(|i| {
            // x >= 0 is 1 - sign = 1 - (c ^ r): r when c = 1, 1 - r when c = 0.
            if packed_bit(&c, i) == 1 {
                r[i]
            } else {
                server.wrapping_sub(r[i])
            }
        })
        .collect();
    Ok(Share::new(RingTensor::new(x.shape().to_vec(), out)?))
}

/// Shares of the integer bit `x >= y`.
pub fn ge(s: &mut Session, x: &Share, y: &Share) -> Result<Share, MpcError> {
    ge_zero(s, &arith::sub(x, y)?)
}

/// `max(x, y)` elementwise: `y + relu(x - y)`.
pub fn max(s: &mut Session, x: &Share, y: &Share) -> Result<Share, MpcError> {
    let d = relu(s, &arith::sub(x, y)?)?;
    arith::add(y, &d)
}

/// `relu(v)` of the signed value on plaintext: the secure ReLU is exact.
#[inline]
pub fn plain(v: u64) -> u64 {
    if (v as i64) < 0 { 0 } else { v }
}

/// Exact ReLU as an activation protocol (the comparison baseline); it ignores polynomials.
#[derive(Debug, Clone, Copy)]
pub struct Relu;

impl Activation for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn rounds(&self, _: usize) -> usize {
        ROUNDS
    }

    fn words_sent(&self, n: usize, _: usize) -> usize {
        words_sent(n)
    }

    fn needs(&self, n: usize, _: usize) -> Vec<Need> {
        relu_needs(n)
    }

    fn evaluate(&self, s: &mut Session, x: &Share, _: &[f64]) -> Result<Share, MpcError> {
        relu(s, x)
    }

    fn mirror(&self, _: FixedPoint, _: &[f64]) -> Result<Box<dyn Mirror>, MpcError> {
        Ok(Box::new(Elementwise(|v, _: &mut _| plain(v))))
    }
}
