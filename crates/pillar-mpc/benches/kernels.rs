//! The wrapping u64 matrix product and convolution against an f64 GEMM of the same shape
//! (matrixmultiply, the BLAS-like kernel behind ndarray). Throughput is in multiply-adds per
//! second ("elem/s" below is Gop/s when prefixed G).
//!
//! `cargo bench -p pillar-mpc --bench kernels`
//!
//! With mimalloc, the allocator of the `pillar` binary: with the system allocator every call's
//! fresh megabyte buffers are page-faulted in again and that, not arithmetic, dominates.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pillar_mpc::kernels::{ConvGeometry, conv2d, matmul};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Uniform ring words from a fixed seed (a benchmark's data need not be secret).
fn words(n: usize, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.next_u64()).collect()
}

fn dgemm(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    #[allow(unsafe_code)]
    // SAFETY: a is m x k, b is k x n and c is m x n, all row-major with the strides given.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20);
    // Square products, and the im2col shape of a ResNet 3x3 convolution with 64 channels on
    // 32x32 maps (64 x 576 times 576 x 1024).
    for &(m, k, n) in &[(128, 128, 128), (512, 512, 512), (64, 576, 1024)] {
        group.throughput(Throughput::Elements((m * k * n) as u64));
        let id = format!("{m}x{k}x{n}");
        let (a, b) = (words(m * k, 1), words(k * n, 2));
        group.bench_with_input(BenchmarkId::new("u64", &id), &(), |bench, _| {
            bench.iter(|| matmul(m, k, n, black_box(&a), black_box(&b)))
        });
        let af: Vec<f64> = a.iter().map(|&v| (v >> 40) as f64).collect();
        let bf: Vec<f64> = b.iter().map(|&v| (v >> 40) as f64).collect();
        let mut cf = vec![0.0; m * n];
        group.bench_with_input(BenchmarkId::new("f64", &id), &(), |bench, _| {
            bench.iter(|| dgemm(m, k, n, black_box(&af), black_box(&bf), &mut cf))
        });
    }
    group.finish();
}

fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    let g = ConvGeometry {
        batch: 1,
        in_channels: 64,
        height: 32,
        width: 32,
        out_channels: 64,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    };
    let macs = g.output_len() * g.in_channels * g.kernel_h * g.kernel_w;
    group.throughput(Throughput::Elements(macs as u64));
    let (x, w) = (words(g.input_len(), 3), words(g.weight_len(), 4));
    group.bench_function("u64 64ch 32x32 3x3", |bench| {
        bench.iter(|| conv2d(&g, black_box(&x), black_box(&w)))
    });
    group.finish();
}

criterion_group!(benches, gemm, conv);
criterion_main!(benches);
