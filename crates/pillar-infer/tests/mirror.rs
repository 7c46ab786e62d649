//! The fixed-point executor: each layer on hand-computed ring values, a small network against
//! the float reference at three precisions, the polynomial layers against an independent
//! integer reference, and single layers against the secure protocols themselves.
#![allow(clippy::unwrap_used)]

use pillar_nn::testing::{fold, values};

use pillar_fit::PAPER_RELU as PAPER;
use pillar_infer::FixedConfig;
use pillar_infer::InferError;
use pillar_infer::mirror::{self, FixedOutput};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::arith::reveal;
use pillar_mpc::protocols::poly::reference::{self as poly_reference, Approx};
use pillar_mpc::protocols::{linear, maxpool, pool, relu};
use pillar_mpc::testing::input;
use pillar_mpc::{FixedPoint, Local, MpcError, Party, RingTensor, Session, Share};
use pillar_nn::exec::float;
use pillar_nn::{BatchNorm, Conv2d, Graph, Linear, NnError, Op, PolyAct, Pool, Tensor};
use proptest::prelude::*;

const POLYS: [ActivationProtocol; 3] = [
    ActivationProtocol::Espn,
    ActivationProtocol::HoneyBadger,
    ActivationProtocol::Crypten,
];

fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), data).unwrap()
}

fn ring(shape: &[usize], data: Vec<i64>) -> RingTensor {
    RingTensor::new(shape.to_vec(), data.into_iter().map(|v| v as u64).collect()).unwrap()
}

fn signed(r: &RingTensor) -> Vec<i64> {
    r.data().iter().map(|&v| v as i64).collect()
}

fn config(frac_bits: u32, activation: ActivationProtocol) -> FixedConfig {
    FixedConfig {
        frac_bits,
        activation,
        ..FixedConfig::default()
    }
}

fn run(g: &Graph, x: &Tensor) -> FixedOutput {
    mirror::run(&fold(g), x, &FixedConfig::default()).unwrap()
}

fn run_ring(g: &Graph, x: &RingTensor) -> FixedOutput {
    mirror::run_encoded(&fold(g), x, &FixedConfig::default()).unwrap()
}

fn poly(coefficients: &[f64]) -> Op {
    Op::PolyAct(PolyAct {
        coefficients: coefficients.to_vec(),
        range: 5.0,
    })
}

fn one_conv(weight: f32, bias: Option<f32>) -> Graph {
    let mut g = Graph::new(vec![1, 1, 1]);
    g.chain(
        "c",
        Op::Conv2d(Conv2d {
            weight: t(&[1, 1, 1, 1], vec![weight]),
            bias: bias.map(|b| t(&[1], vec![b])),
            stride: 1,
            padding: 0,
        }),
    );
    g
}

// ---------------------------------------------------------------- layers by hand

#[test]
fn conv_product_is_truncated_once_and_the_bias_added_at_f() {
    let fp = FixedPoint::default();
    let x = t(&[1, 1, 1, 1], vec![1.25]);
    let y = run(&one_conv(0.5, None), &x);
    assert_eq!(y.ring.data(), &[fp.encode(0.625)]);
    assert_eq!(y.logits.data(), &[0.625]);
    let y = run(&one_conv(0.5, Some(0.25)), &x);
    assert_eq!(y.ring.data(), &[fp.encode(0.875)]);

    // The counters: one truncated value, 0.625 at scale 2^32 before it.
    let before = (0.625 * 2f64.powi(32)) as u64;
    assert_eq!(y.layers.len(), 1);
    assert_eq!((y.layers[0].node.as_str(), y.layers[0].op), ("c", "Conv"));
    assert_eq!(y.layers[0].max_abs, before);
    assert_eq!(y.layers[0].truncations, 1);
    assert_eq!(y.layers[0].expected_failures, before as f64 / 2f64.powi(64));
    assert_eq!(y.expected_failures(), y.layers[0].expected_failures);
}

