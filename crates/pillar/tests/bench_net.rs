//! `pillar bench net`: its arguments are checked everywhere, it skips cleanly without root,
//! and as root a small run over the real path reports every step. Timings are checked only
//! against the path's round trip, never against a target.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::pillar;
use predicates::str::contains;
use serde_json::Value;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn bad_arguments_are_refused_before_anything_is_set_up() {
    for (args, says) in [
        (&["--rtt-ms=-1"][..], "--rtt-ms -1"),
        (&["--bandwidth-mbps", "1e-9"][..], "--bandwidth-mbps"),
        (&["--fresh", "0"][..], "--fresh must be at least 1"),
        (&["--timeout-s", "0"][..], "--timeout-s 0"),
    ] {
        pillar()
            .args(["bench", "net"])
            .args(args)
            .assert()
            .failure()
            .stderr(contains(says));
    }
}

#[test]
fn without_root_it_says_it_skipped_and_succeeds() {
    let bin = assert_cmd::cargo::cargo_bin!("pillar");
    let out = if is_root() {
        // As an unprivileged user: a copy of the binary where that user may run it (the
        // build directory may be private to root).
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.path().join("pillar");
        std::fs::copy(bin, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let Ok(out) = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args(["bench", "net", "--rtt-ms", "10"])
            .output()
        else {
            eprintln!("no setpriv: the skip path is not checked as root");
            return;
        };
        out
    } else {
        Command::new(bin)
            .args(["bench", "net", "--rtt-ms", "10"])
            .output()
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.starts_with("setpriv") {
        eprintln!("setpriv cannot drop privileges here ({stderr}): the skip path is not checked");
        return;
    }
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(
        stdout.starts_with("skipped: needs root and network namespaces ("),
        "{stdout}"
    );
}

/// A few seconds as root: the small convnet on MNIST shapes, a 10 ms path, one fresh client,
/// one returning client (which kept the weights), two requests on a warm connection, one
/// emulator repeat.
#[test]
fn as_root_a_small_run_reports_each_step_of_the_first_answer() {
    if !is_root() {
        eprintln!("not root: the real path is not checked");
        return;
    }
    let out = pillar()
        .args([
            "bench",
            "net",
            "--model",
            "convnet",
            "--dataset-shape",
            "mnist",
            "--rtt-ms",
            "10",
            "--fresh",
            "1",
            "--returning",
            "1",
            "--warm",
            "2",
            "--emulator-repeats",
            "1",
            "--links",
            "plaintext",
            "--timeout-s",
            "60",
            "--json",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.contains("skipped") {
        eprintln!("{stdout}");
        return;
    }
    let rows: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    // One row per linear protocol, the Beaver one first.
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["linear"], "beaver");
    assert_eq!(rows[1]["linear"], "preprocessed");
    for r in &rows {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
        let rounds = r["rounds"].as_u64().unwrap();
        assert!(rounds >= 2, "{r}");
        // Each step ends after the one before, and each takes round trips of the 10 ms path:
        // the handshake several, every online round half of one.
        let steps = [
            f("hello_s"),
            f("dealer_joined_s"),
            f("setup_done_s"),
            f("first_answer_s"),
        ];
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{r}");
        assert!(steps[0] >= 0.02, "{r}");
        assert!(f("online_s") >= rounds as f64 * 0.005, "{r}");
        assert!(f("process_s") >= steps[3], "{r}");
        assert!(r["online_bytes_sent"].as_u64().unwrap() > 0);
        assert!(r["offline_bytes"].as_u64().unwrap() > 0);
        assert!(r["warm_online_s"].as_f64().is_some(), "{r}");
        // The returning client used the weights it kept (the run fails otherwise).
        assert_eq!(r["returning"], 1, "{r}");
        assert!(f("returning_first_answer_s") > 0.0, "{r}");
        assert!(r["emulator_online_s"].as_f64().is_some(), "{r}");
    }
    // The preprocessed client sends less online; neither sends anything in the setup.
    let sent = |r: &Value, k: &str| r[k].as_u64().unwrap();
    assert!(sent(&rows[1], "online_bytes_sent") < sent(&rows[0], "online_bytes_sent"));
    for r in &rows {
        assert_eq!(sent(r, "setup_bytes"), 0, "{r}");
    }
    // No namespace is left behind.
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&netns.stdout).into_owned();
    let pid_free = left
        .lines()
        .filter(|l| l.starts_with("pillarnet"))
        .filter(|l| {
            let pid: String = l["pillarnet".len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .count();
    assert_eq!(pid_free, 0, "namespaces of finished runs: {left}");
}
