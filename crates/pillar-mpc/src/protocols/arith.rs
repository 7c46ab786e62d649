//! Sharing, opening and the local linear operations.
//!
//! Addition of shares, and anything linear with public values, needs no communication: each
//! party applies it to its own share, and constants are added by party 0 alone.

use crate::error::MpcError;
use crate::session::Session;
use crate::tensor::{RingTensor, Share, check_same_shape};

/// Secret-shares `value`, which this party holds: it keeps `value - r` and sends a fresh
/// uniform `r` to the peer, which calls [`receive_share`]. One round; this party sends `n`
/// words, the peer none.
pub fn share(s: &mut Session, value: &RingTensor) -> Result<Share, MpcError> {
    // The mask is the peer's share: wiped here once sent, as every share is.
    let mask = zeroize::Zeroizing::new(s.random_words(value.len()));
    s.exchange(&mask, 0)?;
    let own = value
        .data()
        .iter()
        .zip(mask.iter())
        .map(|(v, r)| v.wrapping_sub(*r))
        .collect();
    Ok(Share::new(RingTensor::new(value.shape().to_vec(), own)?))
}

/// This party's share of a tensor of `shape` that the peer secret-shares with [`share`]. One
/// round; this party sends nothing.
pub fn receive_share(s: &mut Session, shape: &[usize]) -> Result<Share, MpcError> {
    let n = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| MpcError::invalid("share", format!("shape {shape:?} overflows")))?;
    let received = s.exchange(&[], n)?;
    Ok(Share::new(RingTensor::new(shape.to_vec(), received)?))
}

/// The secret from this party's share and the peer's words.
fn combine(x: &Share, peer: &[u64]) -> Result<RingTensor, MpcError> {
    let sum = x
        .data()
        .iter()
        .zip(peer)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    RingTensor::new(x.shape().to_vec(), sum)
}

/// Opens a shared tensor to both parties. One round, `n` words each way.
pub fn reveal(s: &mut Session, x: &Share) -> Result<RingTensor, MpcError> {
    let peer = s.exchange(x.data(), x.len())?;
    combine(x, &peer)
}

/// Opens a shared tensor to the peer only, which calls [`receive_reveal`]. One round; this
/// party sends `n` words.
pub fn reveal_to_peer(s: &mut Session, x: &Share) -> Result<(), MpcError> {
    s.exchange(x.data(), 0)?;
    Ok(())
}

/// Opens a shared tensor to this party only (the peer calls [`reveal_to_peer`]). One round;
/// this party sends nothing.
pub fn receive_reveal(s: &mut Session, x: &Share) -> Result<RingTensor, MpcError> {
    let peer = s.exchange(&[], x.len())?;
    combine(x, &peer)
}

/// A public tensor as a share: party 0 holds it, party 1 holds zeros.
pub fn from_public(s: &Session, t: &RingTensor) -> Share {
    if s.party().is_server() {
        Share::new(t.clone())
    } else {
        Share::new(t.zeros_like())
    }
}

/// `x + y`.
pub fn add(x: &Share, y: &Share) -> Result<Share, MpcError> {
    Ok(Share::new(x.tensor().add(y.tensor())?))
}

/// `x - y`.
pub fn sub(x: &Share, y: &Share) -> Result<Share, MpcError> {
    Ok(Share::new(x.tensor().sub(y.tensor())?))
}

/// `-x`.
pub fn neg(x: &Share) -> Share {
    Share::new(x.tensor().map(u64::wrapping_neg))
}

/// `x + t` for a public `t` (added by party 0).
pub fn add_public(s: &Session, x: &Share, t: &RingTensor) -> Result<Share, MpcError> {
    check_same_shape("add_public", x.shape(), t.shape())?;
    if s.party().is_server() {
        Ok(Share::new(x.tensor().add(t)?))
    } else {
        Ok(x.clone())
    }
}

/// `x * t` elementwise for a public `t`, without truncation (the scale adds up).
pub fn mul_public(x: &Share, t: &RingTensor) -> Result<Share, MpcError> {
    Ok(Share::new(x.tensor().mul(t)?))
}

/// `k * x` for a public ring scalar, without truncation.
pub fn scale(x: &Share, k: u64) -> Share {
    Share::new(x.tensor().map(|v| v.wrapping_mul(k)))
}
