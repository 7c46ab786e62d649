//! pillar-train's batch norm in training against burn's `BatchNorm::forward`: output,
//! gradients with respect to the input, gamma and beta, and the running statistics.
#![allow(clippy::unwrap_used)]

mod common;

use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor, TensorData};
use common::{assert_close, random, values};
use pillar_train::norm;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A batch norm over `c` channels with the given gamma and beta.
fn layer(c: usize, gamma: &[f32], beta: &[f32], device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(c).init(device);
    bn.gamma = Param::from_tensor(Tensor::from_data(
        TensorData::new(gamma.to_vec(), [c]),
        device,
    ));
    bn.beta = Param::from_tensor(Tensor::from_data(
        TensorData::new(beta.to_vec(), [c]),
        device,
    ));
    bn
}

/// Output, input/gamma/beta gradients and running mean/variance after two steps.
fn run<const D: usize>(dims: [usize; D], seed: u64, ours: bool) -> [Vec<f32>; 6] {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len: usize = dims.iter().product();
    let c = dims[1];
    let gamma = random(&mut rng, c, 0.5, 2.0);
    let beta = random(&mut rng, c, -1.0, 1.0);
    let bn = layer(c, &gamma, &beta, &device);
    let mut out = Vec::new();
    // Two steps, so that the running statistics are blended once.
    for step in 0..2 {
        let xs = random(&mut rng, len, -3.0, 5.0);
        let rs = random(&mut rng, len, -1.0, 1.0);
        let x = Tensor::<D>::from_data(TensorData::new(xs, dims), &device).require_grad();
        let y = if ours {
            norm::forward(&bn, x.clone())
        } else {
            bn.forward(x.clone())
        };
        let r = Tensor::<D>::from_data(TensorData::new(rs, dims), &device);
        let grads = y.clone().mul(r).sum().backward();
        if step == 1 {
            out = vec![
                values(y),
                values(x.grad(&grads).unwrap()),
                values(bn.gamma.val().grad(&grads).unwrap()),
                values(bn.beta.val().grad(&grads).unwrap()),
            ];
        }
    }
    out.push(values(bn.running_mean.value_sync()));
    out.push(values(bn.running_var.value_sync()));
    out.try_into().unwrap()
}

fn check<const D: usize>(dims: [usize; D], seed: u64) {
    let ours = run(dims, seed, true);
    let reference = run(dims, seed, false);
    let names = [
        "output",
        "input gradient",
        "gamma gradient",
        "beta gradient",
        "running mean",
        "running variance",
    ];
    for ((name, a), b) in names.iter().zip(&ours).zip(&reference) {
        assert_close(&format!("{name} {dims:?}"), a, b, 1e-4);
    }
}

#[test]
fn matches_burn_in_training() {
    check([4, 3, 5, 6], 1);
    check([2, 8, 4, 4], 2);
    check([1, 2, 3, 3], 3);
    check([5, 7], 4);
}

#[test]
fn inference_is_burns() {
    let device = Device::flex();
    let bn = layer(3, &[1.5, 0.5, 2.0], &[0.1, -0.2, 0.3], &device);
    let x = Tensor::<4>::from_data(
        TensorData::new((0..3 * 2 * 2 * 2).map(|v| v as f32).collect(), [2, 3, 2, 2]),
        &device,
    );
    assert_eq!(values(norm::forward(&bn, x.clone())), values(bn.forward(x)));
}
