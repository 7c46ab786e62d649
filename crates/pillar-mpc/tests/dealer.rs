//! The dealer's correlations hold, party 1 gets only its corrections from the dealer, and the
//! randomness is fresh.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{add, input, mul};
use pillar_mpc::channel::memory_pair;
use pillar_mpc::dealer::{Dealer, DealerError, Need, TrustedDealer, WeightMasks};
use pillar_mpc::kernels::{ConvGeometry, conv2d, matmul};
use pillar_mpc::protocols::beaver;
use pillar_mpc::{FixedPoint, Local, MpcError, Party, RingTensor, Session, Share};

fn xor(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Both parties' shares of one `need`.
fn both(need: &Need) -> (Vec<u64>, Vec<u64>) {
    let (mut d0, mut d1) = TrustedDealer::pair_from_seed(17);
    // Draw one unrelated correlation first so that the streams are not at their start.
    d0.generate(&Need::Beaver { n: 3 }).unwrap();
    d1.generate(&Need::Beaver { n: 3 }).unwrap();
    let s0 = d0.generate(need).unwrap();
    let s1 = d1.generate(need).unwrap();
    assert_eq!(s0.len(), need.words());
    assert_eq!(s1.len(), need.words());
    (s0, s1)
}

#[test]
fn arithmetic_correlations_hold() {
    let n = 50;
    let (p, q) = both(&Need::Beaver { n });
    let (a, b, c) = (
        add(&p[..n], &q[..n]),
        add(&p[n..2 * n], &q[n..2 * n]),
        add(&p[2 * n..], &q[2 * n..]),
    );
    assert_eq!(c, mul(&a, &b));

    let (p, q) = both(&Need::Square { n });
    let a = add(&p[..n], &q[..n]);
    assert_eq!(add(&p[n..], &q[n..]), mul(&a, &a));

    let (p, q) = both(&Need::FanOut { k: 3, n });
    let a = add(&p[..3 * n], &q[..3 * n]);
    let b = add(&p[3 * n..4 * n], &q[3 * n..4 * n]);
    let c = add(&p[4 * n..], &q[4 * n..]);
    for j in 0..3 {
        assert_eq!(c[j * n..(j + 1) * n], mul(&a[j * n..(j + 1) * n], &b)[..]);
    }

    // Cross: each party's mask is whole, the product is shared.
    let (p, q) = both(&Need::Cross { n });
    assert_eq!(add(&p[n..], &q[n..]), mul(&p[..n], &q[..n]));

    let (m, k, nn) = (3, 4, 5);
    let (p, q) = both(&Need::Matmul { m, k, n: nn });
    let a = add(&p[..m * k], &q[..m * k]);
    let b = add(&p[m * k..m * k + k * nn], &q[m * k..m * k + k * nn]);
    assert_eq!(
        add(&p[m * k + k * nn..], &q[m * k + k * nn..]),
        matmul(m, k, nn, &a, &b)
    );

    let g = ConvGeometry {
        batch: 1,
        in_channels: 2,
        height: 4,
        width: 4,
        out_channels: 2,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    };
    let (p, q) = both(&Need::Conv2d(g));
    let (xi, wi) = (g.input_len(), g.weight_len());
    let x = add(&p[..xi], &q[..xi]);
    let w = add(&p[xi..xi + wi], &q[xi..xi + wi]);
    assert_eq!(add(&p[xi + wi..], &q[xi + wi..]), conv2d(&g, &x, &w));
}

#[test]
fn honeybadger_powers_hold_and_r_is_random() {
    let (n, d) = (200, 4);
    let (p, q) = both(&Need::Powers { n, degree: d });
    let r = add(&p[..n], &q[..n]);
    let mut power = r.clone();
    for j in 2..=d {
        power = mul(&power, &r);
        assert_eq!(add(&p[(j - 1) * n..j * n], &q[(j - 1) * n..j * n]), power);
    }
    // r is uniform in the ring: never the authors' fixed r = 1, and spread over all bits.
    assert!(r.iter().all(|&v| v > 1));
    let ones: u32 = r.iter().map(|v| v.count_ones()).sum();
    let mean = f64::from(ones) / n as f64;
    assert!((mean - 32.0).abs() < 2.0, "mean popcount {mean}");
    let mut sorted = r.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), n);
    // Two OS-seeded dealers give different r.
    let need = Need::Powers { n: 4, degree: 2 };
    let r_of = || {
        let (mut d0, mut d1) = TrustedDealer::pair();
        add(
            &d0.generate(&need).unwrap()[..4],
            &d1.generate(&need).unwrap()[..4],
        )
    };
    assert_ne!(r_of(), r_of());
}

