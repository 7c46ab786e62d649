//! Server and client as separate processes: the model owner serves, an image owner connects.
//!
//! # Protocol
//! On a [`TcpChannel`] (Noise with pinned keys unless plaintext was asked for; its handshake
//! also checks that one end is the server and the other the client), possibly under the link
//! emulator:
//! 1. The server asks its dealer for a session, then sends a [`Hello`]: the model's name, its
//!    public [`Architecture`] and the session id the client must join, or why it cannot serve
//!    (its dealer is down, say). JSON, as a length word and then the bytes packed into words.
//! 2. The client checks the architecture ([`Architecture::validate`]), joins the dealer
//!    session, and both run the per-connection setup ([`ServerConnection::open`],
//!    [`ClientConnection::open`]).
//! 3. Per request, the client sends the number of images (0 ends the connection), then both
//!    run one batch ([`ServerConnection::prepare`] and its online phase); only the client
//!    learns the logits.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pillar_mpc::channel::{Channel, Emulated, Identity, Link, Security, TcpChannel};
use pillar_mpc::dealer::remote::{SessionId, join_session, open_session};
use pillar_mpc::{MpcError, Party, RingTensor, Session};
use serde::{Deserialize, Serialize};

use crate::error::InferError;
use crate::plan::{Architecture, Plan};
use crate::run::{BatchReport, ClientConnection, Phase, ServerConnection};

/// Largest hello accepted, in bytes (an architecture is a few kilobytes).
const MAX_HELLO_BYTES: u64 = 16 << 20;

/// Why a remote inference failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The two-party computation, its link or its dealer failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// The server cannot serve (it says why).
    #[error("the server refused: {0}")]
    Refused(String),
    /// The peer sent something this version does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
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

/// What the server says first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Hello {
    /// Ready to serve.
    Ready {
        /// The model's name (its file name), for the client's report.
        model: String,
        /// The public network.
        architecture: Architecture,
        /// The dealer session to join, 32 hex digits.
        session: String,
    },
    /// Cannot serve.
    Refused {
        /// Why.
        reason: String,
    },
}

fn send_bytes(ch: &mut dyn Channel, bytes: &[u8]) -> Result<(), RemoteError> {
    let words: Vec<u64> = bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect();
    ch.exchange(&[bytes.len() as u64], &mut [])?;
    ch.exchange(&words, &mut [])?;
    Ok(())
}

fn recv_bytes(ch: &mut dyn Channel) -> Result<Vec<u8>, RemoteError> {
    let mut len = [0u64];
    ch.exchange(&[], &mut len)?;
    if len[0] > MAX_HELLO_BYTES {
        return Err(RemoteError::Protocol(format!(
            "a message of {} bytes (at most {MAX_HELLO_BYTES})",
            len[0]
        )));
    }
    let n = len[0] as usize;
    let mut words = vec![0u64; n.div_ceil(8)];
    ch.exchange(&[], &mut words)?;
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.truncate(n);
    Ok(bytes)
}

/// How a server serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The dealer's address.
    pub dealer: String,
    /// The emulated link to every client.
    pub link: Link,
    /// How long to wait for a client's next message, or the dealer.
    pub timeout: Duration,
    /// Most images in one request.
    pub max_batch: usize,
    /// Most clients served at once; more are told the server is busy.
    pub max_clients: usize,
    /// How links to clients and to the dealer are protected.
    pub security: Links,
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

/// The links of a dealer, a server and its client that trust one another: fresh keys for
/// the three roles of one process (the demo, benchmarks, tests). Processes apart each load
/// their own key instead (`pillar keygen`).
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The dealer's, trusting the server and the client.
    pub dealer: Security,
    /// The server's.
    pub server: Links,
    /// The client's.
    pub client: Links,
    /// The three identities, dealer, server and client, for tests that build other links.
    pub identities: [Arc<Identity>; 3],
}

