//! Numeric flags out of range, as a user (or a script with a typo) gives them: every command
//! that takes a round-trip time, a bandwidth or a duration refuses what cannot be a link or a
//! wait with an error naming the flag and its limit, and never panics (exit status 101).
#![allow(clippy::unwrap_used)]

mod common;

use common::pillar;

/// Runs `pillar ARGS`, which must fail cleanly with an error naming `flag` and `limit`.
fn refused(args: &[&str], flag: &str, limit: &str) {
    // A safety net, not a measurement: a flag accepted by mistake may start a service.
    let out = pillar()
        .args(args)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(101),
        "pillar {args:?} panicked: {stderr}"
    );
    assert!(!out.status.success(), "pillar {args:?} succeeded");
    assert!(
        stderr.contains(flag) && stderr.contains(limit),
        "pillar {args:?}: {stderr}"
    );
}

/// The networked commands, each with what it needs besides the link flags.
fn commands(dir: &str) -> Vec<Vec<&str>> {
    let nowhere = "127.0.0.1:9";
    vec![
        vec![
            "infer",
            "--connect",
            nowhere,
            "--dealer",
            nowhere,
            "--index",
            "0",
            "--insecure-plaintext",
        ],
        vec![
            "serve",
            "--model",
            "missing.onnx",
            "--dealer",
            nowhere,
            "--insecure-plaintext",
        ],
        vec!["bench", "activations", "-n", "10", "-k", "1"],
        vec![
            "bench",
            "model",
            "--model",
            "convnet",
            "--dataset-shape",
            "mnist",
            "--protocols",
            "crypten",
            "-k",
            "1",
        ],
        vec!["bench", "load", "--clients", "1"],
        vec!["demo", "--out", dir, "--epochs", "1", "--images", "1"],
    ]
}

#[test]
fn a_round_trip_time_beyond_an_hour_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("demo");
    for command in commands(dir.to_str().unwrap()) {
        for rtt in ["1e300", "3600001", "-1", "NaN"] {
            let flag = format!("--rtt-ms={rtt}");
            let args = [&command[..], &[&flag]].concat();
            refused(&args, "--rtt-ms", "3600000");
        }
        // The value as typed, not three hundred digits.
        let args = [&command[..], &["--rtt-ms=1e300"]].concat();
        refused(&args, "--rtt-ms 1e300:", "3600000");
    }
    assert!(!dir.exists(), "the demo wrote before checking its flags");
}

#[test]
fn a_bandwidth_below_1_kbit_or_above_1_tbit_is_refused_by_every_command() {
    for command in &commands("unused")[..4] {
        for bandwidth in ["1e-300", "0.0009", "1e7", "inf"] {
            let args = [&command[..], &["--bandwidth-mbps", bandwidth]].concat();
            refused(&args, "--bandwidth-mbps", "1 kbit/s");
        }
    }
}

#[test]
fn durations_beyond_the_limit_are_refused() {
    let [infer, serve, .., load, _] = &commands("unused")[..] else {
        unreachable!()
    };
    for command in [infer, serve] {
        let args = [&command[..], &["--timeout-s", "1e300"]].concat();
        refused(&args, "--timeout-s", "1000000");
    }
    let args = [&load[..], &["--seconds", "1e300", "--rtt-ms", "0"]].concat();
    refused(&args, "--seconds", "1000000");
    let dealer = ["dealer", "--listen", "127.0.0.1:0", "--insecure-plaintext"];
    for flag in ["--expiry-s", "--timeout-s"] {
        refused(
            &[&dealer[..], &[flag, "18446744073709551615"]].concat(),
            flag,
            "1000000",
        );
    }
}

#[test]
fn sizes_that_would_exhaust_memory_or_threads_are_refused() {
    let quick = ["--rtt-ms", "0", "-k", "1"];
    let elements = [&["bench", "activations", "-n", "100000000000"][..], &quick].concat();
    refused(&elements, "--elements", "10000000");
    let clients = ["bench", "load", "--clients", "100000", "--seconds", "1"];
    refused(&clients, "--clients 100000", "256");
    let batch = ["bench", "train", "--batch", "100000000", "--steps", "1"];
    refused(&batch, "--batch 100000000", "8192");
}
