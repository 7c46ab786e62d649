//! One party's end of a two-party computation: who it is, its link, its dealer.

use std::collections::VecDeque;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::channel::{self, Channel, Stats};
use crate::correlation::{self, Correlation};
use crate::dealer::{Dealer, DealerError, Need};
use crate::error::MpcError;
use crate::gate::{Gate, Turn};
use crate::party::Party;
use crate::ring::FixedPoint;
use crate::secret::{WipedRng, derive_seed};
use crate::wire::Message;

/// Everything a protocol step needs on one side. Protocols are functions of a `&mut Session`
/// and shares; they reach the network only through the session's [`Channel`] and randomness
/// only through its [`Dealer`] (and its CSPRNG for masking inputs).
pub struct Session {
    party: Party,
    fixed: FixedPoint,
    channel: Box<dyn Channel>,
    dealer: Box<dyn Dealer>,
    /// Wiped when used or dropped, like the generator: they are this party's shares of the
    /// masks.
    prefetched: VecDeque<(Need, Zeroizing<Vec<u64>>)>,
    rng: WipedRng,
    /// The gate this session computes through, and its turn while it computes.
    gate: Option<(Arc<Gate>, Option<Turn>)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("party", &self.party)
            .field("fixed", &self.fixed)
            .field("stats", &self.channel.stats())
            .field("prefetched", &self.prefetched.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for `party`, masking its inputs with a CSPRNG seeded by the operating system.
    pub fn new(
        party: Party,
        fixed: FixedPoint,
        channel: impl Channel + 'static,
        dealer: impl Dealer + 'static,
    ) -> Result<Self, MpcError> {
        if dealer.party() != party {
            return Err(MpcError::invalid(
                "session",
                format!("{party} was given the dealer of {}", dealer.party()),
            ));
        }
        Ok(Session {
            party,
            fixed,
            channel: Box::new(channel),
            dealer: Box::new(dealer),
            prefetched: VecDeque::new(),
            rng: WipedRng::from_os(),
            gate: None,
        })
    }

    /// Computes through `gate`: from now on this session holds one of its turns while it
    /// computes and gives it back while it waits for its peer (see [`crate::gate`]).
    pub fn with_gate(mut self, gate: Arc<Gate>) -> Self {
        let turn = gate.enter();
        self.gate = Some((gate, Some(turn)));
        self
    }

    /// Runs `io`, a wait for the peer, without holding a turn of the gate.
    fn waiting<R>(&mut self, io: impl FnOnce(&mut Box<dyn Channel>) -> R) -> R {
        if let Some((_, turn)) = &mut self.gate {
            drop(turn.take());
        }
        let r = io(&mut self.channel);
        if let Some((gate, turn)) = &mut self.gate {
            *turn = Some(gate.enter());
        }
        r
    }

    /// Replaces the input-masking CSPRNG by one from a fixed seed: reproducible runs in tests
    /// and benchmarks only. Each party's stream is [`derive_seed`]`(seed, "masks of P<i>")`,
    /// apart from the other party's and from the dealer's of the same `seed`.
    pub fn with_mask_seed(mut self, seed: u64) -> Self {
        let label = format!("masks of P{}", self.party.index());
        self.rng = WipedRng::from_seed(*derive_seed(seed, &label));
        self
    }

    /// Which party this is.
    pub fn party(&self) -> Party {
        self.party
    }

    /// The fixed-point format.
    pub fn fixed(&self) -> FixedPoint {
        self.fixed
    }

    /// Rounds and bytes so far.
    pub fn stats(&self) -> Stats {
        self.channel.stats()
    }

    /// The offline phase: fetches the correlations `needs` (in the order the protocol will ask
    /// for them) so that the online phase does not wait for the dealer.
    pub fn prefetch(&mut self, needs: &[Need]) -> Result<(), MpcError> {
        self.dealer.announce(needs)?;
        for need in needs {
            let words = Zeroizing::new(self.dealer.generate(need)?);
            self.prefetched.push_back((need.clone(), words));
        }
        Ok(())
    }

    /// Tells the dealer the server's weight masks ([`Dealer::weight_masks`]).
    pub fn weight_masks(
        &mut self,
        masks: &std::sync::Arc<crate::dealer::WeightMasks>,
    ) -> Result<(), MpcError> {
        Ok(self.dealer.weight_masks(masks)?)
    }

    /// Tells the dealer what the protocol will ask for next, in order, without fetching it:
    /// each is then generated when asked for. What a step that consumes its correlations as
    /// it draws them uses (the setup's weight masks), so that they are never all held at once.
    pub fn announce(&mut self, needs: &[Need]) -> Result<(), MpcError> {
        Ok(self.dealer.announce(needs)?)
    }

    /// Correlations fetched and not yet used.
    pub fn prefetched(&self) -> usize {
        self.prefetched.len()
    }

    /// This party's share of a correlation of kind `C` and `size`, typed: the next
    /// prefetched one, which must be that, or a fresh one from the dealer when nothing is
    /// prefetched.
    pub(crate) fn correlation<C: Correlation>(&mut self, size: C::Size) -> Result<C, MpcError> {
        let need = C::need(&size);
        let layout = C::layout(&size);
        let words = self.correlation_words(need.clone())?;
        // A dealer of this crate always gives `layout.words()`; another `Dealer` may not.
        if words.len() != layout.words() {
            return Err(DealerError::Correction {
                expected: layout.words(),
                got: words.len(),
                need: Box::new(need),
            }
            .into());
        }
        Ok(correlation::share(words, &layout))
    }

    /// The words of `need`, as [`Session::correlation`] takes them.
    fn correlation_words(&mut self, need: Need) -> Result<Vec<u64>, MpcError> {
        match self.prefetched.pop_front() {
            // The buffer moves on to the correlation, which wipes it in turn.
            Some((expected, mut words)) if expected == need => Ok(std::mem::take(&mut *words)),
            Some((expected, _)) => Err(DealerError::Mismatch {
                expected: Box::new(expected),
                got: Box::new(need),
            }
            .into()),
            None => Ok(self.dealer.generate(&need)?),
        }
    }

    /// One round: sends `send`, returns the peer's `n` words. Protocols use it; so do
    /// applications for their own control messages between protocol runs (a batch size, say),
    /// which then count as rounds like any other.
    pub fn exchange(&mut self, send: &[u64], n: usize) -> Result<Vec<u64>, MpcError> {
        let mut recv = vec![0u64; n];
        self.waiting(|c| c.exchange(send, &mut recv))?;
        Ok(recv)
    }

    /// Sends the control message `m` to the peer (a request between protocol runs, say),
    /// which calls [`Session::recv`]. It counts as a round.
    pub fn send<M: Message>(&mut self, m: &M) -> Result<(), MpcError> {
        Ok(self.waiting(|c| channel::send(c, m))?)
    }

    /// The peer's next control message, which must be an `M`, decoded with its checks.
    pub fn recv<M: Message>(&mut self) -> Result<M, MpcError> {
        Ok(self.waiting(|c| channel::recv(c))?)
    }

    /// Uniform ring words from the session's CSPRNG: this party's own masks (a client's
    /// re-masking of a value many steps read, say).
    pub fn random_words(&mut self, n: usize) -> Vec<u64> {
        let mut words = vec![0u64; n];
        self.rng.fill(bytemuck::cast_slice_mut(&mut words));
        words
    }
}
