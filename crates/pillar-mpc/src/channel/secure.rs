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
use std::time::{Duration, Instant};

use snow::StatelessTransportState;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroizing;

/// The Noise protocol every pillar link speaks.
const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";
/// Largest Noise message, ciphertext and tag together.
const MAX_MESSAGE: usize = 65_535;
/// Authentication tag per message.
const TAG: usize = 16;
/// Largest plaintext carried by one message.
const MAX_PLAINTEXT: usize = MAX_MESSAGE - TAG;
/// What both ends send first, in the clear, followed by a mode byte (bit 0: Noise rather than
/// plaintext; bit 1: the dealer's protocol rather than the parties'): `PILLAR` and the wire
/// version, so a pillar of another version is refused at once.
pub const PREAMBLE: &[u8; 7] = b"PILLAR6";
const _: () = assert!(PREAMBLE[6] == b'0' + crate::wire::VERSION);
/// How a secret key file starts; the key follows in hex.
const SECRET_TAG: &str = "pillar-secret-key";
/// How a public key file starts; the key follows in hex.
const PUBLIC_TAG: &str = "pillar-public-key";
/// A key file is about 100 bytes; reading stops here, so a wrong path (a log, a disk image)
/// costs no memory.
pub const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

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
    /// A point of small order: every Diffie-Hellman with it is zero, so anyone could pass
    /// for its holder without a secret.
    #[error(
        "this key is a point of low order on Curve25519, which anyone can pass for: make keys with `pillar keygen`"
    )]
    LowOrder,
    /// A secret key of all zeros: a key anyone has.
    #[error("the secret key is all zeros, a key anyone has: make one with `pillar keygen`")]
    ZeroSecret,
    /// A device, a FIFO or a directory where a key file belongs.
    #[error("not a regular file: a key is a small file written by `pillar keygen`")]
    NotAFile,
    /// A file far larger than a key.
    #[error("larger than {limit} bytes: a key file is about 100 bytes")]
    TooLarge {
        /// The most bytes read.
        limit: u64,
    },
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
    /// Anything that exists at that path is read as a key file (so a FIFO or a device is
    /// refused, not taken for key text).
    pub fn load(text: &str) -> Result<PublicKey, KeyError> {
        let path = Path::new(text);
        if fs::metadata(path).is_ok() {
            let contents = read_key_file(path)?;
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
        let key = *decode_hex(hex)?;
        if is_low_order(key) {
            return Err(KeyError::LowOrder);
        }
        Ok(PublicKey(key))
    }
}

/// Whether `key` is a point of small order (on the curve or its twist, in any encoding):
/// multiplying by a clamped scalar (a multiple of the cofactor 8) sends exactly those points to
/// zero, and a peer showing one shares an all-zero secret with everyone.
fn is_low_order(key: [u8; 32]) -> bool {
    curve25519_dalek::MontgomeryPoint(key)
        .mul_clamped([1; 32])
        .to_bytes()
        == [0; 32]
}

/// The text of the key file at `path`: a regular file (checked before it is opened, so a FIFO
/// cannot block the open, and `/dev/zero` is not read for ever) of at most
/// [`MAX_KEY_FILE_BYTES`] (the read stops there, so a huge file costs no memory). The text is
/// wiped when dropped.
fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let in_file = |e| KeyError::InFile {
        path: path.display().to_string(),
        source: Box::new(e),
    };
    let io = |source| KeyError::File {
        path: path.display().to_string(),
        source,
    };
    if !fs::metadata(path).map_err(io)?.is_file() {
        return Err(in_file(KeyError::NotAFile));
    }
    let file = fs::File::open(path).map_err(io)?;
    // The path may have changed between the check and the open: check what was opened.
    if !file.metadata().map_err(io)?.is_file() {
        return Err(in_file(KeyError::NotAFile));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(in_file(KeyError::TooLarge {
            limit: MAX_KEY_FILE_BYTES,
        }));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_string())),
        Err(_) => Err(in_file(KeyError::NotHex)),
    }
}

