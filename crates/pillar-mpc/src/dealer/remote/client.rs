//! The parties' side of the dealer: the server opens a session and commits what it draws, the
//! client joins it and reads its corrections.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use zeroize::Zeroizing;

use super::{
    Announce, DealerReply, DealerRequest, SessionId, io_error, read_error, recv, recv_body, send,
};
use crate::channel::secure::{Security, Service, Stream, StreamReader, StreamWriter, configure};
use crate::dealer::seeded::Announced;
use crate::dealer::{Commitment, CorrectionSource, DealerError, Need, SeededDealer, WeightMasks};
use crate::wire::{self, Kind};

/// Connects to the dealer at `addr` and sends `request`.
fn connect(
    addr: &str,
    request: &DealerRequest,
    security: &Security,
    timeout: Duration,
) -> Result<Stream, DealerError> {
    let mut stream = establish(addr, security, timeout)?;
    send(stream.writer(), request)?;
    Ok(stream)
}

/// Connects to the dealer at `addr` and runs the handshake.
fn establish(addr: &str, security: &Security, timeout: Duration) -> Result<Stream, DealerError> {
    let unreachable = |e| io_error(&format!("cannot reach the dealer at {addr}"), e);
    let addrs = addr.to_socket_addrs().map_err(unreachable)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(tcp) => {
                configure(&tcp, timeout).map_err(unreachable)?;
                return Stream::establish(tcp, security, true, Service::Dealer, timeout)
                    .and_then(|mut s| s.reader().finish_handshake().map(|()| s))
                    .map_err(|e| io_error(&format!("the dealer at {addr}"), e));
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

/// The server's side: asks the dealer at `addr` for a new session for a model with
/// `weight_masks` (the dealer regenerates them for the client's corrections), and returns its id (to
/// hand to the client), the server's dealer and the watch on what the dealer says of the
/// client. The connection stays open for the session: the dealer serves the client only what
/// the server's dealer commits to on it.
pub fn open_session(
    addr: &str,
    security: &Security,
    timeout: Duration,
    weight_masks: &Arc<WeightMasks>,
) -> Result<OpenedSession, DealerError> {
    let request = DealerRequest::Open {
        weight_masks: WeightMasks::clone(weight_masks),
    };
    let mut stream = connect(addr, &request, security, timeout)?;
    let (id, seed) = answer(&mut stream, addr)?;
    let (reader, writer) = stream.split();
    Ok(OpenedSession {
        id,
        dealer: SeededDealer::committed_server(
            seed,
            Box::new(Committing { writer }),
            Arc::clone(weight_masks),
        ),
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
    dial(addr, security, timeout)?.join(id)
}

/// A client's link to the dealer, connected and authenticated before the client knows its
/// session: [`dial`] it while the server's hello is on its way, then [`DealerLink::join`].
/// The dealer waits for the request only as long as its handshake deadline (10 s by
/// default), so join soon after dialling.
pub struct DealerLink {
    stream: Stream,
    addr: String,
    timeout: Duration,
}

impl std::fmt::Debug for DealerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerLink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Connects to the dealer at `addr` and runs the handshake, without a request yet: the
/// round trips of TCP and Noise need no session id, so a client overlaps them with its
/// server's.
pub fn dial(addr: &str, security: &Security, timeout: Duration) -> Result<DealerLink, DealerError> {
    Ok(DealerLink {
        stream: establish(addr, security, timeout)?,
        addr: addr.to_string(),
        timeout,
    })
}

impl DealerLink {
    /// Joins session `id`; the returned dealer fetches its corrections over this link, read
    /// ahead of their use by a thread of their own (see [`RemoteCorrections`]).
    pub fn join(self, id: SessionId) -> Result<SeededDealer, DealerError> {
        self.join_announcing(id, &[])
    }

    /// Joins session `id` and announces `needs` in the same flight, without waiting a round
    /// trip for the seed: the returned dealer has announced them (its `announce` of them
    /// would announce them again).
    pub fn join_announcing(
        mut self,
        id: SessionId,
        needs: &[Need],
    ) -> Result<SeededDealer, DealerError> {
        send(self.stream.writer(), &DealerRequest::Join { session: id })?;
        if !needs.is_empty() {
            tell(self.stream.writer(), needs)?;
        }
        let (session, seed) = answer(&mut self.stream, &self.addr)?;
        if session != id {
            return Err(DealerError::WrongSession {
                asked: id.tag(),
                answered: session.tag(),
            });
        }
        let mut corrections = RemoteCorrections::new(self.stream, self.timeout)?;
        let to_read = &corrections.to_read;
        corrections.announced.announce(needs, |n| {
            for need in n {
                let _ = to_read.send(need.clone());
            }
            Ok(())
        })?;
        Ok(SeededDealer::client(seed, Box::new(corrections)))
    }
}

/// Party 1's corrections, read from the dealer in the order announced. A thread reads each
/// announced correction as soon as it arrives, so that the dealer streams while the client
/// works (the per-connection setup, say) instead of stalling on a receive window that the
/// kernel grows only as the application reads; it reads only what was announced, each
/// frame checked against its need's size before anything is allocated.
struct RemoteCorrections {
    writer: StreamWriter,
    announced: Announced,
    /// The needs whose corrections the reader thread is to read next, in order.
    to_read: mpsc::Sender<Need>,
    /// What it read, in that order.
    read: mpsc::Receiver<Result<Zeroizing<Vec<u64>>, DealerError>>,
    timeout: Duration,
}

impl RemoteCorrections {
    fn new(stream: Stream, timeout: Duration) -> Result<Self, DealerError> {
        let (mut reader, writer) = stream.split();
        let (to_read, needs) = mpsc::channel::<Need>();
        let (done, read) = mpsc::channel();
        std::thread::Builder::new()
            .name("dealer read-ahead".into())
            .spawn(move || {
                for need in needs {
                    let words = read_correction(&mut reader, &need);
                    let failed = words.is_err();
                    if done.send(words).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| io_error("starting the dealer's reader", e))?;
        Ok(RemoteCorrections {
            writer,
            announced: Announced::default(),
            to_read,
            read,
            timeout,
        })
    }

    /// Tells the dealer `needs` and the reader thread to read their corrections.
    fn tell(
        writer: &mut StreamWriter,
        to_read: &mpsc::Sender<Need>,
        needs: &[Need],
    ) -> Result<(), DealerError> {
        tell(writer, needs)?;
        for need in needs {
            // A reader that is gone has sent its error, which `correction` returns.
            let _ = to_read.send(need.clone());
        }
        Ok(())
    }
}

impl Drop for RemoteCorrections {
    fn drop(&mut self) {
        // Ends the reader thread's wait for corrections that will never be asked for.
        self.writer.shutdown();
    }
}

/// The correction of `need`, the next frame on `reader`.
fn read_correction(
    reader: &mut StreamReader,
    need: &Need,
) -> Result<Zeroizing<Vec<u64>>, DealerError> {
    let what = "reading a correction from the dealer";
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
    let mut words = Zeroizing::new(vec![0u64; expected]);
    wire::read_words_into(reader, &mut words).map_err(|e| io_error(what, e))?;
    Ok(words)
}

impl CorrectionSource for RemoteCorrections {
    fn announce(&mut self, needs: &[Need]) -> Result<(), DealerError> {
        let (writer, to_read) = (&mut self.writer, &self.to_read);
        self.announced
            .announce(needs, |n| RemoteCorrections::tell(writer, to_read, n))
    }

    fn correction(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        let (writer, to_read) = (&mut self.writer, &self.to_read);
        self.announced
            .take(need, |n| RemoteCorrections::tell(writer, to_read, n))?;
        let what = "reading a correction from the dealer";
        match self.read.recv_timeout(self.timeout) {
            Ok(words) => Ok(std::mem::take(&mut *words?)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(io_error(what, io::ErrorKind::TimedOut.into()))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(io_error(what, io::ErrorKind::UnexpectedEof.into()))
            }
        }
    }
}
