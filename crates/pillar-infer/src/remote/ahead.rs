//! Telling the dealer early: a party's dealer that announces a run's correlations before the
//! run asks for them.

use std::collections::VecDeque;

use pillar_mpc::Party;
use std::sync::Arc;

use pillar_mpc::dealer::{Dealer, DealerError, Need, WeightMasks};

/// A dealer to which this party told some needs ahead ([`Ahead::tell`]): the server commits
/// them to the dealer process at once, the client announces them, so the dealer streams the
/// client's corrections for the setup and the first request together, while the setup's
/// round trips are under way, instead of one phase after the other. When the session later
/// announces the same needs (the setup's, the batch's prefetch), they are not told again.
pub(crate) struct Ahead<D> {
    inner: D,
    told: VecDeque<Need>,
}

impl<D: Dealer> Ahead<D> {
    /// `inner`, with nothing told ahead.
    pub(crate) fn new(inner: D) -> Self {
        Ahead {
            inner,
            told: VecDeque::new(),
        }
    }

    /// `inner`, which has told its dealer `needs` already (joining with them, say).
    pub(crate) fn told(inner: D, needs: &[Need]) -> Self {
        Ahead {
            inner,
            told: needs.iter().cloned().collect(),
        }
    }

    /// Tells the dealer now that `needs` will be drawn next, in this order.
    pub(crate) fn tell(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        self.inner.announce(needs)?;
        self.told.extend(needs.iter().cloned());
        Ok(())
    }
}

impl<D: Dealer> Dealer for Ahead<D> {
    fn party(&self) -> Party {
        self.inner.party()
    }

    /// Needs told ahead are taken off, in order, without telling them again; a session that
    /// announces anything else while some are left deviates from what the dealer was told.
    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        let mut rest = needs;
        while let (Some(first), Some(told)) = (rest.first(), self.told.front()) {
            if first != told {
                return Err(DealerError::Mismatch {
                    expected: Box::new(told.clone()),
                    got: Box::new(first.clone()),
                });
            }
            self.told.pop_front();
            rest = &rest[1..];
        }
        self.inner.announce(rest)
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        self.inner.generate(need)
    }

    fn weight_masks(&mut self, masks: &Arc<WeightMasks>) -> Result<(), DealerError> {
        self.inner.weight_masks(masks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is told.
    struct Recording(Vec<Vec<Need>>);

    impl Dealer for Recording {
        fn party(&self) -> Party {
            Party::Client
        }
        fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
            if !needs.is_empty() {
                self.0.push(needs.to_vec());
            }
            Ok(())
        }
        fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
            Ok(vec![0; need.words()])
        }
        fn weight_masks(&mut self, _: &Arc<WeightMasks>) -> Result<(), DealerError> {
            Ok(())
        }
    }

    fn need(n: usize) -> Need {
        Need::Beaver { n }
    }

    #[test]
    fn needs_told_ahead_are_not_told_again_and_the_rest_pass() {
        let mut d = Ahead::new(Recording(Vec::new()));
        d.tell(&[need(1), need(2), need(3)]).unwrap();
        d.announce(&[need(1)]).unwrap();
        d.announce(&[need(2), need(3), need(4)]).unwrap();
        d.announce(&[need(5)]).unwrap();
        assert_eq!(
            d.inner.0,
            vec![
                vec![need(1), need(2), need(3)],
                vec![need(4)],
                vec![need(5)]
            ]
        );
    }

    #[test]
    fn announcing_other_needs_than_told_is_refused() {
        let mut d = Ahead::new(Recording(Vec::new()));
        d.tell(&[need(1), need(2)]).unwrap();
        assert!(matches!(
            d.announce(&[need(1), need(7)]),
            Err(DealerError::Mismatch { .. })
        ));
    }
}
