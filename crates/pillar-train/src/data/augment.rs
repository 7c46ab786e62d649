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

    /// Draws the random choices for one image from `rng`: the crop offset (when padding),
    /// then the flip (when flipping), in the order [`Augment::apply`] always drew them, so a
    /// seed gives the same augmentation whether images are processed one by one or drawn
    /// first and augmented in parallel.
    pub fn draw(self, rng: &mut impl rand::Rng) -> Draw {
        let (mut dy, mut dx) = (0, 0);
        if self.pad > 0 {
            let p = self.pad as i64;
            dy = rng.random_range(-p..=p);
            dx = rng.random_range(-p..=p);
        }
        let flip = self.flip && rng.random_range(0..2) == 1;
        Draw { dy, dx, flip }
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
        self.apply_drawn(image, dims, self.draw(rng), scratch);
    }

    /// Augments one `[C, H, W]` image in place with choices drawn beforehand by
    /// [`Augment::draw`]; no randomness, so it can run on any thread.
    pub fn apply_drawn(
        self,
        image: &mut [u8],
        dims: [usize; 3],
        draw: Draw,
        scratch: &mut Vec<u8>,
    ) {
        let [c, h, w] = dims;
        if self.pad > 0 && (draw.dy, draw.dx) != (0, 0) {
            scratch.clear();
            scratch.extend_from_slice(image);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let sy = y as i64 + draw.dy;
                        let sx = x as i64 + draw.dx;
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
        if draw.flip {
            for row in image.chunks_exact_mut(w) {
                row.reverse();
            }
        }
    }
}

/// The random choices of one image's augmentation (see [`Augment::draw`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Draw {
    /// Vertical shift of the crop window, in `-pad..=pad`.
    pub dy: i64,
    /// Horizontal shift of the crop window.
    pub dx: i64,
    /// Mirror left-right.
    pub flip: bool,
}
