//! The models users bring (pillar-nn's ONNX fixtures of PyTorch exports, `fixtures/README.md`
//! there), run securely: client, server and dealer in one process on the fixture's fixed
//! input, against the fixed-point executor on the same encoded input.
#![allow(clippy::unwrap_used)]

use pillar_infer::{FixedConfig, Plan, mirror, run_local};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::{FixedPoint, Local};
use pillar_nn::onnx;
use pillar_nn::testing::fixtures;

const CONFIG: FixedConfig = FixedConfig {
    frac_bits: 16,
    activation: ActivationProtocol::Espn,
    linear: LinearProtocol::Preprocessed,
};

/// Secure logits of fixture `stem` equal the fixed executor's up to the secure truncation's
/// rounding (one unit per truncation, grown through the layers: under 64 units, 1e-3, at
/// f = 16 for these small networks; the earlier fixtures differ by 1 or 2), with the same
/// class for each image.
fn secure_equals_fixed(stem: &str) {
    let f = fixtures::load(stem);
    let g = onnx::load(&f.model)
        .unwrap_or_else(|e| panic!("{stem}: {e}"))
        .fold_batchnorm()
        .unwrap();
    let x = mirror::encode(FixedPoint::new(CONFIG.frac_bits).unwrap(), &f.input).unwrap();
    let plan = Plan::compile(&g, CONFIG).unwrap_or_else(|e| panic!("{stem}: {e}"));
    let (secure, _) = run_local(&plan, std::slice::from_ref(&x), &Local::seeded(17), &|_| {})
        .unwrap_or_else(|e| panic!("{stem}: {e}"));
    let want = mirror::run_encoded(&g, &x, &CONFIG).unwrap().ring;
    assert_eq!(secure[0].shape(), want.shape(), "{stem}");
    let signed = |r: &pillar_mpc::RingTensor| r.data().iter().map(|&v| v as i64).collect();
    let (got, want): (Vec<i64>, Vec<i64>) = (signed(&secure[0]), signed(&want));
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).unsigned_abs())
        .max()
        .unwrap();
    eprintln!("{stem}: secure and fixed {worst} units apart");
    assert!(worst < 64, "{stem}: {worst} units apart");
    let classes = *secure[0].shape().last().unwrap();
    let argmax = |v: &[i64]| (0..v.len()).max_by_key(|&i| v[i]).unwrap();
    for (i, (a, b)) in got.chunks(classes).zip(want.chunks(classes)).enumerate() {
        assert_eq!(argmax(a), argmax(b), "{stem}: image {i}");
    }
}

#[test]
fn resnet_op17_secure_equals_fixed() {
    secure_equals_fixed("resnet_op17");
}

#[test]
fn resnet_dynamo_secure_equals_fixed() {
    secure_equals_fixed("resnet_dynamo");
}

#[test]
fn mnist_example_op17_secure_equals_fixed() {
    secure_equals_fixed("mnist_example_op17");
}

#[test]
fn mnist_example_dynamo_secure_equals_fixed() {
    secure_equals_fixed("mnist_example_dynamo");
}

#[test]
fn minionn_clamp_op17_secure_equals_fixed() {
    secure_equals_fixed("minionn_clamp_op17");
}

#[test]
fn minionn_clamp_dynamo_secure_equals_fixed() {
    secure_equals_fixed("minionn_clamp_dynamo");
}

#[test]
fn pad_avgpool_op13_secure_equals_fixed() {
    secure_equals_fixed("pad_avgpool_op13");
}

#[test]
fn earlier_fixtures_secure_equal_fixed() {
    // The exports pillar read before (a polynomial CNN, a residual block, max-pooling): the
    // same check on models whose import is settled.
    for stem in ["poly_cnn_op13", "residual_op13", "pools_dynamo18"] {
        secure_equals_fixed(stem);
    }
}
