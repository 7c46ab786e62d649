//! The image owner's side: connecting to a server and classifying batches.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use pillar_mpc::channel::{Channel, ChannelError, Emulated, Link, Security, TcpChannel, send};
use pillar_mpc::dealer::remote::{DealerLink, SessionId, dial, join_session};
use pillar_mpc::dealer::{DealerError, Need, SeededDealer};
use pillar_mpc::protocols::weights::{KeptWeights, WeightsDigest};
use pillar_mpc::wire::{self, Message};
use pillar_mpc::{Party, RingTensor, Session};

use super::DEFAULT_MEMORY_LIMIT;
use super::ahead::Ahead;
use super::{Hello, Links, RemoteError, Request};
use crate::plan::Architecture;
use crate::run::{BatchReport, ClientConnection, Phase};

/// What a client learns from the server's hello.
pub(crate) struct Ready {
    /// Its architecture, checked.
    pub(crate) architecture: Box<Architecture>,
    /// The dealer session to join.
    pub(crate) session: SessionId,
    /// Most images per request.
    pub(crate) max_batch: NonZeroUsize,
    /// The digest of the model's `F`.
    pub(crate) weights: WeightsDigest,
}

/// What a client makes of the server's hello: what it needs to go on, or the server's
/// refusal.
pub(crate) fn decode_hello(bytes: &[u8]) -> Result<Ready, RemoteError> {
    let hello = wire::decode::<Hello>(bytes).map_err(ChannelError::from)?;
    match hello {
        Hello::Ready {
            architecture,
            session,
            max_batch,
            weights,
        } => Ok(Ready {
            architecture,
            session,
            max_batch,
            weights,
        }),
        Hello::Refused { reason } => Err(RemoteError::Refused(reason)),
    }
}

/// A connection to a server, before the setup.
pub struct RemoteModel {
    architecture: Architecture,
    max_batch: NonZeroUsize,
    /// The digest of the server's `F`, and that `F` if the caller kept it.
    weights: WeightsDigest,
    kept: Option<KeptWeights>,
    channel: Emulated<TcpChannel>,
    dealer: DealerJoin,
    memory_limit: usize,
    /// When [`RemoteModel::connect`] began.
    started: Instant,
    timeline: Timeline,
}

/// The client's dealer session, to be joined when the first request is sent.
struct DealerJoin {
    /// The link to the dealer, dialled while the server's handshake ran.
    link: DealerLink,
    addr: String,
    security: Security,
    session: SessionId,
    timeout: Duration,
}

impl DealerJoin {
    /// Joins the session over the dialled link, announcing `needs` in the same flight; if
    /// the dealer dropped that link meanwhile (it waits for a request only as long as its
    /// handshake deadline), over a new one.
    fn join(self, needs: &[Need]) -> Result<Ahead<SeededDealer>, DealerError> {
        match self.link.join_announcing(self.session, needs) {
            Ok(dealer) => Ok(Ahead::told(dealer, needs)),
            Err(DealerError::Unavailable { .. }) => {
                let dealer = join_session(&self.addr, self.session, &self.security, self.timeout)?;
                let mut dealer = Ahead::new(dealer);
                dealer.tell(needs)?;
                Ok(dealer)
            }
            Err(e) => Err(e),
        }
    }
}

/// When each step of a client's run ended, counted from the moment it began to connect: what
/// a user waits for before the first answer, step by step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// The server's hello arrived (TCP, handshake, greeting, the server's dealer session).
    pub hello: Duration,
    /// The client joined its dealer session (after sending its first request).
    pub dealer_joined: Duration,
    /// The per-connection setup ended.
    pub setup_done: Duration,
    /// Each request's logits arrived, in order.
    pub answered: Vec<Duration>,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel").finish_non_exhaustive()
    }
}

/// What a client's run cost it.
#[derive(Debug, Clone, Default)]
pub struct RemoteReport {
    /// The setup.
    pub setup: Phase,
    /// Per batch.
    pub batches: Vec<BatchReport>,
    /// When each step ended, from the start of [`RemoteModel::connect`].
    pub timeline: Timeline,
    /// The server's `F` this connection used, to keep for a later connection to the same
    /// model ([`RemoteModel::with_kept_weights`]).
    pub weights: Option<KeptWeights>,
}

