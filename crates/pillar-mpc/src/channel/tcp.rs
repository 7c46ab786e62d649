//! Two processes: length-prefixed frames of little-endian ring words over TCP, inside a
//! Noise stream ([`Security`]) unless plaintext was asked for.
//!
//! A frame is an 8-byte little-endian word count followed by the words. The words go to the
//! socket straight from the protocol's buffer and come back straight into it (no per-message
//! allocation). Large frames are written from a second thread while this one reads, because
//! both parties send before they receive: with both writes blocking on full socket buffers the
//! exchange would deadlock.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::secure::{PublicKey, Security, Stream, StreamReader, StreamWriter, is_integrity};
use super::{Channel, ChannelError, Stats};
use crate::party::Party;

const MAGIC: &[u8; 8] = b"PILLAR01";
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
    /// Connects to the peer listening at `addr`, as `party`.
    pub fn connect(
        addr: impl ToSocketAddrs,
        party: Party,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => return TcpChannel::open(stream, party, security, timeout, true),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"))
            .into())
    }

    /// Accepts one peer on `listener`, as `party`.
    pub fn accept(
        listener: &TcpListener,
        party: Party,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let (stream, _) = listener.accept()?;
        TcpChannel::from_stream(stream, party, security, timeout)
    }

    /// Sets up a connection accepted by this side: the handshake `security` asks for, then a
    /// check that the peer is pillar in the other role.
    pub fn from_stream(
        stream: TcpStream,
        party: Party,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        TcpChannel::open(stream, party, security, timeout, false)
    }

    /// The handshakes on a connected stream; the side that connected is the `initiator`.
    fn open(
        stream: TcpStream,
        party: Party,
        security: &Security,
        timeout: Duration,
        initiator: bool,
    ) -> Result<Self, ChannelError> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let stream = Stream::establish(stream, security, initiator, "parties")
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
        let mut hello = [0u8; 9];
        hello[..8].copy_from_slice(MAGIC);
        hello[8] = party.index() as u8;
        channel
            .writer
            .write_all(&hello)
            .map_err(|e| channel.io(e))?;
        let mut peer = [0u8; 9];
        channel
            .reader
            .read_exact(&mut peer)
            .map_err(|e| channel.io(e))?;
        if &peer[..8] != MAGIC {
            return Err(ChannelError::Handshake(
                "the peer is not a pillar party of this version".into(),
            ));
        }
        if usize::from(peer[8]) != party.peer().index() {
            return Err(ChannelError::Handshake(format!(
                "both ends claim to be {party}; one side must be the server and the other the client"
            )));
        }
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
        io::ErrorKind::PermissionDenied => ChannelError::Handshake(e.to_string()),
        io::ErrorKind::InvalidData if is_integrity(&e) => ChannelError::Integrity,
        _ => ChannelError::Io(e),
    }
}

/// Reads one frame of exactly `recv.len()` words.
pub(crate) fn read_frame(
    reader: &mut impl Read,
    recv: &mut [u64],
    timeout: Duration,
) -> Result<(), ChannelError> {
    let mut header = [0u8; 8];
    reader
        .read_exact(&mut header)
        .map_err(|e| classify(e, timeout))?;
    let words = u64::from_le_bytes(header);
    if words != recv.len() as u64 {
        return Err(ChannelError::FrameLength {
            expected: recv.len(),
            got: words,
        });
    }
    reader
        .read_exact(bytemuck::cast_slice_mut(recv))
        .map_err(|e| classify(e, timeout))?;
    for w in recv.iter_mut() {
        *w = u64::from_le(*w);
    }
    Ok(())
}

/// Writes one frame: the word count, then the words, little-endian. A small frame goes out
/// in one write (one packet, one Noise message).
pub(crate) fn write_frame(writer: &mut impl Write, send: &[u64]) -> io::Result<()> {
    let header = (send.len() as u64).to_le_bytes();
    if cfg!(target_endian = "little") && 8 * send.len() > INLINE_WRITE_BYTES {
        writer.write_all(&header)?;
        return writer.write_all(bytemuck::cast_slice(send));
    }
    let mut bytes = Vec::with_capacity(8 + 8 * send.len());
    bytes.extend_from_slice(&header);
    bytes.extend(send.iter().flat_map(|w| w.to_le_bytes()));
    writer.write_all(&bytes)
}

impl Channel for TcpChannel {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        if 8 * send.len() <= INLINE_WRITE_BYTES {
            write_frame(&mut self.writer, send).map_err(|e| self.io(e))?;
            read_frame(&mut self.reader, recv, self.timeout)?;
        } else {
            let (writer, reader, timeout) = (&mut self.writer, &mut self.reader, self.timeout);
            let (written, read) = std::thread::scope(|scope| {
                let handle = scope.spawn(move || write_frame(writer, send));
                let read = read_frame(reader, recv, timeout);
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

    fn stats(&self) -> Stats {
        self.stats
    }
}
