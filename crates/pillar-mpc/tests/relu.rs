//! Exact ReLU, comparisons, maximum and max-pooling against plaintext, with their rounds and
//! bytes. These are exact: the sign comes from the full 64-bit adder, for any ring element.
#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_cost, run, signed, tensor};
use pillar_mpc::protocols::clip::{Bounds, clip};
use pillar_mpc::protocols::maxpool::{self, max_pool};
use pillar_mpc::protocols::pool::Window;
use pillar_mpc::protocols::relu::{self, ge, ge_zero, max};
use proptest::prelude::*;

/// 14 words per element and the packed bits of the final opening.
fn relu_words(n: usize) -> u64 {
    (14 * n + n.div_ceil(64)) as u64
}

fn any_values(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<i64>> {
    proptest::collection::vec(
        prop_oneof![
            any::<i64>(),
            -1000i64..1000,
            Just(0i64),
            Just(i64::MIN),
            Just(i64::MAX)
        ],
        n,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn relu_is_exact(seed: u64, x in any_values(1..150)) {
        let n = x.len();
        let o = run(seed, &[tensor(&[n], x.clone())], |s, sh| relu::relu(s, &sh[0]));
        let want: Vec<i64> = x.iter().map(|&v| v.max(0)).collect();
        prop_assert_eq!(signed(&o.value), want);
        assert_cost(&o, 8, relu_words(n));
    }

    #[test]
    fn comparisons_are_exact(seed: u64, x in any_values(1..70), y in any_values(70..71)) {
        let n = x.len();
        let y = &y[..n];
        let z = run(seed, &[tensor(&[n], x.clone())], |s, sh| ge_zero(s, &sh[0]));
        let want: Vec<i64> = x.iter().map(|&v| i64::from(v >= 0)).collect();
        prop_assert_eq!(signed(&z.value), want);
        assert_cost(&z, 8, (13 * n + n.div_ceil(64)) as u64);
        // x >= y compares the wrapped difference, so keep the operands from wrapping.
        let (xs, ys): (Vec<i64>, Vec<i64>) = x.iter().zip(y).map(|(a, b)| (a >> 2, b >> 2)).unzip();
        let o = run(seed, &[tensor(&[n], xs.clone()), tensor(&[n], ys.clone())], |s, sh| ge(s, &sh[0], &sh[1]));
        let want: Vec<i64> = xs.iter().zip(&ys).map(|(a, b)| i64::from(a >= b)).collect();
        prop_assert_eq!(signed(&o.value), want);
        let m = run(seed, &[tensor(&[n], xs.clone()), tensor(&[n], ys.clone())], |s, sh| max(s, &sh[0], &sh[1]));
        let want: Vec<i64> = xs.iter().zip(&ys).map(|(a, b)| *a.max(b)).collect();
        prop_assert_eq!(signed(&m.value), want);
        assert_cost(&m, 8, relu_words(n));
    }

    #[test]
    fn max_pool_is_exact(seed: u64, k in 1usize..4, stride in 1usize..3, raw in proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), 2 * 2 * 7 * 6)) {
        let shape = [2, 2, 7, 6];
        let w = Window::square(k, stride);
        let o = run(seed, &[tensor(&shape, raw.clone())], |s, sh| max_pool(s, &sh[0], w));
        let (oh, ow) = ((7 - k) / stride + 1, (6 - k) / stride + 1);
        prop_assert_eq!(o.value.shape(), &[2, 2, oh, ow]);
        let got = signed(&o.value);
        for p in 0..4 {
            for y in 0..oh {
                for x in 0..ow {
                    let want = (0..k).flat_map(|dy| (0..k).map(move |dx| (dy, dx)))
                        .map(|(dy, dx)| raw[(p * 7 + y * stride + dy) * 6 + x * stride + dx])
                        .max().unwrap();
                    prop_assert_eq!(got[(p * oh + y) * ow + x], want);
                }
            }
        }
        // Rounds: 8 per tournament level; words: one ReLU per compared pair.
        let outputs = 4 * oh * ow;
        let mut words = 0;
        let mut left = k * k;
        while left > 1 {
            words += relu_words(outputs * (left / 2));
            left = left.div_ceil(2);
        }
        assert_cost(&o, maxpool::rounds(k * k) as u64, words);
        let needs = maxpool::needs(&shape, w).unwrap();
        prop_assert_eq!(needs.len(), (maxpool::rounds(k * k) / 8) * 8);
    }

    /// Padded windows (PyTorch's `MaxPool2d(k, s, padding=p)`, `p <= k / 2`) at every edge:
    /// the maximum over the input elements of each window, however negative, never the
    /// padding; the same rounds and words as the unpadded tournament of a `k x k` window.
    #[test]
    fn padded_max_pool_never_picks_the_padding(
        seed: u64,
        k in 1usize..5,
        stride in 1usize..4,
        pad_pick in 0usize..3,
        raw in proptest::collection::vec(-(1i64 << 40)..-(1i64 << 20), 2 * 5 * 4),
    ) {
        let pad = pad_pick.min(k / 2);
        let (h, w_) = (5, 4);
        prop_assume!(k <= h + 2 * pad && k <= w_ + 2 * pad);
        let shape = [1, 2, h, w_];
        let w = Window::padded(k, stride, pad);
        let o = run(seed, &[tensor(&shape, raw.clone())], |s, sh| max_pool(s, &sh[0], w));
        let (oh, ow) = ((h + 2 * pad - k) / stride + 1, (w_ + 2 * pad - k) / stride + 1);
        prop_assert_eq!(o.value.shape(), &[1, 2, oh, ow]);
        let got = signed(&o.value);
        for p in 0..2 {
            for y in 0..oh {
                for x in 0..ow {
                    let want = (0..k).flat_map(|dy| (0..k).map(move |dx| (dy, dx)))
                        .filter_map(|(dy, dx)| {
                            let iy = (y * stride + dy).checked_sub(pad).filter(|&i| i < h)?;
                            let ix = (x * stride + dx).checked_sub(pad).filter(|&i| i < w_)?;
                            Some(raw[(p * h + iy) * w_ + ix])
                        })
                        .max();
                    // Every window holds an element of the input (pad <= k / 2).
                    prop_assert!(want.is_some());
                    prop_assert_eq!(Some(got[(p * oh + y) * ow + x]), want);
                }
            }
        }
        let outputs = 2 * oh * ow;
        let words: u64 = maxpool::levels(k * k).into_iter().map(|pairs| relu_words(outputs * pairs)).sum();
        assert_cost(&o, maxpool::rounds(k * k) as u64, words);
    }

    /// `lo + relu(x - lo) - relu(x - hi)`, both ReLUs in one batch: the rounds of one ReLU,
    /// the words of a ReLU of `n` elements per bound; exactly `Bounds::plain`, which is the
    /// clamp wherever `x - lo` and `x - hi` do not wrap.
    #[test]
    fn clip_is_exact_in_one_relus_rounds(
        seed: u64,
        x in any_values(1..100),
        lo in -(1i64 << 30)..0,
        width in 0i64..(1 << 30),
        sides in 0usize..3,
    ) {
        let n = x.len();
        let hi = lo + width;
        let bounds = Bounds {
            lo: (sides != 2).then_some(lo as u64),
            hi: (sides != 1).then_some(hi as u64),
        };
        let o = run(seed, &[tensor(&[n], x.clone())], |s, sh| clip(s, &sh[0], bounds));
        let plain: Vec<i64> = x.iter().map(|&v| bounds.plain(v as u64) as i64).collect();
        prop_assert_eq!(signed(&o.value), plain);
        for &v in &x {
            // Away from the wrap-around the ring result is the clamp.
            if v.unsigned_abs() < 1 << 62 {
                let want = match (bounds.lo, bounds.hi) {
                    (Some(_), Some(_)) => v.clamp(lo, hi),
                    (Some(_), None) => v.max(lo),
                    _ => v.min(hi),
                };
                prop_assert_eq!(bounds.plain(v as u64) as i64, want);
            }
        }
        let count = bounds.count();
        prop_assert_eq!(bounds.rounds(), 8);
        prop_assert_eq!(bounds.words_sent(n) as u64, relu_words(count * n));
        assert_cost(&o, 8, relu_words(count * n));
    }
}
