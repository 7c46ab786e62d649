//! The three polynomial protocols against plaintext fixed point: the same pre-scalings and
//! truncations done exactly on integers, each local truncation allowed its one unit of error,
//! propagated. Plus their rounds and bytes, and the accuracy against the real polynomial.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_cost, run, signed};
use pillar_fit::PAPER_RELU as PAPER;
use pillar_mpc::protocols::poly::reference::{self, Approx};
use pillar_mpc::protocols::poly::{crypten, espn, honeybadger};
use pillar_mpc::{FixedPoint, MpcError, RingTensor};
use proptest::prelude::*;

fn check(
    protocol: fn(
        &mut pillar_mpc::Session,
        &pillar_mpc::Share,
        &[f64],
    ) -> Result<pillar_mpc::Share, MpcError>,
    reference: fn(FixedPoint, i64, &[f64]) -> Approx,
    seed: u64,
    xs: &[f64],
    c: &[f64],
) -> common::Outcome {
    let fp = FixedPoint::default();
    let x = RingTensor::encode(fp, vec![xs.len()], xs).unwrap();
    let o = run(seed, std::slice::from_ref(&x), |s, sh| {
        protocol(s, &sh[0], c)
    });
    for (i, (&got, &xi)) in signed(&o.value).iter().zip(x.data()).enumerate() {
        let want = reference(fp, xi as i64, c);
        assert!(
            (i128::from(got) - want.value).abs() as f64 <= want.tolerance,
            "element {i} (x = {}): got {got}, plaintext fixed point {} +- {}",
            xs[i],
            want.value,
            want.tolerance
        );
    }
    o
}

fn coefficients() -> impl Strategy<Value = Vec<f64>> {
    (1usize..=6).prop_flat_map(|d| proptest::collection::vec(-0.5f64..0.5, d + 1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn espn_matches_plaintext(seed: u64, xs in proptest::collection::vec(-6.0f64..6.0, 1..40), c in coefficients()) {
        let d = c.len() - 1;
        let o = check(espn::evaluate, reference::espn, seed, &xs, &c);
        let words = xs.len() * d * (d - 1) / 2;
        assert_cost(&o, u64::from(words > 0), words as u64);
    }

    #[test]
    fn honeybadger_matches_plaintext(seed: u64, xs in proptest::collection::vec(-6.0f64..6.0, 1..40), c in coefficients()) {
        let d = c.len() - 1;
        let o = check(honeybadger::evaluate, reference::honeybadger, seed, &xs, &c);
        let rounds = u64::from(d >= 2);
        assert_cost(&o, rounds, rounds * xs.len() as u64);
    }

    #[test]
    fn crypten_matches_plaintext(seed: u64, xs in proptest::collection::vec(-6.0f64..6.0, 1..40), c in coefficients()) {
        let d = c.len() - 1;
        let o = check(crypten::evaluate, reference::crypten, seed, &xs, &c);
        let n = xs.len() as u64;
        // Round 1 squares (n words); round r multiplies the known powers by the highest.
        let (rounds, words) = match d {
            1 => (0, 0),
            2 => (1, n),
            3 => (2, n + 2 * n),
            4 => (2, n + 3 * n),
            5 => (3, n + 3 * n + 2 * n),
            6 => (3, n + 3 * n + 3 * n),
            _ => unreachable!(),
        };
        assert_cost(&o, rounds, words);
    }
}

/// HoneyBadger's one-pass evaluation (what `evaluate` runs) gives each party exactly the
/// share that its powers and `combine` give, at every degree and every supported `f`: the
/// fusion changes the loops, not the arithmetic.
#[test]
fn honeybadger_in_one_pass_is_its_powers_then_combine_share_for_share() {
    let protocol = honeybadger::HONEYBADGER;
    for f in [8, 12, 16, 20] {
        let fp = FixedPoint::new(f).unwrap();
        for d in 0..=8usize {
            // Beyond one block, with a ragged last one.
            let n = 64 * 3 + 17;
            let xs: Vec<f64> = (0..n).map(|i| -5.0 + 10.0 * i as f64 / n as f64).collect();
            let c: Vec<f64> = (0..=d)
                .map(|k| 0.5 / (k + 1) as f64 - 0.1 * k as f64)
                .collect();
            let x = RingTensor::encode(fp, vec![n], &xs).unwrap();
            let local = pillar_mpc::Local {
                fixed: fp,
                ..pillar_mpc::Local::seeded(7 + d as u64)
            };
            let shares = |fused: bool| {
                local
                    .run(|s| {
                        let shared = pillar_mpc::testing::input(s, pillar_mpc::Party::Client, &x)?;
                        let y = if fused {
                            protocol.evaluate(s, &shared, &c)?
                        } else {
                            protocol.evaluate_unfused(s, &shared, &c)?
                        };
                        Ok(y.data().to_vec())
                    })
                    .unwrap()
            };
            assert_eq!(shares(true), shares(false), "f = {f}, degree {d}");
        }
    }
}

/// The paper's polynomial at f = 16 on [-6, 6]: the error against the real polynomial (on the
/// encoded input) is about 0.016 or better for every protocol, and the costs per element are
/// 1 round and 6 words (ESPN), 1 round and 1 word (HoneyBadger), 2 rounds and 4 words (CrypTen).
#[test]
fn paper_polynomial_error_and_cost_at_f16() {
    let fp = FixedPoint::default();
    let n = 4001;
    let xs: Vec<f64> = (0..n)
        .map(|i| -6.0 + 12.0 * i as f64 / (n - 1) as f64)
        .collect();
    let x = RingTensor::encode(fp, vec![n], &xs).unwrap();
    let plain = |v: f64| PAPER.iter().rev().fold(0.0, |acc, c| acc * v + c);
    for (name, protocol, rounds, words) in [
        ("espn", espn::evaluate as fn(&mut _, &_, &_) -> _, 1, 6),
        ("honeybadger", honeybadger::evaluate, 1, 1),
        ("crypten", crypten::evaluate, 2, 4),
    ] {
        let o = run(11, std::slice::from_ref(&x), |s, sh| {
            protocol(s, &sh[0], &PAPER)
        });
        let got = o.value.decode(fp);
        let max_err = got
            .iter()
            .zip(x.data())
            .map(|(g, &xi)| (g - plain(fp.decode(xi))).abs())
            .fold(0.0, f64::max);
        eprintln!("{name}: max error {max_err:.5}");
        assert!(max_err < 0.016, "{name}: max error {max_err}");
        assert_cost(&o, rounds, words * n as u64);
    }
}
