//! `pillar dealer`: the trusted third party as a process of its own. Each server connection
//! gets a fresh session (two seeds, one per party) and commits the correlations it draws; the
//! client that joins it with the id its server gave it gets its seed and then the corrections,
//! streamed in the order it announces, as long as they are the ones its server committed to.
//! See `pillar_mpc::dealer::remote` for the protocol.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use pillar_mpc::dealer::remote::{DealerLinks, DealerService, ServiceConfig};

use super::net::{KeyArgs, announce_listening, identity};

/// Arguments of `pillar dealer`.
#[derive(Debug, Args)]
pub(crate) struct DealerArgs {
    /// Address to listen on (port 0: any free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:7879")]
    listen: String,

    /// Forget a session its client has not joined after this many seconds.
    #[arg(long, default_value_t = 600)]
    expiry_s: u64,

    /// Give up on a message in progress after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,

    /// The dealer's secret key (written by `pillar keygen`). Links are Noise-encrypted and
    /// mutually authenticated with it.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// A server's public key (its `.pub` file or the 64 hex digits): it may open sessions.
    /// Repeat for each server.
    #[arg(long = "trust-server", value_name = "KEY")]
    servers: Vec<String>,

    /// A client's public key: it may join the session its server opened. Repeat for each
    /// client. A key given only as a client's cannot open a session, nor a server's join one.
    #[arg(long = "trust-client", value_name = "KEY")]
    clients: Vec<String>,

    /// `--trust` of earlier versions, which took servers' and clients' keys alike: refused
    /// with a pointer to the two flags that replace it.
    #[arg(long = "trust", value_name = "KEY", hide = true)]
    trust: Vec<String>,

    /// Run without encryption or authentication: anyone on the path reads every seed and
    /// correction, and anyone can connect in either role. For benchmarks and trusted networks
    /// only.
    #[arg(long, conflicts_with_all = ["key", "servers", "clients"])]
    insecure_plaintext: bool,
}

impl DealerArgs {
    /// The dealer's links: its key, and each trusted key in its role.
    fn links(&self) -> Result<DealerLinks> {
        if !self.trust.is_empty() {
            bail!(
                "the dealer binds roles to keys: give each server's public key with --trust-server and each client's with --trust-client (not --trust)"
            );
        }
        let trust = "--trust-server or --trust-client";
        let Some(identity) = identity(self.key.as_deref(), self.insecure_plaintext, trust)? else {
            return Ok(DealerLinks::Plaintext);
        };
        Ok(DealerLinks::Noise {
            identity,
            servers: KeyArgs::keys(&self.servers, "--trust-server", "each server's")?,
            clients: KeyArgs::keys(&self.clients, "--trust-client", "each client's")?,
        })
    }
}

/// Runs `pillar dealer` until it is killed.
pub(crate) fn run(args: &DealerArgs) -> Result<()> {
    crate::memory::no_huge_pages();
    let max = super::net::MAX_SECONDS as u64;
    for (flag, value) in [
        ("--expiry-s", args.expiry_s),
        ("--timeout-s", args.timeout_s),
    ] {
        if !(1..=max).contains(&value) {
            bail!("{flag} {value}: give a number of seconds from 1 to {max}");
        }
    }
    let links = args.links()?;
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let described = match links {
        DealerLinks::Noise { .. } => "noise, roles bound to keys",
        _ => "plaintext (insecure)",
    };
    eprintln!("dealer links: {described}");
    let config = ServiceConfig {
        expiry: Duration::from_secs(args.expiry_s),
        timeout: Duration::from_secs(args.timeout_s),
        ..ServiceConfig::default()
    };
    announce_listening("pillar dealer", listener.local_addr()?)?;
    Arc::new(DealerService::new(config, links))
        .serve(&listener)
        .context("the dealer stopped accepting connections")
}
