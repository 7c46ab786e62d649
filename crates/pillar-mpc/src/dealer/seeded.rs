//! Seed-expanding dealers: each party expands its own seed; party 1 also receives corrections,
//! and party 0 may commit what it draws to a dealer process that serves party 1 nothing else.

use std::collections::VecDeque;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Dealer, DealerError, MAX_NEED_WORDS, MaskCell, Masks, Need, WeightMasks};
use crate::party::Party;
use crate::secret::{WipedRng, derive_seed};

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

/// Where party 0 tells a dealer process, in order, every correlation it draws: the dealer
/// expands party 0's stream for party 1's corrections, so a party 1 that asked for anything
/// else would get words of party 0's stream (its weight masks) in its corrections. The dealer
/// serves party 1 only what party 0 committed to.
pub trait Commitment: Send {
    /// Party 0 will draw `needs` next, in this order.
    fn commit(&mut self, needs: &[Need]) -> Result<(), DealerError>;
}

/// Fills `n` words from `rng`, little-endian so that both parties' expansions agree on any
/// platform.
fn expand(rng: &mut WipedRng, n: usize) -> Vec<u64> {
    let mut words = vec![0u64; n];
    fill(rng, &mut words);
    words
}

/// Fills `words` as [`expand`] does.
pub(crate) fn fill(rng: &mut WipedRng, words: &mut [u64]) {
    rng.fill(bytemuck::cast_slice_mut(words));
    for w in words {
        *w = u64::from_le(*w);
    }
}

/// One party's dealer: a ChaCha12 stream from the seed the dealer gave it, plus, for party 1,
/// the corrections.
pub struct SeededDealer {
    party: Party,
    rng: WipedRng,
    corrections: Option<Box<dyn CorrectionSource>>,
    commitment: Option<Committer>,
    /// The weight masks the server told ([`Dealer::weight_masks`]).
    masks: Option<Arc<WeightMasks>>,
    /// Where an in-process dealer reads them.
    mask_cell: Option<MaskCell>,
}

/// Party 0's commitments, and those announced but not drawn yet.
struct Committer {
    sink: Box<dyn Commitment>,
    announced: Announced,
}

/// Needs told to a dealer process ahead of their draws, in order: each draw must be the next
/// one, and a draw with none told ahead is told alone first. What the server commits and
/// what the client announces both keep this order.
#[derive(Debug, Default)]
pub(crate) struct Announced(VecDeque<Need>);

impl Announced {
    /// Tells `needs` with `tell` (nothing for none) and records them.
    pub(crate) fn announce(
        &mut self,
        needs: &[Need],
        tell: impl FnOnce(&[Need]) -> Result<(), DealerError>,
    ) -> Result<(), DealerError> {
        if needs.is_empty() {
            return Ok(());
        }
        tell(needs)?;
        self.0.extend(needs.iter().cloned());
        Ok(())
    }

    /// Takes `need`, which must be the next one told; with none told ahead, tells it alone.
    pub(crate) fn take(
        &mut self,
        need: &Need,
        tell: impl FnOnce(&[Need]) -> Result<(), DealerError>,
    ) -> Result<(), DealerError> {
        match self.0.pop_front() {
            Some(expected) if expected == *need => Ok(()),
            Some(expected) => Err(DealerError::Mismatch {
                expected: Box::new(expected),
                got: Box::new(need.clone()),
            }),
            None => tell(std::slice::from_ref(need)),
        }
    }
}

impl std::fmt::Debug for SeededDealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeededDealer")
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

impl SeededDealer {
    /// Party 0's dealer from its seed: it never hears from the dealer again.
    pub fn server(seed: [u8; 32]) -> Self {
        SeededDealer {
            party: Party::Server,
            rng: WipedRng::from_seed(seed),
            corrections: None,
            commitment: None,
            masks: None,
            mask_cell: None,
        }
    }

    /// Party 0's dealer from its seed, committing every correlation it draws to `sink` (the
    /// dealer process that serves its client, which was told `masks` when the session opened).
    pub fn committed_server(
        seed: [u8; 32],
        sink: Box<dyn Commitment>,
        masks: Arc<WeightMasks>,
    ) -> Self {
        let mut dealer = SeededDealer::server(seed);
        dealer.commitment = Some(Committer {
            sink,
            announced: Announced::default(),
        });
        dealer.masks = Some(masks);
        dealer
    }

    /// Party 1's dealer from its seed and the source of its corrections.
    pub fn client(seed: [u8; 32], corrections: Box<dyn CorrectionSource>) -> Self {
        SeededDealer {
            party: Party::Client,
            rng: WipedRng::from_seed(seed),
            corrections: Some(corrections),
            commitment: None,
            masks: None,
            mask_cell: None,
        }
    }
}

