//! The cost model each activation protocol advertises (used to plan and report) matches what
//! it really sends, and names parse.
#![allow(clippy::unwrap_used)]

mod common;

use common::{run, tensor};
use pillar_mpc::protocols::activation::ActivationProtocol;

#[test]
fn advertised_rounds_and_words_match_the_channel() {
    for degree in 1..=6 {
        let coefficients: Vec<f64> = (0..=degree).map(|k| 0.5 / (k + 1) as f64).collect();
        for protocol in ActivationProtocol::ALL {
            for n in [1usize, 63, 64, 65, 300] {
                let x = tensor(&[n], (0..n as i64).map(|i| (i - 150) * 4000).collect());
                let o = run(n as u64, &[x], |s, sh| {
                    protocol.evaluate(s, &sh[0], &coefficients)
                });
                for st in o.stats {
                    assert_eq!(
                        st.rounds,
                        protocol.rounds(degree) as u64,
                        "{protocol} d={degree} n={n}"
                    );
                    assert_eq!(
                        st.bytes_sent,
                        8 * protocol.words_sent(n, degree) as u64,
                        "{protocol} d={degree} n={n}"
                    );
                }
                assert_eq!(
                    protocol.needs(n, degree).is_empty(),
                    protocol.rounds(degree) == 0
                );
            }
        }
    }
}

#[test]
fn names_round_trip() {
    for p in ActivationProtocol::ALL {
        assert_eq!(p.name().parse::<ActivationProtocol>().unwrap(), p);
    }
    assert_eq!(
        "HoneyBadger".parse::<ActivationProtocol>().unwrap(),
        ActivationProtocol::HoneyBadger
    );
    let err = "sigmoid".parse::<ActivationProtocol>().unwrap_err();
    assert!(
        err.to_string()
            .contains("relu, crypten, espn or honeybadger")
    );
}
