//! The dealer process's side: sessions waiting for their client, and the serving loop.

use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha12Rng;
use zeroize::Zeroizing;

use super::{
    Announce, DealerReply, DealerRequest, Seed, SessionId, io_error, read_error, recv, recv_body,
    send,
};
use crate::channel::secure::{Security, Service, Stream, StreamReader, configure, is_silent};
use crate::channel::{Admission, Ticket, accept_loop};
use crate::dealer::{CorrectionSource, DealerError, MAX_NEED_WORDS, TrustedDealer};
use crate::wire::{self, ReadError};

/// Corrections computed ahead of the writer, at most.
const AHEAD: usize = 4;

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
    /// How connections are let in before the peer is known.
    pub admission: Admission,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            expiry: Duration::from_secs(600),
            timeout: crate::channel::DEFAULT_TIMEOUT,
            idle: Duration::from_secs(3600),
            max_need_words: MAX_NEED_WORDS,
            admission: Admission::default(),
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

    /// Serves every connection on `listener`, one thread each, for ever (see
    /// [`accept_loop`]: strangers are let in as `config.admission` says, and a failed accept
    /// is logged and survived). A connection that fails is logged and closed; the others go
    /// on. Returns only if the listener is unusable.
    pub fn serve(self: Arc<Self>, listener: &TcpListener) -> io::Result<()> {
        let admission = self.config.admission;
        accept_loop(
            listener,
            admission,
            "dealer",
            move |stream, peer, ticket| {
                if let Err(e) = self.admit(stream, Some(ticket)) {
                    tracing::warn!("dealer: connection from {peer}: {e}");
                }
            },
        )
    }

    /// Serves one connection: a server asking for a session, or a client joining one.
    pub fn handle(&self, tcp: TcpStream) -> Result<(), DealerError> {
        self.admit(tcp, None)
    }

    /// Serves one connection, whose handshake holds `ticket` until the peer's request is
    /// read: a peer that is still unknown holds a place among the handshakes, and only
    /// for `config.admission.handshake`.
    fn admit(&self, tcp: TcpStream, ticket: Option<Ticket>) -> Result<(), DealerError> {
        configure(&tcp, self.config.timeout)
            .map_err(|e| io_error("setting up the connection", e))?;
        let handshake = self.config.admission.handshake;
        let mut stream =
            match Stream::establish(tcp, &self.security, false, Service::Dealer, handshake) {
                Ok(stream) => stream,
                // A connection closed before saying anything: a reachability probe.
                Err(e) if is_silent(&e) => return Ok(()),
                Err(e) => return Err(io_error("opening the connection", e)),
            };
        let request = recv::<DealerRequest>(stream.reader())?;
        stream
            .reader()
            .finish_handshake()
            .map_err(|e| io_error("opening the connection", e))?;
        drop(ticket);
        match request {
            DealerRequest::Open => self.open(&mut stream),
            DealerRequest::Join { session } => self.join(stream, session),
        }
    }

    fn open(&self, stream: &mut Stream) -> Result<(), DealerError> {
        let mut rng: ChaCha12Rng = rand::make_rng();
        let mut id = [0u8; 16];
        let mut seeds = Zeroizing::new([[0u8; 32]; 2]);
        rng.fill_bytes(&mut id);
        seeds.iter_mut().for_each(|s| rng.fill_bytes(s));
        let id = SessionId(id);
        let reply = DealerReply::Seed {
            session: id,
            seed: Seed(Zeroizing::new(seeds[0])),
        };
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
        if let Err(e) = send(stream.writer(), &reply) {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(e);
        }
        tracing::info!("dealer: opened session {}", id.tag());
        Ok(())
    }

    fn join(&self, mut stream: Stream, id: SessionId) -> Result<(), DealerError> {
        let found = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let seeds = match found {
            Some(p) if p.created.elapsed() < self.config.expiry => p.seeds,
            _ => {
                let detail = format!(
                    "no session {}: it was never opened, has expired or was joined already",
                    id.tag()
                );
                let _ = send(stream.writer(), &DealerReply::refused(&detail));
                return Err(DealerError::Refused(detail));
            }
        };
        let reply = DealerReply::Seed {
            session: id,
            seed: Seed(Zeroizing::new(seeds[1])),
        };
        send(stream.writer(), &reply)?;
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
            // A need refused travels to the writer like a correction: the client hears the
            // reason in its place, and the writer returns the error itself.
            let (tx, rx) = mpsc::sync_channel::<Result<Vec<u64>, DealerError>>(AHEAD);
            let sender = scope.spawn(move || -> Result<(), DealerError> {
                for item in rx {
                    match item {
                        Ok(words) => wire::write_words(&mut writer, &words)
                            .map_err(|e| io_error("sending corrections", e))?,
                        Err(e) => {
                            let _ = send(&mut writer, &DealerReply::refused(&e.to_string()));
                            return Err(e);
                        }
                    }
                }
                Ok(())
            });
            let computed = (|| -> Result<(), DealerError> {
                loop {
                    let Some(announced) = self.read_announcement(&mut reader)? else {
                        return Ok(());
                    };
                    for need in announced.needs() {
                        let words = need
                            .check(self.config.max_need_words)
                            .and_then(|()| dealer.correction(need));
                        let failed = words.is_err();
                        // A failed send: the writer stopped, and its error says why. After
                        // a refusal the writer returns it.
                        if tx.send(words).is_err() || failed {
                            return Ok(());
                        }
                    }
                }
            })();
            drop(tx);
            let sent = sender
                .join()
                .unwrap_or(Err(DealerError::OutOfOrder("the sender panicked")));
            computed.and(sent)
        })
    }

    /// The next announcement, or `None` when the client closed the connection between them.
    fn read_announcement(
        &self,
        stream: &mut StreamReader,
    ) -> Result<Option<Announce>, DealerError> {
        stream
            .set_read_timeout(Some(self.config.idle))
            .map_err(|e| io_error("waiting for the client", e))?;
        let header = match wire::read_header(stream) {
            Ok(h) => h,
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(read_error("waiting for the client", e)),
        };
        stream
            .set_read_timeout(Some(self.config.timeout))
            .map_err(|e| io_error("reading an announcement", e))?;
        recv_body(stream, header).map(Some)
    }
}