#[test]
fn binary_correlations_hold() {
    let n = 64;
    let (p, q) = both(&Need::CrossAnd { n });
    let c = xor(&p[n..], &q[n..]);
    for i in 0..n {
        assert_eq!(c[i], p[i] & q[i]);
    }
    for shift in [1, 2, 4, 8, 16, 32] {
        let (p, q) = both(&Need::PrefixAnd { n, shift });
        let a = xor(&p[..n], &q[..n]);
        let b = xor(&p[n..2 * n], &q[n..2 * n]);
        let aa = xor(&p[2 * n..3 * n], &q[2 * n..3 * n]);
        let ab = xor(&p[3 * n..], &q[3 * n..]);
        for i in 0..n {
            assert_eq!(aa[i], a[i] & (a[i] << shift));
            assert_eq!(ab[i], a[i] & (b[i] << shift));
        }
    }
    let (p, q) = both(&Need::Bit { n });
    let r: Vec<u64> = xor(&p[..n], &q[..n]).iter().map(|v| v & 1).collect();
    assert_eq!(add(&p[n..], &q[n..]), r);
    assert!(r.contains(&0) && r.contains(&1));
    let (p, q) = both(&Need::BitProduct { n });
    let r: Vec<u64> = xor(&p[..n], &q[..n]).iter().map(|v| v & 1).collect();
    let a = add(&p[n..2 * n], &q[n..2 * n]);
    assert_eq!(add(&p[2 * n..3 * n], &q[2 * n..3 * n]), r);
    assert_eq!(add(&p[3 * n..], &q[3 * n..]), mul(&a, &r));
}

#[test]
fn the_server_never_hears_from_the_dealer_and_the_client_only_corrections() {
    // Party 0's share is its seed's stream; party 1's seeded prefix likewise; only the
    // suffix comes from the dealer.
    for need in [
        Need::Beaver { n: 5 },
        Need::Powers { n: 5, degree: 4 },
        Need::PrefixAnd { n: 5, shift: 4 },
    ] {
        assert!(need.correction_words() < need.words());
        assert_eq!(need.seeded_words() + need.correction_words(), need.words());
    }
    assert_eq!(Need::Beaver { n: 5 }.correction_words(), 5);
    assert_eq!(Need::Powers { n: 5, degree: 4 }.correction_words(), 15);
}

#[test]
fn prefetched_correlations_must_match_the_protocol() {
    let x = RingTensor::from_vec(vec![1, 2, 3]);
    // Prefetching the right needs serves the product from the queue.
    let [used, _] = Local::seeded(3)
        .run(|s| {
            let a = input(s, Party::Client, &x)?;
            s.prefetch(&beaver::mul_needs(3))?;
            assert_eq!(s.prefetched(), 1);
            beaver::mul(s, &a, &a)?;
            Ok(s.prefetched())
        })
        .unwrap();
    assert_eq!(used, 0);
    // A plan that prefetched something else is caught before any communication.
    let err = Local::seeded(3)
        .run(|s| {
            let a = input(s, Party::Client, &x)?;
            s.prefetch(&beaver::square_needs(3))?;
            beaver::mul(s, &a, &a)
        })
        .unwrap_err();
    assert!(matches!(err, MpcError::Dealer(_)), "{err}");
    assert!(err.to_string().contains("prefetched plan"), "{err}");
}

