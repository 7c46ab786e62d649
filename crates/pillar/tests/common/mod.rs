//! What the command-line tests share: the binary, and its JSON output.
#![allow(dead_code, clippy::unwrap_used)]

use assert_cmd::Command;
use serde_json::Value;

/// The `pillar` binary this package builds.
pub(crate) fn pillar() -> Command {
    Command::cargo_bin("pillar").unwrap()
}

/// Runs `pillar ARGS --json`, which must succeed (its stderr is shown if not), and parses
/// what it prints.
pub(crate) fn json(args: &[&str]) -> Value {
    let out = pillar().args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "pillar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
