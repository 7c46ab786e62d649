//! A link emulator: latency and bandwidth on top of any channel.
//!
//! As in the paper's measurements, the sender sleeps before every message: one-way latency
//! plus the serialisation delay of the payload at the capped bandwidth. Both parties send at
//! once in an exchange, so the sleeps overlap and a round costs one one-way delay, i.e. half
//! the round-trip time, as on a real link where both messages are in flight together.

use std::time::Duration;

use super::{Channel, ChannelError, Stats};

/// The emulated link's properties.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Link {
    /// Delay added to every message.
    pub one_way: Duration,
    /// Bandwidth cap in bits per second (`None`: unlimited).
    pub bandwidth_bps: Option<f64>,
}

impl Link {
    /// A link with round-trip time `rtt_ms` and an optional cap in megabits per second.
    pub fn new(rtt_ms: f64, bandwidth_mbps: Option<f64>) -> Link {
        Link {
            // Out-of-range times saturate: the CLI bounds them, a library caller need not.
            one_way: Duration::try_from_secs_f64(rtt_ms.max(0.0) / 2000.0).unwrap_or(Duration::MAX),
            bandwidth_bps: bandwidth_mbps.map(|m| m * 1e6),
        }
    }

    /// Whether the link adds nothing.
    pub fn is_ideal(&self) -> bool {
        self.one_way.is_zero() && self.bandwidth_bps.is_none()
    }

    /// Delay before a message of `bytes` payload bytes arrives.
    pub fn delay(&self, bytes: usize) -> Duration {
        let serialisation = match self.bandwidth_bps {
            Some(bps) if bps > 0.0 => {
                Duration::try_from_secs_f64(bytes as f64 * 8.0 / bps).unwrap_or(Duration::MAX)
            }
            _ => Duration::ZERO,
        };
        self.one_way.saturating_add(serialisation)
    }
}

/// A channel whose messages are delayed as on `link`.
#[derive(Debug)]
pub struct Emulated<C> {
    inner: C,
    link: Link,
}

impl<C: Channel> Emulated<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, link: Link) -> Self {
        Emulated { inner, link }
    }

    /// The emulated link.
    pub fn link(&self) -> Link {
        self.link
    }

    /// The wrapped channel.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C: Channel> Channel for Emulated<C> {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        let delay = self.link.delay(8 * send.len());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        self.inner.exchange(send, recv)
    }

    fn send_message(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        let delay = self.link.delay(bytes.len());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        self.inner.send_message(bytes)
    }

    fn recv_message(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, ChannelError> {
        self.inner.recv_message(what, limit)
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}