impl Deployment {
    /// Fresh key pairs from the operating system's randomness, each pinning the others.
    pub fn generate() -> Deployment {
        let [d, s, c] = [(); 3].map(|()| Arc::new(Identity::generate()));
        let noise = |me: &Arc<Identity>, peers: &[&Arc<Identity>]| Security::Noise {
            identity: Arc::clone(me),
            trusted: Arc::new(peers.iter().map(|p| p.public()).collect()),
        };
        Deployment {
            dealer: noise(&d, &[&s, &c]),
            server: Links {
                peer: noise(&s, &[&c]),
                dealer: noise(&s, &[&d]),
            },
            client: Links {
                peer: noise(&c, &[&s]),
                dealer: noise(&c, &[&d]),
            },
            identities: [d, s, c],
        }
    }

    /// All three in plaintext.
    pub fn plaintext() -> Deployment {
        let [d, s, c] = [(); 3].map(|()| Arc::new(Identity::generate()));
        Deployment {
            dealer: Security::Plaintext,
            server: Links::plaintext(),
            client: Links::plaintext(),
            identities: [d, s, c],
        }
    }
}

/// What one client cost the server.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The setup.
    pub setup: Phase,
    /// Per request.
    pub batches: Vec<(usize, BatchReport)>,
}

impl Served {
    /// Images classified.
    pub fn images(&self) -> usize {
        self.batches.iter().map(|(n, _)| n).sum()
    }
}

/// Serves one client on `stream` with `plan` until it says goodbye.
pub fn serve_client(
    stream: TcpStream,
    plan: &Plan,
    model: &str,
    options: &ServeOptions,
) -> Result<Served, RemoteError> {
    serve_checked(stream, plan, model, options, None)
}

/// Serves one client, or tells it why not (`busy`) once the link is up.
fn serve_checked(
    stream: TcpStream,
    plan: &Plan,
    model: &str,
    options: &ServeOptions,
    busy: Option<String>,
) -> Result<Served, RemoteError> {
    let tcp = TcpChannel::from_stream(
        stream,
        Party::Server,
        &options.security.peer,
        options.timeout,
    )?;
    let mut channel = Emulated::new(tcp, options.link);
    if let Some(reason) = busy {
        send_json(
            &mut channel,
            &Hello::Refused {
                reason: reason.clone(),
            },
        )?;
        return Err(RemoteError::Refused(reason));
    }
    let (id, dealer) =
        match open_session(&options.dealer, &options.security.dealer, options.timeout) {
            Ok(pair) => pair,
            Err(e) => {
                let hello = Hello::Refused {
                    reason: format!("the server has no dealer: {e}"),
                };
                send_json(&mut channel, &hello)?;
                return Err(e.into());
            }
        };
    let arch = &plan.architecture;
    send_json(
        &mut channel,
        &Hello::Ready {
            model: model.to_string(),
            architecture: arch.clone(),
            session: id.to_string(),
        },
    )?;
    let mut s = Session::new(Party::Server, arch.fixed(), channel, dealer)?;
    let conn = ServerConnection::open(&mut s, plan)?;
    let mut served = Served {
        setup: conn.setup(),
        batches: Vec::new(),
    };
    loop {
        let n = s.exchange(&[], 1)?[0];
        if n == 0 {
            return Ok(served);
        }
        if n > options.max_batch as u64 {
            return Err(RemoteError::Protocol(format!(
                "the client asked for a batch of {n} images; this server takes at most {}",
                options.max_batch
            )));
        }
        let report = conn.prepare(&mut s, n as usize)?.run(&mut s)?;
        served.batches.push((n as usize, report));
    }
}

fn send_json(ch: &mut dyn Channel, hello: &Hello) -> Result<(), RemoteError> {
    let bytes = serde_json::to_vec(hello)
        .map_err(|e| RemoteError::Protocol(format!("cannot encode the hello: {e}")))?;
    send_bytes(ch, &bytes)
}

