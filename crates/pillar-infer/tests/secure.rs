//! Secure plans against the fixed-point executor: the same logits up to the secure
//! truncation's rounding, the exact rounds and bytes the architecture predicts, and errors
//! before any traffic for what the engine cannot run.
#![allow(clippy::unwrap_used)]

use pillar_infer::FixedConfig;
use pillar_infer::InferError;
use pillar_infer::mirror;
use pillar_infer::{Layer, Plan, run_local};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::{Local, Party, RingTensor};
use pillar_nn::testing::{
    bn, conv, every_op, fold, linear, pillar_poly, tensor, with_loose_batchnorm,
};
use pillar_nn::{Graph, NnError, Op, Pool};
use proptest::prelude::*;

const POLYS: [ActivationProtocol; 3] = [
    ActivationProtocol::Espn,
    ActivationProtocol::HoneyBadger,
    ActivationProtocol::Crypten,
];

/// Both linear-layer protocols: every agreement and cost test runs under each.
const LINEARS: [LinearProtocol; 2] = LinearProtocol::ALL;

fn options(protocol: ActivationProtocol) -> FixedConfig {
    with_linear(protocol, LinearProtocol::default())
}

fn with_linear(protocol: ActivationProtocol, linear: LinearProtocol) -> FixedConfig {
    FixedConfig {
        frac_bits: 16,
        activation: protocol,
        linear,
    }
}

/// Secure logits and the fixed executor's on the same encoded batch.
fn both(
    g: &Graph,
    protocol: ActivationProtocol,
    x: &RingTensor,
    seed: u64,
) -> (Vec<i64>, Vec<i64>) {
    both_with(g, options(protocol), x, seed)
}

/// [`both`] under `config`.
fn both_with(g: &Graph, config: FixedConfig, x: &RingTensor, seed: u64) -> (Vec<i64>, Vec<i64>) {
    let plan = Plan::compile(&fold(g), config).unwrap();
    let (secure, _) = run_local(
        &plan,
        std::slice::from_ref(x),
        &Local::seeded(seed),
        &|_| {},
    )
    .unwrap();
    let want = mirror::run_encoded(&fold(g), x, &config).unwrap();
    let signed = |r: &RingTensor| r.data().iter().map(|&v| v as i64).collect::<Vec<_>>();
    (signed(&secure[0]), signed(&want.ring))
}

fn encode(shape: &[usize], seed: u64) -> RingTensor {
    let t = tensor(shape, seed, 1.5);
    mirror::encode(pillar_mpc::FixedPoint::new(16).unwrap(), &t).unwrap()
}

#[test]
fn secure_logits_are_the_fixed_executors_up_to_rounding() {
    for (g, shape) in [
        (every_op(), vec![3, 2, 8, 8]),
        (with_loose_batchnorm(), vec![2, 2, 6, 6]),
    ] {
        for (protocol, linear) in POLYS.into_iter().flat_map(|p| LINEARS.map(|l| (p, l))) {
            let x = encode(&shape, 5);
            let (got, want) = both_with(&g, with_linear(protocol, linear), &x, 7);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).unsigned_abs())
                .max()
                .unwrap();
            eprintln!("{protocol}/{linear}: worst {worst} units");
            // One unit per truncation, grown through the layers and the powers (HoneyBadger's
            // shared pre-scaled input the most): at most a few hundred units at f = 16.
            assert!(worst < 400, "{protocol}/{linear}: {worst} units apart");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    #[test]
    fn random_inputs_agree_with_the_fixed_executor(
        seed in 0u64..1000,
        p in 0usize..3,
        l in 0usize..2,
        batch in 1usize..3,
    ) {
        let g = with_loose_batchnorm();
        let x = encode(&[batch, 2, 6, 6], seed);
        let (got, want) = both_with(&g, with_linear(POLYS[p], LINEARS[l]), &x, seed);
        for (a, b) in got.iter().zip(&want) {
            prop_assert!((a - b).unsigned_abs() < 400, "{} vs {}", a, b);
        }
    }
}

