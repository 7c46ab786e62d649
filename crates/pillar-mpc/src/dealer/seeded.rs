//! Seed-expanding dealers: each party expands its own seed; party 1 also receives corrections.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use super::{Dealer, DealerError, MAX_NEED_WORDS, Masks, Need};
use crate::party::Party;

/// Where party 1's corrected words come from: an in-process trusted dealer, or a dealer
/// process streaming them over the network.
pub trait CorrectionSource: Send {
    /// What [`CorrectionSource::correction`] will be asked for next, in order (see
    /// [`Dealer::announce`]). The default ignores it.
    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        let _ = needs;
        Ok(())
    }

    /// The corrected words of the next `need`, [`Need::correction_words`] long.
    fn correction(&mut self, need: &Need) -> Result<Vec<u64>, DealerError>;
}

/// Fills `n` words from `rng`, little-endian so that both parties' expansions agree on any
/// platform.
pub(crate) fn expand(rng: &mut ChaCha12Rng, n: usize) -> Vec<u64> {
    let mut words = vec![0u64; n];
    rng.fill_bytes(bytemuck::cast_slice_mut(&mut words));
    for w in &mut words {
        *w = u64::from_le(*w);
    }
    words
}

/// One party's dealer: a ChaCha12 stream from the seed the dealer gave it, plus, for party 1,
/// the corrections.
pub struct SeededDealer {
    party: Party,
    rng: ChaCha12Rng,
    corrections: Option<Box<dyn CorrectionSource>>,
}

impl std::fmt::Debug for SeededDealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeededDealer")
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

/// Overwrites a generator's state, so the randomness behind shares and masks does not
/// outlive the session in memory (`black_box` keeps the store from being optimised away).
fn wipe(rng: &mut ChaCha12Rng) {
    *rng = ChaCha12Rng::from_seed([0; 32]);
    std::hint::black_box(rng);
}

impl Drop for SeededDealer {
    fn drop(&mut self) {
        wipe(&mut self.rng);
    }
}

impl Drop for TrustedDealer {
    fn drop(&mut self) {
        wipe(&mut self.p0);
        wipe(&mut self.p1);
    }
}

impl SeededDealer {
    /// Party 0's dealer from its seed: it never hears from the dealer again.
    pub fn server(seed: [u8; 32]) -> Self {
        SeededDealer {
            party: Party::Server,
            rng: ChaCha12Rng::from_seed(seed),
            corrections: None,
        }
    }

    /// Party 1's dealer from its seed and the source of its corrections.
    pub fn client(seed: [u8; 32], corrections: Box<dyn CorrectionSource>) -> Self {
        SeededDealer {
            party: Party::Client,
            rng: ChaCha12Rng::from_seed(seed),
            corrections: Some(corrections),
        }
    }
}

impl Dealer for SeededDealer {
    fn party(&self) -> Party {
        self.party
    }

    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        match &mut self.corrections {
            None => Ok(()),
            Some(source) => source.announce(needs),
        }
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        need.check(MAX_NEED_WORDS)?;
        match &mut self.corrections {
            None => Ok(expand(&mut self.rng, need.words())),
            Some(source) => {
                let mut words = expand(&mut self.rng, need.seeded_words());
                let correction = source.correction(need)?;
                if correction.len() != need.correction_words() {
                    return Err(DealerError::Correction {
                        need: Box::new(need.clone()),
                        expected: need.correction_words(),
                        got: correction.len(),
                    });
                }
                words.extend(correction);
                Ok(words)
            }
        }
    }
}

/// The trusted third party of the paper's benchmarks, run in process: it picks both seeds and
/// computes party 1's corrections by replaying both parties' streams.
pub struct TrustedDealer {
    p0: ChaCha12Rng,
    p1: ChaCha12Rng,
    masks: Masks,
}

impl TrustedDealer {
    /// Dealers for both parties, seeded from the operating system's CSPRNG.
    pub fn pair() -> (SeededDealer, SeededDealer) {
        let mut master: ChaCha12Rng = rand::make_rng();
        Self::from_master(&mut master)
    }

    /// Dealers for both parties from a fixed seed: reproducible, so for tests and benchmarks
    /// only. A fixed seed makes the randomness known to whoever knows the seed.
    pub fn pair_from_seed(seed: u64) -> (SeededDealer, SeededDealer) {
        Self::from_master(&mut ChaCha12Rng::seed_from_u64(seed))
    }

    fn from_master(master: &mut ChaCha12Rng) -> (SeededDealer, SeededDealer) {
        let mut s0 = [0u8; 32];
        let mut s1 = [0u8; 32];
        master.fill_bytes(&mut s0);
        master.fill_bytes(&mut s1);
        (
            SeededDealer::server(s0),
            SeededDealer::client(s1, Box::new(TrustedDealer::from_seeds(s0, s1))),
        )
    }

    /// The dealer's side of a pair of parties seeded with `s0` and `s1`.
    pub(crate) fn from_seeds(s0: [u8; 32], s1: [u8; 32]) -> Self {
        TrustedDealer {
            p0: ChaCha12Rng::from_seed(s0),
            p1: ChaCha12Rng::from_seed(s1),
            masks: Masks::default(),
        }
    }
}

impl CorrectionSource for TrustedDealer {
    /// Checks the shape of `need` first, whoever calls (a correction indexes what its sizes
    /// promise); the size limit is the caller's.
    fn correction(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        need.check(usize::MAX)?;
        let p0 = expand(&mut self.p0, need.words());
        let p1 = expand(&mut self.p1, need.seeded_words());
        need.correction(p0, p1, &mut self.masks)
    }
}
