//! pillar-train's own CPU convolution against burn's `conv2d`: outputs and the gradients with
//! respect to the input, the weight and the bias, on random data over the shapes the model zoo
//! uses and a few more (rectangular kernels and inputs, strides, padding, dilation).
#![allow(clippy::unwrap_used)]

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use pillar_train::conv;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One convolution call.
#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: [usize; 2],
    stride: [usize; 2],
    /// `[(top, bottom), (left, right)]`
    pad: [(usize, usize); 2],
    dilation: [usize; 2],
    bias: bool,
}

impl Case {
    fn new(
        n: usize,
        c: usize,
        hw: [usize; 2],
        o: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Case {
            n,
            c,
            h: hw[0],
            w: hw[1],
            o,
            k: [k, k],
            stride: [stride, stride],
            pad: [(pad, pad), (pad, pad)],
            dilation: [1, 1],
            bias: true,
        }
    }

    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new_with_padding(self.stride, self.pad, self.dilation, 1)
    }
}

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `max |a - b| <= tol * max(1, max |b|)`.
fn assert_close(what: &str, case: &Case, ours: &[f32], reference: &[f32], tol: f32) {
    assert_eq!(ours.len(), reference.len(), "{what} length, {case:?}");
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: max difference {worst} (scale {scale}), {case:?}"
    );
}

/// Output and gradients (input, weight, bias) of one implementation.
type Results = (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>);

fn run(
    case: &Case,
    data: &(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>),
    ours: bool,
    x_grad: bool,
) -> Results {
    let device = Device::flex().autodiff();
    let (xs, ws, bs, rs) = data;
    let x = Tensor::<4>::from_data(
        TensorData::new(xs.clone(), [case.n, case.c, case.h, case.w]),
        &device,
    );
    let x = if x_grad { x.require_grad() } else { x };
    let w = Tensor::<4>::from_data(
        TensorData::new(ws.clone(), [case.o, case.c, case.k[0], case.k[1]]),
        &device,
    )
    .require_grad();
    let b = case.bias.then(|| {
        Tensor::<1>::from_data(TensorData::new(bs.clone(), [case.o]), &device).require_grad()
    });
    let y = if ours {
        conv::conv2d(x.clone(), w.clone(), b.clone(), case.options())
    } else {
        burn_conv2d(x.clone(), w.clone(), b.clone(), case.options())
    };
    let dims = y.dims();
    let r = Tensor::<4>::from_data(
        TensorData::new(rs[..dims.iter().product::<usize>()].to_vec(), dims),
        &device,
    );
    // A random linear functional of the output, so that every output gradient differs.
    let loss = y.clone().mul(r).sum();
    let grads = loss.backward();
    let dx = if x_grad {
        values(x.grad(&grads).unwrap())
    } else {
        assert!(x.grad(&grads).is_none());
        Vec::new()
    };
    let dw = values(w.grad(&grads).unwrap());
    let db = b.map(|b| values(b.grad(&grads).unwrap()));
    (values(y), dx, dw, db)
}

fn check(case: Case, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (
        random(&mut rng, case.n * case.c * case.h * case.w),
        random(&mut rng, case.o * case.c * case.k[0] * case.k[1]),
        random(&mut rng, case.o),
        random(&mut rng, case.n * case.o * case.h * case.w * 4 + 64),
    );
    for x_grad in [true, false] {
        let (y, dx, dw, db) = run(&case, &data, true, x_grad);
        let (y_ref, dx_ref, dw_ref, db_ref) = run(&case, &data, false, x_grad);
        let tol = 1e-4;
        assert_close("output", &case, &y, &y_ref, tol);
        assert_close("input gradient", &case, &dx, &dx_ref, tol);
        assert_close("weight gradient", &case, &dw, &dw_ref, tol);
        assert_eq!(db.is_some(), db_ref.is_some());
        if let (Some(db), Some(db_ref)) = (db, db_ref) {
            assert_close("bias gradient", &case, &db, &db_ref, tol);
        }
    }
}

#[test]
fn matches_burn_on_square_kernels() {
    let mut seed = 0;
    for n in [1, 3] {
        for (k, pad) in [(1, 0), (3, 0), (3, 1), (5, 2), (5, 0)] {
            for stride in [1, 2] {
                for bias in [true, false] {
                    seed += 1;
                    let mut case = Case::new(n, 3, [9, 7], 4, k, stride, pad);
                    case.bias = bias;
                    check(case, seed);
                }
            }
        }
    }
}

#[test]
fn matches_burn_on_odd_shapes() {
    let cases = [
        // rectangular kernel, asymmetric padding and stride
        Case {
            k: [3, 5],
            stride: [2, 1],
            pad: [(1, 0), (2, 1)],
            ..Case::new(2, 2, [8, 11], 5, 3, 1, 0)
        },
        // dilation
        Case {
            dilation: [2, 1],
            ..Case::new(2, 3, [10, 6], 2, 3, 1, 1)
        },
        // 1x1 with padding and stride (not the pointwise fast path)
        Case::new(3, 4, [5, 6], 3, 1, 2, 1),
        // kernel as large as the padded input: a 1x1 output
        Case::new(2, 2, [3, 3], 3, 5, 1, 1),
        // padding wider than the kernel reach: whole rows and columns of zeros
        Case::new(1, 2, [4, 5], 2, 3, 1, 3),
        // MiniONN-like widths
        Case::new(3, 16, [8, 8], 32, 3, 1, 1),
        Case::new(3, 32, [8, 8], 8, 1, 1, 0),
    ];
    for (seed, case) in cases.into_iter().enumerate() {
        check(case, 100 + seed as u64);
    }
}

#[test]
fn module_forward_matches_burn_also_without_autodiff() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for device in [Device::flex(), Device::flex().autodiff()] {
        for (k, stride, padding) in [
            (3, 1, PaddingConfig2d::Explicit(1, 1, 1, 1)),
            (3, 2, PaddingConfig2d::Explicit(1, 0, 2, 1)),
            (5, 1, PaddingConfig2d::Valid),
            (3, 1, PaddingConfig2d::Same),
            (1, 1, PaddingConfig2d::Explicit(0, 0, 0, 0)),
        ] {
            let module = Conv2dConfig::new([3, 6], [k, k])
                .with_stride([stride, stride])
                .with_padding(padding)
                .init(&device);
            let x = Tensor::<4>::from_data(
                TensorData::new(random(&mut rng, 2 * 3 * 10 * 9), [2, 3, 10, 9]),
                &device,
            );
            let ours = values(conv::forward(&module, x.clone()));
            let reference = values(module.forward(x));
            let case = Case::new(2, 3, [10, 9], 6, k, stride, 0);
            assert_close("module output", &case, &ours, &reference, 1e-5);
            // The module keeps its parameters: one weight and one bias.
            assert_eq!(module.num_params(), 6 * 3 * k * k + 6);
        }
    }
}