#[test]
fn large_average_pools_agree_and_keep_their_precision() {
    // A 112 x 112 window (4.3% off with `round(2^f / size)`) and a 363 x 363 one (whose
    // reciprocal rounded to 0 at f = 16), secure against the mirror and the mirror against
    // the mean in floating point.
    for k in [112usize, 363] {
        let mut g = Graph::new(vec![2, k, k]);
        // An identity convolution first, as every network has some linear layer first: its
        // Beaver product turns the input's sharing `(0, x)` into uniform shares, which the
        // local truncations need.
        let identity = pillar_nn::Tensor::new(vec![2, 2, 1, 1], vec![1.0, 0.0, 0.0, 1.0]);
        g.chain(
            "identity",
            Op::Conv2d(pillar_nn::Conv2d {
                weight: identity.unwrap(),
                bias: None,
                stride: 1,
                padding: 0,
            }),
        );
        g.chain("avg", Op::AvgPool(pillar_nn::Pool::new(k, 1)));
        g.chain("flatten", Op::Flatten);
        let t = tensor(&[1, 2, k, k], 9, 0.5);
        let shifted: Vec<f32> = t.data().iter().map(|v| v + 1.0).collect();
        let t = pillar_nn::Tensor::new(t.shape().to_vec(), shifted).unwrap();
        let x = mirror::encode(pillar_mpc::FixedPoint::new(16).unwrap(), &t).unwrap();
        let (got, want) = both(&g, ActivationProtocol::Espn, &x, 4);
        for (c, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).unsigned_abs() <= 4, "{k}: channel {c}: {a} vs {b}");
            let plane = &x.data()[c * k * k..(c + 1) * k * k];
            let mean = plane.iter().map(|&v| v as i64 as f64).sum::<f64>() / (k * k) as f64;
            let relative = (*b as f64 - mean).abs() / mean;
            assert!(
                relative < 1e-3,
                "{k}: channel {c}: {b} vs {mean} ({relative:e})"
            );
        }
    }
}

#[test]
fn rounds_and_bytes_are_what_the_architecture_predicts() {
    let g = with_loose_batchnorm();
    for (protocol, linear) in [
        ActivationProtocol::HoneyBadger,
        ActivationProtocol::Espn,
        ActivationProtocol::Relu,
    ]
    .into_iter()
    .flat_map(|p| LINEARS.map(|l| (p, l)))
    {
        let plan = Plan::compile(&fold(&g), with_linear(protocol, linear)).unwrap();
        let arch = &plan.architecture;
        let batches = [encode(&[2, 2, 6, 6], 1), encode(&[1, 2, 6, 6], 2)];
        let (_, report) = run_local(&plan, &batches, &Local::seeded(3), &|_| {}).unwrap();
        // conv1, conv2, bn, fc: one round each; two activations; the max-pool's 2 levels of
        // ReLU; the logits. Under the preprocessed protocol as many: the client's masked
        // inputs of conv1, conv2, bn and fc each go in a message of their own (before act1,
        // act2, the max pool and the logits), and each activation replies once.
        let act = protocol.rounds(4) as u64;
        let relu = ActivationProtocol::Relu.rounds(1) as u64;
        assert_eq!(
            arch.rounds() as u64,
            4 + 2 * act + 2 * relu + 1,
            "{protocol}"
        );
        for (i, batch) in [2usize, 1].into_iter().enumerate() {
            for (party, r) in [
                (Party::Server, &report.server[i]),
                (Party::Client, &report.client[i]),
            ] {
                assert_eq!(
                    r.online.stats.rounds as usize,
                    arch.rounds(),
                    "{protocol}/{linear} {party}"
                );
                assert_eq!(
                    r.online.stats.bytes_sent as usize,
                    8 * arch.online_words(batch, party),
                    "{protocol}/{linear} {party} batch {batch}"
                );
                // The client's posts of shares known offline go in one message.
                let posts = arch.offline_post_words(batch);
                assert_eq!(r.offline.stats.rounds, u64::from(posts > 0));
                let sent = if party.is_server() { 0 } else { 8 * posts };
                assert_eq!(r.offline.stats.bytes_sent as usize, sent);
            }
            // The counts by hand: act1 and act2 read 3 x 6 x 6 elements an image.
            let n = batch * 3 * 6 * 6;
            let (client, server) = (
                arch.online_words(batch, Party::Client),
                arch.online_words(batch, Party::Server),
            );
            let logits = batch * 4;
            let max_pool = pillar_mpc::protocols::maxpool::words_sent(batch * 27, 4);
            match (linear, protocol) {
                (LinearProtocol::Beaver, _) => assert_eq!(client + logits, server),
                // The client sends the inputs of conv1, conv2, bn and fc and its max pool's
                // words; the server the openings of act1 and act2, its max pool's words and
                // the logits. HoneyBadger's parts of the openings went offline.
                (LinearProtocol::Preprocessed, ActivationProtocol::HoneyBadger) => {
                    let linear_inputs = batch * (2 * 36) + n + n + batch * 27;
                    assert_eq!(client, linear_inputs + max_pool);
                    assert_eq!(server, 2 * n + max_pool + logits);
                    assert_eq!(arch.offline_post_words(batch), 2 * n);
                }
                _ => {}
            }
        }
        // The setup sends every weight's `F = W - B` once, for both batches, from the server
        // only under either protocol (the client's share of the mask is zero).
        assert_eq!(report.setup.stats.rounds, 1);
        assert_eq!(report.client_setup.stats.rounds, 1);
        let weights = 3 * 2 * 9 + 3 * 3 * 9 + 3 + 27 * 4;
        assert_eq!(arch.setup_words(), weights);
        assert_eq!(report.setup.stats.bytes_sent as usize, 8 * weights);
        assert_eq!(arch.setup_words_sent(Party::Client), 0);
        assert_eq!(report.client_setup.stats.bytes_sent, 0);
        assert_eq!(
            report.client_setup.stats.bytes_received as usize,
            8 * weights
        );
    }
}

