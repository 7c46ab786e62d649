//! How the parties talk: one [`Channel::exchange`] per communication round.
//!
//! Protocol code sees only this trait. Both parties call `exchange` at the same point of the
//! protocol; each sends its buffer and receives the peer's, so one call is one round however
//! much data moves. Buffers are ring words; the receiver always knows how many to expect, so a
//! frame of another length is an error, never a reinterpretation. Between protocol runs an
//! application sends typed control messages one way ([`send`], [`recv`]: a batch request, a
//! goodbye), in the frames of [`crate::wire`].

mod admission;
mod emulator;
mod memory;
pub mod secure;
mod tcp;

pub use admission::{Admission, Ticket, accept_loop};
pub use emulator::{Emulated, Link};
pub use memory::{MemoryChannel, memory_pair};
pub use secure::{Identity, PublicKey, Security};
pub use tcp::TcpChannel;
pub(crate) use tcp::read_words;

use std::time::Duration;

use crate::party::Party;
use crate::wire::{self, Message, WireError};

/// How long a receive waits for the peer before it gives up, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Communication counted by a channel. Bytes are payload bytes (8 per ring word), the unit the
/// paper and CrypTen report; framing overhead is not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `exchange`.
    pub rounds: u64,
    /// Payload bytes this party sent.
    pub bytes_sent: u64,
    /// Payload bytes this party received.
    pub bytes_received: u64,
}

impl Stats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            rounds: self.rounds - earlier.rounds,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
        }
    }

    pub(crate) fn record(&mut self, sent_words: usize, received_words: usize) {
        self.record_bytes(8 * sent_words, 8 * received_words);
    }

    /// A round of `sent` and `received` payload bytes (a control message).
    pub(crate) fn record_bytes(&mut self, sent: usize, received: usize) {
        self.rounds += 1;
        self.bytes_sent += sent as u64;
        self.bytes_received += received as u64;
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The peer is gone.
    #[error("the peer closed the connection")]
    Closed,
    /// Nothing arrived in time.
    #[error("no message from the peer within {0:?}")]
    Timeout(Duration),
    /// The peer sent a frame of the wrong length: the two sides disagree on the protocol.
    #[error("the peer sent {got} ring words where the protocol expects {expected}")]
    FrameLength {
        /// Words this side expected.
        expected: usize,
        /// Words the frame holds.
        got: u64,
    },
    /// The connection was not opened by a pillar peer of this version, or the peer's key is
    /// not trusted (or it does not trust ours).
    #[error("handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
    /// Both ends claim the same role.
    #[error(
        "handshake failed: both ends claim to be {0}; one side must be the server and the other the client"
    )]
    SameRole(Party),
    /// An encrypted message failed authentication: altered, replayed or reordered on the way.
    #[error("{}", secure::Integrity)]
    Integrity,
    /// A frame or control message this side does not accept.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Any other socket error. (Not marked as the error's source: the message already holds
    /// it, and a report that prints the chain would say it twice.)
    #[error("network error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for ChannelError {
    fn from(e: std::io::Error) -> Self {
        ChannelError::Io(e)
    }
}

/// A bidirectional link to the other party that counts rounds and bytes.
pub trait Channel: Send {
    /// One round: sends `send` and fills `recv` with exactly `recv.len()` words from the peer.
    /// Either buffer may be empty (a one-way message is still a round for both).
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError>;

    /// One control message to the peer, which calls [`Channel::recv_message`]; a round.
    fn send_message(&mut self, bytes: &[u8]) -> Result<(), ChannelError>;

    /// The peer's next control message, `what` in errors, refused before it is read if
    /// longer than `limit` bytes; a round.
    fn recv_message(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, ChannelError>;

    /// Everything counted so far.
    fn stats(&self) -> Stats;
}

impl<C: Channel + ?Sized> Channel for Box<C> {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        (**self).exchange(send, recv)
    }

    fn send_message(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        (**self).send_message(bytes)
    }

    fn recv_message(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, ChannelError> {
        (**self).recv_message(what, limit)
    }

    fn stats(&self) -> Stats {
        (**self).stats()
    }
}

/// Sends the control message `m` to the peer, which calls [`recv`].
pub fn send<M: Message>(ch: &mut (impl Channel + ?Sized), m: &M) -> Result<(), ChannelError> {
    ch.send_message(&wire::encode(m)?)
}

/// The peer's next control message, which must be an `M`, decoded with `M`'s checks.
pub fn recv<M: Message>(ch: &mut (impl Channel + ?Sized)) -> Result<M, ChannelError> {
    let bytes = ch.recv_message(M::WHAT, M::MAX_BYTES)?;
    Ok(wire::decode(&bytes)?)
}
