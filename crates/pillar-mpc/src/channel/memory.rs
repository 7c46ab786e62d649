//! Two parties in one process: each holds one end of a pair of queues.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use super::{Channel, ChannelError, Stats};

/// One end of an in-memory link, for parties running as threads of one process.
#[derive(Debug)]
pub struct MemoryChannel {
    tx: Sender<Vec<u64>>,
    rx: Receiver<Vec<u64>>,
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

impl Channel for MemoryChannel {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        self.tx
            .send(send.to_vec())
            .map_err(|_| ChannelError::Closed)?;
        let frame = self.rx.recv_timeout(self.timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => ChannelError::Timeout(self.timeout),
            RecvTimeoutError::Disconnected => ChannelError::Closed,
        })?;
        if frame.len() != recv.len() {
            return Err(ChannelError::FrameLength {
                expected: recv.len(),
                got: frame.len() as u64,
            });
        }
        recv.copy_from_slice(&frame);
        self.stats.record(send.len(), recv.len());
        Ok(())
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}