/// Every masked triple is taken against the mask the server told its dealer; a triple naming
/// a mask the server does not have, or of the wrong size, is refused, and so is any before the
/// server told its masks.
#[test]
fn masked_triples_use_the_servers_weight_masks() {
    let g = ConvGeometry {
        batch: 2,
        in_channels: 2,
        height: 5,
        width: 5,
        out_channels: 3,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 0,
    };
    let (mut d0, mut d1) = TrustedDealer::pair_from_seed(5);
    let draw = |need: &Need, d0: &mut dyn Dealer, d1: &mut dyn Dealer| {
        (d0.generate(need).unwrap(), d1.generate(need).unwrap())
    };
    let told = Need::MaskedMatmul {
        m: 1,
        k: 3,
        n: 1,
        mask: 1,
    };
    d0.generate(&told).unwrap();
    let e = d1.generate(&told).unwrap_err();
    assert!(e.to_string().contains("told the dealer 0"), "{e}");
    let masks = Arc::new(WeightMasks::from_seed(5, vec![g.weight_len(), 3]));
    d0.weight_masks(&masks).unwrap();
    let (w, scale) = (masks.words(0).unwrap(), masks.words(1).unwrap());
    for _ in 0..2 {
        let (p, q) = draw(
            &Need::MaskedConv2d {
                geometry: g,
                mask: 0,
            },
            &mut d0,
            &mut d1,
        );
        let xi = g.input_len();
        let x = add(&p[..xi], &q[..xi]);
        assert_eq!(add(&p[xi..], &q[xi..]), conv2d(&g, &x, &w));
    }
    let (p, q) = draw(
        &Need::MaskedScale {
            n: 12,
            channels: 3,
            inner: 2,
            mask: 1,
        },
        &mut d0,
        &mut d1,
    );
    let a = add(&p[..12], &q[..12]);
    let c = add(&p[12..], &q[12..]);
    for i in 0..12 {
        assert_eq!(c[i], a[i].wrapping_mul(scale[(i / 2) % 3]), "{i}");
    }
    let (k, n) = (3, 1);
    let (p, q) = draw(
        &Need::MaskedMatmul {
            m: 4,
            k,
            n,
            mask: 1,
        },
        &mut d0,
        &mut d1,
    );
    let a = add(&p[..4 * k], &q[..4 * k]);
    assert_eq!(add(&p[4 * k..], &q[4 * k..]), matmul(4, k, n, &a, &scale));
    // Mask 2 was never drawn; mask 1 has 3 elements, not 6.
    d0.generate(&Need::MaskedMatmul {
        m: 1,
        k: 3,
        n: 1,
        mask: 2,
    })
    .unwrap();
    assert!(
        d1.generate(&Need::MaskedMatmul {
            m: 1,
            k: 3,
            n: 1,
            mask: 2
        })
        .is_err()
    );
    // Telling other masks is refused; the same ones again are not.
    d0.weight_masks(&masks).unwrap();
    let other = Arc::new(WeightMasks::from_seed(6, vec![g.weight_len(), 3]));
    assert!(d0.weight_masks(&other).is_err());
    let (mut d0, mut d1) = TrustedDealer::pair_from_seed(6);
    d0.weight_masks(&Arc::new(WeightMasks::from_seed(6, vec![3])))
        .unwrap();
    let wrong = Need::MaskedMatmul {
        m: 1,
        k: 3,
        n: 2,
        mask: 0,
    };
    let e = d1.generate(&wrong).unwrap_err();
    assert!(e.to_string().contains("6 elements"), "{e}");
}

/// A broken dealer whose every share is one word short.
struct ShortDealer;

impl Dealer for ShortDealer {
    fn party(&self) -> Party {
        Party::Server
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        Ok(vec![0; need.words() - 1])
    }

    fn weight_masks(&mut self, _: &Arc<WeightMasks>) -> Result<(), DealerError> {
        Ok(())
    }
}

#[test]
fn a_share_of_the_wrong_length_is_an_error_not_a_panic() {
    let (channel, _peer) = memory_pair(std::time::Duration::from_secs(1));
    let mut s = Session::new(Party::Server, FixedPoint::default(), channel, ShortDealer).unwrap();
    let x = Share::new(RingTensor::from_vec(vec![1, 2, 3]));
    let e = beaver::mul_raw(&mut s, &x, &x).unwrap_err();
    assert!(
        matches!(
            e,
            MpcError::Dealer(DealerError::Correction {
                expected: 9,
                got: 8,
                ..
            })
        ),
        "{e}"
    );
}

/// A geometry with every dimension at the per-dimension limit (2^16) where that keeps the
/// output small: its input has 2^64 elements, which wrap to 0 in an unchecked product.
fn overflowing_geometry() -> ConvGeometry {
    ConvGeometry {
        batch: 1 << 16,
        in_channels: 1 << 16,
        height: 1 << 16,
        width: 1 << 16,
        out_channels: 1,
        kernel_h: 1,
        kernel_w: 1,
        stride: 1 << 16,
        padding: 0,
    }
}

