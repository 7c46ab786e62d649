//! Sharing, local operations, truncation, Beaver products, matrix products, convolutions and
//! pooling against plaintext fixed point, with their exact rounds and bytes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_cost, input, run, signed, tensor};
use pillar_mpc::kernels::{ConvGeometry, conv2d as conv_kernel, matmul as matmul_kernel};
use pillar_mpc::protocols::pool::{Window, avg_pool, global_avg_pool, sum_pool};
use pillar_mpc::protocols::{arith, beaver, linear, truncation};
use pillar_mpc::{Local, MpcError, Party, RingTensor};
use proptest::prelude::*;

const F: u32 = 16;

fn values(n: usize, bound: i64) -> impl Strategy<Value = Vec<i64>> {
    proptest::collection::vec(-bound..=bound, n)
}

/// `|got - floor(exact / 2^k)| <= 1` elementwise: the local truncation's 1-ulp error.
fn assert_truncated(got: &[i64], exact: &[i128], k: u32) {
    assert_eq!(got.len(), exact.len());
    for (i, (&g, &e)) in got.iter().zip(exact).enumerate() {
        let want = e >> k;
        assert!(
            (i128::from(g) - want).abs() <= 1,
            "element {i}: got {g}, want {want} +- 1"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn share_and_reveal_round_trip(seed: u64, x in values(13, i64::MAX)) {
        let t = tensor(&[13], x.clone());
        let o = run(seed, &[t], |_, sh| Ok(sh[0].clone()));
        prop_assert_eq!(signed(&o.value), x);
        assert_cost(&o, 0, 0);
    }

    #[test]
    fn local_linear_operations(seed: u64, x in values(9, 1 << 40), y in values(9, 1 << 40), c in -1000i64..1000) {
        let (tx, ty) = (tensor(&[3, 3], x.clone()), tensor(&[3, 3], y.clone()));
        let pc = tensor(&[3, 3], vec![c; 9]);
        let o = run(seed, &[tx, ty], |s, sh| {
            let sum = arith::add(&sh[0], &sh[1])?;
            let diff = arith::sub(&sum, &arith::neg(&sh[1]))?; // x + 2y
            let shifted = arith::add_public(s, &diff, &pc)?;
            Ok(arith::scale(&shifted, 3))
        });
        let want: Vec<i64> = x.iter().zip(&y).map(|(a, b)| 3 * (a + 2 * b + c)).collect();
        prop_assert_eq!(signed(&o.value), want);
        assert_cost(&o, 0, 0);
    }

    #[test]
    fn truncation_is_floor_within_one_ulp(seed: u64, x in values(64, 1 << 45), k in 0u32..=30) {
        let o = run(seed, &[tensor(&[64], x.clone())], |s, sh| truncation::truncate(s, &sh[0], k));
        let exact: Vec<i128> = x.iter().map(|&v| i128::from(v)).collect();
        assert_truncated(&signed(&o.value), &exact, k);
        assert_cost(&o, 0, 0);
    }

    #[test]
    fn beaver_product(seed: u64, x in values(17, 1 << 22), y in values(17, 1 << 22)) {
        let o = run(seed, &[tensor(&[17], x.clone()), tensor(&[17], y.clone())], |s, sh| {
            beaver::mul(s, &sh[0], &sh[1])
        });
        let exact: Vec<i128> = x.iter().zip(&y).map(|(a, b)| i128::from(*a) * i128::from(*b)).collect();
        assert_truncated(&signed(&o.value), &exact, F);
        assert_cost(&o, 1, 2 * 17);
    }

    #[test]
    fn beaver_square(seed: u64, x in values(11, 1 << 22)) {
        let o = run(seed, &[tensor(&[11], x.clone())], |s, sh| beaver::square(s, &sh[0]));
        let exact: Vec<i128> = x.iter().map(|a| i128::from(*a) * i128::from(*a)).collect();
        assert_truncated(&signed(&o.value), &exact, F);
        assert_cost(&o, 1, 11);
    }

    #[test]
    fn cross_product_of_private_values(seed: u64, u in values(7, 1 << 30), v in values(7, 1 << 30)) {
        // Party 0 holds u, party 1 holds v, both in the clear.
        let [a, b] = Local::seeded(seed).run(|s| {
            let mine: Vec<u64> = match s.party() {
                Party::Server => u.iter().map(|&x| x as u64).collect(),
                Party::Client => v.iter().map(|&x| x as u64).collect(),
            };
            let before = s.stats();
            let z = beaver::cross_raw(s, &mine)?;
            let st = s.stats().since(&before);
            let opened = arith::reveal(s, &pillar_mpc::Share::new(RingTensor::from_vec(z)))?;
            Ok((opened, st))
        }).unwrap();
        let want: Vec<i64> = u.iter().zip(&v).map(|(a, b)| a.wrapping_mul(*b)).collect();
        prop_assert_eq!(signed(&a.0), want);
        prop_assert_eq!(a.0, b.0);
        for st in [a.1, b.1] {
            prop_assert_eq!(st.rounds, 1);
            prop_assert_eq!(st.bytes_sent, 8 * 7);
        }
    }

    #[test]
    fn matrix_product(seed: u64, m in 1usize..5, k in 1usize..6, n in 1usize..5, raw in values(64, 1 << 20)) {
        let x: Vec<i64> = (0..m * k).map(|i| raw[i % 64]).collect();
        let w: Vec<i64> = (0..k * n).map(|i| raw[(7 * i + 3) % 64]).collect();
        let o = run(seed, &[tensor(&[m, k], x.clone()), tensor(&[k, n], w.clone())], |s, sh| {
            linear::matmul(s, &sh[0], &sh[1])
        });
        let prod = matmul_kernel(m, k, n, &x.iter().map(|&v| v as u64).collect::<Vec<_>>(),
            &w.iter().map(|&v| v as u64).collect::<Vec<_>>());
        let exact: Vec<i128> = prod.iter().map(|&v| i128::from(v as i64)).collect();
        assert_truncated(&signed(&o.value), &exact, F);
        prop_assert_eq!(o.value.shape(), &[m, n]);
        assert_cost(&o, 1, (m * k + k * n) as u64);
    }

    #[test]
    fn convolution_with_bias(seed: u64, stride in 1usize..3, padding in 0usize..2, raw in values(97, 1 << 19)) {
        let g = ConvGeometry { batch: 2, in_channels: 2, height: 5, width: 4, out_channels: 3,
            kernel_h: 3, kernel_w: 2, stride, padding };
        let x: Vec<i64> = (0..g.input_len()).map(|i| raw[i % 97]).collect();
        let w: Vec<i64> = (0..g.weight_len()).map(|i| raw[(5 * i + 1) % 97]).collect();
        let b: Vec<i64> = vec![raw[3], raw[50], -raw[9]];
        let o = run(seed, &[tensor(&g.input_shape(), x.clone()), tensor(&g.weight_shape(), w.clone()), tensor(&[3], b.clone())], |s, sh| {
            linear::conv2d(s, &sh[0], &sh[1], Some(&sh[2]), stride, padding)
        });
        let prod = conv_kernel(&g, &x.iter().map(|&v| v as u64).collect::<Vec<_>>(),
            &w.iter().map(|&v| v as u64).collect::<Vec<_>>());
        let inner = g.out_h() * g.out_w();
        let got: Vec<i64> = signed(&o.value).iter().enumerate().map(|(i, v)| v - b[(i / inner) % 3]).collect();
        let exact: Vec<i128> = prod.iter().map(|&v| i128::from(v as i64)).collect();
        assert_truncated(&got, &exact, F);
        prop_assert_eq!(o.value.shape(), &g.output_shape()[..]);
        assert_cost(&o, 1, (g.input_len() + g.weight_len()) as u64);
    }

    #[test]
    fn fully_connected_layer(seed: u64, raw in values(40, 1 << 20)) {
        // x: 2 x 4, w: 3 x 4 (PyTorch layout), bias: 3.
        let x: Vec<i64> = raw[..8].to_vec();
        let w: Vec<i64> = raw[8..20].to_vec();
        let b: Vec<i64> = raw[20..23].to_vec();
        let o = run(seed, &[tensor(&[2, 4], x.clone()), tensor(&[3, 4], w.clone()), tensor(&[3], b.clone())], |s, sh| {
            linear::linear(s, &sh[0], &sh[1], Some(&sh[2]))
        });
        let got = signed(&o.value);
        for r in 0..2 {
            for c in 0..3 {
                let dot: i128 = (0..4).map(|i| i128::from(x[r * 4 + i]) * i128::from(w[c * 4 + i])).sum();
                let want = (dot >> F) + i128::from(b[c]);
                prop_assert!((i128::from(got[r * 3 + c]) - want).abs() <= 1);
            }
        }
        assert_cost(&o, 1, 8 + 12);
    }

    #[test]
    fn pooling(seed: u64, raw in values(2 * 3 * 6 * 6, 1 << 24)) {
        let shape = [2, 3, 6, 6];
        let t = tensor(&shape, raw.clone());
        let o = run(seed, std::slice::from_ref(&t), |_, sh| sum_pool(&sh[0], Window::square(2, 2)));
        let a = run(seed, std::slice::from_ref(&t), |s, sh| avg_pool(s, &sh[0], Window::square(3, 3)));
        let g = run(seed, &[t], |s, sh| global_avg_pool(s, &sh[0]));
        let at = |p: usize, y: usize, x: usize| i128::from(raw[(p * 6 + y) * 6 + x]);
        let sums = signed(&o.value);
        let avgs = signed(&a.value);
        let glob = signed(&g.value);
        for p in 0..6 {
            for y in 0..3 {
                for x in 0..3 {
                    let s2: i128 = (0..2).flat_map(|dy| (0..2).map(move |dx| (dy, dx)))
                        .map(|(dy, dx)| at(p, 2 * y + dy, 2 * x + dx)).sum();
                    prop_assert_eq!(i128::from(sums[(p * 3 + y) * 3 + x]), s2);
                }
            }
            for y in 0..2 {
                for x in 0..2 {
                    let s3: i128 = (0..3).flat_map(|dy| (0..3).map(move |dx| (dy, dx)))
                        .map(|(dy, dx)| at(p, 3 * y + dy, 3 * x + dx)).sum();
                    // Product with 1/9 rounded to f bits, then truncation.
                    let want = s3 as f64 / 9.0;
                    prop_assert!((avgs[(p * 2 + y) * 2 + x] as f64 - want).abs() <= 2.0 + want.abs() * 9.0 / 131072.0);
                }
            }
            let total: i128 = (0..36).map(|i| at(p, i / 6, i % 6)).sum();
            let want = total as f64 / 36.0;
            prop_assert!((glob[p] as f64 - want).abs() <= 2.0 + want.abs() * 36.0 / 131072.0);
        }
        prop_assert_eq!(o.value.shape(), &[2, 3, 3, 3]);
        prop_assert_eq!(g.value.shape(), &[2, 3, 1, 1]);
        assert_cost(&o, 0, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A padded window adds zero for each padded position and divides by the whole window
    /// (PyTorch's `count_include_pad=True`), at every edge; no traffic.
    #[test]
    fn padded_pooling_counts_the_padding_as_zeros(
        seed: u64,
        k in 1usize..5,
        stride in 1usize..4,
        pad_pick in 0usize..3,
        raw in values(2 * 5 * 4, 1 << 24),
    ) {
        let pad = pad_pick.min(k / 2);
        let (h, w) = (5, 4);
        let shape = [1, 2, h, w];
        let win = Window::padded(k, stride, pad);
        let t = tensor(&shape, raw.clone());
        let o = run(seed, std::slice::from_ref(&t), |_, sh| sum_pool(&sh[0], win));
        let a = run(seed, &[t], |s, sh| avg_pool(s, &sh[0], win));
        let (oh, ow) = ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1);
        prop_assert_eq!(o.value.shape(), &[1, 2, oh, ow]);
        let (sums, avgs) = (signed(&o.value), signed(&a.value));
        for p in 0..2 {
            for y in 0..oh {
                for x in 0..ow {
                    let sum: i128 = (0..k).flat_map(|dy| (0..k).map(move |dx| (dy, dx)))
                        .filter_map(|(dy, dx)| {
                            let iy = (y * stride + dy).checked_sub(pad).filter(|&i| i < h)?;
                            let ix = (x * stride + dx).checked_sub(pad).filter(|&i| i < w)?;
                            Some(i128::from(raw[(p * h + iy) * w + ix]))
                        })
                        .sum();
                    let o = (p * oh + y) * ow + x;
                    prop_assert_eq!(i128::from(sums[o]), sum);
                    let want = sum as f64 / (k * k) as f64;
                    prop_assert!((avgs[o] as f64 - want).abs() <= 2.0 + want.abs() * (k * k) as f64 / 131072.0);
                }
            }
        }
        assert_cost(&o, 0, 0);
        assert_cost(&a, 0, 0);
    }
}

/// Values in [1, 2) at `F` bits, pseudo-random.
fn ones_to_twos(n: usize, seed: u64) -> Vec<i64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (1 << F) + (x >> 48) as i64
        })
        .collect()
}