#[test]
fn truncation_is_the_floor_of_the_signed_value() {
    // -3 units times 0.5 is -1.5 units: floor -2 (truncation toward zero would give -1).
    let y = run_ring(&one_conv(0.5, None), &ring(&[1, 1, 1, 1], vec![-3]));
    assert_eq!(signed(&y.ring), vec![-2]);
    let y = run_ring(&one_conv(0.5, None), &ring(&[1, 1, 1, 1], vec![3]));
    assert_eq!(signed(&y.ring), vec![1]);
    // Inputs are encoded toward zero, as FixedPoint::encode.
    let y = run(
        &one_conv(1.0, None),
        &t(&[1, 1, 1, 1], vec![-1.5 / 65536.0]),
    );
    assert_eq!(signed(&y.ring), vec![-1]);
}

#[test]
fn conv_with_padding_and_stride() {
    // 1x3x3 input 1..9; 2x2 kernel of ones, stride 2, padding 1: corners of the padded 5x5.
    let mut g = Graph::new(vec![1, 3, 3]);
    g.chain(
        "c",
        Op::Conv2d(Conv2d {
            weight: t(&[1, 1, 2, 2], vec![1.0; 4]),
            bias: None,
            stride: 2,
            padding: 1,
        }),
    );
    let x = t(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
    assert_eq!(run(&g, &x).logits.data(), &[1.0, 5.0, 11.0, 28.0]);
}

#[test]
fn linear_layer_by_hand() {
    let mut g = Graph::new(vec![2]);
    g.chain(
        "fc",
        Op::Linear(Linear {
            weight: t(&[2, 2], vec![0.5, -0.25, 1.5, 2.0]),
            bias: Some(t(&[2], vec![0.125, -1.0])),
        }),
    );
    let y = run(&g, &t(&[2, 2], vec![1.0, 2.0, -0.5, 0.75]));
    // Rows: (0.5 - 0.5 + 0.125, 1.5 + 4 - 1) and (-0.25 - 0.1875 + 0.125, -0.75 + 1.5 - 1).
    assert_eq!(y.logits.data(), &[0.125, 4.5, -0.3125, -0.25]);
    assert_eq!(y.layers[0].truncations, 4);
}

#[test]
fn pools_by_hand() {
    let pool = |kernel, stride| Pool::new(kernel, stride);
    // A power-of-two window: the sum shifted right by 2, floor.
    let mut g = Graph::new(vec![1, 2, 2]);
    g.chain("avg", Op::AvgPool(pool(2, 2)));
    let y = run_ring(&g, &ring(&[1, 1, 2, 2], vec![1, 2, 3, 5]));
    assert_eq!(signed(&y.ring), vec![2]);
    let y = run_ring(&g, &ring(&[1, 1, 2, 2], vec![-1, -2, -3, -5]));
    assert_eq!(signed(&y.ring), vec![-3]);
    assert_eq!(y.layers[0].truncations, 1);

    // 3x3: truncated by floor(log2 9) = 3, times round(2^(16+3) / 9) = 58254, truncated by
    // 16. The mean of ones is 65535 (round(2^16 / 9) alone gave 65538).
    let mut g = Graph::new(vec![1, 3, 3]);
    g.chain("avg", Op::AvgPool(pool(3, 1)));
    let y = run(&g, &t(&[1, 1, 3, 3], vec![1.0; 9]));
    assert_eq!(signed(&y.ring), vec![(((9 * 65536) >> 3) * 58254) >> 16]);
    assert_eq!(signed(&y.ring), vec![65535]);
    assert_eq!(y.layers[0].truncations, 2);

    // Global: a 2x3 plane, truncated by 2, times round(2^18 / 6) = 43691, truncated by 16.
    let mut g = Graph::new(vec![2, 2, 3]);
    g.chain("gap", Op::GlobalAvgPool);
    let x: Vec<i64> = (1..=12).map(|v| v << 16).collect();
    let y = run_ring(&g, &ring(&[1, 2, 2, 3], x));
    let mean = |sum: i64| (((sum << 16) >> 2) * 43691) >> 16;
    assert_eq!(signed(&y.ring), vec![mean(21), mean(57)]);
    assert_eq!(signed(&y.ring), vec![229377, 622596]);
    assert_eq!(y.ring.shape(), &[1, 2, 1, 1]);

    // Max: exact, negative values included, stride 1 with overlapping windows.
    let mut g = Graph::new(vec![1, 2, 3]);
    g.chain("max", Op::MaxPool(pool(2, 1)));
    let y = run_ring(&g, &ring(&[1, 1, 2, 3], vec![-7, -3, 9, -8, -4, 2]));
    assert_eq!(signed(&y.ring), vec![-3, 9]);
    assert_eq!(y.layers[0].truncations, 0);
}

#[test]
fn relu_add_flatten_batchnorm_by_hand() {
    let mut g = Graph::new(vec![2, 1, 2]);
    let r = g.chain("r", Op::Relu);
    let s = g.push("sum", Op::Add, vec![0, r]);
    g.push(
        "bn",
        Op::BatchNorm(BatchNorm {
            gamma: vec![1.0, 2.0],
            beta: vec![0.25, -1.0],
            mean: vec![0.0, 1.0],
            var: vec![4.0, 1.0],
            eps: 0.0,
        }),
        vec![s],
    );
    g.chain("flat", Op::Flatten);
    let y = run(&g, &t(&[1, 2, 1, 2], vec![1.25, -3.0, 2.0, -0.5]));
    // x + relu(x) = (2.5, -3, 4, -0.5); channel 0: x/2 + 0.25, channel 1: 2x - 2 - 1.
    assert_eq!(y.logits.shape(), &[1, 4]);
    assert_eq!(y.logits.data(), &[1.5, -1.25, 5.0, -4.0]);
    assert_eq!(y.layers[2].truncations, 4);
}

#[test]
fn polynomial_at_a_power_of_two_by_hand() {
    // x = 2 at f = 16, for every protocol the powers are exact: 4, 8, 16. Coefficients
    // 20608, 32768, 10240, 0, -192; 2^17 * 32768 + 2^18 * 10240 - 2^20 * 192 = 6777995264,
    // >> 16 = 103424, + 20608 = 124032 = p(2) * 2^16 exactly.
    let mut g = Graph::new(vec![1]);
    g.chain("p", poly(&PAPER));
    for p in POLYS {
        let y = mirror::run(&fold(&g), &t(&[1, 1], vec![2.0]), &config(16, p)).unwrap();
        assert_eq!(signed(&y.ring), vec![124_032], "{p}");
        assert_eq!(f64::from(y.logits.data()[0]), 1.892_578_125);
    }
}

#[test]
fn prescaling_loses_the_low_bits_of_the_input() {
    // y = x^4 / 64 at f = 16; x = 1 + 255 units. ESPN and HoneyBadger pre-scale by s_4 = 8, so
    // y = 1 = 256 units at scale 8, and x^4 comes out as exactly 1.0; CrypTen multiplies the
    // full x and keeps (1 + 255/2^16)^4 to within its truncations.
    let mut g = Graph::new(vec![1]);
    g.chain("p", poly(&[0.0, 0.0, 0.0, 0.0, 1.0 / 64.0]));
    let x = ring(&[1, 1], vec![65536 + 255]);
    let at = |p| {
        signed(
            &mirror::run_encoded(&fold(&g), &x, &config(16, p))
                .unwrap()
                .ring,
        )[0]
    };
    assert_eq!(at(ActivationProtocol::Espn), 1024);
    assert_eq!(at(ActivationProtocol::HoneyBadger), 1024);
    let exact = (65536.0f64 + 255.0).powi(4) / 65536f64.powi(3) / 64.0;
    assert!((at(ActivationProtocol::Crypten) as f64 - exact).abs() < 2.0);
    assert!(at(ActivationProtocol::Crypten) > 1034);
}

// ---------------------------------------------------------------- errors

#[test]
fn bad_inputs_and_configs_are_errors_that_say_why() {
    let g = one_conv(0.5, None);
    let e = mirror::run(
        &fold(&g),
        &t(&[1, 2, 1, 1], vec![0.0; 2]),
        &FixedConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e, InferError::Graph(NnError::Input { .. })), "{e}");
    let e = mirror::run(
        &fold(&g),
        &t(&[1, 1, 1], vec![0.0]),
        &FixedConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e, InferError::Graph(NnError::Input { .. })), "{e}");
    let e = mirror::run(
        &fold(&g),
        &t(&[1, 1, 1, 1], vec![f32::NAN]),
        &FixedConfig::default(),
    );
    assert!(matches!(
        e,
        Err(InferError::Graph(NnError::InputValue { index: 0, .. }))
    ));
    for bits in [7, 21] {
        let e = mirror::run(
            &fold(&g),
            &t(&[1, 1, 1, 1], vec![0.0]),
            &config(bits, ActivationProtocol::Espn),
        )
        .unwrap_err();
        assert!(e.to_string().contains("8 to 20"), "{e}");
    }

    let mut g = Graph::new(vec![2]);
    g.chain("act", poly(&PAPER));
    let x = t(&[1, 2], vec![0.0; 2]);
    let e = mirror::run(&fold(&g), &x, &config(16, ActivationProtocol::Relu)).unwrap_err();
    assert!(
        e.to_string().contains("\"act\" (PolyAct)") && e.to_string().contains("espn"),
        "{e}"
    );
    g.nodes[0].op = poly(&[0.1; 14]);
    let e = mirror::run(&fold(&g), &x, &FixedConfig::default()).unwrap_err();
    assert!(e.to_string().contains("\"act\" (PolyAct)"), "{e}");

    let mut g = one_conv(f32::INFINITY, None);
    g.nodes[0].name = "stem".into();
    let e = mirror::run(
        &fold(&g),
        &t(&[1, 1, 1, 1], vec![0.0]),
        &FixedConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"stem\" (Conv)"), "{e}");
}

