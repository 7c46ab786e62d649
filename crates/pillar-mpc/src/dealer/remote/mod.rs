//! The dealer as a process of its own, reached by both parties over TCP.
//!
//! # Protocol
//! Every connection runs inside a `Stream` (Noise with
//! pinned keys unless plaintext was asked for, so nobody on the path learns a seed or a
//! correction, and only the parties whose keys the dealer trusts get any) and speaks the
//! frames of [`crate::wire`]. A party's first message is a `DealerRequest`:
//! - the server's (party 0) is `DealerRequest::Open`, with its model's weight masks
//!   ([`WeightMasks`](super::WeightMasks): a seed and the masks' lengths): the dealer draws two
//!   seeds from the operating system's CSPRNG, keeps them and the masks under a fresh random
//!   128-bit [`SessionId`], and answers `DealerReply::Seed` with the id and seed 0. The server expands everything from its
//!   seed and hands the id to its client. It keeps the connection open and commits, in order,
//!   every correlation it draws (`Announce` messages: its needs, as it announces or draws them);
//! - the client's (party 1) is `DealerRequest::Join` with that id: the dealer answers with
//!   seed 1, then serves corrections on the same connection. The client announces what it will
//!   ask for (`Announce`, its needs checked as they are decoded), and the dealer answers each
//!   need, in order, with a frame of its correction words. A writer thread sends while the
//!   next correction is computed, so corrections are under way before the client asks.
//!
//! # Why the server commits
//! A correction is computed from both parties' streams: `c - p0[..]` for party 0's words at
//! the position the need takes in its stream. A client that asked for other needs than the
//! server draws would place the corrections over the server's words of another kind: a `Bit`
//! need where the server's share `r_0` of a HoneyBadger mask lies returns `bit - r_0` (one
//! unknown bit), and the opened `y - r` then gives the client that activation's input. (When
//! the weight masks still lay in the server's stream, the same attack gave the weights.) So
//! the dealer serves the client's `i`-th
//! need only if it is the server's `i`-th commitment (waiting for it if the client is ahead);
//! a client that deviates is refused before it gets a word of that correction, and the dealer
//! tells the server (`DealerReply::Refused` on the server's connection), which ends the
//! connection ([`DealerWatch`]).
//!
//! With Noise, the dealer binds roles to keys ([`DealerLinks`]): only a server's key may open
//! a session, only a client's may join one.
//!
//! A refusal (an unknown, expired or already joined session, a need beyond the limits or the
//! session's memory budget, one the server did not commit to) is a `DealerReply::Refused` in
//! place of the answer. A session is joined at most once, and one never joined expires.
//!
//! The dealer sees both seeds, so it must not collude with either party: the paper's trusted
//! third party.

mod client;
mod service;

pub use client::{DealerLink, DealerWatch, OpenedSession, dial, join_session, open_session};
pub use service::{DealerLinks, DealerService, ServiceConfig};

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use super::{DealerError, LinkFailure, MAX_NEED_WORDS, MAX_WEIGHTS, Need, WeightMasks};
use crate::channel::secure::is_integrity;
use crate::wire::{self, Header, Message, ReadError};

/// Longest announcement accepted, in bytes.
const MAX_ANNOUNCE_BYTES: usize = 64 << 20;
/// Longest refusal reason sent, in bytes.
const MAX_REASON_BYTES: usize = 4096;

/// Names one pair of seeds at the dealer: 128 random bits, shown as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// The first 8 hex digits, for logs: the whole id lets whoever holds it (and a key the
    /// dealer trusts) join the session, so it is never logged.
    pub fn tag(&self) -> String {
        hex(&self.0[..4]) + "…"
    }
}

/// Lower-case hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2 N` hex digits into `N` bytes.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl FromStr for SessionId {
    type Err = DealerError;

    fn from_str(s: &str) -> Result<Self, DealerError> {
        unhex(s)
            .map(SessionId)
            .ok_or_else(|| DealerError::SessionId(s.to_string()))
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(HexOf("a session id of 32 hex digits"))
            .map(|b| SessionId(*b))
    }
}

/// Decodes `2 N` hex digits into bytes wiped when dropped; the text is what was expected.
struct HexOf<const N: usize>(&'static str);

impl<const N: usize> Visitor<'_> for HexOf<N> {
    type Value = Zeroizing<[u8; N]>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        unhex(v)
            .map(Zeroizing::new)
            .ok_or_else(|| E::custom(format!("expected {}", self.0)))
    }
}

/// A party's 32-byte seed, wiped from memory when dropped; 64 hex digits on the wire (inside
/// the encrypted stream), never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Seed(Zeroizing<[u8; 32]>);

