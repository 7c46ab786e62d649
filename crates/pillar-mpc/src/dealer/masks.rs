//! The server's weight masks: one set per model, not one per connection.
//!
//! Under both linear-layer protocols the client holds `F = W - B` for every weight `W` of the
//! server's ([`crate::protocols::weights`]), and the dealer makes products against `B` (`A B`,
//! `B M - C_0`). `B` is drawn from a seed the server draws when it loads a model, and every
//! connection to that model gets the same `F`. That is safe:
//! - `F` is `W` under a one-time pad `B`, uniform and unknown to the client: it tells a client
//!   nothing about `W`, and the same `F` handed to many clients tells them together no more
//!   than it told one.
//! - Nothing else is masked with `B`: every product against it takes a fresh triple or input
//!   mask per inference, as before.
//! - A pad must never cover two different weights, or `F - F' = W' - W` would give their
//!   difference: a server draws a new seed whenever its weights change (a compiled plan draws
//!   its own), and the `k`-th weight's mask is the seed's own ChaCha12 stream `k`.
//!
//! The server knows `B` (it knows `W` anyway); the client's share of it is zero. The dealer is
//! told the seed and the masks' lengths when the server opens a session
//! ([`super::remote::open_session`]) and regenerates a mask when a correction needs it, so
//! neither it nor the server keeps a copy per connection; the client keeps `F` and may keep it
//! across connections. The dealer must not collude with the client: with `B` it has `W`, as
//! it had before with the per-connection masks.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::remote::Seed;
use super::{DealerError, NeedProblem};
use crate::secret::{WipedRng, derive_seed};

/// Most weights of one model a dealer accepts: far beyond any network's hundreds, and small
/// enough that the list of lengths stays a short message.
pub const MAX_WEIGHTS: usize = 1 << 14;

/// A model's weight masks: a seed and the length of each mask, in the order of the weights.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WeightMasksWire", into = "WeightMasksWire")]
pub struct WeightMasks {
    seed: Seed,
    lens: Vec<usize>,
    /// Every mask zero (tests only; never on the wire).
    broken: bool,
}

/// [`WeightMasks`] as it travels, checked as it is decoded.
#[derive(Serialize, Deserialize)]
struct WeightMasksWire {
    seed: Seed,
    lens: Vec<usize>,
}

impl TryFrom<WeightMasksWire> for WeightMasks {
    type Error = String;

    fn try_from(w: WeightMasksWire) -> Result<Self, String> {
        if w.lens.len() > MAX_WEIGHTS {
            return Err(format!(
                "{} weight masks: at most {MAX_WEIGHTS}",
                w.lens.len()
            ));
        }
        if let Some(n) = w.lens.iter().find(|&&n| n > super::MAX_NEED_WORDS) {
            return Err(format!(
                "a weight mask of {n} elements: at most {}",
                super::MAX_NEED_WORDS
            ));
        }
        Ok(WeightMasks {
            seed: w.seed,
            lens: w.lens,
            broken: false,
        })
    }
}

impl From<WeightMasks> for WeightMasksWire {
    fn from(m: WeightMasks) -> Self {
        WeightMasksWire {
            seed: m.seed,
            lens: m.lens,
        }
    }
}

impl fmt::Debug for WeightMasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightMasks")
            .field("lens", &self.lens)
            .finish_non_exhaustive()
    }
}

