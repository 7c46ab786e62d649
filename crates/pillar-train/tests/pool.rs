//! pillar-train's average pooling against burn's `avg_pool2d`: output and input gradient,
//! with and without autodiff.
#![allow(clippy::unwrap_used)]

mod common;

use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use common::{assert_close, random, values};
use pillar_train::pool;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn avg_pool_matches_burn() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for device in [Device::flex(), Device::flex().autodiff()] {
        for (dims, k, s) in [
            ([2, 3, 8, 8], 2, 2),
            ([1, 2, 7, 9], 2, 2),
            ([2, 2, 9, 8], 3, 2),
            ([1, 1, 5, 5], 3, 1),
        ] {
            let len: usize = dims.iter().product();
            let xs = random(&mut rng, len, -2.0, 2.0);
            let rs = random(&mut rng, len, -1.0, 1.0);
            let run = |ours: bool| {
                let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), dims), &device);
                let x = if device.is_autodiff() {
                    x.require_grad()
                } else {
                    x
                };
                let y = if ours {
                    pool::avg_pool2d(x.clone(), k, s)
                } else {
                    avg_pool2d(x.clone(), AvgPoolOptions::new([k, k]).with_stride([s, s]))
                };
                let dx = device.is_autodiff().then(|| {
                    let out = y.dims();
                    let n: usize = out.iter().product();
                    let r = Tensor::<4>::from_data(TensorData::new(rs[..n].to_vec(), out), &device);
                    values(x.grad(&y.clone().mul(r).sum().backward()).unwrap())
                });
                (values(y), dx)
            };
            let (y, dx) = run(true);
            let (y_ref, dx_ref) = run(false);
            assert_close(&format!("pool {dims:?} {k}/{s}"), &y, &y_ref, 1e-5);
            if let (Some(dx), Some(dx_ref)) = (dx, dx_ref) {
                assert_close(
                    &format!("pool gradient {dims:?} {k}/{s}"),
                    &dx,
                    &dx_ref,
                    1e-5,
                );
            }
        }
    }
}