/// Warns (as ssh does) when the secret key at `path` may be read by other users: whoever
/// reads it can pass for this process.
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{}: the secret key is readable by others (mode {mode:03o}): any user who reads it can pass for this process; run chmod 600 on it",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

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

    /// Reads a secret key file written by [`Identity::save`], and warns if other users may
    /// read it.
    pub fn load(path: &Path) -> Result<Identity, KeyError> {
        let text = read_key_file(path)?;
        warn_if_readable_by_others(path);
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
        if *secret == [0; 32] {
            return Err(in_file(KeyError::ZeroSecret));
        }
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

/// Which protocol a connection is for. The preamble names it, so that a client that reached
/// the dealer, or a party that took a server for its dealer, is told so in words instead of
/// failing the Noise handshake (whose prologue names the protocol too) without a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// The server and its client.
    Parties,
    /// The dealer and a party.
    Dealer,
}

impl Service {
    /// Its bit in the preamble's mode byte.
    fn bit(self) -> u8 {
        match self {
            Service::Parties => 0,
            Service::Dealer => 2,
        }
    }

    /// The process that listens for it.
    fn listener(self) -> &'static str {
        match self {
            Service::Parties => "server",
            Service::Dealer => "dealer",
        }
    }

    /// Its name in the Noise prologue.
    pub(crate) fn context(self) -> &'static str {
        match self {
            Service::Parties => "parties",
            Service::Dealer => "dealer",
        }
    }
}

/// What to say when the peer speaks the other protocol: the side that connected was given
/// the wrong address, and hears which process it reached.
fn wrong_service(ours: Service, theirs: Service, initiator: bool) -> io::Error {
    let hint = match theirs {
        Service::Dealer => {
            "give it as the dealer's address, and the server's as the one to connect to"
        }
        Service::Parties => "give the address `pillar dealer` listens on",
    };
    let (ours, theirs) = (ours.listener(), theirs.listener());
    if !initiator {
        return handshake_error(format!("the peer took this pillar {ours} for a {theirs}"));
    }
    handshake_error(format!(
        "the peer is a pillar {theirs}, not a {ours}: {hint}"
    ))
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

/// The deadline of a handshake under way, and the socket's own timeouts to restore after it.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    until: Instant,
    limit: Duration,
    read: Option<Duration>,
    write: Option<Duration>,
}

impl Deadline {
    fn passed(&self) -> io::Error {
        handshake_error(format!(
            "the handshake did not finish within {:?}",
            self.limit
        ))
    }
}

/// A socket on which, while a handshake is under way, every read and write must end by one
/// deadline. A per-read timeout restarts with every byte, so without it a peer trickling a
/// byte at a time would hold the connection, and the thread serving it, for ever.
struct Socket {
    tcp: TcpStream,
    deadline: Option<Deadline>,
}

impl Socket {
    /// Runs `op` on the socket, within the deadline if one is set: `set` gives the socket the
    /// time left as the timeout of the operation.
    fn within<T>(
        &mut self,
        set: fn(&TcpStream, Option<Duration>) -> io::Result<()>,
        op: impl FnOnce(&mut TcpStream) -> io::Result<T>,
    ) -> io::Result<T> {
        let Some(deadline) = self.deadline else {
            return op(&mut self.tcp);
        };
        let left = deadline.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(deadline.passed());
        }
        set(&self.tcp, Some(left))?;
        op(&mut self.tcp).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => deadline.passed(),
            _ => e,
        })
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.within(TcpStream::set_read_timeout, |tcp| tcp.read(buf))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.within(TcpStream::set_write_timeout, |tcp| tcp.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl Stream {
    /// Runs the handshake `security` asks for on `tcp` (the side that connected is the
    /// `initiator`) for `service` (its name enters the handshake hash, so a stream set up for
    /// one protocol cannot be replayed into another). `tcp` must be set up by [`configure`]
    /// first. The whole handshake must end within `handshake`, and so must every read until
    /// [`StreamReader::finish_handshake`], so that the protocol's first message is read
    /// under the same deadline. Errors of kind `PermissionDenied` mean the peer was refused,
    /// refused us or was too slow; `UnexpectedEof` before the first byte means the peer left
    /// without a word.
    pub(crate) fn establish(
        tcp: TcpStream,
        security: &Security,
        initiator: bool,
        service: Service,
        handshake: Duration,
    ) -> io::Result<Stream> {
        let until = Instant::now().checked_add(handshake).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a handshake deadline beyond time",
            )
        })?;
        let deadline = Deadline {
            until,
            limit: handshake,
            read: tcp.read_timeout()?,
            write: tcp.write_timeout()?,
        };
        let mut tcp = Socket {
            tcp,
            deadline: Some(deadline),
        };
        // An encrypting initiator sends its first Noise message right behind its preamble
        // instead of waiting a round trip for the responder's: the responder answers both
        // at once, and the initiator checks the responder's preamble before it reads on.
        let pipelined = initiator && security.is_encrypted();
        if initiator {
            write_preamble(&mut tcp, security, service)?;
        }
        if !pipelined {
            // A responder that refuses a pillar peer of another mode lingers: that peer may
            // have sent its first Noise message already, and closing with it unread would
            // reset the connection and discard the preamble that tells the peer why.
            read_preamble(&mut tcp, security, service, initiator, |s| linger(&s.tcp))?;
        }
        let writer_tcp = tcp.tcp.try_clone()?;
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
        let (state, peer, verdict) = noise_handshake_then(
            &mut tcp,
            identity,
            trusted,
            initiator,
            service.context(),
            |io| {
                if pipelined {
                    read_preamble(io, security, service, initiator, |_| ())
                } else {
                    Ok(())
                }
            },
        )?;
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
            linger(&stream.reader.tcp.tcp);
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

    /// Ends a refused connection so that the peer reads why: this side stops writing and
    /// reads what the peer still sends (for a second at most), since closing with unread
    /// bytes (a request the peer sent behind the refused one) would reset the connection and
    /// discard the refusal.
    pub(crate) fn linger(&self) {
        linger(&self.reader.tcp.tcp);
    }
}

