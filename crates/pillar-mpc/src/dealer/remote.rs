//! The dealer as a process of its own, reached by both parties over TCP.
//!
//! # Protocol
//! A party connects and sends `PILLARD1` and its role byte.
//! - The server (party 0, role 0) asks for a new session. The dealer draws two seeds from the
//!   operating system's CSPRNG, keeps them under a fresh random 128-bit [`SessionId`], and
//!   replies with the id and seed 0. The server's part ends there: it expands everything from
//!   its seed, and hands the id to its client.
//! - The client (party 1, role 1) sends the session id. The dealer replies with seed 1, then
//!   serves corrections on the same connection: the client announces what it will ask for (a
//!   JSON list of [`Need`]s in a frame of `u64` byte length + bytes), and the dealer answers each
//!   need, in order, with a frame of its correction words (`u64` word count + little-endian
//!   words). A writer thread sends while the next correction is computed, so corrections are
//!   under way before the client asks for them.
//!
//! Replies to a hello start with a status byte; a refusal (an unknown, expired or already
//! joined session) carries a message, as does a correction frame whose count is
//! [`REFUSAL`]. A session is joined at most once, and one never joined expires.
//!
//! Every connection runs inside a [`Stream`]: Noise with pinned keys unless plaintext was
//! asked for, so nobody on the path learns a seed or a correction, and only the parties whose
//! keys the dealer trusts get any.
//!
//! The dealer sees both seeds, so it must not collude with either party: the paper's trusted
//! third party. Every size a client announces is checked ([`Need::check`]) before anything is
//! allocated.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha12Rng;

use zeroize::Zeroizing;

use super::{CorrectionSource, DealerError, Need, SeededDealer, TrustedDealer};
use crate::channel::secure::{Security, Stream, StreamReader, is_integrity, is_silent};
use crate::channel::write_frame;

const MAGIC: &[u8; 8] = b"PILLARD1";
const ROLE_SERVER: u8 = 0;
const ROLE_CLIENT: u8 = 1;
const STATUS_OK: u8 = 0;
const STATUS_REFUSED: u8 = 1;
/// A correction frame count that announces a refusal message instead of words.
pub const REFUSAL: u64 = u64::MAX;
/// Longest announcement frame accepted, in bytes.
const MAX_ANNOUNCE_BYTES: u64 = 64 << 20;
/// Longest refusal message accepted, in bytes.
const MAX_MESSAGE_BYTES: u32 = 4096;
/// Corrections computed ahead of the writer, at most.
const AHEAD: usize = 4;

/// Names one pair of seeds at the dealer: 128 random bits, shown as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// The first 8 hex digits, for logs: the whole id lets whoever holds it (and a key the
    /// dealer trusts) join the session, so it is never logged.
    pub fn tag(&self) -> String {
        self.0[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            + "…"
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::str::FromStr for SessionId {
    type Err = DealerError;

    fn from_str(s: &str) -> Result<Self, DealerError> {
        let bad = || DealerError::Protocol(format!("{s:?} is not a session id (32 hex digits)"));
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(SessionId(id))
    }
}

/// How a dealer process behaves.
#[derive(Debug, Clone, Copy)]
pub struct ServiceConfig {
    /// A session not joined by its client within this time is forgotten.
    pub expiry: Duration,
    /// How long a read or write of a message in progress may take.
    pub timeout: Duration,
    /// How long a client may go without announcing anything before it is dropped.
    pub idle: Duration,
    /// The largest correlation served, in words per party.
    pub max_need_words: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            expiry: Duration::from_secs(600),
            timeout: crate::channel::DEFAULT_TIMEOUT,
            idle: Duration::from_secs(3600),
            max_need_words: super::MAX_NEED_WORDS,
        }
    }
}

struct Pending {
    created: Instant,
    /// Both parties' seeds: wiped when the session is joined, expires or the dealer stops.
    seeds: Zeroizing<[[u8; 32]; 2]>,
}

/// The dealer process: sessions waiting for their client, and the serving loop.
pub struct DealerService {
    config: ServiceConfig,
    security: Security,
    pending: Mutex<HashMap<SessionId, Pending>>,
}

impl std::fmt::Debug for DealerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerService")
            .field("config", &self.config)
            .field("security", &self.security.name())
            .field("pending", &self.pending())
            .finish()
    }
}

fn io_error(what: &str, e: &io::Error) -> DealerError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            DealerError::Unavailable(format!("{what}: timed out"))
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => {
            DealerError::Unavailable(format!("{what}: the connection closed"))
        }
        io::ErrorKind::PermissionDenied => {
            DealerError::Unavailable(format!("{what}: handshake failed: {e}"))
        }
        io::ErrorKind::InvalidData if is_integrity(e) => {
            DealerError::Protocol(format!("{what}: {e}"))
        }
        _ => DealerError::Unavailable(format!("{what}: {e}")),
    }
}