#[test]
fn large_average_pools_keep_their_precision() {
    // 112 x 112 (ImageNet's first plane, not a power of two): `round(2^16 / 12544) = 5`
    // was 4.3% off the true reciprocal. 363 x 363 is beyond 2^(f+1): it rounded to 0.
    for k in [112usize, 363] {
        let raw = ones_to_twos(k * k, k as u64);
        let t = tensor(&[1, 1, k, k], raw.clone());
        let o = run(3, &[t], |s, sh| avg_pool(s, &sh[0], Window::square(k, 1)));
        let got = signed(&o.value)[0] as f64;
        let want = raw.iter().map(|&v| v as f64).sum::<f64>() / (k * k) as f64;
        let relative = (got - want).abs() / want;
        assert!(relative < 1e-3, "{k}x{k}: {got} vs {want} ({relative:e})");
        assert_cost(&o, 0, 0);
    }
}

#[test]
fn shape_mismatches_are_errors_not_panics() {
    let x = tensor(&[2, 3], vec![1; 6]);
    let y = tensor(&[3, 3], vec![1; 9]);
    let err = Local::seeded(1)
        .run(|s| {
            let a = input(s, Party::Client, &x)?;
            let b = input(s, Party::Server, &y)?;
            beaver::mul(s, &a, &b)
        })
        .unwrap_err();
    assert!(matches!(err, MpcError::Shape { op: "mul", .. }), "{err}");
    let err = Local::seeded(1)
        .run(|s| {
            let a = input(s, Party::Client, &x)?;
            linear::matmul(s, &a, &a)
        })
        .unwrap_err();
    assert!(err.to_string().contains("matmul"), "{err}");
    let err = Local::seeded(1)
        .run(|s| {
            let a = input(s, Party::Client, &x)?;
            linear::conv2d(s, &a, &a, None, 1, 0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("NCHW"), "{err}");
}

#[test]
fn truncation_beyond_the_ring_is_an_error() {
    let x = tensor(&[1], vec![5]);
    let err = Local::seeded(2)
        .run(|s| {
            let a = input(s, Party::Client, &x)?;
            truncation::truncate(s, &a, 63)
        })
        .unwrap_err();
    assert!(matches!(err, MpcError::Truncation(63)), "{err}");
}

#[test]
fn reveal_to_one_party_only() {
    let x = tensor(&[4], vec![1, -2, 3, -4]);
    let [server, client] = Local::seeded(3)
        .run(|s| {
            let a = input(s, Party::Client, &x)?;
            let before = s.stats();
            let opened = if s.party().is_server() {
                Some(arith::receive_reveal(s, &a)?)
            } else {
                arith::reveal_to_peer(s, &a)?;
                None
            };
            Ok((opened, s.stats().since(&before)))
        })
        .unwrap();
    assert_eq!(server.0.as_ref().map(signed), Some(vec![1, -2, 3, -4]));
    assert!(client.0.is_none());
    assert_eq!(
        (
            server.1.rounds,
            server.1.bytes_sent,
            server.1.bytes_received
        ),
        (1, 0, 32)
    );
    assert_eq!(
        (
            client.1.rounds,
            client.1.bytes_sent,
            client.1.bytes_received
        ),
        (1, 32, 0)
    );
}
