//! Helpers for tests and benchmarks (feature `test-utils`), where one closure runs as both
//! parties and so both hold every input. Never for a deployment: a party's code that holds
//! its peer's input has already lost the privacy the protocols give. Also dealers with
//! deliberate flaws ([`FlawedDealer`], [`RestartingDealer`]), which the privacy and freshness
//! tests must catch.

use std::sync::Arc;

use crate::dealer::{Dealer, DealerError, Need, SeededDealer, TrustedDealer, WeightMasks};
use crate::error::MpcError;
use crate::party::Party;
use crate::protocols::arith::{receive_share, share};
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// Shares `t` from `owner`: the owner [`share`]s it, the other party receives its share.
pub fn input(s: &mut Session, owner: Party, t: &RingTensor) -> Result<Share, MpcError> {
    if s.party() == owner {
        share(s, t)
    } else {
        receive_share(s, t.shape())
    }
}

/// A deliberate flaw in a dealer, for tests that must show they catch it. Every flaw keeps
/// the correlations correct, so results stay right and only a test of what the parties see
/// can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// HoneyBadger's `r` is zero: `c = y - r` opens the pre-scaled input itself.
    HoneyBadgerZeroR,
    /// ESPN's cross products use a zero mask for the client (`b = 0`): the client sends its
    /// operands in the clear.
    EspnClientMaskZero,
    /// The Beaver and matrix triples (elementwise, matrix, convolution, and those against a
    /// weight mask) are drawn once per connection and reused by every later batch.
    ReusedTriples,
}

/// One party's dealer with a [`Flaw`], around a real one. Both parties' dealers must carry the
/// same flaw, so that their shares still fit together.
#[derive(Debug)]
pub struct FlawedDealer<D> {
    inner: D,
    flaw: Flaw,
    drawn: std::collections::HashMap<Need, Vec<u64>>,
}

impl<D: Dealer> FlawedDealer<D> {
    /// `inner` with `flaw`.
    pub fn new(inner: D, flaw: Flaw) -> Self {
        FlawedDealer {
            inner,
            flaw,
            drawn: std::collections::HashMap::new(),
        }
    }
}

/// Whether `need` is a Beaver or matrix triple, what [`Flaw::ReusedTriples`] reuses.
fn is_triple(need: &Need) -> bool {
    matches!(
        need,
        Need::Beaver { .. }
            | Need::Matmul { .. }
            | Need::Conv2d(_)
            | Need::MaskedConv2d { .. }
            | Need::MaskedMatmul { .. }
            | Need::MaskedScale { .. }
            | Need::PreprocessedConv2d { .. }
            | Need::PreprocessedMatmul { .. }
            | Need::PreprocessedScale { .. }
    )
}

impl<D: Dealer> Dealer for FlawedDealer<D> {
    fn party(&self) -> Party {
        self.inner.party()
    }

    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        self.inner.announce(needs)
    }

    fn weight_masks(&mut self, masks: &Arc<WeightMasks>) -> Result<(), DealerError> {
        self.inner.weight_masks(masks)
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        match (self.flaw, need) {
            // All of r, r^2, .. r^d zero on both sides: r = 0 and its powers still hold.
            (Flaw::HoneyBadgerZeroR, Need::Powers { .. }) => {
                self.inner.generate(need)?;
                Ok(vec![0; need.words()])
            }
            // `mask | c`: the client's mask b and both shares of c = a b = 0 are zero; the
            // server keeps its mask a.
            (Flaw::EspnClientMaskZero, Need::Cross { n }) => {
                let mut words = self.inner.generate(need)?;
                let from = if self.party().is_server() { *n } else { 0 };
                words[from..].fill(0);
                Ok(words)
            }
            (Flaw::ReusedTriples, need) if is_triple(need) => {
                if let Some(words) = self.drawn.get(need) {
                    return Ok(words.clone());
                }
                let words = self.inner.generate(need)?;
                self.drawn.insert(need.clone(), words.clone());
                Ok(words)
            }
            _ => self.inner.generate(need),
        }
    }
}

/// Both parties' dealers from `seed`, each with `flaw`: what a test plays against its
/// detector.
pub fn flawed_pair(
    seed: u64,
    flaw: Flaw,
) -> (FlawedDealer<SeededDealer>, FlawedDealer<SeededDealer>) {
    let (d0, d1) = TrustedDealer::pair_from_seed(seed);
    (FlawedDealer::new(d0, flaw), FlawedDealer::new(d1, flaw))
}

/// One party's dealer whose stream restarts from the same seed at every draw, as a seeded
/// expansion that forgot to keep its position would: every correlation of one size is then
/// the same. Unfit for products against weight masks (each restart forgets the masks told).
#[derive(Debug)]
pub struct RestartingDealer {
    seed: u64,
    party: Party,
}

impl RestartingDealer {
    /// Both parties' dealers from `seed`.
    pub fn pair(seed: u64) -> (RestartingDealer, RestartingDealer) {
        (
            RestartingDealer {
                seed,
                party: Party::Server,
            },
            RestartingDealer {
                seed,
                party: Party::Client,
            },
        )
    }
}

impl Dealer for RestartingDealer {
    fn party(&self) -> Party {
        self.party
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        let (d0, d1) = TrustedDealer::pair_from_seed(self.seed);
        let mut dealer = if self.party.is_server() { d0 } else { d1 };
        dealer.generate(need)
    }

    fn weight_masks(&mut self, _: &Arc<WeightMasks>) -> Result<(), DealerError> {
        Err(DealerError::OutOfOrder(
            "a restarting dealer forgets weight masks at every draw",
        ))
    }
}

/// The largest chi-square statistic of uniformity over the 8 byte positions of `words`, and
/// the position: what the privacy tests ask of every value a party sees. At 255 degrees of
/// freedom its 10^-6 critical value is about 377 (Wilson-Hilferty).
pub fn byte_uniformity(words: &[u64]) -> (f64, usize) {
    let expected = words.len() as f64 / 256.0;
    (0..8)
        .map(|byte| {
            let mut h = [0f64; 256];
            for w in words {
                h[((w >> (8 * byte)) & 0xff) as usize] += 1.0;
            }
            let stat = h.iter().map(|o| (o - expected).powi(2) / expected).sum();
            (stat, byte)
        })
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}