fn refuse(stream: &mut impl Write, status: bool, message: &str) -> io::Result<()> {
    let bytes = &message.as_bytes()[..message.len().min(MAX_MESSAGE_BYTES as usize)];
    let mut out = Vec::with_capacity(13 + bytes.len());
    if status {
        out.push(STATUS_REFUSED);
    } else {
        out.extend_from_slice(&REFUSAL.to_le_bytes());
    }
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    stream.write_all(&out)
}

fn read_message(stream: &mut impl Read) -> Result<String, DealerError> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| io_error("reading the dealer's refusal", &e))?;
    let len = u32::from_le_bytes(len).min(MAX_MESSAGE_BYTES);
    let mut bytes = vec![0u8; len as usize];
    stream
        .read_exact(&mut bytes)
        .map_err(|e| io_error("reading the dealer's refusal", &e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl DealerService {
    /// A dealer with no sessions yet, whose connections are protected by `security` (with
    /// Noise, it serves only the parties whose keys it trusts).
    pub fn new(config: ServiceConfig, security: Security) -> Self {
        DealerService {
            config,
            security,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Sessions waiting for their client.
    pub fn pending(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or_default()
    }

    /// Serves every connection on `listener`, one thread each, until accepting fails. A
    /// connection that fails is logged and closed; the others go on.
    pub fn serve(self: Arc<Self>, listener: &TcpListener) -> io::Result<()> {
        loop {
            let (stream, peer) = listener.accept()?;
            let service = Arc::clone(&self);
            std::thread::spawn(move || {
                if let Err(e) = service.handle(stream) {
                    tracing::warn!("dealer: connection from {peer}: {e}");
                }
            });
        }
    }

    /// Serves one connection: a server asking for a session, or a client joining one.
    pub fn handle(&self, tcp: TcpStream) -> Result<(), DealerError> {
        let timeout = Some(self.config.timeout);
        let setup = |s: &TcpStream| {
            s.set_nodelay(true)?;
            s.set_read_timeout(timeout)?;
            s.set_write_timeout(timeout)
        };
        setup(&tcp).map_err(|e| io_error("setting up the connection", &e))?;
        let mut stream = match Stream::establish(tcp, &self.security, false, "dealer") {
            Ok(stream) => stream,
            // A connection closed before saying anything: a reachability probe.
            Err(e) if is_silent(&e) => return Ok(()),
            Err(e) => return Err(io_error("opening the connection", &e)),
        };
        let mut hello = [0u8; 9];
        stream
            .reader()
            .read_exact(&mut hello)
            .map_err(|e| io_error("reading the hello", &e))?;
        if &hello[..8] != MAGIC {
            return Err(DealerError::Protocol(
                "the peer is not a pillar party of this version".into(),
            ));
        }
        match hello[8] {
            ROLE_SERVER => self.open(&mut stream),
            ROLE_CLIENT => self.join(stream),
            role => {
                let detail = format!("unknown role {role}");
                let _ = refuse(stream.writer(), true, &detail);
                Err(DealerError::Protocol(detail))
            }
        }
    }

    fn open(&self, stream: &mut Stream) -> Result<(), DealerError> {
        let mut rng: ChaCha12Rng = rand::make_rng();
        let mut id = [0u8; 16];
        let mut seeds = Zeroizing::new([[0u8; 32]; 2]);
        rng.fill_bytes(&mut id);
        seeds.iter_mut().for_each(|s| rng.fill_bytes(s));
        let id = SessionId(id);
        let mut reply = Zeroizing::new(Vec::with_capacity(49));
        reply.push(STATUS_OK);
        reply.extend_from_slice(&id.0);
        reply.extend_from_slice(&seeds[0]);
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let expiry = self.config.expiry;
            pending.retain(|_, p| p.created.elapsed() < expiry);
            pending.insert(
                id,
                Pending {
                    created: Instant::now(),
                    seeds,
                },
            );
        }
        if let Err(e) = stream.writer().write_all(&reply) {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(io_error("answering the server", &e));
        }
        tracing::info!("dealer: opened session {}", id.tag());
        Ok(())
    }

    fn join(&self, mut stream: Stream) -> Result<(), DealerError> {
        let mut id = [0u8; 16];
        stream
            .reader()
            .read_exact(&mut id)
            .map_err(|e| io_error("reading the session id", &e))?;
        let id = SessionId(id);
        let found = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let seeds = match found {
            Some(p) if p.created.elapsed() < self.config.expiry => p.seeds,
            _ => {
                let detail = format!(
                    "no session {id}: it was never opened, has expired or was joined already"
                );
                let _ = refuse(stream.writer(), true, &detail);
                return Err(DealerError::Refused(detail));
            }
        };
        let mut reply = Zeroizing::new(Vec::with_capacity(33));
        reply.push(STATUS_OK);
        reply.extend_from_slice(&seeds[1]);
        stream
            .writer()
            .write_all(&reply)
            .map_err(|e| io_error("answering the client", &e))?;
        tracing::info!("dealer: session {} joined", id.tag());
        self.serve_corrections(stream, TrustedDealer::from_seeds(seeds[0], seeds[1]))?;
        tracing::info!("dealer: session {} closed", id.tag());
        Ok(())
    }

    /// Reads announcements and streams their corrections until the client hangs up.
    fn serve_corrections(
        &self,
        stream: Stream,
        mut dealer: TrustedDealer,
    ) -> Result<(), DealerError> {
        let (mut reader, mut writer) = stream.split();
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel::<Result<Vec<u64>, String>>(AHEAD);
            let sender = scope.spawn(move || -> Result<(), DealerError> {
                for item in rx {
                    match item {
                        Ok(words) => write_frame(&mut writer, &words)
                            .map_err(|e| io_error("sending corrections", &e))?,
                        Err(detail) => {
                            let _ = refuse(&mut writer, false, &detail);
                            return Err(DealerError::Refused(detail));
                        }
                    }
                }
                Ok(())
            });
            let computed = (|| -> Result<(), DealerError> {
                loop {
                    let Some(needs) = self.read_announcement(&mut reader)? else {
                        return Ok(());
                    };
                    for need in &needs {
                        let words = need
                            .check(self.config.max_need_words)
                            .and_then(|()| dealer.correction(need));
                        let failed = words.as_ref().err().map(ToString::to_string);
                        if tx.send(words.map_err(|e| e.to_string())).is_err() {
                            return Ok(()); // the sender stopped: its error says why
                        }
                        if let Some(detail) = failed {
                            return Err(DealerError::Refused(detail));
                        }
                    }
                }
            })();
            drop(tx);
            let sent = sender
                .join()
                .unwrap_or_else(|_| Err(DealerError::Protocol("the sender panicked".into())));
            computed.and(sent)
        })
    }

    /// The next announcement, or `None` when the client closed the connection between them.
    fn read_announcement(
        &self,
        stream: &mut StreamReader,
    ) -> Result<Option<Vec<Need>>, DealerError> {
        stream
            .set_read_timeout(Some(self.config.idle))
            .map_err(|e| io_error("waiting for the client", &e))?;
        let mut len = [0u8; 8];
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_error("waiting for the client", &e)),
        }
        stream
            .set_read_timeout(Some(self.config.timeout))
            .map_err(|e| io_error("reading an announcement", &e))?;
        let len = u64::from_le_bytes(len);
        if len > MAX_ANNOUNCE_BYTES {
            return Err(DealerError::Protocol(format!(
                "an announcement of {len} bytes (at most {MAX_ANNOUNCE_BYTES})"
            )));
        }
        let mut bytes = vec![0u8; len as usize];
        stream
            .read_exact(&mut bytes)
            .map_err(|e| io_error("reading an announcement", &e))?;
        decode_announcement(&bytes).map(Some)
    }
}

