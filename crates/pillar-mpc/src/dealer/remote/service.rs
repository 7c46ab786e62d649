//! The dealer process's side: sessions waiting for their client, the plans their servers
//! commit to, and the serving loop.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{
    Announce, DealerReply, DealerRequest, Seed, SessionId, io_error, read_error, recv, recv_body,
    send,
};
use crate::channel::secure::{
    Identity, PublicKey, Security, Service, Stream, StreamReader, StreamWriter, configure,
    is_silent,
};
use crate::channel::{Admission, Ticket, accept_loop};
use crate::dealer::{
    CorrectionSource, DealerError, MAX_NEED_WORDS, Need, TrustedDealer, WeightMasks,
};
use crate::secret::WipedRng;
use crate::wire::{self, ReadError};

/// Corrections computed ahead of the writer, at most.
const AHEAD: usize = 4;

/// Correlations a server may commit to ahead of its client, at most: a batch of the largest
/// networks needs a few hundred.
const MAX_COMMITTED: usize = 1 << 16;

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
    /// The most words one session may hold at once at the dealer: the correlations being
    /// computed (with the weight mask a product regenerates) or sent. A need that would go
    /// beyond is refused before anything is allocated.
    pub max_session_words: usize,
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
            max_session_words: MAX_NEED_WORDS,
            admission: Admission::default(),
        }
    }
}

struct Pending {
    created: Instant,
    /// Both parties' seeds: wiped when the session is joined, expires or the dealer stops.
    seeds: Zeroizing<[[u8; 32]; 2]>,
    /// The server's weight masks (their seed is wiped likewise).
    masks: Arc<WeightMasks>,
    /// What the server committed to.
    plan: Arc<Committed>,
}

/// How the dealer's links are protected, and which trusted key plays which role.
#[derive(Debug, Clone)]
pub enum DealerLinks {
    /// Noise with the dealer's `identity`. A key in `servers` may open sessions, one in
    /// `clients` may join them: a client's key cannot open a session (and so draw a server's
    /// seed), nor a server's key join one (and so receive corrections).
    Noise {
        /// The dealer's key pair.
        identity: Arc<Identity>,
        /// The servers' public keys.
        servers: Arc<Vec<PublicKey>>,
        /// The clients' public keys.
        clients: Arc<Vec<PublicKey>>,
    },
    /// No encryption or authentication: anyone may take either role. Benchmarks and tests.
    Plaintext,
}

impl DealerLinks {
    /// The handshake's security: every key of either role gets in, then its request is
    /// checked against its role.
    fn security(&self) -> Security {
        match self {
            DealerLinks::Noise {
                identity,
                servers,
                clients,
            } => Security::Noise {
                identity: Arc::clone(identity),
                trusted: Arc::new(servers.iter().chain(clients.iter()).copied().collect()),
            },
            DealerLinks::Plaintext => Security::Plaintext,
        }
    }

    /// Refuses a request by `peer` that its role does not allow.
    fn allow(&self, peer: Option<PublicKey>, request: &DealerRequest) -> Result<(), String> {
        let DealerLinks::Noise {
            servers, clients, ..
        } = self
        else {
            return Ok(());
        };
        let (keys, role, verb) = match request {
            DealerRequest::Open { .. } => (servers, "server", "open a session"),
            DealerRequest::Join { .. } => (clients, "client", "join a session"),
        };
        match peer {
            Some(key) if keys.contains(&key) => Ok(()),
            Some(key) => Err(format!(
                "the key {key} is not trusted as a {role}'s: it may not {verb}"
            )),
            None => Err(format!("an unauthenticated peer may not {verb}")),
        }
    }
}

