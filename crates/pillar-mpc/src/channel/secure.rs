//! Encrypted, mutually authenticated byte streams: every link between the parties and the
//! dealer runs over one of these unless a user asks for plaintext by name.
//!
//! The handshake is Noise `XX` (X25519, AES-256-GCM, SHA-256, through the `snow` crate; AES-GCM
//! because it ran 10% faster than ChaCha20-Poly1305 on the benchmarks here, with AES-NI):
//! both ends prove they hold a static key, and each accepts the other only if that key is one
//! it was told to trust. Keys are pinned rather than certified: a deployment has three
//! processes whose operators exchange public keys once (`pillar keygen`), and no certificate
//! authority would add anything but a way to get it wrong.
//!
//! After the handshake, bytes travel in Noise transport messages (a 2-byte big-endian length,
//! then at most 65,535 bytes of ciphertext and tag). Each direction counts its messages, and
//! the count is the nonce: a message dropped, replayed, reordered or altered on the way fails
//! authentication, and the connection ends with `Integrity`. The two directions have their
//! own keys and counters, so a reader and a writer on two threads need no lock.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use snow::StatelessTransportState;
use zeroize::Zeroizing;

/// The Noise protocol every pillar link speaks.
const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";
/// Largest Noise message, ciphertext and tag together.
const MAX_MESSAGE: usize = 65_535;
/// Authentication tag per message.
const TAG: usize = 16;
/// Largest plaintext carried by one message.
const MAX_PLAINTEXT: usize = MAX_MESSAGE - TAG;
/// What both ends send first, in the clear, followed by a mode byte (0 plaintext, 1 Noise):
/// `PILLAR` and the wire version, so a pillar of another version is refused at once.
pub const PREAMBLE: &[u8; 7] = b"PILLAR3";
const _: () = assert!(PREAMBLE[6] == b'0' + crate::wire::VERSION);
/// How a secret key file starts; the key follows in hex.
const SECRET_TAG: &str = "pillar-secret-key";
/// How a public key file starts; the key follows in hex.
const PUBLIC_TAG: &str = "pillar-public-key";

/// Why a key could not be read, written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 64 characters.
    #[error("a key is 64 hex digits, got {0} characters")]
    Length(usize),
    /// 64 characters that are not all hex digits.
    #[error("a key is 64 hex digits")]
    NotHex,
    /// A secret key where a public one belongs.
    #[error("this is a secret key: give the peer's .pub file")]
    SecretGiven,
    /// A public key where a secret one belongs.
    #[error("this is a public key; give your own secret key (the file without .pub)")]
    PublicGiven,
    /// A file that `pillar keygen` did not write.
    #[error("not a pillar secret key (written by `pillar keygen`)")]
    NotAKey,
    /// What is wrong with the key in a file, the file named.
    #[error("{path}: {source}")]
    InFile {
        /// The file.
        path: String,
        /// What is wrong with its key.
        #[source]
        source: Box<KeyError>,
    },
    /// Text that names no file and is no key.
    #[error("{text:?} is neither a public key file nor a key: {source}")]
    NeitherFileNorKey {
        /// The text given.
        text: String,
        /// Why it is no key.
        #[source]
        source: Box<KeyError>,
    },
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
}

/// A party's long-term X25519 public key: what its peers pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a key from `text`: a path to a `.pub` file written by `pillar keygen`, or the key
    /// itself (64 hex digits, with or without the `pillar-public-key` tag).
    pub fn load(text: &str) -> Result<PublicKey, KeyError> {
        let path = Path::new(text);
        if path.is_file() {
            let contents = fs::read_to_string(path).map_err(|source| KeyError::File {
                path: text.to_string(),
                source,
            })?;
            contents.parse().map_err(|e| KeyError::InFile {
                path: text.to_string(),
                source: Box::new(e),
            })
        } else {
            text.parse().map_err(|e| KeyError::NeitherFileNorKey {
                text: text.to_string(),
                source: Box::new(e),
            })
        }
    }
}

impl PublicKey {
    /// The public key of a fixed secret, for fuzz targets and tests that need a key to trust.
    #[doc(hidden)]
    pub fn from_secret_for_fuzzing(secret: [u8; 32]) -> PublicKey {
        Identity::from_secret(Zeroizing::new(secret)).public()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        if s.starts_with(SECRET_TAG) {
            return Err(KeyError::SecretGiven);
        }
        let hex = s.strip_prefix(PUBLIC_TAG).unwrap_or(s).trim();
        Ok(PublicKey(*decode_hex(hex)?))
    }
}

/// Reads 64 hex digits into a buffer that is wiped when dropped.
fn decode_hex(hex: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut out = Zeroizing::new([0u8; 32]);
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(KeyError::Length(hex.chars().count()));
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| KeyError::NotHex)?;
    }
    Ok(out)
}

