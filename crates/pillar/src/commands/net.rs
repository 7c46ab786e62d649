//! What the networked commands (`dealer`, `serve`, `infer`) share: keys, the emulated link,
//! the timeout, and the line that tells scripts where a service listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use pillar_infer::remote::Links;
use pillar_mpc::channel::{Identity, Link, PublicKey, Security};

/// The link to the peer, and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub(crate) struct LinkArgs {
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
    pub(crate) fn link(&self) -> Result<(Link, Duration)> {
        let link = emulated_link(self.rtt_ms, self.bandwidth_mbps)?;
        Ok((link, seconds("--timeout-s", self.timeout_s)?))
    }

    /// `", 100 ms RTT, 50 Mbit/s"`, or nothing for an ideal link.
    pub(crate) fn describe(&self) -> String {
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

/// Longest emulated round trip, in milliseconds: an hour is beyond any real link, and every
/// delay derived from it stays a valid `Duration` (a huge value would panic converting).
pub(crate) const MAX_RTT_MS: f64 = 3_600_000.0;

/// Slowest emulated bandwidth, in megabits per second (1 kbit/s): a floor chosen so that a
/// typo (`1e-300`) is an error, not a link on which every message waits for ever.
pub(crate) const MIN_BANDWIDTH_MBPS: f64 = 1e-3;

/// Fastest emulated bandwidth, in megabits per second (1 Tbit/s): beyond it the cap means
/// nothing.
pub(crate) const MAX_BANDWIDTH_MBPS: f64 = 1e6;

/// Longest duration a flag in seconds may give (about 11.6 days): a typo such as `1e300`
/// must be an error, not a panic converting it to a `Duration`.
pub(crate) const MAX_SECONDS: f64 = 1e6;

/// `value` as a user typed it, near enough: `1e300`, not three hundred digits.
fn shown(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e9 || (magnitude > 0.0 && magnitude < 1e-3) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// Checks `--rtt-ms`.
pub(crate) fn check_rtt_ms(rtt_ms: f64) -> Result<()> {
    if !(rtt_ms.is_finite() && (0.0..=MAX_RTT_MS).contains(&rtt_ms)) {
        let rtt_ms = shown(rtt_ms);
        bail!(
            "--rtt-ms {rtt_ms}: a round-trip time is a number of milliseconds from 0 to {MAX_RTT_MS} (an hour)"
        );
    }
    Ok(())
}

/// Checks `--bandwidth-mbps`.
pub(crate) fn check_bandwidth_mbps(bandwidth_mbps: Option<f64>) -> Result<()> {
    if let Some(b) = bandwidth_mbps
        && !(b.is_finite() && (MIN_BANDWIDTH_MBPS..=MAX_BANDWIDTH_MBPS).contains(&b))
    {
        let b = shown(b);
        bail!(
            "--bandwidth-mbps {b}: give a number of megabits per second from {MIN_BANDWIDTH_MBPS} (1 kbit/s) to {MAX_BANDWIDTH_MBPS}"
        );
    }
    Ok(())
}

/// The emulated link of `--rtt-ms` and `--bandwidth-mbps`, checked: every command that
/// emulates a link builds it here.
pub(crate) fn emulated_link(rtt_ms: f64, bandwidth_mbps: Option<f64>) -> Result<Link> {
    check_rtt_ms(rtt_ms)?;
    check_bandwidth_mbps(bandwidth_mbps)?;
    Ok(Link::new(rtt_ms, bandwidth_mbps))
}

/// A positive number of seconds given with `flag`, as a `Duration`.
pub(crate) fn seconds(flag: &str, value: f64) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value <= MAX_SECONDS) {
        let value = shown(value);
        bail!("{flag} {value}: give a positive number of seconds, at most {MAX_SECONDS}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// Prints `<what> listening on <addr>` on stdout at once: the address (the last word) is
/// what a script that started the service with port 0 reads back.
pub(crate) fn announce_listening(what: &str, addr: SocketAddr) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what} listening on {addr}")?;
    out.flush()?;
    Ok(())
}

/// This process's key from `key`, or `None` for plaintext (`insecure`); `trust` names the
/// flags the peers' keys go with, for the error when no key is given.
pub(crate) fn identity(
    key: Option<&Path>,
    insecure: bool,
    trust: &str,
) -> Result<Option<Arc<Identity>>> {
    if insecure {
        return Ok(None);
    }
    let Some(path) = key else {
        bail!(
            "links are encrypted by default: give --key (make one with `pillar keygen --out NAME`) and {trust} for each peer's public key, or run with --insecure-plaintext"
        );
    };
    Ok(Some(Arc::new(Identity::load(path)?)))
}

/// This process's key and the peers it trusts, or plaintext by name.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyArgs {
    /// This process's secret key (written by `pillar keygen`). Links are Noise-encrypted and
    /// mutually authenticated with it.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// A peer's public key: its `.pub` file or the 64 hex digits. Repeat for each peer; no
    /// one else gets in.
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<String>,

    /// Run without encryption or authentication: anyone on the path reads every share and
    /// anyone can connect. For benchmarks and trusted networks only.
    #[arg(long, conflicts_with_all = ["key", "trust"])]
    pub insecure_plaintext: bool,
}

impl KeyArgs {
    /// This process's identity, or `None` for plaintext.
    pub(crate) fn identity(&self) -> Result<Option<Arc<Identity>>> {
        identity(self.key.as_deref(), self.insecure_plaintext, "--trust")
    }

    /// The keys given with `flag` (`--trust` or `--dealer-key`), at least one.
    pub(crate) fn keys(texts: &[String], flag: &str, whose: &str) -> Result<Arc<Vec<PublicKey>>> {
        if texts.is_empty() {
            bail!("{flag}: give {whose} public key (its .pub file from `pillar keygen`)");
        }
        let keys = texts
            .iter()
            .map(|t| PublicKey::load(t).with_context(|| format!("{flag} {t}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(keys))
    }

    /// Security for a party's two links: the peer in `--trust`, the dealer in `dealer_key`.
    pub(crate) fn links(&self, dealer_key: &[String], peer: &str) -> Result<Links> {
        match self.identity()? {
            None => {
                if !dealer_key.is_empty() {
                    bail!("--dealer-key makes no sense with --insecure-plaintext");
                }
                Ok(Links::plaintext())
            }
            Some(identity) => Ok(Links {
                peer: Security::Noise {
                    identity: Arc::clone(&identity),
                    trusted: Self::keys(&self.trust, "--trust", peer)?,
                },
                dealer: Security::Noise {
                    identity,
                    trusted: Self::keys(dealer_key, "--dealer-key", "the dealer's")?,
                },
            }),
        }
    }

    /// `"noise"` or `"plaintext (insecure)"`, for the start-up line.
    pub(crate) fn describe(&self) -> &'static str {
        if self.insecure_plaintext {
            "plaintext (insecure)"
        } else {
            "noise"
        }
    }
}
