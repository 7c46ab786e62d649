//! Correlated randomness: what each protocol consumes, and who makes it.
//!
//! Every correlation is described by a [`Need`] and handed to a party as a flat buffer of its
//! share, laid out as the `Need` documents. The layout always puts the words the client (P1)
//! gets *from the dealer* last: everything else either party expands from a seed. That is what
//! lets a dealer ship two seeds plus one correction per correlation instead of whole triples,
//! in process ([`TrustedDealer`]) or, later, from a dealer process.

mod need;
pub mod remote;
mod seeded;

pub use crate::correlation::Masks;
pub use need::Need;
pub use seeded::{CorrectionSource, SeededDealer, TrustedDealer};

use crate::party::Party;

/// The largest correlation a dealer makes, in words of one party's share (2 GiB): far beyond
/// what a batch of ImageNet images needs, and small enough that a corrupt size is refused
/// rather than attempted.
pub const MAX_NEED_WORDS: usize = 1 << 28;

/// Why correlated randomness could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DealerError {
    /// The protocol asked for something other than what the plan prefetched.
    #[error(
        "the protocol asked the dealer for {got:?} but the prefetched plan has {expected:?} next"
    )]
    Mismatch {
        /// What was prefetched next.
        expected: Box<Need>,
        /// What was asked for.
        got: Box<Need>,
    },
    /// The dealer (or its connection) is gone; the message says which and why.
    #[error("{0}")]
    Unavailable(String),
    /// The dealer refused the request (an unknown or expired session, say).
    #[error("the dealer refused: {0}")]
    Refused(String),
    /// A malformed message: the peer is not a pillar dealer (or client) of this version.
    #[error("dealer protocol error: {0}")]
    Protocol(String),
    /// A frame or message from the dealer, or a client, that this side does not accept.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    /// A correction of the wrong size arrived.
    #[error("the dealer sent {got} correction words for {need:?}, expected {expected}")]
    Correction {
        /// The correlation.
        need: Box<Need>,
        /// Words expected.
        expected: usize,
        /// Words received.
        got: usize,
    },
}

/// A source of one party's shares of correlated randomness.
pub trait Dealer: Send {
    /// The party this dealer serves.
    fn party(&self) -> Party;

    /// Tells the dealer what [`Dealer::generate`] will be asked for next, in order, so that
    /// a remote dealer can compute and send it ahead of the asking. The default ignores it.
    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        let _ = needs;
        Ok(())
    }

    /// This party's share of a fresh instance of `need`, [`Need::words`] long.
    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError>;
}

impl<D: Dealer + ?Sized> Dealer for Box<D> {
    fn party(&self) -> Party {
        (**self).party()
    }

    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        (**self).announce(needs)
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        (**self).generate(need)
    }
}