/// Asserts that the dealer refuses `need` as the client's dealer would serve it (the check,
/// then the correction), with an error naming `what`.
fn assert_refused(d1: &mut dyn Dealer, need: Need, what: &str) {
    let e = d1.generate(&need).map(|_| ()).unwrap_err();
    assert!(matches!(e, DealerError::Need { .. }), "{need:?}: {e}");
    assert!(e.to_string().contains(what), "{need:?}: {e}");
}

#[test]
fn degenerate_needs_are_refused_never_panic() {
    let (mut d0, mut d1) = TrustedDealer::pair_from_seed(8);
    // Empty sizes: nothing a protocol asks for, and each has panicked some correction
    // (powers of degree 0, a per-channel product against an empty mask).
    for need in [
        Need::Beaver { n: 0 },
        Need::Powers { n: 3, degree: 0 },
        Need::Powers { n: 0, degree: 4 },
        Need::FanOut { k: 0, n: 3 },
        Need::Matmul { m: 2, k: 0, n: 2 },
        Need::MaskedScale {
            n: 4,
            channels: 0,
            inner: 2,
            mask: 0,
        },
        Need::MaskedScale {
            n: 4,
            channels: 2,
            inner: 0,
            mask: 0,
        },
        Need::Conv2d(ConvGeometry {
            in_channels: 0,
            ..small_geometry()
        }),
        Need::Conv2d(ConvGeometry {
            batch: 0,
            ..small_geometry()
        }),
        Need::MaskedConv2d {
            geometry: ConvGeometry {
                out_channels: 0,
                ..small_geometry()
            },
            mask: 0,
        },
        Need::PreprocessedConv2d {
            geometry: ConvGeometry {
                out_channels: 0,
                ..small_geometry()
            },
            mask: 0,
        },
        Need::PreprocessedMatmul {
            m: 0,
            k: 2,
            n: 2,
            mask: 0,
        },
        Need::PreprocessedScale {
            n: 4,
            channels: 0,
            inner: 2,
            mask: 0,
        },
    ] {
        assert_refused(&mut d1, need, "empty");
    }
    // A degree beyond the protocols' is refused before anything is sized.
    assert_refused(
        &mut d1,
        Need::Powers {
            n: 1,
            degree: 1 << 28,
        },
        "degree",
    );
    // Products of dimensions that overflow a word: 2^64 input elements passed the check as
    // 0 and the correction sliced beyond its buffers.
    for need in [
        Need::Conv2d(overflowing_geometry()),
        Need::MaskedConv2d {
            geometry: overflowing_geometry(),
            mask: 0,
        },
        Need::PreprocessedConv2d {
            geometry: overflowing_geometry(),
            mask: 0,
        },
    ] {
        assert_refused(&mut d1, need, "overflow");
    }
    // Masked products against a mask that does not exist, or of another size.
    d0.weight_masks(&Arc::new(WeightMasks::from_seed(8, vec![3])))
        .unwrap();
    for (need, what) in [
        (
            Need::MaskedScale {
                n: 4,
                channels: 2,
                inner: 2,
                mask: 0,
            },
            "a weight mask of 2 elements; mask 0 has 3",
        ),
        (
            Need::MaskedScale {
                n: 4,
                channels: 3,
                inner: 2,
                mask: 1,
            },
            "mask 1",
        ),
        (
            Need::MaskedConv2d {
                geometry: small_geometry(),
                mask: 0,
            },
            "mask 0 has 3",
        ),
        (
            Need::MaskedConv2d {
                geometry: small_geometry(),
                mask: 7,
            },
            "mask 7",
        ),
        (
            Need::PreprocessedConv2d {
                geometry: small_geometry(),
                mask: 0,
            },
            "mask 0 has 3",
        ),
        (
            Need::PreprocessedMatmul {
                m: 2,
                k: 2,
                n: 2,
                mask: 0,
            },
            "mask 0 has 3",
        ),
        (
            Need::PreprocessedScale {
                n: 4,
                channels: 2,
                inner: 2,
                mask: 0,
            },
            "a weight mask of 2 elements; mask 0 has 3",
        ),
        (
            Need::PreprocessedScale {
                n: 4,
                channels: 3,
                inner: 2,
                mask: 1,
            },
            "mask 1",
        ),
    ] {
        assert_refused(&mut d1, need, what);
    }
}

/// A valid convolution of one 2x4x4 image to 3 channels by 3x3 kernels.
fn small_geometry() -> ConvGeometry {
    ConvGeometry {
        batch: 1,
        in_channels: 2,
        height: 4,
        width: 4,
        out_channels: 3,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    }
}
