//! What the kernel tests share: reading a tensor back, random values, and comparing against
//! burn's reference within a tolerance relative to the reference's largest value.
#![allow(clippy::unwrap_used, dead_code)]

use burn::tensor::Tensor;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// The tensor's values, in order.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `len` values uniform in `[lo, hi)`.
pub(crate) fn random(rng: &mut ChaCha8Rng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// Every value of `ours` within `tol` times the largest |reference| (at least 1) of its
/// counterpart.
pub(crate) fn assert_close(what: &str, ours: &[f32], reference: &[f32], tol: f32) {
    assert_eq!(ours.len(), reference.len(), "{what}");
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}[{i}]: {a} vs {b} (scale {scale})"
        );
    }
}
