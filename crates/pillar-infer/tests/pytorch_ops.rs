//! The operators PyTorch's CNNs bring, run securely: padded max and average pools at every
//! edge, `Clip` (one ReLU's rounds for both bounds) and the final softmax the client applies,
//! against the fixed-point mirror, with the rounds and bytes the architecture predicts.
#![allow(clippy::unwrap_used)]

use pillar_infer::mirror;
use pillar_infer::{Architecture, FixedConfig, Layer, Plan, run_local};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::relu;
use pillar_mpc::{FixedPoint, Local, Party, RingTensor};
use pillar_nn::exec::float;
use pillar_nn::testing::{conv, every_op, fold, linear, pytorch_ops, tensor};
use pillar_nn::{Clip, Graph, Op, OutputTransform};
use proptest::prelude::*;

fn config() -> FixedConfig {
    FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::Espn,
        ..FixedConfig::default()
    }
}

fn encode(shape: &[usize], seed: u64) -> RingTensor {
    mirror::encode(FixedPoint::new(16).unwrap(), &tensor(shape, seed, 1.5)).unwrap()
}

/// Runs `g` securely on `x`, checks rounds and bytes against the architecture, and returns
/// the opened logits with the mirror's.
fn secure_and_mirror(g: &Graph, x: &RingTensor, seed: u64) -> (Plan, Vec<i64>, Vec<i64>) {
    let plan = Plan::compile(&fold(g), config()).unwrap();
    let (secure, report) = run_local(
        &plan,
        std::slice::from_ref(x),
        &Local::seeded(seed),
        &|_| {},
    )
    .unwrap();
    let arch = &plan.architecture;
    let batch = x.shape()[0];
    for (party, r) in [
        (Party::Server, &report.server[0]),
        (Party::Client, &report.client[0]),
    ] {
        assert_eq!(r.online.stats.rounds as usize, arch.rounds(), "{party}");
        assert_eq!(
            r.online.stats.bytes_sent as usize,
            8 * arch.online_words(batch, party),
            "{party}"
        );
    }
    let want = mirror::run_plan(&plan, x).unwrap();
    let signed = |r: &RingTensor| r.data().iter().map(|&v| v as i64).collect::<Vec<_>>();
    (plan, signed(&secure[0]), signed(&want.ring))
}

#[test]
fn pytorch_ops_run_securely_as_the_mirror_computes() {
    let g = pytorch_ops();
    let x = encode(&[2, 2, 9, 9], 3);
    let (plan, got, want) = secure_and_mirror(&g, &x, 4);
    // Max pools and clips are exact; the convolutions', the linear layer's and the average
    // pool's truncations may each be one unit off, grown by the layers after them.
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).unsigned_abs() <= 16, "{a} vs {b}");
    }
    let arch = &plan.architecture;
    assert_eq!(arch.output_transform, Some(OutputTransform::Softmax));
    // Rounds: conv and fc one each; the 3x3 pool's 4 tournament levels, the 2x2 pool's 2;
    // one ReLU's 8 for each clip; the logits.
    assert_eq!(
        arch.rounds(),
        2 + (4 + 2) * relu::ROUNDS + 2 * relu::ROUNDS + 1
    );
    // The client's probabilities are the float reference's.
    let fp = arch.fixed();
    let probabilities = arch
        .outputs(&RingTensor::new(vec![2, 5], got.iter().map(|&v| v as u64).collect()).unwrap());
    let input = pillar_nn::Tensor::new(
        x.shape().to_vec(),
        x.data().iter().map(|&v| fp.decode(v) as f32).collect(),
    )
    .unwrap();
    let reference = float::run(&g.clone().typed().unwrap(), &input).unwrap();
    for (p, r) in probabilities.iter().zip(reference.data()) {
        assert!((p - f64::from(*r)).abs() < 1e-3, "{p} vs {r}");
    }
    for row in probabilities.chunks(5) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    // The mirror's output is the same transform of its logits.
    let m = mirror::run_plan(&plan, &x).unwrap();
    for (o, l) in m.output.data().chunks(5).zip(m.logits.data().chunks(5)) {
        let mut row: Vec<f64> = l.iter().map(|&v| f64::from(v)).collect();
        OutputTransform::Softmax.apply(&mut row);
        for (a, b) in o.iter().zip(row) {
            assert!((f64::from(*a) - b).abs() < 1e-6);
        }
    }
}

