//! The fused activation kernels against the burn tensor compositions they replace: values and
//! gradients of the clamped polynomial and of the penalty, and the recorded statistics.
#![allow(clippy::unwrap_used)]

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{assert_close, values};
use pillar_train::activation::{abs_pow, horner};
use pillar_train::config::default_coefficients;
use pillar_train::fused;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `[2, 3, 5, 7]` inputs spread over `[-8, 8]`, with the clamp edges and zero included.
fn input(seed: u64) -> (Vec<f32>, [usize; 4]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = [2, 3, 5, 7];
    let mut xs: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.random_range(-8.0f32..8.0))
        .collect();
    xs[..5].copy_from_slice(&[5.0, -5.0, 0.0, 4.4, -4.4]);
    (xs, shape)
}

fn random_weights(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

#[test]
fn poly_matches_clamp_then_horner() {
    let device = Device::flex().autodiff();
    let polys = [
        default_coefficients(4),
        vec![0.1, -0.5, 0.25, 0.03],
        vec![0.7, 2.0],
        vec![1.5],
    ];
    for (k, coefficients) in polys.iter().enumerate() {
        for clamp in [Some(5.0), None] {
            let (xs, shape) = input(k as u64);
            let r = random_weights(50 + k as u64, xs.len());
            let run = |fused: bool| {
                let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), shape), &device)
                    .require_grad();
                let y = if fused {
                    fused::poly(x.clone(), coefficients, clamp)
                } else {
                    let xc = match clamp {
                        Some(c) => x.clone().clamp(-c, c),
                        None => x.clone(),
                    };
                    horner(xc, coefficients)
                };
                let w = Tensor::<4>::from_data(TensorData::new(r.clone(), shape), &device);
                // `+ 0 * sum(x)`: a constant polynomial's composition is not tracked.
                let loss = y.clone().mul(w).sum().add(x.clone().sum().mul_scalar(0.0));
                let grads = loss.backward();
                let dx = values(x.grad(&grads).unwrap());
                (values(y), dx)
            };
            let (y, dx) = run(true);
            let (y_ref, dx_ref) = run(false);
            let what = format!("poly {coefficients:?} clamp {clamp:?}");
            assert_close(&format!("{what} value"), &y, &y_ref, 1e-5);
            assert_close(&format!("{what} gradient"), &dx, &dx_ref, 1e-5);
        }
    }
}

#[test]
fn poly_without_autodiff_matches_horner() {
    let device = Device::flex();
    let (xs, shape) = input(9);
    let x = Tensor::<4>::from_data(TensorData::new(xs, shape), &device);
    let c = default_coefficients(4);
    let ours = values(fused::poly(x.clone(), &c, None));
    let reference = values(horner(x, &c));
    assert_close("plain poly", &ours, &reference, 1e-6);
}

#[test]
fn penalty_matches_abs_pow_sum() {
    let device = Device::flex().autodiff();
    for exponent in [0, 1, 3, 4, 6, 10] {
        let (xs, shape) = input(20 + u64::from(exponent));
        let run = |fused: bool| {
            let x =
                Tensor::<4>::from_data(TensorData::new(xs.clone(), shape), &device).require_grad();
            let p = if fused {
                fused::penalty(x.clone(), 4.4, exponent)
            } else {
                abs_pow(x.clone().div_scalar(4.4), exponent).sum()
            };
            // A weight on the penalty, as the loss puts one.
            // (`+ 0 * sum(x)`: the composition is a constant for e = 0.)
            let loss = p
                .clone()
                .mul_scalar(0.37)
                .add(x.clone().sum().mul_scalar(0.0));
            let grads = loss.backward();
            let dx = values(x.grad(&grads).unwrap());
            (values(p), dx)
        };
        let (p, dx) = run(true);
        let (p_ref, dx_ref) = run(false);
        assert_eq!(p.len(), 1);
        assert_close(&format!("penalty e={exponent}"), &p, &p_ref, 1e-5);
        assert_close(
            &format!("penalty gradient e={exponent}"),
            &dx,
            &dx_ref,
            1e-5,
        );
    }
}

#[test]
fn stats_match_the_composition() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        let (xs, shape) = input(31);
        let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), shape), &device);
        let ours = values(fused::stats(&x, 5.0));
        let abs: Vec<f32> = xs.iter().map(|x| x.abs()).collect();
        let count = abs.iter().filter(|&&a| a >= 5.0).count() as f32;
        let max = abs.iter().fold(0.0f32, |m, &a| m.max(a));
        let sum: f32 = abs.iter().sum();
        assert_eq!(ours[0], count);
        assert_eq!(ours[1], max);
        assert!((ours[2] - sum).abs() <= 1e-5 * sum);
    }
    // A NaN input shows in the maximum and the sum.
    let x = Tensor::<1>::from_floats([1.0f32, f32::NAN, -2.0], &Device::flex());
    let s = values(fused::stats(&x, 5.0));
    assert!(s[1].is_nan() && s[2].is_nan());
}
