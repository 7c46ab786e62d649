//! `pillar keygen`: a long-term key pair for one process (dealer, server or client). The
//! secret half stays with the process (`--key`); the public half goes to its peers
//! (`--trust`, `--dealer-key`), once, by whatever channel the operators already trust.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
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
    // Either file there means a key pair is: a new secret beside an old public key (or the
    // reverse) would be a pair that does not match.
    if let Some(existing) = [&secret, &public].into_iter().find(|p| p.exists()) {
        bail!(
            "{} exists: keys are never overwritten (remove it, or choose another --out)",
            existing.display()
        );
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let identity = Identity::generate();
    save_pair(&identity, &secret, &public)?;
    println!("{}", identity.public());
    eprintln!(
        "wrote {} (secret: keep it with this process, pass it as --key) and {} (give it to the peers, who pass it as --trust, --dealer-key, or to the dealer as --trust-server or --trust-client)",
        secret.display(),
        public.display()
    );
    Ok(())
}

/// Writes the pair under temporary names beside its place, then links each into place: a
/// process killed while writing leaves no half-written key under the real names, and a key
/// that appeared there meanwhile is never replaced. If the public key cannot be placed, the
/// secret placed before it is taken back, so no pair that does not match is left.
fn save_pair(identity: &Identity, secret: &Path, public: &Path) -> Result<()> {
    let tmp_secret = with_suffix(secret, &format!(".{}.tmp", std::process::id()));
    let tmp_public = with_suffix(public, &format!(".{}.tmp", std::process::id()));
    let result = identity
        .save(&tmp_secret, &tmp_public)
        .context("cannot write the key pair")
        .and_then(|()| {
            place(&tmp_secret, secret)?;
            place(&tmp_public, public).inspect_err(|_| {
                let _ = std::fs::remove_file(secret);
            })
        });
    let _ = std::fs::remove_file(&tmp_secret);
    let _ = std::fs::remove_file(&tmp_public);
    result
}

/// Links `tmp` in at `path`, which must not exist: unlike a rename, a hard link never
/// replaces a file.
fn place(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::hard_link(tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
