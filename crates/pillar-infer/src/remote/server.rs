//! The model owner's side: serving clients, one thread each.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pillar_mpc::channel::{Emulated, Link, TcpChannel, send};
use pillar_mpc::dealer::remote::open_session;
use pillar_mpc::{Party, Session};

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
    /// Most clients served at once; more are told the server is busy.
    pub max_clients: usize,
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

/// Serves one client, or tells it why not (`busy`) once the link is up.
fn serve_one(
    stream: TcpStream,
    plan: &Plan,
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
        send(
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
                send(&mut channel, &hello)?;
                return Err(e.into());
            }
        };
    let arch = &plan.architecture;
    send(
        &mut channel,
        &Hello::Ready {
            architecture: arch.clone(),
            session: id,
        },
    )?;
    let mut s = Session::new(Party::Server, arch.fixed(), channel, dealer)?;
    let conn = ServerConnection::open(&mut s, plan)?;
    let mut served = Served {
        setup: conn.setup(),
        batches: Vec::new(),
    };
    loop {
        let images = match s.recv::<Request>()? {
            Request::Goodbye => return Ok(served),
            Request::Batch { images } => images.get(),
        };
        if images > options.max_batch {
            return Err(RemoteError::BatchTooLarge {
                asked: images,
                limit: options.max_batch,
            });
        }
        let report = conn.prepare(&mut s, images)?.run(&mut s)?;
        served.batches.push((images, report));
    }
}

/// Accepts clients on `listener` forever, one thread each, and calls `done` with each
/// client's address and outcome. A failed client does not stop the others; beyond
/// `max_clients` at once, a client is told the server is busy.
pub fn serve(
    listener: &TcpListener,
    plan: Arc<Plan>,
    options: &ServeOptions,
    done: Done,
) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = listener.accept()?;
        let (plan, options, done, active) = (
            Arc::clone(&plan),
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
            let outcome = serve_one(stream, &plan, &options, busy);
            active.fetch_sub(1, Ordering::SeqCst);
            done(peer, outcome)
        });
    }
}