/// The dealer process: sessions waiting for their client, and the serving loop.
pub struct DealerService {
    config: ServiceConfig,
    links: DealerLinks,
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
    /// A dealer with no sessions yet, whose connections are protected by `links` (with Noise,
    /// it serves only the parties whose keys it trusts, each in its role).
    pub fn new(config: ServiceConfig, links: DealerLinks) -> Self {
        DealerService {
            config,
            security: links.security(),
            links,
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
        if let Err(reason) = self.links.allow(stream.peer(), &request) {
            let _ = send(stream.writer(), &DealerReply::refused(&reason));
            stream.linger();
            return Err(DealerError::Refused(reason));
        }
        match request {
            DealerRequest::Open { weight_masks } => self.open(stream, weight_masks),
            DealerRequest::Join { session } => self.join(stream, session),
        }
    }

    /// A server's session: its seed, then the correlations it commits to, until it hangs up.
    fn open(&self, mut stream: Stream, weight_masks: WeightMasks) -> Result<(), DealerError> {
        // A generator wiped when dropped: its state would give the session's seeds.
        let mut rng = WipedRng::from_os();
        let mut id = [0u8; 16];
        let mut seeds = Zeroizing::new([[0u8; 32]; 2]);
        rng.fill(&mut id);
        seeds.iter_mut().for_each(|s| rng.fill(s));
        let id = SessionId(id);
        let reply = DealerReply::Seed {
            session: id,
            seed: Seed(Zeroizing::new(seeds[0])),
        };
        let plan = Arc::new(Committed::default());
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let expiry = self.config.expiry;
            pending.retain(|_, p| p.created.elapsed() < expiry);
            pending.insert(
                id,
                Pending {
                    created: Instant::now(),
                    seeds,
                    masks: Arc::new(weight_masks),
                    plan: Arc::clone(&plan),
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
        let (mut reader, writer) = stream.split();
        plan.lock().server = Some(writer);
        let committed = (|| loop {
            match self.read_announcement(&mut reader)? {
                Some(announced) => plan.commit(announced.needs())?,
                None => return Ok(()),
            }
        })();
        plan.end(match &committed {
            Ok(()) => "the server closed the session".to_string(),
            Err(e) => format!("the server's link failed: {e}"),
        });
        committed
    }

    fn join(&self, mut stream: Stream, id: SessionId) -> Result<(), DealerError> {
        let found = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let (seeds, masks, plan) = match found {
            Some(p) if p.created.elapsed() < self.config.expiry => (p.seeds, p.masks, p.plan),
            _ => {
                let detail = format!(
                    "no session {}: it was never opened, has expired or was joined already",
                    id.tag()
                );
                let _ = send(stream.writer(), &DealerReply::refused(&detail));
                // A client may have sent its announcement right behind its request.
                stream.linger();
                return Err(DealerError::Refused(detail));
            }
        };
        let reply = DealerReply::Seed {
            session: id,
            seed: Seed(Zeroizing::new(seeds[1])),
        };
        send(stream.writer(), &reply)?;
        tracing::info!("dealer: session {} joined", id.tag());
        let dealer = TrustedDealer::from_seeds(seeds[0], seeds[1]).with_weight_masks(masks);
        let served = self.serve_corrections(stream, dealer, &plan);
        if let Err(e @ DealerError::Diverged { .. }) = &served {
            tracing::warn!("dealer: session {}: {e}", id.tag());
            plan.tell_server(&format!("{e}; it was refused before it got a word"));
        }
        served?;
        tracing::info!("dealer: session {} closed", id.tag());
        Ok(())
    }

    /// Reads announcements and streams their corrections until the client hangs up. Each need
    /// must be the one the server committed to next: the corrections are computed from the
    /// server's stream, so any other need would hand the client words of it.
    fn serve_corrections(
        &self,
        stream: Stream,
        mut dealer: TrustedDealer,
        plan: &Committed,
    ) -> Result<(), DealerError> {
        let (mut reader, mut writer) = stream.split();
        let budget = Budget::new(self.config.max_session_words);
        std::thread::scope(|scope| {
            // A need refused travels to the writer like a correction: the client hears the
            // reason in its place, and the writer returns the error itself.
            let (tx, rx) = mpsc::sync_channel::<Result<Vec<u64>, DealerError>>(AHEAD);
            let budget = &budget;
            let sender = scope.spawn(move || -> Result<(), DealerError> {
                for item in rx {
                    match item {
                        Ok(words) => {
                            let sent = wire::write_words(&mut writer, &words)
                                .map_err(|e| io_error("sending corrections", e));
                            budget.release(words.len());
                            sent?;
                        }
                        Err(e) => {
                            let _ = send(&mut writer, &DealerReply::refused(&refusal(&e)));
                            return Err(e);
                        }
                    }
                }
                Ok(())
            });
            let computed = (|| -> Result<(), DealerError> {
                let mut index = 0;
                loop {
                    let Some(announced) = self.read_announcement(&mut reader)? else {
                        return Ok(());
                    };
                    for need in announced.needs() {
                        let words = need
                            .check(self.config.max_need_words)
                            .and_then(|()| plan.next(index, need, self.config.timeout))
                            .and_then(|()| budget.reserve(need, self.config.timeout))
                            .and_then(|()| {
                                let words = dealer.correction(need);
                                budget.computed(need);
                                words
                            });
                        index += 1;
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

/// What the client is told when refused: a deviation is named without the server's plan.
fn refusal(e: &DealerError) -> String {
    match e {
        DealerError::Diverged { index, asked, .. } => format!(
            "{asked:?} as correlation {index} is not what the server committed to: the dealer serves a client only the plan its server committed to"
        ),
        e => e.to_string(),
    }
}

/// The correlations a server committed to, in order, as they arrive on its link; the
/// client's requests are matched against them one by one.
#[derive(Default)]
struct Committed {
    state: Mutex<Commitments>,
    changed: Condvar,
}

#[derive(Default)]
struct Commitments {
    /// Committed and not yet asked for by the client.
    queue: VecDeque<Need>,
    /// Why nothing more will come: the server left, or its link failed.
    ended: Option<String>,
    /// The server's link, to tell it its client deviated.
    server: Option<StreamWriter>,
}

impl Committed {
    fn lock(&self) -> MutexGuard<'_, Commitments> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server will draw `needs` next.
    fn commit(&self, needs: &[Need]) -> Result<(), DealerError> {
        let mut state = self.lock();
        if state.queue.len() + needs.len() > MAX_COMMITTED {
            return Err(DealerError::OutOfOrder(
                "the server committed to too many correlations ahead of its client",
            ));
        }
        state.queue.extend(needs.iter().cloned());
        self.changed.notify_all();
        Ok(())
    }

    /// Nothing more will be committed, because of `why`.
    fn end(&self, why: String) {
        self.lock().ended.get_or_insert(why);
        self.changed.notify_all();
    }

    /// Takes the server's next commitment, which must be `asked`, the client's `index`-th
    /// need, waiting up to `timeout` for the server to commit it.
    fn next(&self, index: usize, asked: &Need, timeout: Duration) -> Result<(), DealerError> {
        let state = self.lock();
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |s| s.queue.is_empty() && s.ended.is_none())
            .unwrap_or_else(|p| p.into_inner());
        let Some(committed) = state.queue.pop_front() else {
            let why = state
                .ended
                .as_deref()
                .unwrap_or("it committed nothing in time");
            return Err(DealerError::Refused(format!(
                "the server committed to no correlation {index} ({why}): {asked:?} is not served"
            )));
        };
        if committed != *asked {
            return Err(DealerError::Diverged {
                index,
                asked: Box::new(asked.clone()),
                committed: Box::new(committed),
            });
        }
        Ok(())
    }

    /// Tells the server, if it is still there, that its client was refused for `reason`.
    fn tell_server(&self, reason: &str) {
        if let Some(mut server) = self.lock().server.take() {
            let _ = send(&mut server, &DealerReply::refused(reason));
        }
    }
}

/// Words one session holds at the dealer: the correlations being computed or waiting to be
/// sent. Counted before anything is allocated.
struct Budget {
    limit: usize,
    /// Corrections computed and not yet sent, and the one being computed.
    held: Mutex<usize>,
    released: Condvar,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget {
            limit,
            held: Mutex::new(0),
            released: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for computing `need`: both parties' expansions, the weight mask it regenerates
    /// and the correction, while it is computed. Waits up to `timeout` for corrections on
    /// their way out to leave; a need that cannot fit even then is refused.
    fn reserve(&self, need: &Need, timeout: Duration) -> Result<(), DealerError> {
        let words = Self::words(need);
        let held = self.lock();
        let refuse = |held: usize| DealerError::Budget {
            need: Box::new(need.clone()),
            words,
            held,
            limit: self.limit,
        };
        if words > self.limit {
            return Err(refuse(*held));
        }
        let full = |h: &mut usize| *h + words > self.limit;
        let (mut held, _) = self
            .released
            .wait_timeout_while(held, timeout, full)
            .unwrap_or_else(|p| p.into_inner());
        if *held + words > self.limit {
            return Err(refuse(*held));
        }
        *held += words;
        Ok(())
    }

    /// `need` is computed: its expansions are freed, its correction waits to be sent.
    fn computed(&self, need: &Need) {
        let words = Self::words(need);
        let mut held = self.lock();
        *held = held.saturating_sub(words - need.correction_words());
        self.released.notify_all();
    }

    /// `words` of correction were sent.
    fn release(&self, words: usize) {
        let mut held = self.lock();
        *held = held.saturating_sub(words);
        self.released.notify_all();
    }

    /// Words `need` holds while computed: party 0's expansion, party 1's seeded words, the
    /// weight mask it regenerates and the correction. Sizes are checked.
    fn words(need: &Need) -> usize {
        need.words() + need.seeded_words() + need.weight_mask_words() + need.correction_words()
    }
}
