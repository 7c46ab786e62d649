//! Max-pooling by a tournament of exact maxima.
//!
//! The `k x k` candidates of every window are halved level by level, `max(a, b) = b +
//! relu(a - b)` for all pairs of all windows in one batched [`relu`]: `ceil(log2(k^2))` levels
//! of 8 rounds (16 rounds for 2x2, 32 for 3x3).

use crate::dealer::Need;
use crate::error::MpcError;
use crate::protocols::pool::{Window, windows};
use crate::protocols::relu::{relu, relu_needs};
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// Per level, the pairs compared in each window of `size` elements.
pub fn levels(size: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut k = size;
    while k > 1 {
        out.push(k / 2);
        k = k.div_ceil(2);
    }
    out
}

/// Rounds of [`max_pool`] with windows of `size` elements.
pub fn rounds(size: usize) -> usize {
    levels(size).len() * crate::protocols::relu::ROUNDS
}

/// Ring words each party sends in [`max_pool`] for `outputs` windows of `size` elements.
pub fn words_sent(outputs: usize, size: usize) -> usize {
    levels(size)
        .into_iter()
        .map(|pairs| crate::protocols::relu::words_sent(outputs * pairs))
        .sum()
}

/// What [`max_pool`] asks the dealer for on an NCHW `shape`.
pub fn needs(shape: &[usize], window: Window) -> Result<Vec<Need>, MpcError> {
    // The shape alone: the index lists of a hostile window would not fit in memory.
    let (out_shape, _) = window.output_shape(shape)?;
    let outputs: usize = out_shape.iter().product();
    // `output_shape` formed `outputs * size` checked, so `outputs * pairs` cannot overflow.
    let size = window
        .size()
        .ok_or_else(|| MpcError::invalid("max_pool", "the window's area overflows"))?;
    Ok(levels(size)
        .into_iter()
        .flat_map(|pairs| relu_needs(outputs * pairs))
        .collect())
}

/// The maximum over each window of an NCHW tensor, over the input elements of a padded
/// window only (see [`windows`]: a padded position is a copy of one of them).
pub fn max_pool(s: &mut Session, x: &Share, window: Window) -> Result<Share, MpcError> {
    let (out_shape, idx) = windows(x.shape(), window)?;
    let size = window.kernel_h * window.kernel_w;
    let outputs = idx.len() / size;
    // cand[o * k + j]: candidate j of window o.
    let mut cand: Vec<u64> = idx.iter().map(|&i| x.data()[i]).collect();
    let mut k = size;
    while k > 1 {
        let pairs = k / 2;
        let mut diff = Vec::with_capacity(outputs * pairs);
        for o in 0..outputs {
            for p in 0..pairs {
                let (a, b) = (cand[o * k + 2 * p], cand[o * k + 2 * p + 1]);
                diff.push(a.wrapping_sub(b));
            }
        }
        let d = relu(s, &Share::new(RingTensor::from_vec(diff)))?;
        let next_k = k.div_ceil(2);
        let mut next = Vec::with_capacity(outputs * next_k);
        for o in 0..outputs {
            for p in 0..pairs {
                next.push(cand[o * k + 2 * p + 1].wrapping_add(d.data()[o * pairs + p]));
            }
            if k % 2 == 1 {
                next.push(cand[o * k + k - 1]);
            }
        }
        cand = next;
        k = next_k;
    }
    Ok(Share::new(RingTensor::new(out_shape, cand)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tournament_levels() {
        assert_eq!(super::levels(4), vec![2, 1]);
        assert_eq!(super::levels(9), vec![4, 2, 1, 1]);
        assert_eq!(super::rounds(4), 16);
        assert_eq!(super::rounds(9), 32);
        assert!(super::levels(1).is_empty());
    }
}
