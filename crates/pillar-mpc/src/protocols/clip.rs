//! Clamping to public bounds (ONNX `Clip`, PyTorch's `clamp`), exactly:
//! `clip(x) = lo + relu(x - lo) - relu(x - hi)` for `lo <= hi`, with both ReLUs in one batched
//! [`relu`], so that a two-sided clamp costs the rounds of one ReLU (8) and the words of a
//! ReLU of twice as many elements. A one-sided clamp is one ReLU: `lo + relu(x - lo)`, or
//! `x - relu(x - hi)`.

use crate::dealer::Need;
use crate::error::MpcError;
use crate::protocols::relu::{self, relu, relu_needs};
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// Public bounds as ring words at the session's fixed point; either may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Lower bound.
    pub lo: Option<u64>,
    /// Upper bound.
    pub hi: Option<u64>,
}

impl Bounds {
    /// How many bounds there are: the ReLUs per element.
    pub fn count(&self) -> usize {
        usize::from(self.lo.is_some()) + usize::from(self.hi.is_some())
    }

    /// Rounds of [`clip`]: one ReLU's, or none without bounds.
    pub fn rounds(&self) -> usize {
        if self.count() == 0 { 0 } else { relu::ROUNDS }
    }

    /// Ring words each party sends in [`clip`] of `n` elements.
    pub fn words_sent(&self, n: usize) -> usize {
        match self.count() {
            0 => 0,
            c => relu::words_sent(c * n),
        }
    }

    /// What [`clip`] of `n` elements asks the dealer for.
    pub fn needs(&self, n: usize) -> Vec<Need> {
        match self.count() {
            0 => Vec::new(),
            c => relu_needs(c * n),
        }
    }

    /// `clip(v)` of a ring word in the arithmetic [`clip`] follows (wrapping, with the exact
    /// ReLU), for the plaintext mirror.
    pub fn plain(&self, v: u64) -> u64 {
        let low = self
            .lo
            .map_or(v, |lo| lo.wrapping_add(relu::plain(v.wrapping_sub(lo))));
        self.hi
            .map_or(low, |hi| low.wrapping_sub(relu::plain(v.wrapping_sub(hi))))
    }
}

/// `x` clamped to `bounds`, elementwise and exactly.
pub fn clip(s: &mut Session, x: &Share, bounds: Bounds) -> Result<Share, MpcError> {
    let n = x.len();
    let present: Vec<u64> = [bounds.lo, bounds.hi].into_iter().flatten().collect();
    if present.is_empty() {
        return Ok(x.clone());
    }
    // The public bound is subtracted by party 0 alone.
    let server = s.party().is_server();
    let mut diff = Vec::with_capacity(present.len() * n);
    for &b in &present {
        let b = if server { b } else { 0 };
        diff.extend(x.data().iter().map(|v| v.wrapping_sub(b)));
    }
    let r = relu(s, &Share::new(RingTensor::from_vec(diff)))?;
    let r = r.data();
    let mut k = 0;
    let mut out: Vec<u64> = match bounds.lo {
        Some(lo) => {
            k = n;
            let lo = if server { lo } else { 0 };
            r[..n].iter().map(|v| v.wrapping_add(lo)).collect()
        }
        None => x.data().to_vec(),
    };
    if bounds.hi.is_some() {
        out.iter_mut()
            .zip(&r[k..k + n])
            .for_each(|(o, v)| *o = o.wrapping_sub(*v));
    }
    Ok(Share::new(RingTensor::new(x.shape().to_vec(), out)?))
}