/// A party's long-term key pair. The secret half is wiped from memory when dropped and never
/// printed (its `Debug` shows the public half only).
pub struct Identity {
    secret: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh key pair from the operating system's randomness.
    pub fn generate() -> Identity {
        let mut secret = Zeroizing::new([0u8; 32]);
        crate::secret::WipedRng::from_os().fill(secret.as_mut_slice());
        Identity::from_secret(secret)
    }

    /// The pair whose secret half is `secret` (X25519 clamps it when used).
    pub fn from_secret(secret: Zeroizing<[u8; 32]>) -> Identity {
        let public = curve25519_dalek::MontgomeryPoint::mul_base_clamped(*secret).to_bytes();
        Identity {
            secret,
            public: PublicKey(public),
        }
    }

    /// The half to give to peers.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Reads a secret key file written by [`Identity::save`].
    pub fn load(path: &Path) -> Result<Identity, KeyError> {
        let file = |source| KeyError::File {
            path: path.display().to_string(),
            source,
        };
        let text = Zeroizing::new(fs::read_to_string(path).map_err(file)?);
        let in_file = |e| KeyError::InFile {
            path: path.display().to_string(),
            source: Box::new(e),
        };
        let text = text.trim();
        if text.starts_with(PUBLIC_TAG) {
            return Err(in_file(KeyError::PublicGiven));
        }
        let Some(hex) = text.strip_prefix(SECRET_TAG) else {
            return Err(in_file(KeyError::NotAKey));
        };
        let secret = decode_hex(hex.trim()).map_err(in_file)?;
        Ok(Identity::from_secret(secret))
    }

    /// Writes the secret key to `secret` (readable by its owner only, where the system
    /// allows) and the public key to `public`. Refuses to overwrite either.
    pub fn save(&self, secret: &Path, public: &Path) -> Result<(), KeyError> {
        let file = |path: &Path| {
            let path = path.display().to_string();
            move |source| KeyError::File { path, source }
        };
        let mut text = Zeroizing::new(format!("{SECRET_TAG} "));
        for b in self.secret.iter() {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut out = options.open(secret).map_err(file(secret))?;
        out.write_all(text.as_bytes()).map_err(file(secret))?;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(public)
            .and_then(|mut f| writeln!(f, "{PUBLIC_TAG} {}", self.public))
            .map_err(file(public))
    }
}

/// How a link is protected.
#[derive(Debug, Clone)]
pub enum Security {
    /// Noise with this identity; a peer is accepted only if its key is in `trusted`.
    Noise {
        /// This end's key pair.
        identity: Arc<Identity>,
        /// The peers' public keys this end accepts.
        trusted: Arc<Vec<PublicKey>>,
    },
    /// No encryption and no authentication: anyone on the path reads the shares (and with
    /// both parties' messages, the input), and anyone can connect. For benchmarks and tests.
    Plaintext,
}

impl Security {
    /// Noise with `identity`, accepting the peers whose keys are `trusted`.
    pub fn noise(identity: Identity, trusted: Vec<PublicKey>) -> Security {
        Security::Noise {
            identity: Arc::new(identity),
            trusted: Arc::new(trusted),
        }
    }

    /// Whether links are encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Security::Noise { .. })
    }

    /// `"noise"` or `"plaintext"`, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Security::Noise { .. } => "noise",
            Security::Plaintext => "plaintext",
        }
    }
}

/// A transport message failed authentication: it was altered, replayed, dropped or
/// reordered on the way, or the peer's keys changed. Carried inside an `io::Error` of kind
/// `InvalidData`, so readers built on `Read` see it; [`is_integrity`] finds it again.
#[derive(Debug, thiserror::Error)]
#[error("a message failed authentication (altered, replayed or out of order)")]
pub(crate) struct Integrity;

/// Whether `e` is an [`Integrity`] failure.
pub(crate) fn is_integrity(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Integrity>())
}

/// Why a handshake failed, in words for the user.
fn handshake_error(detail: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, detail.into())
}

/// The peer closed the connection before sending a byte: a reachability probe, not an error
/// worth a warning. Carried inside an `io::Error` of kind `UnexpectedEof`; see [`is_silent`].
#[derive(Debug, thiserror::Error)]
#[error("the peer closed the connection without a word")]
pub(crate) struct Silent;

/// Whether `e` is a [`Silent`] close.
pub(crate) fn is_silent(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Silent>())
}

/// Sets up a connected socket for a [`Stream`]: no Nagle delay (every round is a small
/// message waiting for its answer) and `timeout` on every read and write. Every link (parties,
/// dealer and its clients) does this before [`Stream::establish`].
pub(crate) fn configure(tcp: &TcpStream, timeout: std::time::Duration) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))
}

