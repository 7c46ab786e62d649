//! Correlated randomness: what each protocol consumes, and who makes it.
//!
//! Every correlation is described by a [`Need`] and handed to a party as a flat buffer of its
//! share, laid out as the `Need` documents. The layout always puts the words the client (P1)
//! gets *from the dealer* last: everything else either party expands from a seed. That is what
//! lets a dealer ship two seeds plus one correction per correlation instead of whole triples,
//! in process ([`TrustedDealer`]) or, later, from a dealer process.

mod masks;
mod need;
pub mod remote;
mod seeded;

pub(crate) use crate::correlation::Masks;
pub(crate) use masks::MaskCell;
pub use masks::{MAX_WEIGHTS, WeightMasks};
pub use need::Need;
pub use seeded::{Commitment, CorrectionSource, SeededDealer, TrustedDealer};

use std::sync::Arc;

use crate::party::Party;

/// The largest correlation a dealer makes, in words of one party's share (2 GiB): far beyond
/// what a batch of ImageNet images needs, and small enough that a corrupt size is refused
/// rather than attempted.
pub const MAX_NEED_WORDS: usize = 1 << 28;

/// Why correlated randomness could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The link to the dealer (or to one of its clients) failed while `what` was under way.
    #[error("{what}: {cause}")]
    Unavailable {
        /// What was under way ("cannot reach the dealer at 10.0.0.2:7879").
        what: String,
        /// How the link failed.
        #[source]
        cause: LinkFailure,
    },
    /// The dealer refused the request (an unknown or expired session, say); its reason.
    #[error("the dealer refused: {0}")]
    Refused(String),
    /// A client asked the dealer for a correlation other than the one its server committed to
    /// next: what the dealer refuses (and tells the server).
    #[error(
        "the client deviated from the plan its server committed to: it asked for {asked:?} as correlation {index}, the server committed {committed:?}"
    )]
    Diverged {
        /// The correlation's number in the session, from 0.
        index: usize,
        /// What the client asked for.
        asked: Box<Need>,
        /// What the server committed to.
        committed: Box<Need>,
    },
    /// The dealer told this server that its client deviated from the committed plan, and that
    /// it refused the client (its words).
    #[error("the dealer refused this connection's client: {0}")]
    ClientDeviated(String),
    /// A session's corrections would take more memory at the dealer than it gives one session.
    #[error(
        "{need:?} would hold {words} words at the dealer with {held} held already; a session may hold {limit}"
    )]
    Budget {
        /// The correlation.
        need: Box<Need>,
        /// Words it needs while computed, sent or kept.
        words: usize,
        /// Words the session holds already (corrections under way).
        held: usize,
        /// The session's budget.
        limit: usize,
    },
    /// A need whose sizes the dealer will not serve.
    #[error("{need:?}: {problem}")]
    Need {
        /// The need.
        need: Box<Need>,
        /// What is wrong with it.
        #[source]
        problem: NeedProblem,
    },
    /// Text that is not a session id (the text given).
    #[error("{0:?} is not a session id (32 hex digits)")]
    SessionId(String),
    /// The dealer answered for another session than the one asked to join.
    #[error("the dealer answered for session {answered} when asked to join {asked}")]
    WrongSession {
        /// The session asked for (its tag).
        asked: String,
        /// The session answered (its tag).
        answered: String,
    },
    /// A peer that broke the protocol's order (a seed in place of a correction, say).
    #[error("dealer protocol error: {0}")]
    OutOfOrder(&'static str),
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

/// How a link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkFailure {
    /// Nothing arrived in time.
    #[error("timed out")]
    TimedOut,
    /// The peer closed the connection.
    #[error("the connection closed")]
    Closed,
    /// The handshake failed (an untrusted key, a plaintext peer, not pillar).
    #[error("handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
    /// A message failed authentication: altered, replayed or reordered on the way.
    #[error("{0}")]
    Integrity(#[source] std::io::Error),
    /// Any other socket error, or no address to connect to.
    #[error("{0}")]
    Io(#[source] std::io::Error),
}

/// Why a need is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NeedProblem {
    /// A size of 0: an empty correlation, or a product over no channels.
    #[error("an empty size among {sizes:?} (each must be at least 1)")]
    Empty {
        /// The need's sizes.
        sizes: Vec<usize>,
    },
    /// A size beyond the largest count, before any product is formed.
    #[error("size {size} is beyond {limit}")]
    Count {
        /// The size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More words than the dealer serves.
    #[error("{words} words is beyond the limit of {limit}")]
    Words {
        /// Words per party.
        words: usize,
        /// The limit.
        limit: usize,
    },
    /// A polynomial degree beyond the protocols'.
    #[error("degree {degree} is beyond {limit}")]
    Degree {
        /// The degree.
        degree: usize,
        /// The highest supported.
        limit: usize,
    },
    /// A shift beyond a word.
    #[error("shift {0} is beyond a 64-bit word")]
    Shift(u32),
    /// A convolution geometry the kernels refuse.
    #[error(transparent)]
    Geometry(Box<crate::MpcError>),
    /// A weight mask the server's model does not have (or, with `drawn` 0, no server told
    /// the dealer its masks).
    #[error("it uses weight mask {mask}, but the server told the dealer {drawn}")]
    NoMask {
        /// The mask asked for.
        mask: usize,
        /// Masks the server told.
        drawn: usize,
    },
    /// A weight mask of another size than the product needs.
    #[error("it needs a weight mask of {needs} elements; mask {mask} has {has}")]
    MaskSize {
        /// The mask.
        mask: usize,
        /// Elements the product needs.
        needs: usize,
        /// Elements the mask has.
        has: usize,
    },
    /// A per-channel product with no channels.
    #[error("it scales {elements} elements by no channels")]
    NoChannels {
        /// Elements.
        elements: usize,
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

    /// The server tells its dealer the weight masks of its model, before any product against
    /// them is drawn: the dealer computes the client's corrections of those products from
    /// them. Telling the same masks again does nothing; other masks are refused. No default:
    /// a dealer that wraps another must pass them on, or its client's corrections fail.
    fn weight_masks(&mut self, masks: &Arc<WeightMasks>) -> Result<(), DealerError>;
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

    fn weight_masks(&mut self, masks: &Arc<WeightMasks>) -> Result<(), DealerError> {
        (**self).weight_masks(masks)
    }
}
