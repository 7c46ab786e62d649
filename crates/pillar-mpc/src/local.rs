//! Both parties in one process: a thread each over an in-memory channel.
//!
//! For tests, benchmarks and `pillar eval`, where the parties need not be separate machines.
//! The protocol code is the same as over TCP.

use std::time::Duration;

use std::net::TcpListener;

use crate::channel::{
    Channel, DEFAULT_TIMEOUT, Emulated, Identity, Link, Security, TcpChannel, memory_pair,
};
use crate::dealer::TrustedDealer;
use crate::error::MpcError;
use crate::party::Party;
use crate::ring::FixedPoint;
use crate::session::Session;

/// What carries the messages between the two local parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Queues in memory: no copies through the kernel.
    #[default]
    Memory,
    /// A plaintext TCP connection over the loopback interface: the real framing and sockets.
    Tcp,
    /// The same inside Noise, with a fresh key pair per party: what a deployment pays for
    /// encryption and authentication.
    Noise,
}

impl Transport {
    /// A connected pair of channels, server end first.
    pub fn pair(self, timeout: Duration) -> Result<[Box<dyn Channel>; 2], MpcError> {
        match self {
            Transport::Memory => {
                let (a, b) = memory_pair(timeout);
                Ok([Box::new(a), Box::new(b)])
            }
            Transport::Tcp | Transport::Noise => {
                let (server_security, client_security) = if self == Transport::Noise {
                    let (server, client) = (Identity::generate(), Identity::generate());
                    let (server_key, client_key) = (server.public(), client.public());
                    (
                        Security::noise(server, vec![client_key]),
                        Security::noise(client, vec![server_key]),
                    )
                } else {
                    (Security::Plaintext, Security::Plaintext)
                };
                let io = |e: std::io::Error| MpcError::Channel(e.into());
                let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
                let addr = listener.local_addr().map_err(io)?;
                let (server, client) = std::thread::scope(|scope| {
                    let client = scope.spawn(move || {
                        TcpChannel::connect(addr, Party::Client, &client_security, timeout)
                    });
                    let server =
                        TcpChannel::accept(&listener, Party::Server, &server_security, timeout);
                    (server, client.join())
                });
                let client = client.map_err(|_| {
                    MpcError::invalid("local run", "the connecting thread panicked")
                })?;
                Ok([Box::new(server?), Box::new(client?)])
            }
        }
    }
}

/// How to run two local parties.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    /// Fixed-point format.
    pub fixed: FixedPoint,
    /// Emulated link between the threads.
    pub link: Link,
    /// Seed of the dealer and of the input masks: `Some` only in tests and benchmarks.
    pub seed: Option<u64>,
    /// Receive timeout.
    pub timeout: Duration,
    /// In-memory queues or loopback TCP.
    pub transport: Transport,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            fixed: FixedPoint::default(),
            link: Link::default(),
            seed: None,
            timeout: DEFAULT_TIMEOUT,
            transport: Transport::Memory,
        }
    }
}

impl Local {
    /// Seeded runs with the default format and no link delay (tests).
    pub fn seeded(seed: u64) -> Local {
        Local {
            seed: Some(seed),
            ..Local::default()
        }
    }

    /// Runs `f` as both parties at once and returns `[server result, client result]`. If a
    /// party fails, the other sees its channel close; the first party's error that is not
    /// that consequence is returned.
    pub fn run<R, F>(&self, f: F) -> Result<[R; 2], MpcError>
    where
        R: Send,
        F: Fn(&mut Session) -> Result<R, MpcError> + Sync,
    {
        self.run_parties(f)
    }

    /// [`Local::run`] for parties whose code has an error type of its own (the secure
    /// stage's, say).
    pub fn run_parties<R, E, F>(&self, f: F) -> Result<[R; 2], E>
    where
        R: Send,
        E: PartyError + Send,
        F: Fn(&mut Session) -> Result<R, E> + Sync,
    {
        let [c0, c1] = self.transport.pair(self.timeout).map_err(E::from)?;
        let (d0, d1) = match self.seed {
            Some(seed) => TrustedDealer::pair_from_seed(seed),
            None => TrustedDealer::pair(),
        };
        let link = self.link;
        let make = |party: Party, channel: Box<dyn Channel>, dealer| -> Result<Session, MpcError> {
            let s = Session::new(party, self.fixed, Emulated::new(channel, link), dealer)?;
            Ok(match self.seed {
                Some(seed) => s.with_mask_seed(seed),
                None => s,
            })
        };
        let mut s0 = make(Party::Server, c0, d0).map_err(E::from)?;
        let s1 = make(Party::Client, c1, d1).map_err(E::from)?;
        let f = &f;
        let (r0, r1) = std::thread::scope(|scope| {
            // Each session is dropped as soon as its party is done, so that a failing party
            // closes the channel and its peer stops waiting.
            let h = scope.spawn(move || {
                let mut s1 = s1;
                f(&mut s1)
            });
            let r0 = f(&mut s0);
            drop(s0);
            let r1 = h.join().unwrap_or_else(|_| {
                Err(MpcError::invalid("local run", "the client thread panicked").into())
            });
            (r0, r1)
        });
        match (r0, r1) {
            (Ok(a), Ok(b)) => Ok([a, b]),
            (Err(e), Err(other)) if other.is_peer_gone() => Err(e),
            (Err(other), Err(e)) if other.is_peer_gone() => Err(e),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }
}

/// An error a party's code returns in a [`Local::run`]: it may be only the consequence of the
/// other party's failure (its channel closed), in which case the other's error is the cause.
pub trait PartyError: From<MpcError> {
    /// Whether this is the link failing because the peer stopped.
    fn is_peer_gone(&self) -> bool;
}

impl PartyError for MpcError {
    fn is_peer_gone(&self) -> bool {
        matches!(self, MpcError::Channel(_))
    }
}
