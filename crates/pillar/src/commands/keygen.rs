//! `pillar keygen`: a long-term key pair for one process (dealer, server or client). The
//! secret half stays with the process (`--key`); the public half goes to its peers
//! (`--trust`, `--dealer-key`), once, by whatever channel the operators already trust.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use pillar_mpc::channel::Identity;

/// Arguments of `pillar keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Writes NAME.key (the secret key, readable by its owner only) and NAME.pub (the public
    /// key, for the peers). Existing files are never overwritten.
    #[arg(long, value_name = "NAME")]
    out: PathBuf,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs `pillar keygen`.
pub(crate) fn run(args: &KeygenArgs) -> Result<()> {
    let secret = with_suffix(&args.out, ".key");
    let public = with_suffix(&args.out, ".pub");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let identity = Identity::generate();
    identity
        .save(&secret, &public)
        .context("cannot write the key pair")?;
    println!("{}", identity.public());
    eprintln!(
        "wrote {} (secret: keep it with this process, pass it as --key) and {} (give it to the peers, who pass it as --trust, --dealer-key, or to the dealer as --trust-server or --trust-client)",
        secret.display(),
        public.display()
    );
    Ok(())
}