/// A connected stream, encrypted or not. Split it to read and write from two threads.
#[derive(Debug)]
pub(crate) struct Stream {
    reader: StreamReader,
    writer: StreamWriter,
    peer: Option<PublicKey>,
}

impl Stream {
    /// Runs the handshake `security` asks for on `tcp` (the side that connected is the
    /// `initiator`). `context` names the protocol on top (it enters the handshake hash, so a
    /// stream set up for one protocol cannot be replayed into another). `tcp` must be set up
    /// by [`configure`] first. Errors of kind `PermissionDenied` mean the peer
    /// was refused or refused us; `UnexpectedEof` before the first byte means the peer left
    /// without a word.
    pub(crate) fn establish(
        tcp: TcpStream,
        security: &Security,
        initiator: bool,
        context: &str,
    ) -> io::Result<Stream> {
        preamble(&mut &tcp, security, initiator)?;
        let writer_tcp = tcp.try_clone()?;
        let Security::Noise { identity, trusted } = security else {
            return Ok(Stream {
                reader: StreamReader { tcp, cipher: None },
                writer: StreamWriter {
                    tcp: writer_tcp,
                    cipher: None,
                },
                peer: None,
            });
        };
        let (state, peer, verdict) =
            noise_handshake(&mut &tcp, identity, trusted, initiator, context)?;
        let state = Arc::new(state);
        let mut stream = Stream {
            reader: StreamReader {
                tcp,
                cipher: Some(Receiver {
                    state: Arc::clone(&state),
                    nonce: 0,
                    message: vec![0; MAX_MESSAGE],
                    plain: Zeroizing::new(vec![0; MAX_MESSAGE]),
                    start: 0,
                    end: 0,
                    verdict_pending: true,
                }),
            },
            writer: StreamWriter {
                tcp: writer_tcp,
                cipher: Some(Sender {
                    state,
                    nonce: 0,
                    message: vec![0; 2 + MAX_MESSAGE],
                }),
            },
            peer: Some(peer),
        };
        // Each end's first message says whether it accepts the other's key, so a refused
        // peer hears why instead of seeing the connection drop.
        let mut message = vec![u8::from(verdict.is_ok())];
        if let Err(reason) = &verdict {
            message.extend_from_slice(reason.as_bytes());
        }
        stream.writer.write_all(&message)?;
        if let Err(reason) = verdict {
            linger(&stream.reader.tcp);
            return Err(handshake_error(reason.replace("the other end", "this end")));
        }
        Ok(stream)
    }

    /// The peer's authenticated public key (`None` on a plaintext stream).
    pub(crate) fn peer(&self) -> Option<PublicKey> {
        self.peer
    }

    /// The two directions, to be used from two threads.
    pub(crate) fn split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }

    /// The reading half.
    pub(crate) fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    /// The writing half.
    pub(crate) fn writer(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }
}

/// Both ends say in the clear that they are pillar and whether they encrypt, so that a
/// plaintext peer meeting an encrypted one is told so at once instead of waiting out a
/// handshake the other side will never send. The initiator speaks first, so a responder
/// says nothing to a connection that says nothing, or nonsense.
pub(crate) fn preamble<S: Read + Write>(
    io: &mut S,
    security: &Security,
    initiator: bool,
) -> io::Result<()> {
    let mode = u8::from(security.is_encrypted());
    let mut ours = [0u8; 8];
    ours[..7].copy_from_slice(PREAMBLE);
    ours[7] = mode;
    if initiator {
        io.write_all(&ours)?;
    }
    let mut theirs = [0u8; 8];
    if io.read(&mut theirs[..1])? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, Silent));
    }
    io.read_exact(&mut theirs[1..])?;
    if &theirs[..7] != PREAMBLE {
        return Err(handshake_error(
            "the peer is not a pillar process of this version",
        ));
    }
    if !initiator {
        io.write_all(&ours)?;
    }
    match (mode, theirs[7]) {
        (a, b) if a == b => Ok(()),
        (1, 0) => Err(handshake_error(
            "the peer runs without encryption (--insecure-plaintext) and this side requires Noise",
        )),
        (0, 1) => Err(handshake_error(
            "the peer requires Noise encryption and this side runs with --insecure-plaintext",
        )),
        (_, other) => Err(handshake_error(format!(
            "the peer asks for an unknown link mode {other}"
        ))),
    }
}

/// Closes our direction and reads what the peer still sends, for a second at most: closing
/// with unread bytes would reset the connection, and the reset would discard the refusal
/// the peer has not read yet.
fn linger(tcp: &TcpStream) {
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let mut sink = [0u8; 4096];
    let mut left = 1 << 20;
    while left > 0 {
        match (&*tcp).read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left -= n.min(left),
        }
    }
}

