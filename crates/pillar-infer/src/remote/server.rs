//! The model owner's side: serving clients, one thread each.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pillar_mpc::channel::{Admission, Emulated, Link, TcpChannel, Ticket, accept_loop, recv, send};
use pillar_mpc::dealer::remote::{DealerWatch, OpenedSession, open_session};
use pillar_mpc::gate::Gate;
use pillar_mpc::protocols::weights::MaskedWeights;
use pillar_mpc::{Party, Session};

use super::ahead::Ahead;
use super::{Hello, Links, RemoteError, Request};
use crate::plan::Plan;
use crate::run::{BatchReport, Phase, ServerConnection};

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
    /// Most clients served at once, counted once they have proved their key; more are told
    /// the server is busy.
    pub max_clients: usize,
    /// Most connections computing at once (0: one per core); the others wait their turn,
    /// and a connection waiting for its client holds none ([`pillar_mpc::gate`]).
    pub max_active: usize,
    /// How connections are let in before the client is known.
    pub admission: Admission,
    /// How links to clients and to the dealer are protected.
    pub security: Links,
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

/// What a server does with each client's address and outcome.
pub type Done = Arc<dyn Fn(SocketAddr, Result<Served, RemoteError>) + Send + Sync>;

/// A client's place among the `max_clients` served at once, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place in `active`, and whether it is beyond `max`.
    fn take(active: &Arc<AtomicUsize>, max: usize) -> (Slot, bool) {
        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
        (Slot(Arc::clone(active)), now > max)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the handshake on `stream` within the admission's deadline, holding `ticket` only
/// until it is done, then takes a client slot: a stranger that never proves a trusted key
/// never holds one.
fn admit(
    stream: TcpStream,
    ticket: Ticket,
    options: &ServeOptions,
    active: &Arc<AtomicUsize>,
) -> Result<(TcpChannel, Slot, Option<String>), RemoteError> {
    let tcp = TcpChannel::from_stream(
        stream,
        Party::Server,
        &options.security.peer,
        options.timeout,
        options.admission.handshake,
    )?;
    drop(ticket);
    let (slot, beyond) = Slot::take(active, options.max_clients);
    let busy = beyond.then(|| {
        format!(
            "the server is busy ({} clients at once at most): try again later",
            options.max_clients
        )
    });
    Ok((tcp, slot, busy))
}

/// Serves one client, or tells it why not (`busy`).
fn serve_one(
    tcp: TcpChannel,
    plan: &Plan,
    masked: &MaskedWeights,
    options: &ServeOptions,
    gate: &Arc<Gate>,
    busy: Option<String>,
) -> Result<Served, RemoteError> {
    let mut channel = Emulated::new(tcp, options.link);
    if let Some(reason) = busy {
        send(
            &mut channel,
            &Hello::Refused {
                reason: reason.clone(),
            },
        )?;
        return Err(RemoteError::Refused(reason));
    }
    let opened = match open_session(
        &options.dealer,
        &options.security.dealer,
        options.timeout,
        masked.masks(),
    ) {
        Ok(opened) => opened,
        Err(e) => {
            let hello = Hello::Refused {
                reason: format!("the server has no dealer: {e}"),
            };
            send(&mut channel, &hello)?;
            return Err(e.into());
        }
    };
    let OpenedSession {
        id,
        dealer,
        mut watch,
    } = opened;
    let arch = &plan.architecture;
    send(
        &mut channel,
        &Hello::Ready {
            architecture: Box::new(arch.clone()),
            session: id,
            max_batch: NonZeroUsize::new(options.max_batch).unwrap_or(NonZeroUsize::MIN),
            weights: masked.digest(),
        },
    )?;
    // The client's first request comes before the setup (see the module's protocol), so the
    // server commits the setup's and that request's correlations to the dealer together.
    let (first, kept) = match recv::<Request>(&mut channel)? {
        Request::Goodbye => return Ok(Served::default()),
        Request::Batch {
            images,
            weights_kept,
        } => (checked(images.get(), options)?, weights_kept),
    };
    let mut dealer = Ahead::new(dealer);
    dealer.tell(&arch.needs(first)?)?;
    let mut s =
        Session::new(Party::Server, arch.fixed(), channel, dealer)?.with_gate(Arc::clone(gate));
    let outcome = serve_batches(&mut s, plan, masked, (first, kept), &mut watch, options);
    // A client the dealer refused for deviating from the plan fails here or soon after; the
    // dealer's word says why, and it may still be on its way.
    let wait = if outcome.is_err() {
        DEVIATION_WAIT
    } else {
        Duration::ZERO
    };
    match watch.verdict(wait) {
        Some(deviated) => Err(deviated.into()),
        None => outcome,
    }
}

/// How long a server whose client failed waits for the dealer to say whether it deviated.
const DEVIATION_WAIT: Duration = Duration::from_millis(500);

/// `images`, if the server takes that many in one request.
fn checked(images: usize, options: &ServeOptions) -> Result<usize, RemoteError> {
    if images > options.max_batch {
        return Err(RemoteError::BatchTooLarge {
            asked: images,
            limit: options.max_batch,
        });
    }
    Ok(images)
}

/// The setup (none if the client kept `F`), the client's `first` batch (already requested),
/// then its further batches until its goodbye. The dealer's refusal of the client ends the
/// connection after the batch during which it came.
fn serve_batches(
    s: &mut Session,
    plan: &Plan,
    masked: &MaskedWeights,
    (first, kept): (usize, bool),
    watch: &mut DealerWatch,
    options: &ServeOptions,
) -> Result<Served, RemoteError> {
    let conn = if kept {
        ServerConnection::resume(s, plan, masked)?
    } else {
        ServerConnection::open(s, plan, masked)?
    };
    let mut served = Served {
        setup: conn.setup(),
        batches: Vec::new(),
    };
    let mut images = first;
    loop {
        let report = conn.prepare(s, images)?.run(s)?;
        served.batches.push((images, report));
        if let Some(deviated) = watch.verdict(Duration::ZERO) {
            return Err(deviated.into());
        }
        images = match s.recv::<Request>()? {
            Request::Goodbye => return Ok(served),
            // Only the first request may skip the setup; later ones say nothing of it.
            Request::Batch { images, .. } => checked(images.get(), options)?,
        };
    }
}

/// Accepts clients on `listener` for ever, one thread each, and calls `done` with each
/// client's address and outcome. A failed client does not stop the others; beyond
/// `max_clients` at once, a client is told the server is busy. Strangers are let in as
/// `options.admission` says, and a failed accept (no file descriptor free, say) is logged
/// and survived (see [`accept_loop`]). Returns only if the listener is unusable.
pub fn serve(
    listener: &TcpListener,
    plan: Arc<Plan>,
    options: &ServeOptions,
    done: Done,
) -> std::io::Result<()> {
    // One set of weight masks for this model, drawn now and shared by every connection.
    let masked = Arc::new(plan.masked_weights().map_err(std::io::Error::other)?);
    let active = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new(options.max_active);
    let options = options.clone();
    let admission = options.admission;
    accept_loop(
        listener,
        admission,
        "server",
        move |stream, peer, ticket| {
            let outcome =
                admit(stream, ticket, &options, &active).and_then(|(tcp, _slot, busy)| {
                    serve_one(tcp, &plan, &masked, &options, &gate, busy)
                });
            done(peer, outcome)
        },
    )
}