impl Dealer for SeededDealer {
    fn party(&self) -> Party {
        self.party
    }

    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        if let Some(c) = &mut self.commitment {
            c.announced.announce(needs, |n| c.sink.commit(n))?;
        }
        match &mut self.corrections {
            None => Ok(()),
            Some(source) => source.announce(needs),
        }
    }

    fn weight_masks(&mut self, masks: &Arc<WeightMasks>) -> Result<(), DealerError> {
        match &self.masks {
            Some(told) if Arc::ptr_eq(told, masks) || **told == **masks => return Ok(()),
            Some(_) => {
                return Err(DealerError::OutOfOrder(
                    "the server told its dealer two different sets of weight masks",
                ));
            }
            None => {}
        }
        if let Some(cell) = &self.mask_cell {
            *cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(masks));
        }
        self.masks = Some(Arc::clone(masks));
        Ok(())
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        need.check(MAX_NEED_WORDS)?;
        if let Some(c) = &mut self.commitment {
            c.announced.take(need, |n| c.sink.commit(n))?;
        }
        match &mut self.corrections {
            None => Ok(expand(&mut self.rng, need.words())),
            Some(source) => {
                // One buffer of the final size, and the correction wiped after its copy: no
                // reallocation leaves a share behind in freed memory.
                let mut words = vec![0u64; need.words()];
                let (seeded, corrected) = words.split_at_mut(need.seeded_words());
                fill(&mut self.rng, seeded);
                let correction = Zeroizing::new(source.correction(need)?);
                if correction.len() != corrected.len() {
                    return Err(DealerError::Correction {
                        need: Box::new(need.clone()),
                        expected: need.correction_words(),
                        got: correction.len(),
                    });
                }
                corrected.copy_from_slice(&correction);
                Ok(words)
            }
        }
    }
}

/// The trusted third party of the paper's benchmarks, run in process: it picks both seeds and
/// computes party 1's corrections by replaying both parties' streams.
pub struct TrustedDealer {
    p0: WipedRng,
    p1: WipedRng,
    /// The server's weight masks, once its dealer told them.
    masks: MaskCell,
}

impl TrustedDealer {
    /// Dealers for both parties, seeded from the operating system's CSPRNG.
    pub fn pair() -> (SeededDealer, SeededDealer) {
        Self::from_master(&mut WipedRng::from_os())
    }

    /// Dealers for both parties from a fixed seed: reproducible, so for tests and benchmarks
    /// only. A fixed seed makes the randomness known to whoever knows the seed. The master
    /// seed is [`derive_seed`]`(seed, "dealer")`, so a run that seeds its input masks or its
    /// inputs with the same `seed` does not draw the dealer's seeds as its masks.
    pub fn pair_from_seed(seed: u64) -> (SeededDealer, SeededDealer) {
        Self::from_master(&mut WipedRng::from_seed(*derive_seed(seed, "dealer")))
    }

    fn from_master(master: &mut WipedRng) -> (SeededDealer, SeededDealer) {
        let mut s0 = Zeroizing::new([0u8; 32]);
        let mut s1 = Zeroizing::new([0u8; 32]);
        master.fill(s0.as_mut_slice());
        master.fill(s1.as_mut_slice());
        let dealer = TrustedDealer::from_seeds(*s0, *s1);
        let mut server = SeededDealer::server(*s0);
        server.mask_cell = Some(Arc::clone(&dealer.masks));
        (server, SeededDealer::client(*s1, Box::new(dealer)))
    }

    /// The dealer's side of a pair of parties seeded with `s0` and `s1`, before the server
    /// told its weight masks.
    pub(crate) fn from_seeds(s0: [u8; 32], s1: [u8; 32]) -> Self {
        TrustedDealer {
            p0: WipedRng::from_seed(s0),
            p1: WipedRng::from_seed(s1),
            masks: MaskCell::default(),
        }
    }

    /// The dealer's side of a pair whose server told `masks` already (a dealer process
    /// learns them when the server opens the session).
    pub(crate) fn with_weight_masks(self, masks: Arc<WeightMasks>) -> Self {
        *self.masks.lock().unwrap_or_else(|p| p.into_inner()) = Some(masks);
        self
    }
}

impl CorrectionSource for TrustedDealer {
    /// Checks the shape of `need` first, whoever calls (a correction indexes what its sizes
    /// promise); the size limit is the caller's.
    fn correction(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        need.check(usize::MAX)?;
        let p0 = expand(&mut self.p0, need.words());
        let p1 = expand(&mut self.p1, need.seeded_words());
        let masks = Masks(self.masks.lock().unwrap_or_else(|p| p.into_inner()).clone());
        need.correction(p0, p1, &masks)
    }
}