#[test]
fn compile_folds_batchnorm_and_shows_no_weights() {
    let plan = Plan::compile(&fold(&every_op()), options(ActivationProtocol::Espn)).unwrap();
    let arch = &plan.architecture;
    // every_op's only BatchNorm follows a convolution: folded away.
    assert!(
        !arch
            .steps
            .iter()
            .any(|s| matches!(s.layer, Layer::Scale { .. }))
    );
    assert_eq!(arch.weight_shapes.len(), plan.weights.weights.len());
    let loose = Plan::compile(
        &fold(&with_loose_batchnorm()),
        options(ActivationProtocol::Espn),
    )
    .unwrap();
    assert!(
        loose
            .architecture
            .steps
            .iter()
            .any(|s| matches!(s.layer, Layer::Scale { .. }))
    );
    // Under the relu protocol every polynomial becomes an exact ReLU.
    let relu = Plan::compile(
        &fold(&with_loose_batchnorm()),
        options(ActivationProtocol::Relu),
    )
    .unwrap();
    assert!(
        !relu
            .architecture
            .steps
            .iter()
            .any(|s| matches!(s.layer, Layer::Poly { .. }))
    );
}

#[test]
fn bad_graphs_and_inputs_are_errors() {
    let mut g = Graph::new(vec![4]);
    g.chain(
        "act",
        Op::PolyAct(pillar_nn::PolyAct {
            coefficients: vec![f64::NAN, 1.0],
            range: 5.0,
        }),
    );
    let e = g
        .typed()
        .map_err(InferError::from)
        .and_then(|g| Plan::compile(&g.fold_batchnorm()?, options(ActivationProtocol::Espn)))
        .unwrap_err();
    assert!(
        matches!(
            e,
            InferError::Node { ref node, .. } | InferError::Graph(NnError::Node { ref node, .. })
                if node == "act"
        ),
        "{e}"
    );
    assert!(
        Plan::compile(
            &fold(&every_op()),
            FixedConfig {
                frac_bits: 40,
                ..options(ActivationProtocol::Espn)
            }
        )
        .is_err()
    );
    let plan = Plan::compile(&fold(&every_op()), options(ActivationProtocol::Espn)).unwrap();
    let wrong = encode(&[1, 3, 8, 8], 1);
    let e = run_local(&plan, &[wrong], &Local::seeded(1), &|_| {}).unwrap_err();
    assert!(e.to_string().contains("[2, 8, 8]"), "{e}");
}

#[test]
fn a_plan_runs_at_its_own_fixed_point_whatever_the_local_default() {
    // The sessions once took `Local::fixed` (16 by default) whatever the plan was compiled
    // for, and every logit was garbage at any other f.
    let g = every_op();
    for frac_bits in [12, 20] {
        let config = FixedConfig {
            frac_bits,
            activation: ActivationProtocol::HoneyBadger,
            ..FixedConfig::default()
        };
        let plan = Plan::compile(&fold(&g), config).unwrap();
        let fp = pillar_mpc::FixedPoint::new(frac_bits).unwrap();
        let x = mirror::encode(fp, &tensor(&[2, 2, 8, 8], 5, 1.5)).unwrap();
        let (secure, _) =
            run_local(&plan, std::slice::from_ref(&x), &Local::seeded(3), &|_| {}).unwrap();
        let want = mirror::run_encoded(&fold(&g), &x, &config).unwrap();
        for (a, b) in secure[0].data().iter().zip(want.ring.data()) {
            let err = fp.decode(a.wrapping_sub(*b));
            assert!(err.abs() < 0.05, "f = {frac_bits}: {err}");
        }
    }
}

/// `first`, then a linear layer: a network whose first step reads the input.
fn first_then_linear(first: &Op) -> Graph {
    let mut g = Graph::new(vec![1, 8, 8]);
    g.chain("first", first.clone());
    g.chain("flat", Op::Flatten);
    let inputs = match first {
        Op::AvgPool(_) | Op::MaxPool(_) => 16,
        Op::GlobalAvgPool => 1,
        _ => 64,
    };
    g.chain("fc", linear(3, inputs, 3, true));
    g
}

