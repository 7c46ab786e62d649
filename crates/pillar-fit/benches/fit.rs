//! Speed of the exact fit. The target: the d = 4 fit well under 100 ms.
//!
//! Run with `cargo bench -p pillar-fit`.

use criterion::{Criterion, criterion_group, criterion_main};
use pillar_fit::{FitSpec, Method, Target, fit};
use std::hint::black_box;

fn exact_fits(c: &mut Criterion) {
    let mut group = c.benchmark_group("exact_fit");
    for (degree, bits) in [(2, 10), (4, 10), (4, 12), (6, 10), (8, 10)] {
        let spec = FitSpec::new(Target::Relu, degree, 5.0, bits).expect("valid spec");
        group.bench_function(format!("relu_d{degree}_r5_p{bits}"), |b| {
            b.iter(|| fit(black_box(&spec), Method::Exact).expect("fit"))
        });
    }
    group.finish();
    let spec = FitSpec::new(Target::Relu, 4, 5.0, 10).expect("valid spec");
    c.bench_function("float_fit/relu_d4_r5", |b| {
        b.iter(|| fit(black_box(&spec), Method::Float).expect("fit"))
    });
}

criterion_group!(benches, exact_fits);
criterion_main!(benches);
