//! PolyReLU, the penalty and its warm-up, the learning-rate schedule: against hand-computed
//! numbers and finite differences.
#![allow(clippy::unwrap_used)]

use burn::tensor::{Device, Tensor};
use pillar_train::activation::{Activation, Tape, abs_pow, horner};
use pillar_train::config::default_coefficients;
use pillar_train::penalty::{EpochPenalty, Penalty, call_penalty};
use pillar_train::schedule::learning_rate;

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn poly(x: f64) -> f64 {
    default_coefficients(4)
        .iter()
        .rev()
        .fold(0.0, |acc, c| acc * x + c)
}

#[test]
fn warm_up_follows_the_paper() {
    let p = Penalty {
        lambda: 5e-5,
        reg_range: 4.4,
        exponent: 10,
    };
    let expect = [
        (4, 5e-7, 0.0),
        (6, 1e-6, 1.0),
        (8, 5e-6, 1.0),
        (10, 1e-5, 1.0),
        (10, 5e-5, 1.0),
        (10, 5e-5, 1.0),
    ];
    for (epoch, (e, lambda, ce)) in expect.into_iter().enumerate() {
        let got = p.at_epoch(epoch);
        assert_eq!(got.exponent, e, "epoch {epoch}");
        assert!(
            (got.lambda - lambda).abs() < 1e-18,
            "epoch {epoch}: {}",
            got.lambda
        );
        assert_eq!(got.ce_weight, ce, "epoch {epoch}");
    }
}

#[test]
fn penalty_is_lambda_times_mean_over_calls_of_sums() {
    let device = Device::flex();
    let a = [1.0f32, -2.0, 4.4, 8.8];
    let b = [0.5f32, -9.0];
    let ep = EpochPenalty {
        exponent: 4,
        lambda: 0.01,
        ce_weight: 1.0,
    };
    let mut tape = Tape::with_penalty(ep, 4.4);
    let act = Activation::poly(default_coefficients(4), 5.0, true);
    act.forward(Tensor::<1>::from_floats(a, &device), &mut tape);
    act.forward(Tensor::<1>::from_floats(b, &device), &mut tape);
    let got = f64::from(values(tape.penalty_loss().unwrap())[0]);
    let sa = call_penalty(&a.map(f64::from), 4.4, 4);
    let sb = call_penalty(&b.map(f64::from), 4.4, 4);
    // By hand: (1/4.4)^4 + (2/4.4)^4 + 1 + 16 for the first call.
    let by_hand = (1.0f64 / 4.4).powi(4) + (2.0f64 / 4.4).powi(4) + 1.0 + 16.0;
    // (f32 inputs: 4.4 and 8.8 are not exact.)
    assert!((sa - by_hand).abs() < 1e-5, "{sa} vs {by_hand}");
    let want = 0.01 * (sa + sb) / 2.0;
    assert!((got - want).abs() / want < 1e-5, "{got} vs {want}");
    // The records: out-of-range counts |x| >= 5, the largest |x| per call.
    let stats = tape.finish();
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[0].out_of_range, stats[0].count), (1.0, 4));
    assert_eq!((stats[1].out_of_range, stats[1].count), (1.0, 2));
    assert!((stats[0].max_abs - 8.8).abs() < 1e-5 && stats[0].finite);
}

#[test]
fn clamps_in_training_only() {
    let x = [10.0f32, -7.0, 1.5];
    let act = Activation::poly(default_coefficients(4), 5.0, true);
    let train = values(
        act.forward(
            Tensor::<1>::from_floats(x, &Device::flex().autodiff()),
            &mut Tape::recording(),
        )
        .inner(),
    );
    let infer = values(act.forward(
        Tensor::<1>::from_floats(x, &Device::flex()),
        &mut Tape::recording(),
    ));
    for (i, &xi) in x.iter().enumerate() {
        let clamped = f64::from(xi).clamp(-5.0, 5.0);
        assert!(
            (f64::from(train[i]) - poly(clamped)).abs() < 1e-4,
            "train {i}"
        );
        assert!(
            (f64::from(infer[i]) - poly(f64::from(xi))).abs() < 1e-3,
            "infer {i}"
        );
    }
    // The naive swap does not clamp even in training.
    let naive = Activation::poly(default_coefficients(4), 5.0, false);
    let y = values(
        naive
            .forward(
                Tensor::<1>::from_floats(x, &Device::flex().autodiff()),
                &mut Tape::recording(),
            )
            .inner(),
    );
    assert!((f64::from(y[0]) - poly(10.0)).abs() < 1e-3);
}

#[test]
fn poly_relu_gradient_matches_finite_differences() {
    let device = Device::flex().autodiff();
    let xs = [-4.9f32, -2.0, -0.3, 0.0, 0.7, 3.3, 4.8];
    let act = Activation::poly(default_coefficients(4), 5.0, true);
    let x = Tensor::<1>::from_floats(xs, &device).require_grad();
    let y = act.forward(x.clone(), &mut Tape::recording()).sum();
    let grads = y.backward();
    let g = values(x.grad(&grads).unwrap());
    for (i, &xi) in xs.iter().enumerate() {
        let h = 1e-4;
        let x = f64::from(xi);
        let numeric = (poly(x + h) - poly(x - h)) / (2.0 * h);
        assert!(
            (f64::from(g[i]) - numeric).abs() < 1e-3,
            "x = {x}: {} vs {numeric}",
            g[i]
        );
    }
    // Outside the range the clamp stops the gradient.
    let x = Tensor::<1>::from_floats([7.0f32], &device).require_grad();
    let grads = act
        .forward(x.clone(), &mut Tape::recording())
        .sum()
        .backward();
    assert_eq!(values(x.grad(&grads).unwrap()), vec![0.0]);
}

