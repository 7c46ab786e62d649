//! Training-time augmentation: random crop with zero padding and horizontal flip (the paper's
//! CIFAR recipe), on raw pixels before normalisation, as torchvision's pipeline orders them.

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Which augmentation a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Zero padding on each side before a random crop back to the original size (0: none).
    pub pad: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        pad: 0,
        flip: false,
    };

    /// Whether it changes anything.
    pub fn is_none(self) -> bool {
        self.pad == 0 && !self.flip
    }

    /// Augments one `[C, H, W]` image of raw pixels in place, using `scratch`.
    ///
    /// Padding happens on raw pixels with value 0 (black), as torchvision's `RandomCrop`
    /// before `Normalize` does.
    pub fn apply(
        self,
        image: &mut [u8],
        dims: [usize; 3],
        rng: &mut impl rand::Rng,
        scratch: &mut Vec<u8>,
    ) {
        let [c, h, w] = dims;
        if self.pad > 0 {
            let p = self.pad as i64;
            let dy = rng.random_range(-p..=p);
            let dx = rng.random_range(-p..=p);
            scratch.clear();
            scratch.extend_from_slice(image);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let sy = y as i64 + dy;
                        let sx = x as i64 + dx;
                        image[(ch * h + y) * w + x] =
                            if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                                scratch[(ch * h + sy as usize) * w + sx as usize]
                            } else {
                                0
                            };
                    }
                }
            }
        }
        if self.flip && rng.random_range(0..2) == 1 {
            for row in image.chunks_exact_mut(w) {
                row.reverse();
            }
        }
    }
}
