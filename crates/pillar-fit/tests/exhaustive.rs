//! The exact fit is optimal: checked against brute force over every integer point of a box.
//!
//! Two kinds of boxes: the whole coefficient box `[-2^(P-1), 2^(P-1)]^(d+1)` for small `P`
//! (a complete proof for those problems), and for realistic `P` a box around the rounded float
//! least-squares fit stretched to also contain the solver's answer, so that the brute force
//! sees both the naive candidate and its neighbourhood.

#![allow(clippy::unwrap_used)]

use num_bigint::BigInt;
use pillar_fit::exact::{self, Objective};
use pillar_fit::{FitError, FitSpec, Method, Target, fit};
use proptest::prelude::*;

/// The best point of the box `[lo, hi]` (inclusive, per coordinate) and its exact objective.
fn brute_force(objective: &Objective, lo: &[i64], hi: &[i64]) -> (BigInt, Vec<i64>) {
    let mut point = lo.to_vec();
    let mut best = (objective.scaled(&point), point.clone());
    loop {
        // Odometer increment.
        let mut j = 0;
        loop {
            if j == point.len() {
                return best;
            }
            if point[j] < hi[j] {
                point[j] += 1;
                break;
            }
            point[j] = lo[j];
            j += 1;
        }
        let value = objective.scaled(&point);
        if value < best.0 {
            best = (value, point.clone());
        }
    }
}

fn box_volume(lo: &[i64], hi: &[i64]) -> u64 {
    lo.iter().zip(hi).map(|(l, h)| (h - l + 1) as u64).product()
}

fn assert_optimal_in(spec: &FitSpec, lo: &[i64], hi: &[i64]) {
    let objective = Objective::new(spec);
    let solved = fit(spec, Method::Exact).unwrap();
    let solved = solved.integers().unwrap();
    let (best_value, best) = brute_force(&objective, lo, hi);
    let solved_value = objective.scaled(solved);
    assert!(
        solved_value <= best_value,
        "{spec:?}: brute force found {best:?} ({best_value}) better than {solved:?} \
         ({solved_value})"
    );
    let inside = solved
        .iter()
        .zip(lo.iter().zip(hi))
        .all(|(a, (l, h))| l <= a && a <= h);
    if inside {
        assert_eq!(solved_value, best_value, "{spec:?}");
    }
}

fn whole_box(spec: &FitSpec) -> (Vec<i64>, Vec<i64>) {
    let b = 1i64 << (spec.bits() - 1);
    (vec![-b; spec.degree() + 1], vec![b; spec.degree() + 1])
}

/// A box containing the rounded float fit and the solver's answer, one step beyond each,
/// clipped to the coefficient box.
fn spanning_box(spec: &FitSpec) -> (Vec<i64>, Vec<i64>) {
    let b = 1i64 << (spec.bits() - 1);
    let scale = f64::from(spec.bits()).exp2();
    let float = fit(spec, Method::Float).unwrap();
    let exact = fit(spec, Method::Exact).unwrap();
    let rounded = float
        .polynomial()
        .coefficients
        .iter()
        .map(|c| ((c * scale).round() as i64).clamp(-b, b));
    rounded
        .zip(exact.integers().unwrap())
        .map(|(r, &e)| ((r.min(e) - 1).max(-b), (r.max(e) + 1).min(b)))
        .unzip()
}

#[test]
fn optimal_over_the_whole_box_for_small_bits() {
    for target in Target::ALL {
        for degree in 1..=4 {
            for range in [0.5, 2.0, 5.0] {
                let bits = if degree <= 3 { 3 } else { 2 };
                let spec = FitSpec::new(target, degree, range, bits).unwrap();
                let (lo, hi) = whole_box(&spec);
                assert_optimal_in(&spec, &lo, &hi);
            }
        }
    }
}

#[test]
fn optimal_around_the_rounded_float_fit_for_the_papers_cases() {
    for (degree, bits) in [(2, 10), (3, 10), (4, 8), (4, 10), (4, 12), (5, 10)] {
        let spec = FitSpec::new(Target::Relu, degree, 5.0, bits).unwrap();
        let (lo, hi) = spanning_box(&spec);
        assert!(box_volume(&lo, &hi) < 2_000_000, "{lo:?} {hi:?}");
        assert_optimal_in(&spec, &lo, &hi);
    }
}

#[test]
fn no_neighbour_is_better_up_to_degree_eight() {
    for target in Target::ALL {
        for degree in 6..=8 {
            let spec = FitSpec::new(target, degree, 5.0, 10).unwrap();
            let solved = fit(&spec, Method::Exact)
                .unwrap()
                .integers()
                .unwrap()
                .to_vec();
            let lo: Vec<i64> = solved.iter().map(|a| a - 1).collect();
            let hi: Vec<i64> = solved.iter().map(|a| a + 1).collect();
            assert_optimal_in(&spec, &lo, &hi);
        }
    }
}

/// The optimum's +-1 neighbourhood, clipped to the coefficient box.
fn neighbourhood(spec: &FitSpec, solved: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let b = 1i64 << (spec.bits() - 1);
    solved
        .iter()
        .map(|a| ((a - 1).max(-b), (a + 1).min(b)))
        .unzip()
}

#[test]
fn gives_up_cleanly_instead_of_running_for_hours() {
    // On [-0.1, 0.1] the powers x^2..x^6 are nearly collinear and pinned at the bound.
    let spec = FitSpec::new(Target::Relu, 6, 0.1, 5).unwrap();
    let err = exact::solve_within(&spec, 1_000_000).unwrap_err();
    assert_eq!(err, FitError::SearchTooLarge { nodes: 1_000_000 });
    assert!(err.to_string().contains("widen the range"), "{err}");
    // With the default budget it finishes, and nothing near it is better.
    let solved = exact::solve(&spec).unwrap().integers;
    let (lo, hi) = neighbourhood(&spec, &solved);
    assert_optimal_in(&spec, &lo, &hi);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random targets, degrees, precisions and realistic ranges (where `|c_j| <= 1/2` can
    /// follow the target): optimal over the spanning box when it is small enough to enumerate,
    /// otherwise over the solver's +-1 neighbourhood.
    #[test]
    fn optimal_on_random_problems(
        target in prop::sample::select(Target::ALL.to_vec()),
        degree in 1usize..=8,
        range_steps in 200i64..=1000,
        bits in 2u32..=14,
    ) {
        let range = range_steps as f64 / 100.0;
        let spec = FitSpec::new(target, degree, range, bits).unwrap();
        let (mut lo, mut hi) = spanning_box(&spec);
        if box_volume(&lo, &hi) > 200_000 {
            let solved = fit(&spec, Method::Exact).unwrap().integers().unwrap().to_vec();
            (lo, hi) = neighbourhood(&spec, &solved);
        }
        assert_optimal_in(&spec, &lo, &hi);
    }

    /// Small ranges, where the box binds: the answer is optimal, or the search says it gave
    /// up; never a wrong answer.
    #[test]
    fn small_ranges_are_optimal_or_refused(
        target in prop::sample::select(Target::ALL.to_vec()),
        degree in 1usize..=8,
        range_steps in 10i64..200,
        bits in 2u32..=12,
    ) {
        let spec = FitSpec::new(target, degree, range_steps as f64 / 100.0, bits).unwrap();
        match exact::solve_within(&spec, 5_000_000) {
            Ok(solution) => {
                let (lo, hi) = neighbourhood(&spec, &solution.integers);
                assert_optimal_in(&spec, &lo, &hi);
            }
            Err(err) => prop_assert!(matches!(err, FitError::SearchTooLarge { .. }), "{err}"),
        }
    }
}
