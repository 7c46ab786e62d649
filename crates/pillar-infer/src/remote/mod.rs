//! Server and client as separate processes: the model owner serves, an image owner connects.
//!
//! # Protocol
//! On a [`TcpChannel`](pillar_mpc::channel::TcpChannel) (Noise with pinned keys unless
//! plaintext was asked for; its greeting checks that one end is the server and the other the
//! client), possibly under the link emulator, in the frames of [`pillar_mpc::wire`]:
//! 1. The server asks its dealer for a session, then sends a `Hello`: its public
//!    [`Architecture`](crate::Architecture) (checked as the client decodes it; without node
//!    names, and without the model's file name) and the session id the client must join, or
//!    why it cannot serve (its dealer is down, say).
//! 2. The client joins the dealer session, and both run the per-connection setup
//!    ([`ServerConnection::open`](crate::ServerConnection::open),
//!    [`ClientConnection::open`](crate::ClientConnection::open)).
//! 3. The client sends a `Request` per batch, then both run it (its offline phase, then its
//!    online phase); only the client learns the logits. `Request::Goodbye` ends the
//!    connection.

mod ahead;
mod client;
mod messages;
mod server;

pub(crate) use client::decode_hello;
pub use client::{RemoteModel, RemoteReport, Timeline};
use messages::{Hello, Request};
pub use server::{Done, ServeOptions, Served, serve};

use pillar_mpc::MpcError;
use pillar_mpc::channel::Security;

use crate::error::InferError;

/// The bytes a client lets one batch take unless told otherwise
/// ([`RemoteModel::with_memory_limit`]): 4 GiB, ample for the paper's networks at small
/// batches, and far below what a hostile architecture could ask for.
pub const DEFAULT_MEMORY_LIMIT: usize = 4 << 30;

/// Why a remote inference failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The two-party computation, its link or its dealer failed, or the peer sent something
    /// this version does not accept.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// The server cannot serve (it says why).
    #[error("the server refused: {0}")]
    Refused(String),
    /// A client asked for more images at once than the server takes.
    #[error("the client asked for a batch of {asked} images; this server takes at most {limit}")]
    BatchTooLarge {
        /// Images asked for.
        asked: usize,
        /// The server's `max_batch`.
        limit: usize,
    },
    /// A client tried to send a batch of no images.
    #[error("an empty batch")]
    EmptyBatch,
    /// The server's architecture cannot be run, or the input does not fit it.
    #[error(transparent)]
    Architecture(InferError),
}

impl From<InferError> for RemoteError {
    /// A failure of the computation, its link or its dealer stays one; anything else is the
    /// architecture's or the input's.
    fn from(e: InferError) -> Self {
        match e {
            InferError::Mpc(e) => RemoteError::Mpc(e),
            e => RemoteError::Architecture(e),
        }
    }
}

impl From<pillar_mpc::channel::ChannelError> for RemoteError {
    fn from(e: pillar_mpc::channel::ChannelError) -> Self {
        RemoteError::Mpc(e.into())
    }
}

impl From<pillar_mpc::dealer::DealerError> for RemoteError {
    fn from(e: pillar_mpc::dealer::DealerError) -> Self {
        RemoteError::Mpc(e.into())
    }
}

/// How a party protects its two links. Each trusts its own keys, so a key pinned for the
/// dealer cannot pass for a client, nor a client's for the dealer.
#[derive(Debug, Clone)]
pub struct Links {
    /// The link to the other party.
    pub peer: Security,
    /// The link to the dealer.
    pub dealer: Security,
}

impl Links {
    /// No encryption or authentication on either link (benchmarks and tests).
    pub fn plaintext() -> Links {
        Links {
            peer: Security::Plaintext,
            dealer: Security::Plaintext,
        }
    }
}