impl Seed {
    /// A seed of these bytes.
    pub(crate) fn new(bytes: [u8; 32]) -> Self {
        Seed(Zeroizing::new(bytes))
    }

    /// The seed's bytes.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex(self.0.as_slice())))
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(HexOf("a seed of 64 hex digits"))
            .map(Seed)
    }
}

/// What a party asks the dealer first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DealerRequest {
    /// The server asks for a new session, for a model with these weight masks.
    Open {
        /// Its model's weight masks.
        weight_masks: WeightMasks,
    },
    /// The client joins its server's session.
    Join {
        /// The session its server opened.
        session: SessionId,
    },
}

impl Message for DealerRequest {
    const WHAT: &'static str = "request to the dealer";
    /// A join, or an open with the most weight masks (a length's digits and a comma each).
    const MAX_BYTES: usize = 256 + 12 * MAX_WEIGHTS;
}

/// The dealer's answer to a request, or its refusal of a request or an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DealerReply {
    /// The session and the asking party's seed.
    Seed {
        /// The session.
        session: SessionId,
        /// The party's seed.
        seed: Seed,
    },
    /// Why the dealer will not serve this.
    Refused {
        /// What it said.
        reason: String,
    },
}

impl DealerReply {
    /// A refusal, its reason cut to a length the peer accepts.
    fn refused(reason: &str) -> DealerReply {
        let mut end = reason.len().min(MAX_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        DealerReply::Refused {
            reason: reason[..end].to_string(),
        }
    }
}

impl Message for DealerReply {
    const WHAT: &'static str = "dealer's reply";
    const MAX_BYTES: usize = 2 * MAX_REASON_BYTES;
}

/// The correlations a client will ask for next, in order. Each need's sizes are checked as
/// it is decoded ([`Need::check`] against [`MAX_NEED_WORDS`]), so an announcement in memory
/// asks for nothing the dealer refuses to size; a dealer with a smaller limit checks again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Need>", into = "Vec<Need>")]
pub(crate) struct Announce(Vec<Need>);

impl Announce {
    /// The needs, in order.
    pub(crate) fn needs(&self) -> &[Need] {
        &self.0
    }
}

impl TryFrom<Vec<Need>> for Announce {
    type Error = DealerError;

    fn try_from(needs: Vec<Need>) -> Result<Self, DealerError> {
        for need in &needs {
            need.check(MAX_NEED_WORDS)?;
        }
        Ok(Announce(needs))
    }
}

impl From<Announce> for Vec<Need> {
    fn from(a: Announce) -> Self {
        a.0
    }
}

impl Message for Announce {
    const WHAT: &'static str = "announcement";
    const MAX_BYTES: usize = MAX_ANNOUNCE_BYTES;
}

// The message exchange both sides of a dealer link speak.

/// What an I/O error means for the dealer protocol, `what` saying what was under way.
fn io_error(what: &str, e: io::Error) -> DealerError {
    let cause = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => LinkFailure::TimedOut,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => LinkFailure::Closed,
        io::ErrorKind::PermissionDenied => LinkFailure::Handshake(e),
        io::ErrorKind::InvalidData if is_integrity(&e) => LinkFailure::Integrity(e),
        _ => LinkFailure::Io(e),
    };
    DealerError::Unavailable {
        what: what.to_string(),
        cause,
    }
}

/// A failed frame read as the dealer protocol sees it.
fn read_error(what: &str, e: ReadError) -> DealerError {
    match e {
        ReadError::Io(e) => io_error(what, e),
        ReadError::Wire(e) => e.into(),
    }
}

/// Sends the message `m` on `w`; the encoding is wiped once sent (it may hold a seed).
fn send<M: Message>(w: &mut impl Write, m: &M) -> Result<(), DealerError> {
    let bytes = Zeroizing::new(wire::encode(m)?);
    wire::write_message(w, &bytes).map_err(|e| io_error(&format!("sending the {}", M::WHAT), e))
}

/// The next frame on `r`, which must be a message `M`. The bytes are wiped once decoded.
fn recv<M: Message>(r: &mut impl io::Read) -> Result<M, DealerError> {
    let what = format!("reading the {}", M::WHAT);
    let header = wire::read_header(r).map_err(|e| read_error(&what, e))?;
    recv_body(r, header)
}

/// The message `M` in the frame whose header was read.
fn recv_body<M: Message>(r: &mut impl io::Read, header: Header) -> Result<M, DealerError> {
    let bytes = Zeroizing::new(
        wire::read_message_body(r, header, M::WHAT, M::MAX_BYTES)
            .map_err(|e| read_error(&format!("reading the {}", M::WHAT), e))?,
    );
    Ok(wire::decode(&bytes)?)
}
