//! `pillar dealer`: the trusted third party as a process of its own. Each server connection
//! gets a fresh session (two seeds, one per party); the client that joins it with the id its
//! server gave it gets its seed and then the corrections, streamed in the order it announces.
//! See `pillar_mpc::dealer::remote` for the protocol.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use pillar_mpc::dealer::remote::{DealerService, ServiceConfig};

use super::net::{KeyArgs, announce_listening};

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

    /// The dealer's key, and the servers' and clients' public keys (`--trust`, once each).
    #[command(flatten)]
    keys: KeyArgs,
}

/// Runs `pillar dealer` until it is killed.
pub(crate) fn run(args: &DealerArgs) -> Result<()> {
    let max = super::net::MAX_SECONDS as u64;
    if !(1..=max).contains(&args.expiry_s) || !(1..=max).contains(&args.timeout_s) {
        bail!("--expiry-s and --timeout-s must be from 1 to {max} seconds");
    }
    let security = args.keys.security("each server's and client's")?;
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("dealer links: {}", args.keys.describe());
    let config = ServiceConfig {
        expiry: Duration::from_secs(args.expiry_s),
        timeout: Duration::from_secs(args.timeout_s),
        ..ServiceConfig::default()
    };
    announce_listening("pillar dealer", listener.local_addr()?)?;
    Arc::new(DealerService::new(config, security))
        .serve(&listener)
        .context("the dealer stopped accepting connections")
}