/// Accepts clients on `listener` forever, one thread each, and calls `done` with each
/// client's address and outcome. A failed client does not stop the others; beyond
/// `max_clients` at once, a client is told the server is busy.
pub fn serve(
    listener: &TcpListener,
    plan: Arc<Plan>,
    model: &str,
    options: &ServeOptions,
    done: Arc<dyn Fn(SocketAddr, Result<Served, RemoteError>) + Send + Sync>,
) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = listener.accept()?;
        let (plan, model, options, done, active) = (
            Arc::clone(&plan),
            model.to_string(),
            options.clone(),
            Arc::clone(&done),
            Arc::clone(&active),
        );
        std::thread::spawn(move || {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            let busy = (now > options.max_clients).then(|| {
                format!(
                    "the server is busy ({} clients at once at most): try again later",
                    options.max_clients
                )
            });
            let outcome = serve_checked(stream, &plan, &model, &options, busy);
            active.fetch_sub(1, Ordering::SeqCst);
            done(peer, outcome)
        });
    }
}

/// What a client makes of the server's hello: the model's name, its checked architecture
/// and the dealer session to join, or the server's refusal.
pub fn decode_hello(bytes: &[u8]) -> Result<(String, Architecture, SessionId), RemoteError> {
    let hello: Hello = serde_json::from_slice(bytes)
        .map_err(|e| RemoteError::Protocol(format!("a malformed hello: {e}")))?;
    match hello {
        Hello::Ready {
            model,
            architecture,
            session,
        } => Ok((model, architecture, session.parse()?)),
        Hello::Refused { reason } => Err(RemoteError::Refused(reason)),
    }
}

/// A connection to a server, before the setup.
pub struct RemoteModel {
    /// The model's name, as the server gives it.
    pub model: String,
    architecture: Architecture,
    session: Session,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// What a client's run cost it.
#[derive(Debug, Clone, Default)]
pub struct RemoteReport {
    /// The setup.
    pub setup: Phase,
    /// Per batch.
    pub batches: Vec<BatchReport>,
}

impl RemoteModel {
    /// Connects to the server at `server`, reads its hello, checks the architecture and
    /// joins the dealer session at `dealer`; both links are protected by `security`.
    pub fn connect(
        server: &str,
        dealer: &str,
        link: Link,
        security: &Links,
        timeout: Duration,
    ) -> Result<Self, RemoteError> {
        let tcp = TcpChannel::connect(server, Party::Client, &security.peer, timeout)?;
        let mut channel = Emulated::new(tcp, link);
        let bytes = recv_bytes(&mut channel)?;
        let (model, architecture, id) = decode_hello(&bytes)?;
        let dealer = join_session(dealer, id, &security.dealer, timeout)?;
        let session = Session::new(Party::Client, architecture.fixed(), channel, dealer)?;
        Ok(RemoteModel {
            model,
            architecture,
            session,
        })
    }

    /// The network the server runs.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// Runs the setup, then every batch (ring words at the architecture's `f`, `[n, ...]`),
    /// calling `progress` with the images of each batch done, and says goodbye. Every batch
    /// is checked against the architecture before anything is sent.
    pub fn run(
        mut self,
        batches: &[RingTensor],
        progress: &dyn Fn(usize),
    ) -> Result<(Vec<RingTensor>, RemoteReport), RemoteError> {
        for b in batches {
            if self.architecture.check_input(b)? == 0 {
                return Err(RemoteError::Protocol("an empty batch".into()));
            }
        }
        let s = &mut self.session;
        let conn = ClientConnection::open(s, &self.architecture)?;
        let mut report = RemoteReport {
            setup: conn.setup(),
            batches: Vec::with_capacity(batches.len()),
        };
        let mut outputs = Vec::with_capacity(batches.len());
        for b in batches {
            let n = b.shape()[0];
            s.exchange(&[n as u64], 0)?;
            let (logits, batch) = conn.prepare(s, n)?.run(s, b)?;
            outputs.push(logits);
            report.batches.push(batch);
            progress(n);
        }
        s.exchange(&[0], 0)?;
        Ok((outputs, report))
    }
}