#[test]
fn horner_agrees_with_direct_evaluation() {
    let c = default_coefficients(4);
    let device = Device::flex();
    let y = values(horner(Tensor::<1>::from_floats([2.0f32], &device), &c));
    assert!((f64::from(y[0]) - poly(2.0)).abs() < 1e-5);
}

/// The penalty's power by repeated squaring: value and gradient `e |x|^(e-1) sign(x)` for
/// every exponent the warm-up uses and a few odd ones.
#[test]
fn abs_pow_matches_powi_in_value_and_gradient() {
    let device = Device::flex().autodiff();
    let xs = [-1.7f32, -0.4, 0.25, 1.1, 2.0];
    for e in [1u32, 2, 3, 4, 5, 6, 8, 10, 11] {
        let x = Tensor::<1>::from_floats(xs, &device).require_grad();
        let y = abs_pow(x.clone(), e);
        let got = values(y.clone().inner());
        let grads = y.sum().backward();
        let g = values(x.grad(&grads).unwrap());
        for (i, &xi) in xs.iter().enumerate() {
            let x = f64::from(xi);
            let want = x.abs().powi(e as i32);
            let dwant = f64::from(e) * x.abs().powi(e as i32 - 1) * x.signum();
            assert!(
                (f64::from(got[i]) - want).abs() <= 1e-5 * want.max(1.0),
                "e={e} x={x}"
            );
            assert!(
                (f64::from(g[i]) - dwant).abs() <= 1e-4 * dwant.abs().max(1.0),
                "e={e} x={x}: {} vs {dwant}",
                g[i]
            );
        }
    }
    let ones = values(abs_pow(Tensor::<1>::from_floats(xs, &device), 0).inner());
    assert!(ones.iter().all(|&v| v == 1.0));
}

fn matrix(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// AMM per channel: the first batch sets the statistics, later ones blend in with weight 0.1,
/// inference uses the stored values, and the gradient flows through the batch extremes
/// (hand-computed: for one channel `[0, 2, 4]`, `d sum(y) / dx = [-0.25, 0.5, -0.25]`).
#[test]
fn amm_normalises_each_channel_and_keeps_moving_averages() {
    let device = Device::flex();
    let train = device.clone().autodiff();
    // The identity "polynomial" shows the normalised input itself.
    let act = Activation::poly(vec![0.0, 1.0], 5.0, false).with_amm(2, 1.0, &train);
    let x =
        Tensor::<2>::from_floats([[0.0, -10.0], [2.0, -8.0], [4.0, -7.0]], &train).require_grad();
    let y = act.forward(x.clone(), &mut Tape::recording());
    let out = matrix(y.clone().inner());
    let expect = [-1.0, -1.0, 0.0, 1.0 / 3.0, 1.0, 1.0];
    for (a, b) in out.iter().zip(expect) {
        assert!((a - b).abs() < 1e-6, "{out:?}");
    }
    let grads = y.sum().backward();
    let g = matrix(x.grad(&grads).unwrap());
    for (a, b) in [g[0], g[2], g[4]].iter().zip([-0.25, 0.5, -0.25]) {
        assert!((a - b).abs() < 1e-6, "{g:?}");
    }
    let affine = act.amm.as_ref().unwrap().affine().unwrap();
    assert!((affine[0].0 - 0.5).abs() < 1e-6 && (affine[0].1 + 1.0).abs() < 1e-6);
    // Second batch: min [1, 0], width [2, 2] -> running min [0.1, -9], width [3.8, 2.9].
    let x2 = Tensor::<2>::from_floats([[1.0, 0.0], [3.0, 2.0]], &train);
    let _ = act.forward(x2, &mut Tape::recording());
    let affine = act.amm.as_ref().unwrap().affine().unwrap();
    for ((a, b), (lo, w)) in affine.iter().zip([(0.1, 3.8), (-9.0, 2.9)]) {
        assert!((a - 2.0 / w).abs() < 1e-5, "{affine:?}");
        assert!((b - (-lo * 2.0 / w - 1.0)).abs() < 1e-5, "{affine:?}");
    }
    // Inference: the stored statistics, not the batch's.
    let probe = Tensor::<2>::from_floats([[0.1, -9.0], [3.9, -6.1]], &device);
    let y = matrix(act.forward(probe, &mut Tape::recording()));
    for (a, b) in y.iter().zip([-1.0, -1.0, 1.0, 1.0]) {
        assert!((a - b).abs() < 1e-5, "{y:?}");
    }
}

#[test]
fn learning_rate_warms_up_then_anneals() {
    assert!((learning_rate(0.1, 0, 20, 5) - 0.001).abs() < 1e-12);
    assert!((learning_rate(0.1, 5, 20, 5) - 0.1).abs() < 1e-12);
    // Halfway through the cosine part: half the peak.
    let mid = learning_rate(0.1, 5 + 15 / 2, 20, 5);
    assert!(mid < 0.1 && mid > 0.04, "{mid}");
    assert!(learning_rate(0.1, 19, 20, 5) < 0.002);
    // Warm-up longer than the run is cut short.
    assert!((learning_rate(0.1, 1, 2, 5) - 0.1).abs() < 1e-12);
}
