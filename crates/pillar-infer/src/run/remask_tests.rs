//! The client's re-masking of a value several posts read, shown necessary by attack: the
//! server's shares of the re-masked values (what it learns, `Z + R`) look uniform and differ
//! by uniform amounts from batch to batch on the same input, and with a deliberately broken
//! client whose masks `R` are zero the same check sees the activations.
#![allow(clippy::unwrap_used)]

use pillar_mpc::channel::{DEFAULT_TIMEOUT, memory_pair};
use pillar_mpc::dealer::TrustedDealer;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::testing::byte_uniformity;
use pillar_mpc::{Party, Session};
use pillar_nn::testing::{conv, fold, linear, pillar_poly, tensor};
use pillar_nn::{Graph, Op};

use super::preprocessed::hooks::{SEEN, ZERO_MASKS};
use super::{ClientConnection, ServerConnection};
use crate::mirror;
use crate::plan::{FixedConfig, Plan};

/// Two residual blocks with identity shortcuts: each block's input is re-masked.
fn residual() -> Graph {
    let mut g = Graph::new(vec![2, 8, 8]);
    g.chain("stem", conv(4, 2, 3, 1, 1, 41));
    let mut z = g.chain("act0", pillar_poly());
    for b in 0..2 {
        g.chain(format!("b{b}c1"), conv(4, 4, 3, 1, 1, 42 + b));
        g.chain(format!("b{b}a1"), pillar_poly());
        let main = g.chain(format!("b{b}c2"), conv(4, 4, 3, 1, 1, 44 + b));
        g.push(format!("b{b}add"), Op::Add, vec![main, z]);
        z = g.chain(format!("b{b}a2"), pillar_poly());
    }
    g.chain("gap", Op::GlobalAvgPool);
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(3, 4, 47, true));
    g
}

/// The server's shares of the re-masked values, per batch, over `batches` batches of the
/// same images on one connection; the client's masks zero if `broken`.
fn seen(batches: usize, broken: bool) -> Vec<Vec<u64>> {
    let config = FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::HoneyBadger,
        linear: LinearProtocol::Preprocessed,
    };
    let plan = Plan::compile(&fold(&residual()), config).unwrap();
    let fp = plan.architecture.fixed();
    let x = mirror::encode(fp, &tensor(&[4, 2, 8, 8], 3, 1.0)).unwrap();
    let (c0, c1) = memory_pair(DEFAULT_TIMEOUT);
    let (d0, d1) = TrustedDealer::pair_from_seed(9);
    let mut s0 = Session::new(Party::Server, fp, c0, d0).unwrap();
    let mut s1 = Session::new(Party::Client, fp, c1, d1).unwrap();
    let arch = &plan.architecture;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            ZERO_MASKS.set(broken);
            let conn = ClientConnection::open(&mut s1, arch).unwrap();
            for _ in 0..batches {
                conn.prepare(&mut s1, 4).unwrap().run(&mut s1, &x).unwrap();
            }
        });
        SEEN.take();
        let masked = plan.masked_weights().unwrap();
        let conn = ServerConnection::open(&mut s0, &plan, &masked).unwrap();
        (0..batches)
            .map(|_| {
                conn.prepare(&mut s0, 4).unwrap().run(&mut s0).unwrap();
                SEEN.take().concat()
            })
            .collect()
    })
}

/// The largest chi-square statistic of uniformity over the byte positions of `words`.
fn chi2(words: &[u64]) -> f64 {
    byte_uniformity(words).0
}

/// Above this a statistic at 255 degrees of freedom is not uniform (its 10^-6 critical value
/// is about 377).
const CRITICAL: f64 = 380.0;

/// The values and their differences between consecutive batches, and each one's statistic.
fn statistics(batches: &[Vec<u64>]) -> (f64, f64, usize) {
    let values: Vec<u64> = batches.concat();
    let differences: Vec<u64> = batches
        .windows(2)
        .flat_map(|w| {
            w[1].iter()
                .zip(&w[0])
                .map(|(a, b)| a.wrapping_sub(*b))
                .collect::<Vec<_>>()
        })
        .collect();
    (chi2(&values), chi2(&differences), values.len())
}

#[test]
fn the_servers_remasked_shares_are_uniform_unless_the_client_zeroes_its_masks() {
    let (values, differences, n) = statistics(&seen(6, false));
    // act0's output and the first block's (the second's only the global pool reads), 4 x 8 x
    // 8 words an image, 4 images, 6 batches.
    assert_eq!(n, 2 * 256 * 4 * 6);
    assert!(
        values < CRITICAL,
        "re-masked shares not uniform: chi2 {values:.0}"
    );
    assert!(
        differences < CRITICAL,
        "differences between batches not uniform: chi2 {differences:.0}"
    );
    let (values, differences, _) = statistics(&seen(6, true));
    assert!(values > CRITICAL, "zero masks unnoticed: chi2 {values:.0}");
    assert!(
        differences > CRITICAL,
        "zero masks unnoticed between batches: chi2 {differences:.0}"
    );
}
