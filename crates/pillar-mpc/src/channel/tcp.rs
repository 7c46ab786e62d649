//! Two processes: length-prefixed frames of little-endian ring words over TCP.
//!
//! A frame is an 8-byte little-endian word count followed by the words. The words go to the
//! socket straight from the protocol's buffer and come back straight into it (no per-message
//! allocation). Large frames are written from a second thread while this one reads, because
//! both parties send before they receive: with both writes blocking on full socket buffers the
//! exchange would deadlock.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{Channel, ChannelError, Stats};
use crate::party::Party;

const MAGIC: &[u8; 8] = b"PILLAR01";
/// Frames up to this size fit the kernel's socket buffers, so a blocking write returns.
const INLINE_WRITE_BYTES: usize = 16 * 1024;

/// A TCP link to the peer.
#[derive(Debug)]
pub struct TcpChannel {
    reader: TcpStream,
    writer: TcpStream,
    timeout: Duration,
    stats: Stats,
}

impl TcpChannel {
    /// Connects to the peer listening at `addr`, as `party`.
    pub fn connect(
        addr: impl ToSocketAddrs,
        party: Party,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => return TcpChannel::from_stream(stream, party, timeout),
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
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        let (stream, _) = listener.accept()?;
        TcpChannel::from_stream(stream, party, timeout)
    }

    /// Sets up a connected stream and checks that the peer is pillar in the other role.
    pub fn from_stream(
        stream: TcpStream,
        party: Party,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut channel = TcpChannel {
            reader: stream,
            writer,
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
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ChannelError::Timeout(self.timeout)
            }
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ChannelError::Closed,
            _ => ChannelError::Io(e),
        }
    }

    fn read_frame(&mut self, recv: &mut [u64]) -> Result<(), ChannelError> {
        let mut header = [0u8; 8];
        self.reader
            .read_exact(&mut header)
            .map_err(|e| self.io(e))?;
        let words = u64::from_le_bytes(header);
        if words != recv.len() as u64 {
            return Err(ChannelError::FrameLength {
                expected: recv.len(),
                got: words,
            });
        }
        self.reader
            .read_exact(bytemuck::cast_slice_mut(recv))
            .map_err(|e| self.io(e))?;
        for w in recv.iter_mut() {
            *w = u64::from_le(*w);
        }
        Ok(())
    }
}

/// Writes one frame: the word count, then the words, little-endian.
pub(crate) fn write_frame(writer: &mut impl Write, send: &[u64]) -> io::Result<()> {
    writer.write_all(&(send.len() as u64).to_le_bytes())?;
    if cfg!(target_endian = "little") {
        writer.write_all(bytemuck::cast_slice(send))
    } else {
        let bytes: Vec<u8> = send.iter().flat_map(|w| w.to_le_bytes()).collect();
        writer.write_all(&bytes)
    }
}

impl Channel for TcpChannel {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        if 8 * send.len() <= INLINE_WRITE_BYTES {
            write_frame(&mut self.writer, send).map_err(|e| self.io(e))?;
            self.read_frame(recv)?;
        } else {
            let mut writer = self.writer.try_clone()?;
            let (written, read) = std::thread::scope(|scope| {
                let handle = scope.spawn(move || write_frame(&mut writer, send));
                let read = self.read_frame(recv);
                (handle.join(), read)
            });
            match written {
                Ok(result) => result.map_err(|e| self.io(e))?,
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
