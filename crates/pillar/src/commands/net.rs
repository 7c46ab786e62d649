//! What the networked commands (`dealer`, `serve`, `infer`) share: the emulated link, the
//! timeout, and the line that tells scripts where a service listens.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use pillar_mpc::channel::Link;

/// The link to the peer, and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// Emulate a link with this round-trip time to the peer, in milliseconds (on top of the
    /// real one): every message waits half of it, as the paper's WAN measurements.
    #[arg(long, default_value_t = 0.0)]
    pub rtt_ms: f64,

    /// Emulate a bandwidth cap on that link, in megabits per second [default: none].
    #[arg(long)]
    pub bandwidth_mbps: Option<f64>,

    /// Give up on a peer (or the dealer) silent for this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_s: f64,
}

impl LinkArgs {
    /// The emulated link and the timeout, checked.
    pub fn link(&self) -> Result<(Link, Duration)> {
        if !(self.rtt_ms.is_finite() && self.rtt_ms >= 0.0) {
            bail!(
                "--rtt-ms {}: a round-trip time is a non-negative number of milliseconds",
                self.rtt_ms
            );
        }
        if let Some(b) = self.bandwidth_mbps
            && !(b.is_finite() && b > 0.0)
        {
            bail!("--bandwidth-mbps {b}: give a positive number of megabits per second");
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0 && self.timeout_s < 1e6) {
            bail!(
                "--timeout-s {}: give a positive number of seconds",
                self.timeout_s
            );
        }
        Ok((
            Link::new(self.rtt_ms, self.bandwidth_mbps),
            Duration::from_secs_f64(self.timeout_s),
        ))
    }

    /// `", 100 ms RTT, 50 Mbit/s"`, or nothing for an ideal link.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if self.rtt_ms > 0.0 {
            s += &format!(", emulated {} ms RTT", self.rtt_ms);
        }
        if let Some(b) = self.bandwidth_mbps {
            s += &format!(", {b} Mbit/s");
        }
        s
    }
}

/// Prints `<what> listening on <addr>` on stdout at once: the address (the last word) is
/// what a script that started the service with port 0 reads back.
pub fn announce_listening(what: &str, addr: SocketAddr) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what} listening on {addr}")?;
    out.flush()?;
    Ok(())
}
