//! The local truncation fails (is off by about 2^(64-k)) at the rate the theory gives:
//! party 0's share is uniform, and the truncation breaks exactly when it lies within `|v|`
//! of the wrap-around point, so the rate is `|v| / 2^64` per element. (The usual statement,
//! `|v| / 2^63`, bounds it for every `|v|` up to a given size with either sign: twice this.)
#![allow(clippy::unwrap_used)]

mod common;

use common::{run, signed, tensor};
use pillar_mpc::protocols::truncation::truncate;

#[test]
fn failure_rate_is_abs_value_over_2_pow_64() {
    let n = 200_000;
    let k = 16;
    for v in [1i64 << 60, -(1i64 << 60), 3i64 << 58] {
        let o = run(
            42 + v.unsigned_abs() % 7,
            &[tensor(&[n], vec![v; n])],
            |s, sh| truncate(s, &sh[0], k),
        );
        let want = v >> k;
        let failures = signed(&o.value)
            .iter()
            .filter(|&&g| (g - want).abs() > 1)
            .count();
        let rate = failures as f64 / n as f64;
        let p = v.unsigned_abs() as f64 / 2f64.powi(64);
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (rate - p).abs() < 5.0 * sigma,
            "v = {v}: {failures} failures in {n} ({rate:.5}), theory |v|/2^64 = {p:.5} +- {sigma:.5}"
        );
        // Clearly not the bound |v|/2^63.
        assert!(rate < 1.5 * p);
    }
}

#[test]
fn small_values_never_fail() {
    let n = 100_000;
    let xs: Vec<i64> = (0..n as i64).map(|i| (i - 50_000) * 977).collect();
    let o = run(5, &[tensor(&[n], xs.clone())], |s, sh| {
        truncate(s, &sh[0], 12)
    });
    for (g, x) in signed(&o.value).iter().zip(&xs) {
        assert!((g - (x >> 12)).abs() <= 1);
    }
}