pub(crate) fn noise_handshake<S: Read + Write>(
    io: &mut S,
    identity: &Identity,
    trusted: &[PublicKey],
    initiator: bool,
    context: &str,
) -> io::Result<(StatelessTransportState, PublicKey, Result<(), String>)> {
    let snow_error = |e: snow::Error| handshake_error(format!("noise handshake: {e}"));
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| handshake_error(format!("noise parameters: {e}")))?;
    let prologue = format!("pillar/1 {context}");
    let builder = snow::Builder::new(params)
        .local_private_key(identity.secret.as_slice())
        .and_then(|b| b.prologue(prologue.as_bytes()))
        .map_err(snow_error)?;
    let mut hs = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(snow_error)?;
    let mut message = vec![0u8; MAX_MESSAGE];
    let mut payload = Zeroizing::new(vec![0u8; MAX_MESSAGE]);
    while !hs.is_handshake_finished() {
        if hs.is_my_turn() {
            let len = hs.write_message(&[], &mut message).map_err(snow_error)?;
            io.write_all(&(len as u16).to_be_bytes())?;
            io.write_all(&message[..len])?;
        } else {
            let mut len = [0u8; 2];
            io.read_exact(&mut len)?;
            let len = usize::from(u16::from_be_bytes(len));
            io.read_exact(&mut message[..len])?;
            hs.read_message(&message[..len], &mut payload)
                .map_err(|e| {
                    handshake_error(format!(
                        "the noise handshake failed ({e}): the peer's messages do not check out"
                    ))
                })?;
        }
    }
    let remote = hs
        .get_remote_static()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .map(PublicKey)
        .ok_or_else(|| handshake_error("the peer sent no static key"))?;
    let verdict = if trusted.contains(&remote) {
        Ok(())
    } else {
        Err(format!(
            "the key {remote} is not among the keys trusted by the other end"
        ))
    };
    let state = hs.into_stateless_transport_mode().map_err(snow_error)?;
    Ok((state, remote, verdict))
}

struct Receiver {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    message: Vec<u8>,
    /// Decrypted bytes not yet read: shares, wiped when the stream is dropped.
    plain: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
    /// Whether the peer's verdict on our key (its first message) is still to come.
    verdict_pending: bool,
}

struct Sender {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    message: Vec<u8>,
}

/// The reading half of a [`Stream`].
pub(crate) struct StreamReader {
    tcp: TcpStream,
    cipher: Option<Receiver>,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("encrypted", &self.cipher.is_some())
            .finish_non_exhaustive()
    }
}

/// The writing half of a [`Stream`].
pub(crate) struct StreamWriter {
    tcp: TcpStream,
    cipher: Option<Sender>,
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("encrypted", &self.cipher.is_some())
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    /// How long a read may wait (`None`: forever).
    pub(crate) fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(rx) = &mut self.cipher else {
            return self.tcp.read(buf);
        };
        while rx.start == rx.end {
            let mut len = [0u8; 2];
            // A clean end of stream between messages is an end of stream; anywhere else the
            // peer cut a message short.
            match self.tcp.read(&mut len[..1])? {
                0 if !rx.verdict_pending => return Ok(0),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ => self.tcp.read_exact(&mut len[1..])?,
            }
            let len = usize::from(u16::from_be_bytes(len));
            if len < TAG {
                return Err(io::Error::new(io::ErrorKind::InvalidData, Integrity));
            }
            self.tcp.read_exact(&mut rx.message[..len])?;
            let n = rx
                .state
                .read_message(rx.nonce, &rx.message[..len], &mut rx.plain)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, Integrity))?;
            rx.nonce += 1;
            rx.start = 0;
            rx.end = n;
            if rx.verdict_pending {
                rx.verdict_pending = false;
                match rx.plain.get(..n) {
                    Some([1]) => rx.end = 0,
                    Some([0, reason @ ..]) => {
                        return Err(handshake_error(format!(
                            "the peer refused this connection: {}",
                            String::from_utf8_lossy(reason)
                        )));
                    }
                    _ => return Err(io::Error::new(io::ErrorKind::InvalidData, Integrity)),
                }
            }
        }
        let n = buf.len().min(rx.end - rx.start);
        buf[..n].copy_from_slice(&rx.plain[rx.start..rx.start + n]);
        rx.start += n;
        Ok(n)
    }
}

impl Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tx) = &mut self.cipher else {
            return self.tcp.write(buf);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_PLAINTEXT);
        let len = tx
            .state
            .write_message(tx.nonce, &buf[..n], &mut tx.message[2..])
            .map_err(|e| io::Error::other(format!("encrypting: {e}")))?;
        tx.nonce += 1;
        tx.message[..2].copy_from_slice(&(len as u16).to_be_bytes());
        self.tcp.write_all(&tx.message[..2 + len])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}