impl RemoteModel {
    /// Connects to the server at `server`, reads its hello and checks the architecture, and
    /// connects to the dealer at `dealer` meanwhile (the session is joined by
    /// [`RemoteModel::run`], right after the first request is sent); both links are
    /// protected by `security`.
    pub fn connect(
        server: &str,
        dealer: &str,
        link: Link,
        security: &Links,
        timeout: Duration,
    ) -> Result<Self, RemoteError> {
        let started = Instant::now();
        // The dealer's TCP and Noise round trips need no session id: they run while the
        // server's are under way, and only the join waits for the hello.
        let dialing = {
            let (addr, security) = (dealer.to_string(), security.dealer.clone());
            std::thread::spawn(move || dial(&addr, &security, timeout))
        };
        let tcp = TcpChannel::connect(server, Party::Client, &security.peer, timeout)?;
        let mut channel = Emulated::new(tcp, link);
        let bytes = channel.recv_message(Hello::WHAT, Hello::MAX_BYTES)?;
        let hello = started.elapsed();
        let ready = decode_hello(&bytes)?;
        // A dealer that cannot be reached is this call's error, as the server's would be.
        let link = match dialing.join() {
            Ok(link) => link?,
            Err(_) => dial(dealer, &security.dealer, timeout)?,
        };
        Ok(RemoteModel {
            architecture: *ready.architecture,
            max_batch: ready.max_batch,
            weights: ready.weights,
            kept: None,
            channel,
            dealer: DealerJoin {
                link,
                addr: dealer.to_string(),
                security: security.dealer.clone(),
                session: ready.session,
                timeout,
            },
            memory_limit: DEFAULT_MEMORY_LIMIT,
            started,
            timeline: Timeline {
                hello,
                ..Timeline::default()
            },
        })
    }

    /// Most images the server takes in one batch.
    pub fn max_batch(&self) -> usize {
        self.max_batch.get()
    }

    /// Sets the most bytes a batch may take ([`DEFAULT_MEMORY_LIMIT`] otherwise), by
    /// [`Architecture::peak_words`]'s estimate: the server chooses the architecture, so the
    /// client says what it will spend on it.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The network the server runs.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// The digest of the server's `F = W - B`, which names it for keeping.
    pub fn weights_digest(&self) -> WeightsDigest {
        self.weights
    }

    /// Skips the setup with `F` kept from an earlier connection, if it is this server's (its
    /// digest is the one the server announced, and it is as long as the weights); returns
    /// whether it will.
    pub fn with_kept_weights(&mut self, kept: KeptWeights) -> bool {
        let fits =
            kept.digest() == self.weights && kept.words().len() == self.architecture.setup_words();
        if fits {
            self.kept = Some(kept);
        }
        fits
    }

    /// Runs the setup, then every batch (ring words at the architecture's `f`, `[n, ...]`),
    /// calling `progress` with the images of each batch done, and says goodbye. Every batch
    /// is checked against the architecture, the server's [`max_batch`](Self::max_batch) and
    /// the memory limit before anything is sent.
    pub fn run(
        mut self,
        batches: &[RingTensor],
        progress: &dyn Fn(usize),
    ) -> Result<(Vec<RingTensor>, RemoteReport), RemoteError> {
        let mut sizes = Vec::with_capacity(batches.len());
        for b in batches {
            let images = NonZeroUsize::new(self.architecture.check_input(b)?)
                .ok_or(RemoteError::EmptyBatch)?;
            if images > self.max_batch {
                return Err(RemoteError::BatchTooLarge {
                    asked: images.get(),
                    limit: self.max_batch.get(),
                });
            }
            sizes.push(images);
        }
        // The estimate only grows with the batch: the largest one decides.
        if let Some(largest) = sizes.iter().max() {
            self.architecture
                .check_memory(largest.get(), self.memory_limit)?;
        }
        let started = self.started;
        let Some(&first) = sizes.first() else {
            send(&mut self.channel, &Request::Goodbye)?;
            return Ok((Vec::new(), RemoteReport::default()));
        };
        // The first request goes before the setup, even before the client joins its dealer
        // session, and both sides tell the dealer that request's correlations at once (the
        // client with its join, in the same flight): the server commits them as soon as the
        // request arrives, and the dealer streams the client's corrections while the setup
        // is under way.
        let kept = self.kept.take();
        send(
            &mut self.channel,
            &Request::Batch {
                images: first,
                weights_kept: kept.is_some(),
            },
        )?;
        let dealer = self.dealer.join(&self.architecture.needs(first.get())?)?;
        self.timeline.dealer_joined = started.elapsed();
        let mut session = Session::new(
            Party::Client,
            self.architecture.fixed(),
            self.channel,
            dealer,
        )?;
        let s = &mut session;
        let conn = match &kept {
            Some(kept) => ClientConnection::resume(s, &self.architecture, kept.words())?,
            None => ClientConnection::open(s, &self.architecture)?,
        };
        let mut report = RemoteReport {
            setup: conn.setup(),
            batches: Vec::with_capacity(batches.len()),
            timeline: self.timeline.clone(),
            weights: Some(
                kept.unwrap_or_else(|| KeptWeights::announced(self.weights, conn.weights())),
            ),
        };
        report.timeline.setup_done = started.elapsed();
        let mut outputs = Vec::with_capacity(batches.len());
        for (i, (b, &images)) in batches.iter().zip(&sizes).enumerate() {
            if i > 0 {
                s.send(&Request::Batch {
                    images,
                    weights_kept: false,
                })?;
            }
            let (logits, batch) = conn.prepare(s, images.get())?.run(s, b)?;
            report.timeline.answered.push(started.elapsed());
            outputs.push(logits);
            report.batches.push(batch);
            progress(images.get());
        }
        s.send(&Request::Goodbye)?;
        Ok((outputs, report))
    }
}
