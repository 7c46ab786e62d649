//! The parties' side of the dealer: the server opens a session and commits what it draws, the
//! client joins it and reads its corrections.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{
    Announce, DealerReply, DealerRequest, SessionId, io_error, read_error, recv, recv_body, send,
};
use crate::channel::secure::{Security, Service, Stream, StreamReader, StreamWriter, configure};
use crate::dealer::seeded::Announced;
use crate::dealer::{Commitment, CorrectionSource, DealerError, Need, SeededDealer};
use crate::wire::{self, Kind};

/// Connects to the dealer at `addr` and sends `request`.
fn connect(
    addr: &str,
    request: &DealerRequest,
    security: &Security,
    timeout: Duration,
) -> Result<Stream, DealerError> {
    let unreachable = |e| io_error(&format!("cannot reach the dealer at {addr}"), e);
    let addrs = addr.to_socket_addrs().map_err(unreachable)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(tcp) => {
                configure(&tcp, timeout).map_err(unreachable)?;
                let mut stream = Stream::establish(tcp, security, true, Service::Dealer, timeout)
                    .and_then(|mut s| s.reader().finish_handshake().map(|()| s))
                    .map_err(|e| io_error(&format!("the dealer at {addr}"), e))?;
                send(stream.writer(), request)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(unreachable(last))
}

/// The dealer's answer to a request: the session and this party's seed.
fn answer(stream: &mut Stream, addr: &str) -> Result<(SessionId, [u8; 32]), DealerError> {
    match recv::<DealerReply>(stream.reader()).map_err(|e| match e {
        DealerError::Unavailable { what, cause } => DealerError::Unavailable {
            what: format!("no answer from the dealer at {addr}: {what}"),
            cause,
        },
        e => e,
    })? {
        DealerReply::Seed { session, seed } => Ok((session, *seed.bytes())),
        DealerReply::Refused { reason } => Err(DealerError::Refused(reason)),
    }
}

/// What a server gets from the dealer for one client.
#[derive(Debug)]
pub struct OpenedSession {
    /// The session, for the client to join.
    pub id: SessionId,
    /// The server's dealer: it commits every correlation it draws to the dealer process.
    pub dealer: SeededDealer,
    /// Where the dealer's word on the client arrives.
    pub watch: DealerWatch,
}

/// The server's side: asks the dealer at `addr` for a new session, and returns its id (to
/// hand to the client), the server's dealer and the watch on what the dealer says of the
/// client. The connection stays open for the session: the dealer serves the client only what
/// the server's dealer commits to on it.
pub fn open_session(
    addr: &str,
    security: &Security,
    timeout: Duration,
) -> Result<OpenedSession, DealerError> {
    let mut stream = connect(addr, &DealerRequest::Open, security, timeout)?;
    let (id, seed) = answer(&mut stream, addr)?;
    let (reader, writer) = stream.split();
    Ok(OpenedSession {
        id,
        dealer: SeededDealer::committed_server(seed, Box::new(Committing { writer })),
        watch: DealerWatch {
            reader,
            timeout,
            verdict: None,
            ended: false,
        },
    })
}

/// The server's commitments, sent as they are made.
struct Committing {
    writer: StreamWriter,
}

impl Commitment for Committing {
    fn commit(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        tell(&mut self.writer, needs)
    }
}

/// Sends `needs` to the dealer as one `Announce`: the server's commitments and the client's
/// announcements alike.
fn tell(writer: &mut StreamWriter, needs: &[Need]) -> Result<(), DealerError> {
    send(writer, &Announce::try_from(needs.to_vec())?)
}

/// What the dealer says to a server about its client: nothing while the client asks for what
/// the server committed to; a refusal, once, when it deviated.
pub struct DealerWatch {
    reader: StreamReader,
    timeout: Duration,
    verdict: Option<String>,
    /// The dealer closed the link, or it failed: nothing more will come.
    ended: bool,
}

impl std::fmt::Debug for DealerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerWatch")
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}

impl DealerWatch {
    /// The dealer's refusal of this session's client, if it sent one, as an error: looked for
    /// without waiting, or (`wait` not zero: after the client failed, the dealer's word may be
    /// on its way) waiting up to `wait`. Call it from the thread that uses the session's
    /// dealer, between its draws.
    pub fn verdict(&mut self, wait: Duration) -> Option<DealerError> {
        if self.verdict.is_none() && !self.ended {
            self.listen(wait);
        }
        self.verdict.clone().map(DealerError::ClientDeviated)
    }

    fn listen(&mut self, wait: Duration) {
        let ready = wait > Duration::ZERO || self.reader.ready().unwrap_or(true);
        if !ready {
            return;
        }
        let limit = if wait > Duration::ZERO {
            wait
        } else {
            self.timeout
        };
        if self.reader.set_read_timeout(Some(limit)).is_err() {
            self.ended = true;
            return;
        }
        match recv::<DealerReply>(&mut self.reader) {
            Ok(DealerReply::Refused { reason }) => self.verdict = Some(reason),
            // A seed here, a closed or timed-out link: no word on the client will follow.
            Ok(DealerReply::Seed { .. }) | Err(_) => self.ended = true,
        }
    }
}

/// The client's side: joins session `id` at the dealer at `addr`; the returned dealer
/// fetches its corrections over this connection.
pub fn join_session(
    addr: &str,
    id: SessionId,
    security: &Security,
    timeout: Duration,
) -> Result<SeededDealer, DealerError> {
    let mut stream = connect(
        addr,
        &DealerRequest::Join { session: id },
        security,
        timeout,
    )?;
    let (session, seed) = answer(&mut stream, addr)?;
    if session != id {
        return Err(DealerError::WrongSession {
            asked: id.tag(),
            answered: session.tag(),
        });
    }
    Ok(SeededDealer::client(
        seed,
        Box::new(RemoteCorrections {
            stream,
            announced: Announced::default(),
        }),
    ))
}

/// Party 1's corrections, read from the dealer in the order announced.
struct RemoteCorrections {
    stream: Stream,
    announced: Announced,
}

impl CorrectionSource for RemoteCorrections {
    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        let writer = self.stream.writer();
        self.announced.announce(needs, |n| tell(writer, n))
    }

    fn correction(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        let writer = self.stream.writer();
        self.announced.take(need, |n| tell(writer, n))?;
        let what = "reading a correction from the dealer";
        let reader = self.stream.reader();
        let header = wire::read_header(reader).map_err(|e| read_error(what, e))?;
        if header.kind == Kind::Message {
            return Err(match recv_body::<DealerReply>(reader, header)? {
                DealerReply::Refused { reason } => DealerError::Refused(reason),
                DealerReply::Seed { .. } => {
                    DealerError::OutOfOrder("the dealer sent a seed in place of a correction")
                }
            });
        }
        let expected = need.correction_words();
        if header.len as usize != expected {
            return Err(DealerError::Correction {
                need: Box::new(need.clone()),
                expected,
                got: header.len as usize,
            });
        }
        let mut words = vec![0u64; expected];
        wire::read_words_into(reader, &mut words).map_err(|e| io_error(what, e))?;
        Ok(words)
    }
}
