//! One frame for every link, and typed messages inside it.
//!
//! After the clear preamble and the Noise handshake ([`crate::channel::secure`]), everything a
//! party, a server, a client or the dealer sends is a frame: an 8-byte header
//! `[version, kind, 0, 0, length (u32, little-endian)]` and its payload.
//! - **Words** (`kind` 1): a protocol round's ring words, `length` of them, little-endian.
//!   The receiver always knows how many to expect, so a frame of another length is an error,
//!   never a reinterpretation.
//! - **Message** (`kind` 2): a control message of `length` bytes, the JSON of a [`Message`]
//!   type (a serde enum or struct), refused before it is read if longer than the type's
//!   limit, and decoded into a value that has already passed its checks (types whose
//!   invariants matter decode through `TryFrom`, as mpz's `ExtendUnchecked`).
//!
//! Every header carries [`VERSION`], so a frame of another version is refused, naming both
//! versions (the preamble, `PILLAR` and the version, already keeps most such peers out). The
//! control messages are defined where they are used: [`Greeting`] here, the dealer's in
//! [`crate::dealer::remote`], the server's and client's in `pillar-infer`.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::party::Party;

/// The version of the frames and messages; a peer of another version is refused.
pub const VERSION: u8 = 6;

/// Bytes in a frame header.
pub const HEADER: usize = 8;

/// Frames up to this size are written in one call (one packet, one Noise message).
const INLINE_WRITE_BYTES: usize = 16 * 1024;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ring words of a protocol round.
    Words,
    /// A control message.
    Message,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Words => 1,
            Kind::Message => 2,
        }
    }

    /// How it is named in errors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Words => "ring words",
            Kind::Message => "a control message",
        }
    }
}

/// A frame's header: its kind and its length (words or bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame holds.
    pub kind: Kind,
    /// Words for [`Kind::Words`], bytes for [`Kind::Message`].
    pub len: u32,
}

impl Header {
    /// Errors unless the frame holds `kind`.
    pub(crate) fn expect(&self, kind: Kind) -> Result<(), WireError> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(WireError::Unexpected {
                expected: kind.name(),
                got: self.kind.name(),
            })
        }
    }
}

/// Why a frame or a message could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A header of another version: the peer is a pillar of another version, or not pillar.
    #[error("the peer speaks wire version {0}; this pillar speaks version {VERSION}")]
    Version(u8),
    /// A header this version does not define.
    #[error("the peer sent a frame header this version does not define ({0:02x?})")]
    Header([u8; HEADER]),
    /// A frame of one kind where the protocol expects the other.
    #[error("the peer sent {got} where the protocol expects {expected}")]
    Unexpected {
        /// What the protocol expects.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// A message longer than its type allows, refused before it is read.
    #[error("the peer announced {what} of {len} bytes; at most {limit} are accepted")]
    TooLarge {
        /// The message's type.
        what: &'static str,
        /// Bytes announced.
        len: u64,
        /// The type's limit.
        limit: usize,
    },
    /// A message that does not decode into its type, or fails its checks.
    #[error("a malformed {what}: {source}")]
    Malformed {
        /// The message's type.
        what: &'static str,
        /// What the decoder found.
        #[source]
        source: serde_json::Error,
    },
    /// A message this side cannot encode (a bug, or a value JSON cannot hold).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// The message's type.
        what: &'static str,
        /// What the encoder found.
        #[source]
        source: serde_json::Error,
    },
}

/// A control message: a serde type with a name for errors and a size limit that is checked
/// before its bytes are read.
pub trait Message: Serialize + DeserializeOwned {
    /// What it is, in errors ("the server's hello").
    const WHAT: &'static str;
    /// The largest encoding accepted.
    const MAX_BYTES: usize;
}

/// The JSON of `m`.
pub fn encode<M: Message>(m: &M) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(m).map_err(|source| WireError::Encode {
        what: M::WHAT,
        source,
    })
}

