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
    // (name, in channels, side, out channels, kernel, stride, padding): a ResNet block on
    // CIFAR maps, and ResNet-50's convolutions on ImageNet (its stem, the 1x1 and 3x3 of its
    // first and last stages), whose shapes range from long and thin to short and wide.
    for &(name, ci, hw, co, k, stride, padding) in &[
        ("64ch 32x32 3x3", 64, 32, 64, 3, 1, 1),
        ("r50 stem 7x7/2 224", 3, 224, 64, 7, 2, 3),
        ("r50 1x1 256-64 56", 256, 56, 64, 1, 1, 0),
        ("r50 3x3 64-64 56", 64, 56, 64, 3, 1, 1),
        ("r50 1x1 64-256 56", 64, 56, 256, 1, 1, 0),
        ("r50 3x3 512-512 7", 512, 7, 512, 3, 1, 1),
        ("r50 1x1 512-2048 7", 512, 7, 2048, 1, 1, 0),
    ] {
        let g = ConvGeometry {
            batch: 1,
            in_channels: ci,
            height: hw,
            width: hw,
            out_channels: co,
            kernel_h: k,
            kernel_w: k,
            stride,
            padding,
        };
        let macs = g.output_len() * g.in_channels * g.kernel_h * g.kernel_w;
        group.throughput(Throughput::Elements(macs as u64));
        let (x, w) = (words(g.input_len(), 3), words(g.weight_len(), 4));
        group.bench_function(format!("u64 {name}"), |bench| {
            bench.iter(|| conv2d(&g, black_box(&x), black_box(&w)))
        });
    }
    group.finish();
}

criterion_group!(benches, gemm, conv);
criterion_main!(benches);
