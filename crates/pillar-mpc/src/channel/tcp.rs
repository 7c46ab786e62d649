//! Two processes: the frames of [`crate::wire`] over TCP, inside a Noise stream
//! ([`Security`]) unless plaintext was asked for.
//!
//! Each end first sends a [`Greeting`] naming its party, so that two servers or two clients
//! are told so. Then every round is one frame of ring words each way; the words go to the
//! socket straight from the protocol's buffer and come back straight into it (no per-message
//! allocation). Large frames are written from a second thread while this one reads, because
//! both parties send before they receive: with both writes blocking on full socket buffers the
//! exchange would deadlock.

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::secure::{
    PublicKey, Security, Service, Stream, StreamReader, StreamWriter, configure, is_integrity,
};
use super::{Channel, ChannelError, Stats};
use crate::party::Party;
use crate::wire::{self, Greeting, Kind, ReadError};

/// Frames up to this size fit the kernel's socket buffers, so a blocking write returns.
const INLINE_WRITE_BYTES: usize = 16 * 1024;

/// A TCP link to the peer.
#[derive(Debug)]
pub struct TcpChannel {
    reader: StreamReader,
    writer: StreamWriter,
    peer: Option<PublicKey>,
    timeout: Duration,
    stats: Stats,
}

impl TcpChannel {
    /// Connects to the peer listening at `addr`, as `party`; the handshake may take
    /// `timeout` in all.
    pub fn connect(
        addr: impl ToSocketAddrs,
        party: Party,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    return TcpChannel::open(stream, party, security, timeout, timeout, true);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"))
            .into())
    }

    /// Accepts one peer on `listener`, as `party`; the handshake may take `timeout` in all.
    pub fn accept(
        listener: &TcpListener,
        party: Party,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let (stream, _) = listener.accept()?;
        TcpChannel::from_stream(stream, party, security, timeout, timeout)
    }

    /// Sets up a connection accepted by this side: the handshake `security` asks for, then a
    /// check that the peer is pillar in the other role, all within `handshake` (a stranger
    /// cannot stretch it by trickling bytes); then every read may wait `timeout`.
    pub fn from_stream(
        stream: TcpStream,
        party: Party,
        security: &Security,
        timeout: Duration,
        handshake: Duration,
    ) -> Result<Self, ChannelError> {
        TcpChannel::open(stream, party, security, timeout, handshake, false)
    }

    /// The handshakes on a connected stream; the side that connected is the `initiator`.
    fn open(
        stream: TcpStream,
        party: Party,
        security: &Security,
        timeout: Duration,
        handshake: Duration,
        initiator: bool,
    ) -> Result<Self, ChannelError> {
        configure(&stream, timeout)?;
        let stream = Stream::establish(stream, security, initiator, Service::Parties, handshake)
            .map_err(|e| classify(e, timeout))?;
        let peer = stream.peer();
        let (reader, writer) = stream.split();
        let mut channel = TcpChannel {
            reader,
            writer,
            peer,
            timeout,
            stats: Stats::default(),
        };
        super::send(&mut channel, &Greeting { party })?;
        let theirs: Greeting = super::recv(&mut channel)?;
        if theirs.party != party.peer() {
            return Err(ChannelError::SameRole(party));
        }
        channel
            .reader
            .finish_handshake()
            .map_err(|e| channel.io(e))?;
        // The greetings are part of the handshake, not of the protocol's traffic.
        channel.stats = Stats::default();
        Ok(channel)
    }

    fn io(&self, e: io::Error) -> ChannelError {
        classify(e, self.timeout)
    }

    /// The peer's authenticated key (`None` on a plaintext channel).
    pub fn peer(&self) -> Option<PublicKey> {
        self.peer
    }
}

/// What an I/O error means for the protocol.
fn classify(e: io::Error, timeout: Duration) -> ChannelError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ChannelError::Timeout(timeout),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ChannelError::Closed,
        io::ErrorKind::PermissionDenied => ChannelError::Handshake(e),
        io::ErrorKind::InvalidData if is_integrity(&e) => ChannelError::Integrity,
        _ => ChannelError::Io(e),
    }
}

/// Reads one words frame of exactly `recv.len()` words.
pub(crate) fn read_words(
    reader: &mut impl Read,
    recv: &mut [u64],
    timeout: Duration,
) -> Result<(), ChannelError> {
    let io = |e: io::Error| classify(e, timeout);
    let header = wire::read_header(reader).map_err(|e| read_error(e, timeout))?;
    header.expect(Kind::Words)?;
    if header.len as usize != recv.len() {
        return Err(ChannelError::FrameLength {
            expected: recv.len(),
            got: u64::from(header.len),
        });
    }
    wire::read_words_into(reader, recv).map_err(io)
}

/// A failed read as the protocol sees it.
fn read_error(e: ReadError, timeout: Duration) -> ChannelError {
    match e {
        ReadError::Io(e) => classify(e, timeout),
        ReadError::Wire(e) => ChannelError::Wire(e),
    }
}

impl Channel for TcpChannel {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        if 8 * send.len() <= INLINE_WRITE_BYTES {
            wire::write_words(&mut self.writer, send).map_err(|e| self.io(e))?;
            read_words(&mut self.reader, recv, self.timeout)?;
        } else {
            let (writer, reader, timeout) = (&mut self.writer, &mut self.reader, self.timeout);
            let (written, read) = std::thread::scope(|scope| {
                let handle = scope.spawn(move || wire::write_words(writer, send));
                let read = read_words(reader, recv, timeout);
                (handle.join(), read)
            });
            match written {
                Ok(result) => result.map_err(|e| classify(e, timeout))?,
                Err(_) => return Err(ChannelError::Closed),
            }
            read?;
        }
        self.stats.record(send.len(), recv.len());
        Ok(())
    }

    fn send_message(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        wire::write_message(&mut self.writer, bytes).map_err(|e| self.io(e))?;
        self.stats.record_bytes(bytes.len(), 0);
        Ok(())
    }

    fn recv_message(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, ChannelError> {
        let bytes = wire::read_message(&mut self.reader, what, limit)
            .map_err(|e| read_error(e, self.timeout))?;
        self.stats.record_bytes(0, bytes.len());
        Ok(bytes)
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}
