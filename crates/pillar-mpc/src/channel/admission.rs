//! Accepting connections from anyone without letting anyone stop the service.
//!
//! A listening service cannot know who connects until the handshake is done, so everything
//! it spends before then must be bounded: a stranger's connection gets a thread only if fewer
//! than [`Admission::max_handshakes`] connections are in their handshake (beyond that it is
//! closed at once), and that handshake must end within [`Admission::handshake`]. A failed
//! `accept` (the process is out of file descriptors, say) or thread spawn costs one
//! connection, never the service.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How a listening service admits connections before it knows who they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The whole handshake (the preamble, Noise, the peer's first message) must end within
    /// this, however slowly the peer sends its bytes.
    pub handshake: Duration,
    /// Connections in their handshake at once; a connection beyond them is closed at once.
    pub max_handshakes: usize,
}

impl Default for Admission {
    /// 10 s cover the handshake's few round trips on any real link with ample slack (a round
    /// trip across the world is a few hundred milliseconds), and 64 handshakes at once leave
    /// room under the common limit of 1,024 open files for the clients being served.
    fn default() -> Self {
        Admission {
            handshake: Duration::from_secs(10),
            max_handshakes: 64,
        }
    }
}

/// A place among the connections in their handshake, given back when dropped.
#[derive(Debug)]
pub struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    /// A place among `max` in `taken`, if one is free.
    fn take(taken: &Arc<AtomicUsize>, max: usize) -> Option<Ticket> {
        taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Ticket(Arc::clone(taken)))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The shortest and longest pause after a failed `accept`: it fails again at once while the
/// cause lasts (no file descriptor is free until a connection closes), so waiting keeps the
/// loop from spinning and the log from flooding.
const PAUSES: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Accepts connections on `listener` for ever, and runs `handle` on a thread of its own for
/// each one `admission` lets in, with its [`Ticket`] (which `handle` drops when the
/// handshake is over). `who` names the service in the log. It returns only if the listener
/// itself is unusable (not listening).
pub fn accept_loop<F>(
    listener: &TcpListener,
    admission: Admission,
    who: &str,
    handle: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, Ticket) + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    let taken = Arc::new(AtomicUsize::new(0));
    let mut pause = PAUSES.0;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                pause = PAUSES.0;
                admit(stream, peer, &taken, admission, who, &handle);
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
            // The peer gave up while it waited in the queue: nothing to do.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                tracing::warn!(
                    "{who}: cannot accept a connection ({e}); trying again in {pause:?}"
                );
                std::thread::sleep(pause);
                pause = (pause * 2).min(PAUSES.1);
            }
        }
    }
}

/// Starts `handle` on a thread for `stream` if a handshake place is free; otherwise, or if no
/// thread can be started, closes the connection (by dropping it).
fn admit<F>(
    stream: TcpStream,
    peer: SocketAddr,
    taken: &Arc<AtomicUsize>,
    admission: Admission,
    who: &str,
    handle: &Arc<F>,
) where
    F: Fn(TcpStream, SocketAddr, Ticket) + Send + Sync + 'static,
{
    let Some(ticket) = Ticket::take(taken, admission.max_handshakes) else {
        tracing::debug!(
            "{who}: {peer} closed: {} connections are in their handshake already",
            admission.max_handshakes
        );
        return;
    };
    let handle = Arc::clone(handle);
    let spawned = std::thread::Builder::new()
        .name(format!("{who} {peer}"))
        .spawn(move || handle(stream, peer, ticket));
    if let Err(e) = spawned {
        tracing::warn!("{who}: {peer} closed: cannot start a thread for it ({e})");
    }
}
