//! The exact fit against the numbers restored in FACTS.md section 1.

#![allow(clippy::unwrap_used)]

use pillar_fit::{FitSpec, Method, Target, fit};

fn exact(degree: usize, bits: u32) -> Vec<i64> {
    let spec = FitSpec::new(Target::Relu, degree, 5.0, bits).unwrap();
    fit(&spec, Method::Exact)
        .unwrap()
        .integers()
        .unwrap()
        .to_vec()
}

#[test]
fn reproduces_the_papers_tables() {
    assert_eq!(exact(4, 10), [322, 512, 160, 0, -3]);
    assert_eq!(exact(4, 8), [70, 128, 45, 0, -1]);
    assert_eq!(exact(4, 12), [1220, 2048, 663, 0, -13]);
    assert_eq!(exact(2, 10), [479, 512, 96]);
    assert_eq!(exact(3, 10), [479, 512, 96, 0]);
}

#[test]
fn degrees_five_and_six_collapse_to_degree_four_at_ten_bits() {
    assert_eq!(exact(5, 10), [322, 512, 160, 0, -3, 0]);
    // The authors' GEKKO solver returned c0 = 324/1024 here; the optimum is 322.
    assert_eq!(exact(6, 10), [322, 512, 160, 0, -3, 0, 0]);
}

#[test]
fn quality_of_the_pillar_polynomial() {
    let spec = FitSpec::new(Target::Relu, 4, 5.0, 10).unwrap();
    let f = fit(&spec, Method::Exact).unwrap();
    let p = f.polynomial();
    assert_eq!(
        p.coefficients,
        [0.314453125, 0.5, 0.15625, 0.0, -0.0029296875]
    );
    // The constant the rest of the workspace uses is this fit.
    assert_eq!(p.coefficients, pillar_fit::PAPER_RELU);
    let q = p.quality(Target::Relu, spec.grid());
    assert!((q.max_error - 0.3145).abs() < 1e-4, "{q:?}");
    assert_eq!(q.max_error_at, 0.0);
    assert!((q.mean_error - 0.072).abs() < 5e-4, "{q:?}");
    let at = |x: f64| p.eval(x);
    assert!((at(5.0) - 4.8896).abs() < 1e-4);
    assert!((at(-5.0) + 0.1104).abs() < 1e-4);
    assert!((at(10.0) + 8.36).abs() < 1e-2);
    assert!((at(-10.0) + 18.36).abs() < 1e-2);
}

#[test]
fn float_fit_matches_polyfit() {
    let spec = FitSpec::new(Target::Relu, 4, 5.0, 10).unwrap();
    let f = fit(&spec, Method::Float).unwrap();
    let c = &f.polynomial().coefficients;
    let want = [0.29326, 0.5, 0.16390, 0.0, -0.0032714];
    for (got, want) in c.iter().zip(want) {
        assert!((got - want).abs() < 1e-5, "{c:?}");
    }
    assert!(f.integers().is_none());
}