/// `bytes` decoded into `M`, with `M`'s checks.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, WireError> {
    if bytes.len() > M::MAX_BYTES {
        return Err(WireError::TooLarge {
            what: M::WHAT,
            len: bytes.len() as u64,
            limit: M::MAX_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| WireError::Malformed {
        what: M::WHAT,
        source,
    })
}

/// A whole message frame of `m`, header and JSON (for tools and tests that write frames by
/// hand).
pub fn message_frame<M: Message>(m: &M) -> Result<Vec<u8>, WireError> {
    let bytes = encode(m)?;
    frame_of(&bytes).map_err(|_| WireError::TooLarge {
        what: M::WHAT,
        len: bytes.len() as u64,
        limit: u32::MAX as usize,
    })
}

/// `bytes` as one message frame.
fn frame_of(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut frame = Vec::with_capacity(HEADER + bytes.len());
    frame.extend_from_slice(&header(Kind::Message, length(bytes.len())?));
    frame.extend_from_slice(bytes);
    Ok(frame)
}

/// The header of a frame of `kind` and `len` (for tools and tests that write frames by hand).
pub fn header(kind: Kind, len: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = VERSION;
    h[1] = kind.byte();
    h[4..].copy_from_slice(&len.to_le_bytes());
    h
}

/// Reads a header off the wire, and checks its version and kind.
pub(crate) fn parse_header(h: [u8; HEADER]) -> Result<Header, WireError> {
    if h[0] != VERSION {
        return Err(WireError::Version(h[0]));
    }
    let kind = match (h[1], h[2], h[3]) {
        (1, 0, 0) => Kind::Words,
        (2, 0, 0) => Kind::Message,
        _ => return Err(WireError::Header(h)),
    };
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    Ok(Header { kind, len })
}

/// A frame's length in the header: a frame beyond 2^32 words or bytes is beyond every limit.
fn length(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other(format!("a frame of {n} is beyond 2^32")))
}

/// Writes `words` as one frame. A small frame goes out in one write (one packet, one Noise
/// message); a large one straight from the buffer, without a copy.
pub(crate) fn write_words(w: &mut impl Write, words: &[u64]) -> io::Result<()> {
    let h = header(Kind::Words, length(words.len())?);
    if cfg!(target_endian = "little") && 8 * words.len() > INLINE_WRITE_BYTES {
        w.write_all(&h)?;
        return w.write_all(bytemuck::cast_slice(words));
    }
    let mut bytes = Vec::with_capacity(HEADER + 8 * words.len());
    bytes.extend_from_slice(&h);
    bytes.extend(words.iter().flat_map(|v| v.to_le_bytes()));
    w.write_all(&bytes)
}

/// Writes `bytes` as one message frame (one write: one packet, one Noise message).
pub(crate) fn write_message(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(&frame_of(bytes)?)
}

/// Reads the payload of a words frame whose header said `len` into `recv`, which must be
/// exactly that long (the caller has compared).
pub(crate) fn read_words_into(r: &mut impl Read, recv: &mut [u64]) -> io::Result<()> {
    r.read_exact(bytemuck::cast_slice_mut(recv))?;
    for w in recv.iter_mut() {
        *w = u64::from_le(*w);
    }
    Ok(())
}

/// Reads the payload of the frame whose header is `header`, which must be a message (`what`
/// in errors) of at most `limit` bytes: checked before anything is read.
pub(crate) fn read_message_body(
    r: &mut impl Read,
    header: Header,
    what: &'static str,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    header.expect(Kind::Message)?;
    if header.len as usize > limit {
        return Err(WireError::TooLarge {
            what,
            len: u64::from(header.len),
            limit,
        }
        .into());
    }
    let mut bytes = vec![0u8; header.len as usize];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Reads the next frame, which must be a message (`what` in errors) of at most `limit` bytes.
pub(crate) fn read_message(
    r: &mut impl Read,
    what: &'static str,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let header = read_header(r)?;
    read_message_body(r, header, what, limit)
}

/// Reads one header.
pub(crate) fn read_header(r: &mut impl Read) -> Result<Header, ReadError> {
    let mut h = [0u8; HEADER];
    r.read_exact(&mut h)?;
    Ok(parse_header(h)?)
}

/// A failed read: the stream's, or the frame's.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream failed (closed, timed out, failed authentication).
    Io(io::Error),
    /// The bytes are not a frame this side expects.
    Wire(WireError),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        ReadError::Wire(e)
    }
}

/// What both ends of a link between the parties say first (inside the encryption): which
/// party each is, so that two servers or two clients are told so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Greeting {
    /// The sender's role.
    pub party: Party,
}

impl Message for Greeting {
    const WHAT: &'static str = "party greeting";
    const MAX_BYTES: usize = 64;
}
