//! `pillar fit` as a user runs it.

#![allow(clippy::unwrap_used)]

mod common;

use common::pillar;
use predicates::prelude::*;
use serde_json::Value;

/// Runs `pillar fit ARGS --json`.
fn json(args: &[&str]) -> Value {
    common::json(&[&["fit"], args].concat())
}

#[test]
fn prints_the_papers_integers_as_json() {
    let v = json(&["--degree", "4", "--range", "5", "--bits", "10"]);
    assert_eq!(v["integers"], serde_json::json!([322, 512, 160, 0, -3]));
    assert_eq!(v["degree"], 4);
    assert_eq!(v["range"], 5.0);
    assert_eq!(v["bits"], 10);
    assert_eq!(v["coefficients"][0], 0.314453125);
    assert_eq!(v["coefficients"][4], -0.0029296875);
    let max = v["max_error"].as_f64().unwrap();
    let mean = v["mean_error"].as_f64().unwrap();
    assert!(
        (max - 0.3145).abs() < 1e-4 && (mean - 0.072).abs() < 1e-3,
        "{max} {mean}"
    );
    assert_eq!(v["budget"]["fits"], true);
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[test]
fn other_bits_and_degrees() {
    assert_eq!(
        json(&["--bits", "8"])["integers"],
        serde_json::json!([70, 128, 45, 0, -1])
    );
    assert_eq!(
        json(&["--bits", "12"])["integers"],
        serde_json::json!([1220, 2048, 663, 0, -13])
    );
    assert_eq!(
        json(&["--degree", "2"])["integers"],
        serde_json::json!([479, 512, 96])
    );
}

#[test]
fn float_fit_has_no_integers() {
    let v = json(&["--float"]);
    assert_eq!(v["method"], "float");
    assert!(v["integers"].is_null());
    let c2 = v["coefficients"][2].as_f64().unwrap();
    assert!((c2 - 0.16390).abs() < 1e-5, "{c2}");
}

#[test]
fn smooth_targets() {
    for target in ["sigmoid", "silu", "gelu"] {
        let v = json(&["--target", target]);
        assert_eq!(v["target"], target);
        assert!(v["max_error"].as_f64().unwrap() < 0.35, "{target}: {v}");
    }
}

#[test]
fn human_table_shows_fit_and_budget() {
    pillar()
        .arg("fit")
        .assert()
        .success()
        .stdout(predicate::str::contains("322"))
        .stdout(predicate::str::contains("0.0029296875"))
        .stdout(predicate::str::contains("p(10) = -8.3574"))
        .stdout(predicate::str::contains("fits, 21.7 bits to spare"));
}

#[test]
fn warns_when_the_precision_cannot_be_evaluated_safely() {
    let out = pillar()
        .args(["fit", "--frac-bits", "30", "--json"])
        .assert()
        .success()
        .stderr(predicate::str::contains("wrap around"));
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["budget"]["fits"], false);
    assert!(!v["warnings"].as_array().unwrap().is_empty());
    // Coefficients finer than the ring's fixed point are flagged too.
    pillar()
        .args(["fit", "--bits", "20", "--frac-bits", "12"])
        .assert()
        .success()
        .stderr(predicate::str::contains("20 fractional bits but f = 12"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let cases: [(&[&str], &str); 8] = [
        (&["--degree", "0"], "degree must be between 1 and 12, got 0"),
        (
            &["--degree", "13"],
            "degree must be between 1 and 12, got 13",
        ),
        (
            &["--range", "0"],
            "range must be a number in (0, 100], got 0",
        ),
        (
            &["--range", "-5"],
            "range must be a number in (0, 100], got -5",
        ),
        (&["--bits", "1"], "bits must be between 2 and 30, got 1"),
        (&["--bits", "31"], "bits must be between 2 and 30, got 31"),
        (&["--target", "tanh"], "unknown target `tanh`"),
        (
            &["--frac-bits", "0"],
            "fractional bits must be between 1 and 62",
        ),
    ];
    for (args, message) in cases {
        pillar()
            .arg("fit")
            .args(args)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn draws_the_appendix_b_figure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fit.png");
    pillar()
        .args(["fit", "--bits", "8", "--plot"])
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("plot:"));
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "{} bytes", png.len());

    pillar()
        .args(["fit", "--plot", "/nonexistent-dir/fit.png"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "cannot draw the plot /nonexistent-dir/fit.png",
        ));
}
