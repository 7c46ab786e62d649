//! What each polynomial protocol computes, in plain integers: the same pre-scalings, products
//! and truncations on the encoded input, done exactly with floor truncations, and a bound on
//! how far a secure run may land from that value, since every local share truncation may come
//! out one unit high.
//!
//! Written in `i128` arithmetic with no shares and none of the protocols' code, so it is an
//! independent check: the protocol tests compare secure runs against it, and the fixed-point
//! executor's tests compare its polynomial layers against it.

use pillar_fit::budget::prescale;

use crate::ring::FixedPoint;

/// A protocol's result on one input at scale `2^f`: `value` with floor truncations, and the
/// largest distance `tolerance` (in units in the last place) a secure run may have from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Approx {
    /// The exact integer result.
    pub value: i128,
    /// The bound on `|secure - value|`.
    pub tolerance: f64,
}

/// Rescales an integer at `from` fractional bits to `to` bits (floor when shrinking).
pub fn rescale(v: i128, from: u32, to: u32) -> i128 {
    if from >= to {
        v >> (from - to)
    } else {
        v << (to - from)
    }
}

/// `x^k` from the input pre-scaled down by `2^shift`: `y = x >> shift` raised exactly, then
/// rescaled to `f` bits. A secure `y` may be one unit high, which moves `y^k` by
/// `(|y| + 1)^k - |y|^k` before rescaling; the final truncation adds its own units.
fn prescaled_power(x: i64, k: u32, shift: u32, f: u32) -> Approx {
    let y = i128::from(x >> shift);
    let scale = k * (f - shift);
    let ya = y.unsigned_abs() as f64;
    let spread =
        ((ya + 1.0).powi(k as i32) - ya.powi(k as i32)) * (f64::from(f) - f64::from(scale)).exp2();
    Approx {
        value: rescale(y.pow(k), scale, f),
        tolerance: spread + 2.0,
    }
}

/// `a * b / 2^f`, the bound propagated to first and second order.
fn product(a: Approx, b: Approx, f: u32) -> Approx {
    Approx {
        value: (a.value * b.value) >> f,
        tolerance: ((a.value as f64).abs() * b.tolerance
            + (b.value as f64).abs() * a.tolerance
            + a.tolerance * b.tolerance)
            / f64::from(f).exp2()
            + 2.0,
    }
}

/// `c_0 + c_1 x + sum_k c_k x^k` from the powers `x^2..x^d`: products at scale `2^(2f)`,
/// summed, truncated once.
fn combine(fp: FixedPoint, x: i64, powers: &[Approx], coefficients: &[f64]) -> Approx {
    let f = fp.frac_bits();
    let enc: Vec<i64> = coefficients.iter().map(|&c| fp.encode(c) as i64).collect();
    let mut acc = i128::from(x) * i128::from(enc.get(1).copied().unwrap_or(0));
    let mut tolerance = 0.0;
    for (k, p) in powers.iter().enumerate() {
        acc += p.value * i128::from(enc[k + 2]);
        tolerance += p.tolerance * enc[k + 2].unsigned_abs() as f64;
    }
    Approx {
        value: (acc >> f) + i128::from(enc.first().copied().unwrap_or(0)),
        tolerance: tolerance / fp.scale() + 2.0,
    }
}

fn degree(coefficients: &[f64]) -> u32 {
    coefficients.len().saturating_sub(1) as u32
}

/// ESPN: each power `x^k` from the input pre-scaled by its own `prescale(k, f)`.
pub fn espn(fp: FixedPoint, x: i64, coefficients: &[f64]) -> Approx {
    let f = fp.frac_bits();
    let powers: Vec<Approx> = (2..=degree(coefficients))
        .map(|k| prescaled_power(x, k, prescale(k, f), f))
        .collect();
    combine(fp, x, &powers, coefficients)
}

/// HoneyBadger: every power from the input pre-scaled once, by the top degree's shift.
pub fn honeybadger(fp: FixedPoint, x: i64, coefficients: &[f64]) -> Approx {
    let f = fp.frac_bits();
    let d = degree(coefficients);
    let powers: Vec<Approx> = (2..=d)
        .map(|k| prescaled_power(x, k, prescale(d, f), f))
        .collect();
    combine(fp, x, &powers, coefficients)
}

/// CrypTen: square-and-multiply, each round multiplying the known powers by the highest one.
pub fn crypten(fp: FixedPoint, x: i64, coefficients: &[f64]) -> Approx {
    let f = fp.frac_bits();
    let d = degree(coefficients) as usize;
    let mut all = vec![Approx {
        value: i128::from(x),
        tolerance: 0.0,
    }];
    while all.len() < d {
        let m = all.len();
        let base = all[m - 1];
        for j in 0..(2 * m).min(d) - m {
            all.push(product(all[j], base, f));
        }
    }
    combine(fp, x, all.get(1..).unwrap_or(&[]), coefficients)
}
