//! `pillar bench activations`: rows for every protocol and link, exact rounds and bytes, the
//! plot, and clear errors for bad arguments. Timings are printed, never asserted.
#![allow(clippy::unwrap_used)]

mod common;

use common::pillar;
use predicates::str::contains;
use serde_json::Value;

/// Runs `pillar bench activations ARGS --json` and returns its rows.
fn bench_json(args: &[&str]) -> Vec<Value> {
    bench_rows("activations", args)
}

/// Runs `pillar bench KIND ARGS --json`, which must succeed, and returns its rows.
fn bench_rows(kind: &str, args: &[&str]) -> Vec<Value> {
    serde_json::from_value(common::json(&[&["bench", kind], args].concat())).unwrap()
}

#[test]
fn json_rows_have_the_documented_keys_and_costs() {
    let rows = bench_json(&["-n", "1000", "--rtt-ms", "0,2", "--repeats", "3"]);
    assert_eq!(rows.len(), 8);
    for row in &rows {
        for key in [
            "protocol",
            "rtt_ms",
            "rounds",
            "bytes_sent",
            "median_s",
            "ci95_s",
            "max_abs_error",
        ] {
            assert!(row.get(key).is_some(), "{key} missing from {row}");
        }
        let (rounds, words_per_element, tolerance) = match row["protocol"].as_str().unwrap() {
            "relu" => (8, 14, 0.0),
            "crypten" => (2, 4, 1e-3),
            "espn" => (1, 6, 0.016),
            "honeybadger" => (1, 1, 0.016),
            other => panic!("unexpected protocol {other}"),
        };
        assert_eq!(row["rounds"], rounds);
        let packed_bits = if rounds == 8 { 1000u64.div_ceil(64) } else { 0 };
        assert_eq!(
            row["bytes_sent"].as_u64().unwrap(),
            8 * (words_per_element * 1000 + packed_bits)
        );
        assert!(row["max_abs_error"].as_f64().unwrap() <= tolerance, "{row}");
        assert!(row["median_s"].as_f64().unwrap() > 0.0);
    }
    // With a 2 ms round trip, every round costs at least 1 ms.
    let relu = rows
        .iter()
        .find(|r| r["protocol"] == "relu" && r["rtt_ms"] == 2.0)
        .unwrap();
    assert!(relu["median_s"].as_f64().unwrap() >= 8.0 * 1e-3);
}

#[test]
fn loopback_tcp_carries_the_same_protocol() {
    let rows = bench_json(&[
        "-n",
        "500",
        "--rtt-ms",
        "0",
        "--repeats",
        "2",
        "--transport",
        "tcp",
    ]);
    let relu = rows.iter().find(|r| r["protocol"] == "relu").unwrap();
    assert_eq!(relu["rounds"], 8);
    assert_eq!(relu["bytes_sent"].as_u64().unwrap(), 8 * (14 * 500 + 8));
    assert_eq!(relu["max_abs_error"].as_f64().unwrap(), 0.0);
}

#[test]
fn table_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("fig2.png");
    pillar()
        .args([
            "bench",
            "activations",
            "-n",
            "200",
            "--rtt-ms",
            "0,1",
            "--repeats",
            "2",
            "--protocols",
            "espn,honeybadger",
            "--bandwidth-mbps",
            "100",
        ])
        .arg("--plot")
        .arg(&png)
        .assert()
        .success()
        .stdout(contains("honeybadger"))
        .stdout(contains("Mbit/s"))
        .stdout(contains("    100 "))
        .stdout(contains("median ms"));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn bad_arguments_are_explained() {
    for (args, message) in [
        (
            vec!["--protocols", "relu,sigmoid"],
            "unknown protocol \"sigmoid\"",
        ),
        (
            vec!["--rtt-ms", "-5"],
            "round-trip time is a number of milliseconds from 0",
        ),
        (vec!["--repeats", "0"], "--repeats must be at least 1"),
        (vec!["-n", "0"], "--elements must be at least 1"),
        (vec!["--frac-bits", "30"], "30 fractional bits"),
        (
            vec!["--bandwidth-mbps", "0"],
            "megabits per second from 0.001",
        ),
        (vec!["--coefficients", "0.1,nan"], "not a finite number"),
    ] {
        let mut all = vec!["bench", "activations"];
        all.extend(&args);
        // Small and quick unless the case is about that argument.
        for (flag, value) in [("-n", "10"), ("--repeats", "1"), ("--rtt-ms", "0")] {
            if !args.contains(&flag) {
                all.extend([flag, value]);
            }
        }
        pillar()
            .args(&all)
            .assert()
            .failure()
            .stderr(contains(message));
    }
}

/// `pillar bench model`: a row per linear protocol, protocol and link with the documented
/// keys; MiniONN's rounds are its 8 linear layers, its 7 activation layers (one round each
/// under HoneyBadger, eight as exact ReLU) and the delivery of the logits, under either linear
/// protocol (the preprocessed one's client posts take the linear layers' rounds).
#[test]
fn model_rows_count_minionns_rounds() {
    let rows = bench_rows(
        "model",
        &[
            "--model",
            "minionn",
            "--dataset-shape",
            "mnist",
            "--protocols",
            "honeybadger,relu",
            "--rtt-ms",
            "0,1",
            "-k",
            "1",
        ],
    );
    assert_eq!(rows.len(), 8);
    for r in &rows {
        for key in [
            "model",
            "protocol",
            "linear",
            "rtt_ms",
            "rounds",
            "online_bytes",
            "online_bytes_server",
            "offline_bytes",
            "offline_post_bytes",
            "median_s",
            "ci95_s",
            "first_answer_s",
        ] {
            assert!(!r[key].is_null(), "{key} missing in {r}");
        }
        let rounds = if r["protocol"] == "honeybadger" {
            8 + 7 + 1
        } else {
            8 + 7 * 8 + 1
        };
        assert_eq!(r["rounds"], rounds, "{r}");
        assert!(r["offline_bytes"].as_u64().unwrap() > 0);
    }
    // Under the preprocessed protocol the two parties together send about half the bytes.
    let total = |linear: &str| -> u64 {
        rows.iter()
            .filter(|r| r["linear"] == linear && r["protocol"] == "honeybadger")
            .map(|r| {
                r["online_bytes"].as_u64().unwrap() + r["online_bytes_server"].as_u64().unwrap()
            })
            .sum()
    };
    let (beaver, preprocessed) = (total("beaver"), total("preprocessed"));
    assert!(
        2 * preprocessed < beaver + beaver / 10,
        "{preprocessed} vs {beaver}"
    );
    pillar()
        .args(["bench", "model", "--model", "nosuchnet", "-k", "1"])
        .assert()
        .failure()
        .stderr(contains("unknown model"));
}
