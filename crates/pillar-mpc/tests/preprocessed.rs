//! The preprocessed protocol's pieces against plaintext fixed point, with their exact rounds
//! and words: linear layers (the client posts its masked input, the server multiplies alone)
//! and the split polynomials (the client posts its part of the opening, the server replies).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Outcome, input, signed, tensor};
use pillar_fit::PAPER_RELU as PAPER;
use pillar_mpc::channel::Stats;
use pillar_mpc::dealer::WeightMasks;
use pillar_mpc::kernels::{ConvGeometry, conv2d as conv_kernel, matmul as matmul_kernel};
use pillar_mpc::protocols::arith::reveal;
use pillar_mpc::protocols::poly::combine;
use pillar_mpc::protocols::poly::reference::{self, Approx};
use pillar_mpc::protocols::preprocessed::{LinearMask, LinearShape, Opening, OpeningKind};
use pillar_mpc::protocols::weights::{MaskedWeights, receive_weights, send_weights};
use pillar_mpc::{FixedPoint, Local, MpcError, Party, RingTensor, Session, Share};
use proptest::prelude::*;

const F: u32 = 16;

fn values(n: usize, bound: i64) -> impl Strategy<Value = Vec<i64>> {
    proptest::collection::vec(-bound..=bound, n)
}

/// Shares `x` (the client's) and opens the server's weight `w` of `w_shape`, runs the
/// preprocessed layer `shape` and opens its output. The stats are the layer's alone: the
/// client's post.
fn linear(seed: u64, x: &RingTensor, w: &RingTensor, shape: LinearShape) -> Outcome {
    let [a, b] = Local::seeded(seed)
        .run(|s| {
            let x = input(s, Party::Client, x)?;
            let shapes = [w.shape().to_vec()];
            let opened = if s.party().is_server() {
                let masks = WeightMasks::from_seed(seed, vec![w.len()]);
                let masked = MaskedWeights::new(&shapes, &[w.data()], masks)?;
                send_weights(s, &masked)?;
                masked.opened()
            } else {
                receive_weights(s, &shapes)?
            };
            let mask = LinearMask::take(s, shape, 0)?;
            let before = s.stats();
            let y = if s.party().is_server() {
                let post = s.exchange(&[], shape.input_len())?;
                mask.server_output(x.data(), &post, w.data(), F)?
            } else {
                let post = mask.post(x.data())?;
                s.exchange(&post, 0)?;
                mask.client_output(&opened[0], F)?
            };
            let stats = s.stats().since(&before);
            let y = Share::new(RingTensor::new(vec![y.len()], y)?);
            Ok((reveal(s, &y)?, stats))
        })
        .unwrap();
    assert_eq!(a.0, b.0);
    Outcome {
        value: a.0,
        stats: [a.1, b.1],
    }
}

/// One round in which the client sends `words` and the server nothing.
fn assert_post(o: &Outcome, words: u64) {
    let [server, client] = o.stats;
    assert_eq!(
        (server.rounds, server.bytes_sent, server.bytes_received),
        (1, 0, 8 * words)
    );
    assert_eq!(
        (client.rounds, client.bytes_sent, client.bytes_received),
        (1, 8 * words, 0)
    );
}

