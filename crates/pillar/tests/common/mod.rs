//! What the command-line tests share: the binary, its JSON output, and services (dealer,
//! server) run in the background.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};

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

/// A background `pillar` process, killed when dropped.
pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `pillar ARGS` and reads the address it prints when it listens.
pub(crate) fn start(args: &[&str]) -> Service {
    start_process(Process::new(assert_cmd::cargo::cargo_bin!("pillar")), args)
}

/// Starts `command ARGS` and reads the address it prints when it listens.
pub(crate) fn start_process(mut command: Process, args: &[&str]) -> Service {
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on"), "{args:?} printed {line:?}");
    let addr = line.split_whitespace().last().unwrap().to_string();
    Service { child, addr }
}