/// The needs a client announces, from the JSON it sent. Sizes are checked one by one when
/// each is served ([`Need::check`]), before anything is allocated for it.
pub fn decode_announcement(bytes: &[u8]) -> Result<Vec<Need>, DealerError> {
    serde_json::from_slice(bytes)
        .map_err(|e| DealerError::Protocol(format!("a malformed announcement: {e}")))
}

fn connect(
    addr: &str,
    role: u8,
    security: &Security,
    timeout: Duration,
) -> Result<Stream, DealerError> {
    let unavailable = |detail: String| {
        DealerError::Unavailable(format!("cannot reach the dealer at {addr}: {detail}"))
    };
    let addrs = addr
        .to_socket_addrs()
        .map_err(|e| unavailable(e.to_string()))?;
    let mut last = "no address".to_string();
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(tcp) => {
                let set = |s: &TcpStream| {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))
                };
                set(&tcp).map_err(|e| unavailable(e.to_string()))?;
                let mut stream = Stream::establish(tcp, security, true, "dealer")
                    .map_err(|e| io_error(&format!("the dealer at {addr}"), &e))?;
                let mut hello = [0u8; 9];
                hello[..8].copy_from_slice(MAGIC);
                hello[8] = role;
                stream
                    .writer()
                    .write_all(&hello)
                    .map_err(|e| unavailable(e.to_string()))?;
                return Ok(stream);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(unavailable(last))
}

