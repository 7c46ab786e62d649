//! `C = A B` over Z_2^64, row-major.

use rayon::prelude::*;

/// Columns of `B` and `C` kept hot in L1 per pass (8 KiB of `C` row).
const NC: usize = 1024;
/// Rows of `B` per pass: a `KC x NC` panel of `B` (2 MiB) stays in L2.
const KC: usize = 256;
/// Rows of `C` per parallel task.
const MR: usize = 4;
/// Below this many multiply-adds the rayon split costs more than it saves.
const PARALLEL_WORK: usize = 1 << 16;

/// The wrapping product of the `m x k` matrix `a` and the `k x n` matrix `b`, as an `m x n`
/// matrix. Panics only if the slice lengths disagree with the dimensions (a caller bug; the
/// protocols check shapes first).
pub fn matmul(m: usize, k: usize, n: usize, a: &[u64], b: &[u64]) -> Vec<u64> {
    assert_eq!(a.len(), m * k, "matmul: a is not {m} x {k}");
    assert_eq!(b.len(), k * n, "matmul: b is not {k} x {n}");
    let mut c = vec![0u64; m * n];
    if n == 0 || m == 0 {
        return c;
    }
    let block = |(bi, c_rows): (usize, &mut [u64])| {
        let row0 = bi * MR;
        let rows = c_rows.len() / n;
        rows_times_b(&a[row0 * k..(row0 + rows) * k], k, n, b, c_rows);
    };
    if m * k * n >= PARALLEL_WORK {
        c.par_chunks_mut(MR * n).enumerate().for_each(block);
    } else {
        c.chunks_mut(MR * n).enumerate().for_each(block);
    }
    c
}

/// `c_rows += a_rows * b` for a few rows, blocked so that the touched part of `b` and `c`
/// stays in cache.
fn rows_times_b(a_rows: &[u64], k: usize, n: usize, b: &[u64], c_rows: &mut [u64]) {
    let rows = c_rows.len() / n;
    for jc in (0..n).step_by(NC) {
        let jn = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let pk = KC.min(k - pc);
            for i in 0..rows {
                let c_row = &mut c_rows[i * n + jc..i * n + jc + jn];
                let a_row = &a_rows[i * k + pc..i * k + pc + pk];
                for (p, &aip) in a_row.iter().enumerate() {
                    let b_row = &b[(pc + p) * n + jc..(pc + p) * n + jc + jn];
                    axpy(aip, b_row, c_row);
                }
            }
        }
    }
}

/// `y += alpha * x`, wrapping: the innermost loop.
#[inline]
fn axpy(alpha: u64, x: &[u64], y: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        avx512::axpy(alpha, x, y);
        return;
    }
    axpy_portable(alpha, x, y);
}

#[inline(always)]
fn axpy_portable(alpha: u64, x: &[u64], y: &mut [u64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = y.wrapping_add(alpha.wrapping_mul(x));
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::sync::OnceLock;

    pub(super) fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
        })
    }

    /// The portable loop compiled for AVX-512DQ, whose `vpmullq` multiplies eight 64-bit
    /// lanes at once (without it the compiler emulates the product with 32-bit multiplies).
    #[target_feature(enable = "avx512f,avx512dq")]
    fn axpy_avx512(alpha: u64, x: &[u64], y: &mut [u64]) {
        super::axpy_portable(alpha, x, y);
    }

    pub(super) fn axpy(alpha: u64, x: &[u64], y: &mut [u64]) {
        // SAFETY: `available()` checked at run time that this CPU has AVX-512F and DQ, the
        // only requirement of `axpy_avx512`; the function itself is safe Rust.
        #[allow(unsafe_code)]
        unsafe {
            axpy_avx512(alpha, x, y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut c = vec![0u64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0u64;
                for p in 0..k {
                    s = s.wrapping_add(a[i * k + p].wrapping_mul(b[p * n + j]));
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    fn words(n: usize, seed: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect()
    }

    #[test]
    fn matches_the_naive_product_across_block_edges() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (5, 300, 9),
            (9, 257, 1030),
            (17, 3, 2049),
            (0, 4, 4),
            (4, 0, 4),
        ] {
            let a = words(m * k, 1 + m as u64);
            let b = words(k * n, 7 + n as u64);
            assert_eq!(
                matmul(m, k, n, &a, &b),
                naive(m, k, n, &a, &b),
                "{m}x{k}x{n}"
            );
        }
    }
}