impl WeightMasks {
    /// Masks of these lengths from a seed drawn from the operating system's CSPRNG: what a
    /// server draws for each model it loads.
    pub fn generate(lens: Vec<usize>) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        WipedRng::from_os().fill(seed.as_mut_slice());
        WeightMasks {
            seed: Seed::new(*seed),
            lens,
            broken: false,
        }
    }

    /// Masks from a fixed seed (derived as [`derive_seed`]`(seed, "weight masks")`):
    /// reproducible, so for tests and benchmarks only.
    pub fn from_seed(seed: u64, lens: Vec<usize>) -> Self {
        WeightMasks {
            seed: Seed::new(*derive_seed(seed, "weight masks")),
            lens,
            broken: false,
        }
    }

    /// Masks that are all zero, so that `F = W`: a deliberately broken pad, which the
    /// privacy tests must catch.
    #[cfg(any(test, feature = "test-utils"))]
    pub fn zero_for_tests(lens: Vec<usize>) -> Self {
        WeightMasks {
            seed: Seed::new([0; 32]),
            lens,
            broken: true,
        }
    }

    /// The masks' lengths, in the order of the weights.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// How many masks.
    pub fn count(&self) -> usize {
        self.lens.len()
    }

    /// Mask `id`, which `need` (a product against it) expects to hold `len` elements.
    pub(crate) fn mask(
        &self,
        id: usize,
        len: usize,
        need: &super::Need,
    ) -> Result<Zeroizing<Vec<u64>>, DealerError> {
        let refuse = |problem| DealerError::Need {
            need: Box::new(need.clone()),
            problem,
        };
        let Some(&has) = self.lens.get(id) else {
            return Err(refuse(NeedProblem::NoMask {
                mask: id,
                drawn: self.lens.len(),
            }));
        };
        if has != len {
            return Err(refuse(NeedProblem::MaskSize {
                mask: id,
                needs: len,
                has,
            }));
        }
        Ok(self.expand(id))
    }

    /// Mask `id`, if there is one: what the server subtracts from its weight `id`.
    pub fn words(&self, id: usize) -> Option<Zeroizing<Vec<u64>>> {
        (id < self.lens.len()).then(|| self.expand(id))
    }

    /// Mask `id` (which must exist), expanded from its stream.
    pub(crate) fn expand(&self, id: usize) -> Zeroizing<Vec<u64>> {
        let mut words = Zeroizing::new(vec![0u64; self.lens[id]]);
        if !self.broken {
            let mut rng = WipedRng::from_seed_stream(*self.seed.bytes(), id as u64);
            super::seeded::fill(&mut rng, &mut words);
        }
        words
    }
}

/// Where an in-process dealer finds the masks its server told it ([`super::Dealer::weight_masks`]).
pub(crate) type MaskCell = Arc<Mutex<Option<Arc<WeightMasks>>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dealer::Need;

    #[test]
    fn masks_are_reproducible_per_stream_and_differ_between_streams_and_seeds() {
        let m = WeightMasks::from_seed(1, vec![64, 64]);
        let need = Need::Bit { n: 1 };
        let (a, b) = (m.mask(0, 64, &need).unwrap(), m.mask(1, 64, &need).unwrap());
        assert_eq!(a, m.mask(0, 64, &need).unwrap());
        assert!(a.iter().zip(b.iter()).all(|(x, y)| x != y));
        let other = WeightMasks::generate(vec![64, 64]);
        assert!(other.expand(0).iter().zip(a.iter()).all(|(x, y)| x != y));
        assert!(matches!(
            m.mask(2, 64, &need),
            Err(DealerError::Need {
                problem: NeedProblem::NoMask { mask: 2, drawn: 2 },
                ..
            })
        ));
        assert!(matches!(
            m.mask(1, 63, &need),
            Err(DealerError::Need {
                problem: NeedProblem::MaskSize { .. },
                ..
            })
        ));
        let zero = WeightMasks::zero_for_tests(vec![5]);
        assert_eq!(zero.lens(), &[5]);
        assert_eq!(*zero.expand(0), vec![0; 5]);
    }

    #[test]
    fn a_mask_set_too_large_is_refused_as_it_is_decoded() {
        let m = WeightMasks::from_seed(1, vec![1; MAX_WEIGHTS + 1]);
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(serde_json::from_slice::<WeightMasks>(&bytes).is_err());
        let ok = WeightMasks::from_seed(1, vec![3, 4]);
        let back: WeightMasks = serde_json::from_slice(&serde_json::to_vec(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
    }
}