/// `conv -> clip -> flatten -> fc` on `[1, 4, 4]`.
fn clipped(min: Option<f32>, max: Option<f32>) -> Graph {
    let mut g = Graph::new(vec![1, 4, 4]);
    g.chain("conv", conv(2, 1, 3, 1, 1, 31));
    g.chain("clip", Op::Clip(Clip { min, max }));
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(3, 32, 33, true));
    g
}

#[test]
fn a_clip_costs_one_relus_rounds_whatever_its_bounds() {
    for (min, max, relus) in [
        (Some(-0.25), Some(0.25), 2),
        (Some(-0.25), None, 1),
        (None, Some(0.25), 1),
    ] {
        let g = clipped(min, max);
        let x = encode(&[3, 1, 4, 4], 8);
        let (plan, got, want) = secure_and_mirror(&g, &x, 9);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).unsigned_abs() <= 4, "{min:?} {max:?}: {a} vs {b}");
        }
        let arch = &plan.architecture;
        // conv, clip, fc, logits.
        assert_eq!(arch.rounds(), 1 + relu::ROUNDS + 1 + 1);
        // The clip's ReLUs over `relus` copies of the conv's 3 x 32 outputs, both ways; the
        // client's masked inputs of the conv and the fc (preprocessed linear layers); the
        // server's share of the logits.
        let n = 3 * 32;
        let clip = relu::words_sent(relus * n);
        assert_eq!(
            arch.online_words(3, Party::Client),
            3 * 16 + clip + n,
            "{min:?} {max:?}"
        );
        assert_eq!(arch.online_words(3, Party::Server), clip + 3 * 3);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]
    #[test]
    fn random_inputs_agree_with_the_mirror(seed in 0u64..1000) {
        let x = encode(&[1, 2, 9, 9], seed);
        let (_, got, want) = secure_and_mirror(&pytorch_ops(), &x, seed);
        for (a, b) in got.iter().zip(&want) {
            prop_assert!((a - b).unsigned_abs() <= 16, "{} vs {}", a, b);
        }
    }
}

#[test]
fn the_transform_travels_with_the_architecture_and_an_older_one_has_none() {
    let plan = Plan::compile(&fold(&pytorch_ops()), config()).unwrap();
    let json = serde_json::to_string(&plan.architecture).unwrap();
    let back: Architecture = serde_json::from_str(&json).unwrap();
    // Step names never travel; everything else does.
    let layers = |a: &Architecture| a.steps.iter().map(|s| s.layer.clone()).collect::<Vec<_>>();
    assert_eq!(layers(&back), layers(&plan.architecture));
    assert_eq!(back.output_transform, Some(OutputTransform::Softmax));
    assert!(back.steps.iter().any(|s| matches!(
        s.layer,
        Layer::MaxPool(w) if w.pad == 1
    )));
    // An older peer's architecture (of unpadded pools): no transform, no padding fields.
    let older = Plan::compile(&fold(&every_op()), config()).unwrap();
    let mut value = serde_json::to_value(&older.architecture).unwrap();
    value.as_object_mut().unwrap().remove("output_transform");
    for step in value["steps"].as_array_mut().unwrap() {
        if let Some(w) = step["layer"]
            .as_object_mut()
            .and_then(|l| l.values_mut().next())
            .and_then(|w| w.as_object_mut())
        {
            w.remove("pad");
        }
    }
    assert!(!value.to_string().contains("pad\""), "{value}");
    let old: Architecture = serde_json::from_value(value).unwrap();
    assert_eq!(layers(&old), layers(&older.architecture));
    assert_eq!(old.output_transform, None);
    assert!(old.steps.iter().all(|s| match s.layer {
        Layer::MaxPool(w) | Layer::AvgPool(w) => w.pad == 0,
        _ => true,
    }));
    // Padding beyond half the window (a padded position could then win a maximum or read
    // outside the plane) from a hostile server is refused.
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["steps"][1]["layer"]["MaxPool"]["pad"] = serde_json::json!(2);
    let err = serde_json::from_value::<Architecture>(value)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than half"), "{err}");
    // Bounds out of order from a hostile server are refused.
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let clip = value["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["layer"].get("Clip").is_some())
        .unwrap();
    clip["layer"]["Clip"]["min"] = serde_json::json!(1.0);
    clip["layer"]["Clip"]["max"] = serde_json::json!(-1.0);
    let err = serde_json::from_value::<Architecture>(value)
        .unwrap_err()
        .to_string();
    assert!(err.contains("clip bounds"), "{err}");
}