#[test]
fn relu_only_graphs_run_under_the_relu_protocol_and_empty_batches_are_empty() {
    let mut g = Graph::new(vec![3]);
    g.chain("r", Op::Relu);
    let c = config(16, ActivationProtocol::Relu);
    let y = mirror::run(&fold(&g), &t(&[1, 3], vec![-1.0, 0.0, 2.5]), &c).unwrap();
    assert_eq!(y.logits.data(), &[0.0, 0.0, 2.5]);
    let y = mirror::run(&fold(&g), &t(&[0, 3], vec![]), &c).unwrap();
    assert_eq!(y.logits.shape(), &[0, 3]);
}

// ---------------------------------------------------------------- a network against float

fn conv(o: usize, c: usize, k: usize, padding: usize, seed: u64) -> Op {
    let gain = 1.5 / ((c * k * k) as f32).sqrt();
    Op::Conv2d(Conv2d {
        weight: t(
            &[o, c, k, k],
            values(o * c * k * k, seed)
                .iter()
                .map(|v| v * gain)
                .collect(),
        ),
        bias: Some(t(&[o], values(o, seed + 1))),
        stride: 1,
        padding,
    })
}

fn dense(out: usize, inp: usize, seed: u64) -> Op {
    let gain = 1.5 / (inp as f32).sqrt();
    Op::Linear(Linear {
        weight: t(
            &[out, inp],
            values(out * inp, seed).iter().map(|v| v * gain).collect(),
        ),
        bias: Some(t(&[out], values(out, seed + 1))),
    })
}