#[test]
fn a_first_step_that_would_truncate_the_input_is_refused_and_the_others_run() {
    // The input enters as the sharing (0, x): locally truncated, every positive value came out
    // 2^(64-f) off (an average pool first was 2^47 units from the fixed executor).
    let window = Pool::new(2, 2);
    for (first, refused) in [
        (Op::AvgPool(window), &POLYS[..]),
        (Op::GlobalAvgPool, &POLYS[..]),
        (
            pillar_poly(),
            &[ActivationProtocol::Espn, ActivationProtocol::HoneyBadger][..],
        ),
        (Op::MaxPool(window), &[][..]),
        (Op::Relu, &[][..]),
    ] {
        let g = first_then_linear(&first);
        for protocol in POLYS {
            let plan = Plan::compile(&fold(&g), options(protocol)).unwrap();
            if refused.contains(&protocol) {
                let err = plan
                    .architecture
                    .check_secure_input()
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains("step 0 (\"first\")") && err.contains("reads the client's input"),
                    "{err}"
                );
                // Before any traffic, on either side.
                let x = encode(&[1, 1, 8, 8], 5);
                let err = run_local(&plan, &[x], &Local::seeded(1), &|_| {}).unwrap_err();
                assert!(
                    err.to_string().contains("reads the client's input"),
                    "{err}"
                );
                continue;
            }
            plan.architecture.check_secure_input().unwrap();
            let (got, want) = both(&g, protocol, &encode(&[2, 1, 8, 8], 5), 7);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).unsigned_abs() < 8,
                    "{first:?} {protocol}: {a} vs {b}"
                );
            }
        }
    }
}

/// A residual block with a downsampling shortcut, then one with an identity shortcut: the
/// values the preprocessed protocol re-masks (each block's input, read by two posts).
fn residual() -> Graph {
    let mut g = Graph::new(vec![2, 6, 6]);
    g.chain("stem", conv(3, 2, 3, 1, 1, 21));
    let z = g.chain("act0", pillar_poly());
    // Block 1: 3 -> 4 channels, a 1x1 convolution on the shortcut.
    g.chain("b1c1", conv(4, 3, 3, 1, 1, 22));
    let y = g.chain("b1a1", pillar_poly());
    g.chain("b1c2", conv(4, 4, 3, 1, 1, 23));
    let main = g.chain("b1bn", bn(4, 24));
    let short = g.push("b1down", conv(4, 3, 1, 1, 0, 25), vec![z]);
    g.push("b1add", Op::Add, vec![main, short]);
    let z = g.chain("b1a2", pillar_poly());
    // Block 2: identity shortcut.
    g.chain("b2c1", conv(4, 4, 3, 1, 1, 26));
    g.chain("b2a1", pillar_poly());
    let main = g.chain("b2c2", conv(4, 4, 3, 1, 1, 27));
    g.push("b2add", Op::Add, vec![main, z]);
    g.chain("b2a2", pillar_poly());
    let _ = y;
    g.chain("gap", Op::GlobalAvgPool);
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(3, 4, 28, true));
    g
}

#[test]
fn residual_blocks_agree_and_each_block_input_is_posted_once() {
    let g = residual();
    for (protocol, linear) in POLYS.into_iter().flat_map(|p| LINEARS.map(|l| (p, l))) {
        let config = with_linear(protocol, linear);
        for batch in [1usize, 2] {
            let x = encode(&[batch, 2, 6, 6], 31);
            let (got, want) = both_with(&g, config, &x, 32);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).unsigned_abs() < 400,
                    "{protocol}/{linear}: {a} vs {b}"
                );
            }
        }
        let plan = Plan::compile(&fold(&g), config).unwrap();
        let arch = &plan.architecture;
        let batches = [encode(&[2, 2, 6, 6], 1)];
        let (_, report) = run_local(&plan, &batches, &Local::seeded(3), &|_| {}).unwrap();
        for (party, r) in [
            (Party::Server, &report.server[0]),
            (Party::Client, &report.client[0]),
        ] {
            assert_eq!(r.online.stats.rounds as usize, arch.rounds());
            assert_eq!(
                r.online.stats.bytes_sent as usize,
                8 * arch.online_words(2, party),
                "{protocol}/{linear} {party}"
            );
        }
        if (protocol, linear)
            == (
                ActivationProtocol::HoneyBadger,
                LinearProtocol::Preprocessed,
            )
        {
            // The client posts the input (for the stem), each block's input once (act0's
            // output for b1c1 and b1down; b1a2's for b2c1 and the sum before b2a2), and the
            // inputs of b1c2, b2c2 and fc (4 words after the global pool); everything else
            // it knows offline. 4 x 6 x 6 = 144 an image; act0's output is 3 x 6 x 6 = 108.
            let client = arch.online_words(1, Party::Client);
            assert_eq!(client, 72 + 108 + 144 + 144 + 144 + 4);
        }
    }
}