/// `|got - floor(exact / 2^f)| <= 1` elementwise.
fn assert_truncated(got: &[i64], exact: &[u64]) {
    for (i, (&g, &e)) in got.iter().zip(exact).enumerate() {
        let want = (e as i64) >> F;
        assert!(
            (g - want).abs() <= 1,
            "element {i}: got {g}, want {want} +- 1"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn a_preprocessed_convolution_is_the_plaintext_one(
        seed: u64,
        x in values(2 * 2 * 5 * 5, 1 << 20),
        w in values(3 * 2 * 3 * 3, 1 << 18),
        stride in 1usize..3,
        padding in 0usize..2,
    ) {
        let g = ConvGeometry::new([2, 2, 5, 5], [3, 3, 3], stride, padding).unwrap();
        let (tx, tw) = (tensor(&[2, 2, 5, 5], x), tensor(&g.weight_shape(), w));
        let o = linear(seed, &tx, &tw, LinearShape::Conv(g));
        assert_truncated(&signed(&o.value), &conv_kernel(&g, tx.data(), tw.data()));
        assert_post(&o, g.input_len() as u64);
    }

    #[test]
    fn a_preprocessed_matrix_product_is_the_plaintext_one(
        seed: u64,
        x in values(3 * 7, 1 << 20),
        w in values(7 * 4, 1 << 18),
    ) {
        let (tx, tw) = (tensor(&[3, 7], x), tensor(&[7, 4], w));
        let o = linear(seed, &tx, &tw, LinearShape::Matmul { m: 3, k: 7, n: 4 });
        assert_truncated(&signed(&o.value), &matmul_kernel(3, 7, 4, tx.data(), tw.data()));
        assert_post(&o, 21);
    }

    #[test]
    fn a_preprocessed_scale_is_the_plaintext_one(
        seed: u64,
        x in values(2 * 3 * 4, 1 << 20),
        w in values(3, 1 << 18),
    ) {
        let (tx, tw) = (tensor(&[2, 3, 4], x), tensor(&[3], w));
        let shape = LinearShape::Scale { n: 24, channels: 3, inner: 4 };
        let o = linear(seed, &tx, &tw, shape);
        let exact: Vec<u64> = tx
            .data()
            .iter()
            .enumerate()
            .map(|(i, v)| v.wrapping_mul(tw.data()[(i / 4) % 3]))
            .collect();
        assert_truncated(&signed(&o.value), &exact);
        assert_post(&o, 24);
    }

    #[test]
    fn split_honeybadger_is_the_plaintext_polynomial(
        seed: u64,
        xs in proptest::collection::vec(-6.0f64..6.0, 1..40),
        d in 0usize..=6,
    ) {
        split(OpeningKind::HoneyBadger, reference::honeybadger, seed, &xs, &PAPER[..=d.min(4)]);
    }

    #[test]
    fn split_espn_is_the_plaintext_polynomial(
        seed: u64,
        xs in proptest::collection::vec(-6.0f64..6.0, 1..40),
        d in 0usize..=6,
    ) {
        split(OpeningKind::Espn, reference::espn, seed, &xs, &PAPER[..=d.min(4)]);
    }
}

/// The split polynomial `kind` with coefficients `c` on `xs`, the client's input shared,
/// against `reference`; and its cost: the client's post, then the server's reply, as many
/// words each as the protocol opens (none below degree 2).
fn split(
    kind: OpeningKind,
    reference: fn(FixedPoint, i64, &[f64]) -> Approx,
    seed: u64,
    xs: &[f64],
    c: &[f64],
) {
    let fp = FixedPoint::new(F).unwrap();
    let x = RingTensor::encode(fp, vec![xs.len()], xs).unwrap();
    let n = xs.len();
    let degree = c.len() - 1;
    let words = kind.words(n, degree);
    let run = |s: &mut Session| -> Result<(RingTensor, Stats), MpcError> {
        // A uniform sharing, as the layer before an activation leaves it.
        let shared = input(s, Party::Client, &x)?;
        let opening = Opening::take(s, kind, n, degree)?;
        let before = s.stats();
        let (powers, post, reply) = if words == 0 {
            (Vec::new(), Vec::new(), Vec::new())
        } else if s.party().is_server() {
            let post = s.exchange(&[], words)?;
            let (reply, powers) = opening.serve(shared.data(), &post, F)?;
            s.exchange(&reply, 0)?;
            (powers, post, reply)
        } else {
            s.exchange(&opening.post(shared.data(), F)?, 0)?;
            let reply = s.exchange(&[], words)?;
            (opening.finish(shared.data(), &reply, F)?, Vec::new(), reply)
        };
        let stats = s.stats().since(&before);
        let y = combine(s, &shared, &powers, c)?;
        // What the online phase runs instead, the reply apart and the output in one pass,
        // gives each party the same words from the same messages.
        let fused = if s.party().is_server() {
            if words > 0 {
                assert_eq!(opening.reply(shared.data(), &post, F)?, reply);
            }
            opening.server_output(s, &shared, &post, &reply, c)?
        } else {
            opening.client_output(s, &shared, &reply, c)?
        };
        assert_eq!(fused.data(), y.data(), "{kind:?}, {}", s.party());
        Ok((reveal(s, &y)?, stats))
    };
    let [a, b] = Local::seeded(seed).run(run).unwrap();
    assert_eq!(a.0, b.0);
    for (i, (&got, &xi)) in signed(&a.0).iter().zip(x.data()).enumerate() {
        let want = reference(fp, xi as i64, c);
        assert!(
            (i128::from(got) - want.value).abs() as f64 <= want.tolerance,
            "{kind:?} element {i} (x = {}): got {got}, plaintext {} +- {}",
            xs[i],
            want.value,
            want.tolerance
        );
    }
    let rounds = if words == 0 { 0 } else { 2 };
    let w = 8 * words as u64;
    // The server replies as many words as the client posts.
    for stats in [a.1, b.1] {
        assert_eq!(
            (stats.rounds, stats.bytes_sent, stats.bytes_received),
            (rounds, w, w)
        );
    }
}

#[test]
fn the_split_protocols_open_what_the_exchanging_ones_do() {
    // HoneyBadger opens one word an element, ESPN d (d - 1) / 2: the same counts as under
    // the Beaver protocol, now one way each.
    assert_eq!(OpeningKind::HoneyBadger.words(10, 4), 10);
    assert_eq!(OpeningKind::Espn.words(10, 4), 60);
    assert_eq!(OpeningKind::HoneyBadger.words(10, 1), 0);
    assert_eq!(OpeningKind::Espn.words(10, 1), 0);
}