/// Every operator, both kinds of average (power of two and not), a residual add.
fn network() -> Graph {
    let mut g = Graph::new(vec![1, 12, 12]);
    g.chain("conv1", conv(4, 1, 3, 1, 1));
    g.chain("act1", poly(&PAPER));
    let p = g.chain("avg", Op::AvgPool(Pool::new(2, 2)));
    g.chain("conv2", conv(4, 4, 3, 1, 3));
    let r = g.chain("relu", Op::Relu);
    g.push("res", Op::Add, vec![p, r]);
    g.chain("max", Op::MaxPool(Pool::new(2, 2)));
    g.chain("conv3", conv(6, 4, 1, 0, 5));
    g.chain("act2", poly(&PAPER));
    g.chain("gap", Op::GlobalAvgPool);
    g.chain("flat", Op::Flatten);
    g.chain("fc1", dense(8, 6, 7));
    g.chain("act3", poly(&PAPER));
    g.chain("fc2", dense(3, 8, 9));
    g
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn a_network_agrees_with_float_and_more_bits_agree_better() {
    let g = network();
    let n = 40;
    let x = t(&[n, 1, 12, 12], values(n * 144, 99));
    let want = float::run(&g.clone().typed().unwrap(), &x).unwrap();
    for p in POLYS {
        let err = |f| {
            max_diff(
                &mirror::run(&fold(&g), &x, &config(f, p)).unwrap().logits,
                &want,
            )
        };
        let (e12, e16, e20) = (err(12), err(16), err(20));
        eprintln!("{p}: max |fixed - float| at f = 12, 16, 20: {e12:.2e} {e16:.2e} {e20:.2e}");
        assert!(e16 < 1e-2, "{p}: {e16}");
        assert!(e20 < e16 && e16 < e12, "{p}: {e12} {e16} {e20}");
        assert!(e20 < 1e-3, "{p}: {e20}");
    }
    let y = mirror::run(&fold(&g), &x, &FixedConfig::default()).unwrap();
    assert_eq!(y.layers.len(), g.nodes.len());
    for l in &y.layers {
        assert!(l.headroom_bits() > 15.0, "{l:?}");
    }
    let e = y.expected_failures();
    eprintln!("expected failed truncations in the batch: {e:.2e}");
    assert!(e > 0.0 && e < 1e-2, "{e}");
    // A convolution truncates each output once; ESPN's degree-4 polynomial five times per
    // element (the pre-scaled input, the powers x^2, x^3 and x^4, the weighted sum).
    let shapes = g.shapes().unwrap();
    let count = |i: usize| n * shapes[i + 1].iter().product::<usize>();
    assert_eq!(y.layers[0].truncations as usize, count(0));
    assert_eq!(y.layers[1].truncations as usize, 5 * count(1));
    assert_eq!(y.layers[4].truncations, 0);
}

#[test]
fn batches_split_across_threads_give_each_image_its_own_result() {
    let g = network();
    let n = 53;
    let x = t(&[n, 1, 12, 12], values(n * 144, 7));
    for p in POLYS {
        let c = config(16, p);
        let all = mirror::run(&fold(&g), &x, &c).unwrap();
        for i in [0, 17, 52] {
            let one = t(&[1, 1, 12, 12], x.data()[i * 144..(i + 1) * 144].to_vec());
            let y = mirror::run(&fold(&g), &one, &c).unwrap();
            assert_eq!(y.ring.data(), &all.ring.data()[i * 3..(i + 1) * 3]);
        }
    }
}

// ---------------------------------------------------------------- polynomials: an integer reference

/// The protocol's result computed exactly with floor truncations, and how far a secure run
/// may be from it: pillar-mpc's independent integer reference.
fn reference(p: ActivationProtocol, fp: FixedPoint, x: i64, c: &[f64]) -> Approx {
    match p {
        ActivationProtocol::Espn => poly_reference::espn(fp, x, c),
        ActivationProtocol::HoneyBadger => poly_reference::honeybadger(fp, x, c),
        _ => poly_reference::crypten(fp, x, c),
    }
}

fn poly_graph(n: usize, c: &[f64]) -> Graph {
    let mut g = Graph::new(vec![n]);
    g.chain("act", poly(c));
    g
}

fn coefficients() -> impl Strategy<Value = Vec<f64>> {
    (0usize..=6).prop_flat_map(|d| proptest::collection::vec(-0.5f64..0.5, d + 1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn polynomial_layers_equal_the_integer_reference(
        xs in proptest::collection::vec(-6.0f64..6.0, 1..40),
        c in coefficients(),
        f in 10u32..=20,
    ) {
        let fp = FixedPoint::new(f).unwrap();
        let x = RingTensor::encode(fp, vec![1, xs.len()], &xs).unwrap();
        let g = poly_graph(xs.len(), &c);
        for p in POLYS {
            let y = mirror::run_encoded(&fold(&g), &x, &config(f, p)).unwrap();
            for (got, &xi) in signed(&y.ring).iter().zip(x.data()) {
                prop_assert_eq!(i128::from(*got), reference(p, fp, xi as i64, &c).value, "{}", p);
            }
        }
    }
}

// ---------------------------------------------------------------- against the secure protocols

/// Shares `inputs` (the client owns the first, the server the rest), runs `f` on both parties
/// and opens the result.
fn secure<F>(seed: u64, fp: FixedPoint, inputs: &[RingTensor], f: F) -> RingTensor
where
    F: Fn(&mut Session, &[Share]) -> Result<Share, MpcError> + Sync,
{
    let local = Local {
        fixed: fp,
        ..Local::seeded(seed)
    };
    let [a, b] = local
        .run(|s| {
            let mut shares = Vec::new();
            for (i, t) in inputs.iter().enumerate() {
                let owner = if i == 0 { Party::Client } else { Party::Server };
                shares.push(input(s, owner, t)?);
            }
            let y = f(s, &shares)?;
            reveal(s, &y)
        })
        .unwrap();
    assert_eq!(a, b, "both parties open the same value");
    a
}

fn assert_within(what: &str, secure: &RingTensor, fixed: &RingTensor, tol: impl Fn(usize) -> f64) {
    assert_eq!(secure.shape(), fixed.shape(), "{what}");
    for (i, (s, x)) in signed(secure).iter().zip(signed(fixed)).enumerate() {
        assert!(
            ((s - x) as f64).abs() <= tol(i),
            "{what}, element {i}: secure {s}, fixed {x}, tolerance {}",
            tol(i)
        );
    }
}

#[test]
fn secure_polynomials_are_within_their_truncation_errors_of_fixed() {
    for (f, c) in [
        (16, PAPER.to_vec()),
        (12, PAPER.to_vec()),
        (20, vec![0.1, -0.4, 0.3, 0.05, -0.01, 0.002]),
        (16, vec![0.2, 0.7]),
    ] {
        let fp = FixedPoint::new(f).unwrap();
        let n = 257;
        let xs: Vec<f64> = values(n, u64::from(f))
            .iter()
            .map(|v| 6.0 * f64::from(*v))
            .collect();
        let x = RingTensor::encode(fp, vec![1, n], &xs).unwrap();
        let g = poly_graph(n, &c);
        for (seed, p) in POLYS.into_iter().enumerate() {
            let want = mirror::run_encoded(&fold(&g), &x, &config(f, p))
                .unwrap()
                .ring;
            let got = secure(seed as u64, fp, std::slice::from_ref(&x), |s, sh| {
                p.evaluate(s, &sh[0], &c)
            });
            let tol = |i: usize| reference(p, fp, x.data()[i] as i64, &c).tolerance;
            assert_within(&format!("{p} at f = {f}"), &got, &want, tol);
            // The tolerance is the pre-scaling's loss of precision, not a blanket: at f = 16 on
            // |x| <= 6 it is about `pillar fit`'s estimate (0.0057 for ESPN on |x| <= 5, 0.0118
            // for HoneyBadger).
            let worst = (0..n).map(tol).fold(0.0, f64::max);
            let diff = signed(&got)
                .iter()
                .zip(signed(&want))
                .map(|(a, b)| (a - b).abs())
                .max()
                .unwrap_or(0);
            eprintln!("{p} at f = {f}: secure - fixed at most {diff} units, tolerance {worst:.0}");
            if f == 16 {
                assert!(
                    worst / fp.scale() < 0.02,
                    "{p} at f = {f}: tolerance {worst}"
                );
            }
        }
    }
}

#[test]
fn secure_linear_layers_are_within_one_unit_of_fixed() {
    let fp = FixedPoint::default();
    let n = 3;

    // A padded, strided convolution with bias.
    let mut g = Graph::new(vec![3, 7, 6]);
    g.chain("c", conv(5, 3, 3, 1, 21));
    if let Op::Conv2d(c) = &mut g.nodes[0].op {
        c.stride = 2;
    }
    let x = t(
        &[n, 3, 7, 6],
        values(n * 126, 22).iter().map(|v| 3.0 * v).collect(),
    );
    let want = run(&g, &x).ring;
    let Op::Conv2d(c) = &g.nodes[0].op else {
        unreachable!()
    };
    let inputs = [
        mirror::encode(fp, &x).unwrap(),
        mirror::encode(fp, &c.weight).unwrap(),
        mirror::encode(fp, c.bias.as_ref().unwrap()).unwrap(),
    ];
    let got = secure(1, fp, &inputs, |s, sh| {
        linear::conv2d(s, &sh[0], &sh[1], Some(&sh[2]), 2, 1)
    });
    assert_within("conv2d", &got, &want, |_| 1.0);

    // A fully connected layer.
    let mut g = Graph::new(vec![20]);
    g.chain("fc", dense(7, 20, 23));
    let x = t(
        &[n, 20],
        values(n * 20, 24).iter().map(|v| 4.0 * v).collect(),
    );
    let want = run(&g, &x).ring;
    let Op::Linear(l) = &g.nodes[0].op else {
        unreachable!()
    };
    let inputs = [
        mirror::encode(fp, &x).unwrap(),
        mirror::encode(fp, &l.weight).unwrap(),
        mirror::encode(fp, l.bias.as_ref().unwrap()).unwrap(),
    ];
    let got = secure(2, fp, &inputs, |s, sh| {
        linear::linear(s, &sh[0], &sh[1], Some(&sh[2]))
    });
    assert_within("linear", &got, &want, |_| 1.0);
}

#[test]
fn secure_pools_and_relu_agree_with_fixed() {
    let fp = FixedPoint::default();
    let x = t(
        &[2, 3, 6, 6],
        values(216, 31).iter().map(|v| 5.0 * v).collect(),
    );
    let enc = mirror::encode(fp, &x).unwrap();
    let one = |op: Op| {
        let mut g = Graph::new(vec![3, 6, 6]);
        g.chain("l", op);
        run(&g, &x).ring
    };

    for (k, s) in [(2, 2), (3, 3), (3, 1)] {
        let want = one(Op::AvgPool(Pool::new(k, s)));
        let got = secure(3, fp, std::slice::from_ref(&enc), |sess, sh| {
            pool::avg_pool(sess, &sh[0], pool::Window::square(k, s))
        });
        // One unit per truncation: one for a power-of-two window, two otherwise.
        let units = if (k * k).is_power_of_two() { 1.0 } else { 2.0 };
        assert_within(&format!("avg pool {k}/{s}"), &got, &want, |_| units);
    }
    let want = one(Op::GlobalAvgPool);
    let got = secure(4, fp, std::slice::from_ref(&enc), |s, sh| {
        pool::global_avg_pool(s, &sh[0])
    });
    assert_within("global avg pool", &got, &want, |_| 2.0);

    let want = one(Op::MaxPool(Pool::new(3, 2)));
    let got = secure(5, fp, std::slice::from_ref(&enc), |s, sh| {
        maxpool::max_pool(s, &sh[0], pool::Window::square(3, 2))
    });
    assert_eq!(got, want, "max pool");

    let want = one(Op::Relu);
    let got = secure(6, fp, std::slice::from_ref(&enc), |s, sh| {
        relu::relu(s, &sh[0])
    });
    assert_eq!(got, want, "relu");
}