/// Both ends say in the clear that they are pillar and whether they encrypt, so that a
/// plaintext peer meeting an encrypted one is told so at once instead of waiting out a
/// handshake the other side will never send. The initiator speaks first, so a responder
/// says nothing to a connection that says nothing, or nonsense.
pub(crate) fn preamble<S: Read + Write>(
    io: &mut S,
    security: &Security,
    service: Service,
    initiator: bool,
) -> io::Result<()> {
    if initiator {
        write_preamble(io, security, service)?;
    }
    read_preamble(io, security, service, initiator, |_| ())
}

/// This side's preamble: the version, whether it encrypts, which service.
fn our_preamble(security: &Security, service: Service) -> [u8; 8] {
    let mut ours = [0u8; 8];
    ours[..7].copy_from_slice(PREAMBLE);
    ours[7] = u8::from(security.is_encrypted()) | service.bit();
    ours
}

/// Sends this side's preamble.
fn write_preamble<S: Write>(io: &mut S, security: &Security, service: Service) -> io::Result<()> {
    io.write_all(&our_preamble(security, service))
}

/// Reads the peer's preamble and checks it against this side's; a responder answers with
/// its own before the check, so that a peer of another mode hears which.
fn read_preamble<S: Read + Write>(
    io: &mut S,
    security: &Security,
    service: Service,
    initiator: bool,
    mismatch: impl FnOnce(&mut S),
) -> io::Result<()> {
    let ours = our_preamble(security, service);
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
    let checked = check_mode(ours[7], theirs[7], service, initiator);
    if checked.is_err() && !initiator {
        mismatch(io);
    }
    checked
}

/// Whether the peer's mode byte `other` fits this side's `mode` and `service`.
fn check_mode(mode: u8, other: u8, service: Service, initiator: bool) -> io::Result<()> {
    if other & !0b11 != 0 {
        return Err(handshake_error(format!(
            "the peer asks for an unknown link mode {other}"
        )));
    }
    let their_service = if other & Service::Dealer.bit() != 0 {
        Service::Dealer
    } else {
        Service::Parties
    };
    if their_service != service {
        return Err(wrong_service(service, their_service, initiator));
    }
    match (mode & 1, other & 1) {
        (a, b) if a == b => Ok(()),
        (1, _) => Err(handshake_error(
            "the peer runs without encryption (--insecure-plaintext) and this side requires Noise",
        )),
        _ => Err(handshake_error(
            "the peer requires Noise encryption and this side runs with --insecure-plaintext",
        )),
    }
}

/// snow's own primitives, except that a Diffie-Hellman whose result is all zeros fails: the
/// peer sent a point of low order (as its ephemeral or its static key), and keys derived from
/// it would be keys everyone knows. Refusing it here covers the static key an untrusted peer
/// claims too, before any check against the trusted keys.
struct Contributory;