fn read_status(stream: &mut StreamReader, addr: &str) -> Result<(), DealerError> {
    let mut status = [0u8; 1];
    stream
        .read_exact(&mut status)
        .map_err(|e| io_error(&format!("no answer from the dealer at {addr}"), &e))?;
    match status[0] {
        STATUS_OK => Ok(()),
        STATUS_REFUSED => Err(DealerError::Refused(read_message(stream)?)),
        s => Err(DealerError::Protocol(format!(
            "the peer at {addr} answered with status {s}: is it a pillar dealer?"
        ))),
    }
}

/// The server's side: asks the dealer at `addr` for a new session, and returns its id (to
/// hand to the client) and the server's dealer.
pub fn open_session(
    addr: &str,
    security: &Security,
    timeout: Duration,
) -> Result<(SessionId, SeededDealer), DealerError> {
    let mut stream = connect(addr, ROLE_SERVER, security, timeout)?;
    read_status(stream.reader(), addr)?;
    let mut reply = Zeroizing::new([0u8; 48]);
    stream
        .reader()
        .read_exact(reply.as_mut_slice())
        .map_err(|e| {
            io_error(
                &format!("reading the session from the dealer at {addr}"),
                &e,
            )
        })?;
    let mut id = [0u8; 16];
    let mut seed = Zeroizing::new([0u8; 32]);
    id.copy_from_slice(&reply[..16]);
    seed.copy_from_slice(&reply[16..]);
    Ok((SessionId(id), SeededDealer::server(*seed)))
}

/// The client's side: joins session `id` at the dealer at `addr`; the returned dealer
/// fetches its corrections over this connection.
pub fn join_session(
    addr: &str,
    id: SessionId,
    security: &Security,
    timeout: Duration,
) -> Result<SeededDealer, DealerError> {
    let mut stream = connect(addr, ROLE_CLIENT, security, timeout)?;
    stream
        .writer()
        .write_all(&id.0)
        .map_err(|e| io_error(&format!("joining the session at the dealer at {addr}"), &e))?;
    read_status(stream.reader(), addr)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    stream
        .reader()
        .read_exact(seed.as_mut_slice())
        .map_err(|e| io_error(&format!("reading the seed from the dealer at {addr}"), &e))?;
    Ok(SeededDealer::client(
        *seed,
        Box::new(RemoteCorrections {
            stream,
            announced: VecDeque::new(),
        }),
    ))
}

/// Party 1's corrections, read from the dealer in the order announced.
struct RemoteCorrections {
    stream: Stream,
    announced: VecDeque<Need>,
}

impl CorrectionSource for RemoteCorrections {
    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        if needs.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec(needs)
            .map_err(|e| DealerError::Protocol(format!("cannot encode the needs: {e}")))?;
        let mut frame = Vec::with_capacity(8 + json.len());
        frame.extend_from_slice(&(json.len() as u64).to_le_bytes());
        frame.extend_from_slice(&json);
        self.stream
            .writer()
            .write_all(&frame)
            .map_err(|e| io_error("announcing to the dealer", &e))?;
        self.announced.extend(needs.iter().cloned());
        Ok(())
    }

    fn correction(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        if self.announced.is_empty() {
            self.announce(std::slice::from_ref(need))?;
        }
        match self.announced.pop_front() {
            Some(expected) if expected == *need => {}
            Some(expected) => {
                return Err(DealerError::Mismatch {
                    expected: Box::new(expected),
                    got: Box::new(need.clone()),
                });
            }
            None => return Err(DealerError::Protocol("nothing announced".into())),
        }
        let mut header = [0u8; 8];
        self.stream
            .reader()
            .read_exact(&mut header)
            .map_err(|e| io_error("reading a correction from the dealer", &e))?;
        let count = u64::from_le_bytes(header);
        if count == REFUSAL {
            return Err(DealerError::Refused(read_message(self.stream.reader())?));
        }
        let expected = need.correction_words();
        if count != expected as u64 {
            return Err(DealerError::Correction {
                need: Box::new(need.clone()),
                expected,
                got: usize::try_from(count).unwrap_or(usize::MAX),
            });
        }
        let mut words = vec![0u64; expected];
        self.stream
            .reader()
            .read_exact(bytemuck::cast_slice_mut(&mut words))
            .map_err(|e| io_error("reading a correction from the dealer", &e))?;
        for w in &mut words {
            *w = u64::from_le(*w);
        }
        Ok(words)
    }
}
