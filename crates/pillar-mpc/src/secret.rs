//! Randomness that must not outlive its use: generators wiped when dropped, and the seeds of
//! reproducible runs derived per purpose.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A ChaCha12 generator that overwrites its key and buffered output when dropped, so the
/// randomness behind shares, masks and keys cannot be read back from freed memory.
/// `rand_chacha` has no zeroize support, hence the wrapper.
pub(crate) struct WipedRng(ChaCha12Rng);

impl WipedRng {
    /// A generator seeded from the operating system's CSPRNG.
    pub(crate) fn from_os() -> Self {
        WipedRng(rand::make_rng())
    }

    /// A generator from `seed` (the caller wipes its own copy of the seed).
    pub(crate) fn from_seed(seed: [u8; 32]) -> Self {
        WipedRng(ChaCha12Rng::from_seed(seed))
    }

    /// A generator from `seed` on its independent stream `stream`: one key, many streams, none
    /// of which gives another.
    pub(crate) fn from_seed_stream(seed: [u8; 32], stream: u64) -> Self {
        let mut rng = ChaCha12Rng::from_seed(seed);
        rng.set_stream(stream);
        WipedRng(rng)
    }

    /// Fills `bytes` from the stream.
    pub(crate) fn fill(&mut self, bytes: &mut [u8]) {
        self.0.fill_bytes(bytes);
    }

    /// Replaces the state by that of the all-zero key, which carries nothing (`black_box` keeps
    /// the store from being optimised away as dead).
    fn wipe(&mut self) {
        self.0 = ChaCha12Rng::from_seed([0; 32]);
        std::hint::black_box(&mut self.0);
    }
}

impl Drop for WipedRng {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// The seed of one purpose (`"dealer"`, `"inputs"`, ...) of a run reproducible from `seed`:
/// SHA-256 of the label and the seed, so that no two purposes of one seed, nor one purpose of
/// two seeds, share a stream. For tests and benchmarks only: a seed anyone can know makes
/// everything drawn from it known.
pub fn derive_seed(seed: u64, label: &str) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"pillar derived seed v1\0");
    h.update((label.len() as u64).to_le_bytes());
    h.update(label.as_bytes());
    h.update(seed.to_le_bytes());
    Zeroizing::new(h.finalize().into())
}

/// [`derive_seed`] as one word, for generators seeded by a `u64` (burn's, say).
pub fn derive_seed_u64(seed: u64, label: &str) -> u64 {
    let bytes = derive_seed(seed, label);
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_words(rng: &mut WipedRng) -> [u8; 64] {
        let mut out = [0u8; 64];
        rng.fill(&mut out);
        out
    }

    /// `wipe` is what `Drop` runs; reading freed memory to see it would take `unsafe`.
    #[test]
    fn a_wiped_generator_holds_only_the_zero_key() {
        let mut rng = WipedRng::from_seed([7; 32]);
        let live = first_words(&mut rng);
        rng.wipe();
        let mut zero = WipedRng::from_seed([0; 32]);
        let wiped = first_words(&mut rng);
        assert_ne!(live, wiped);
        assert_eq!(
            wiped,
            first_words(&mut zero),
            "the old key is gone from the state"
        );
    }

    #[test]
    fn purposes_and_seeds_get_their_own_streams() {
        let labels = ["dealer", "masks of P0", "masks of P1", "inputs", "weights"];
        let mut seen = std::collections::HashSet::new();
        for seed in [0, 1, 2, 1 << 40] {
            for label in labels {
                assert!(seen.insert(*derive_seed(seed, label)), "{seed} {label}");
            }
        }
        assert_eq!(derive_seed(3, "dealer"), derive_seed(3, "dealer"));
        assert_ne!(derive_seed_u64(3, "dealer"), derive_seed_u64(3, "inputs"));
    }
}
