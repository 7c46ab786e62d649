//! Two parties in one process: each holds one end of a pair of queues.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use super::{Channel, ChannelError, Stats};
use crate::wire::{Kind, WireError};

/// What travels through the queues: a round's words or a control message.
#[derive(Debug)]
enum Frame {
    Words(Vec<u64>),
    Message(Vec<u8>),
}

impl Frame {
    fn kind(&self) -> Kind {
        match self {
            Frame::Words(_) => Kind::Words,
            Frame::Message(_) => Kind::Message,
        }
    }
}

/// One end of an in-memory link, for parties running as threads of one process.
#[derive(Debug)]
pub struct MemoryChannel {
    tx: Sender<Frame>,
    rx: Receiver<Frame>,
    timeout: Duration,
    stats: Stats,
}

/// A connected pair of in-memory channels; every receive gives up after `timeout`.
pub fn memory_pair(timeout: Duration) -> (MemoryChannel, MemoryChannel) {
    let (tx0, rx1) = channel();
    let (tx1, rx0) = channel();
    let end = |tx, rx| MemoryChannel {
        tx,
        rx,
        timeout,
        stats: Stats::default(),
    };
    (end(tx0, rx0), end(tx1, rx1))
}

impl MemoryChannel {
    fn send(&self, frame: Frame) -> Result<(), ChannelError> {
        self.tx.send(frame).map_err(|_| ChannelError::Closed)
    }

    fn receive(&self) -> Result<Frame, ChannelError> {
        self.rx.recv_timeout(self.timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => ChannelError::Timeout(self.timeout),
            RecvTimeoutError::Disconnected => ChannelError::Closed,
        })
    }
}

/// The error for a frame of the wrong kind.
fn unexpected(expected: Kind, got: &Frame) -> ChannelError {
    WireError::Unexpected {
        expected: expected.name(),
        got: got.kind().name(),
    }
    .into()
}

impl Channel for MemoryChannel {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        self.send(Frame::Words(send.to_vec()))?;
        let words = match self.receive()? {
            Frame::Words(words) => words,
            other => return Err(unexpected(Kind::Words, &other)),
        };
        if words.len() != recv.len() {
            return Err(ChannelError::FrameLength {
                expected: recv.len(),
                got: words.len() as u64,
            });
        }
        recv.copy_from_slice(&words);
        self.stats.record(send.len(), recv.len());
        Ok(())
    }

    fn send_message(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        self.send(Frame::Message(bytes.to_vec()))?;
        self.stats.record_bytes(bytes.len(), 0);
        Ok(())
    }

    fn recv_message(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, ChannelError> {
        let bytes = match self.receive()? {
            Frame::Message(bytes) => bytes,
            other => return Err(unexpected(Kind::Message, &other)),
        };
        if bytes.len() > limit {
            return Err(WireError::TooLarge {
                what,
                len: bytes.len() as u64,
                limit,
            }
            .into());
        }
        self.stats.record_bytes(0, bytes.len());
        Ok(bytes)
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}
