//! The control messages between server and client, each checked as it is decoded.

use std::num::NonZeroUsize;

use pillar_mpc::dealer::remote::SessionId;
use pillar_mpc::protocols::weights::WeightsDigest;
use pillar_mpc::wire::Message;
use serde::{Deserialize, Serialize};

use crate::plan::Architecture;

/// What the server says first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Hello {
    /// Ready to serve.
    Ready {
        /// The public network, checked as it is decoded. Its steps carry no node names, and
        /// the model's file name is not sent: the client needs neither, and they can say what
        /// the model is or who made it.
        architecture: Box<Architecture>,
        /// The dealer session to join.
        session: SessionId,
        /// Most images in one request, so that the client splits its images or refuses up
        /// front instead of having the connection cut under it.
        max_batch: NonZeroUsize,
        /// The digest of the model's `F = W - B`: a client that kept that `F` from an
        /// earlier connection says so in its first request, and the setup sends nothing.
        weights: WeightsDigest,
    },
    /// Cannot serve.
    Refused {
        /// Why.
        reason: String,
    },
}

impl Message for Hello {
    const WHAT: &'static str = "server's hello";
    /// An architecture is a few kilobytes; 16 MiB bounds what a hostile server can make a
    /// client read.
    const MAX_BYTES: usize = 16 << 20;
}

/// What the client asks, per batch, until it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Request {
    /// One batch of this many images (never zero).
    Batch {
        /// Images in the batch.
        images: NonZeroUsize,
        /// In the first request only: the client kept the `F` the hello named, so the
        /// server skips the setup.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        weights_kept: bool,
    },
    /// The client is done.
    Goodbye,
}

impl Message for Request {
    const WHAT: &'static str = "client's request";
    const MAX_BYTES: usize = 256;
}