impl CryptoResolver for Contributory {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver
            .resolve_dh(choice)
            .map(|dh| Box::new(RefuseZero(dh)) as Box<dyn Dh>)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// A Diffie-Hellman that fails on an all-zero result (see [`Contributory`]).
struct RefuseZero(Box<dyn Dh>);

impl Dh for RefuseZero {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn pub_len(&self) -> usize {
        self.0.pub_len()
    }

    fn priv_len(&self) -> usize {
        self.0.priv_len()
    }

    fn set(&mut self, privkey: &[u8]) {
        self.0.set(privkey);
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        self.0.generate(rng)
    }

    fn pubkey(&self) -> &[u8] {
        self.0.pubkey()
    }

    fn privkey(&self) -> &[u8] {
        self.0.privkey()
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        self.0.dh(pubkey, out)?;
        let len = self.0.dh_len().min(out.len());
        if out[..len].iter().fold(0, |acc, b| acc | b) == 0 {
            return Err(snow::Error::Dh);
        }
        Ok(())
    }

    fn dh_len(&self) -> usize {
        self.0.dh_len()
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
    noise_handshake_then(io, identity, trusted, initiator, context, |_| Ok(()))
}

/// [`noise_handshake`], calling `first` once, after this side's first write if it writes
/// first (the initiator), else before its first read: where a pipelined initiator reads the
/// responder's preamble.
fn noise_handshake_then<S: Read + Write>(
    io: &mut S,
    identity: &Identity,
    trusted: &[PublicKey],
    initiator: bool,
    context: &str,
    first: impl FnOnce(&mut S) -> io::Result<()>,
) -> io::Result<(StatelessTransportState, PublicKey, Result<(), String>)> {
    let mut first = Some(first);
    let low_order =
        || handshake_error("the peer sent a key of low order, which anyone can pass for");
    let snow_error = |e: snow::Error| match e {
        snow::Error::Dh => low_order(),
        e => handshake_error(format!("noise handshake: {e}")),
    };
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| handshake_error(format!("noise parameters: {e}")))?;
    let prologue = format!("pillar/1 {context}");
    let builder = snow::Builder::with_resolver(params, Box::new(Contributory))
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
            if let Some(first) = first.take() {
                first(io)?;
            }
        } else {
            if let Some(first) = first.take() {
                first(io)?;
            }
            let mut len = [0u8; 2];
            io.read_exact(&mut len)?;
            let len = usize::from(u16::from_be_bytes(len));
            io.read_exact(&mut message[..len])?;
            hs.read_message(&message[..len], &mut payload)
                .map_err(|e| match e {
                    snow::Error::Dh => low_order(),
                    e => handshake_error(format!(
                        "the noise handshake failed ({e}): the peer's messages do not check out"
                    )),
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
    tcp: Socket,
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
    /// How long a read may wait (`None`: forever), once the handshake is finished.
    pub(crate) fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.tcp.tcp.set_read_timeout(timeout)
    }

    /// Ends the handshake's deadline (see [`Stream::establish`]): the protocol has read its
    /// first message, and the socket's own timeouts apply again.
    pub(crate) fn finish_handshake(&mut self) -> io::Result<()> {
        if let Some(deadline) = self.tcp.deadline.take() {
            self.tcp.tcp.set_read_timeout(deadline.read)?;
            self.tcp.tcp.set_write_timeout(deadline.write)?;
        }
        Ok(())
    }

    /// Whether a read would return at once: bytes or the end of the stream have arrived (or
    /// decrypted bytes are waiting). For a side that only listens for a rare message between
    /// its own writes; it must not write from another thread meanwhile (the socket is briefly
    /// non-blocking).
    pub(crate) fn ready(&self) -> io::Result<bool> {
        if self.cipher.as_ref().is_some_and(|rx| rx.start < rx.end) {
            return Ok(true);
        }
        let tcp = &self.tcp.tcp;
        tcp.set_nonblocking(true)?;
        let peeked = tcp.peek(&mut [0u8; 1]);
        tcp.set_nonblocking(false)?;
        match peeked {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
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

impl StreamWriter {
    /// Shuts the connection down both ways: a thread blocked reading the other half returns
    /// at once.
    pub(crate) fn shutdown(&self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
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
