//! `C = A B` over Z_2^64, row-major.

use rayon::prelude::*;

/// Columns of `B` and `C` kept hot in L1 per pass (8 KiB of `C` row), on the row-by-row path.
const NC: usize = 1024;
/// Rows of `B` per pass: a `KC x NC` panel of `B` (2 MiB) stays in L2.
const KC: usize = 256;
/// Rows of `C` per register tile (and per parallel task).
const MR: usize = 4;
/// Columns of `C` per register tile: with `MR` rows, 64 accumulators, eight AVX-512 registers.
const NR: usize = 16;
/// Below this many multiply-adds the rayon split costs more than it saves.
const PARALLEL_WORK: usize = 1 << 16;

/// The wrapping product of the `m x k` matrix `a` and the `k x n` matrix `b`, as an `m x n`
/// matrix. Panics only if the slice lengths disagree with the dimensions (a caller bug; the
/// protocols check shapes first).
///
/// With enough rows, `b` is packed into column panels of `NR` and each `MR x NR` tile of `C`
/// is accumulated in registers over the whole inner dimension, so that every loaded word of
/// `b` serves `MR` multiply-adds. With few rows (a matrix-vector product, a batch-1 linear
/// layer) packing would cost as much as the product, and rows of `C` are updated in place.
pub fn matmul(m: usize, k: usize, n: usize, a: &[u64], b: &[u64]) -> Vec<u64> {
    assert_eq!(a.len(), m * k, "matmul: a is not {m} x {k}");
    assert_eq!(b.len(), k * n, "matmul: b is not {k} x {n}");
    let mut c = vec![0u64; m * n];
    if n == 0 || m == 0 || k == 0 {
        return c;
    }
    let parallel = m * k * n >= PARALLEL_WORK;
    if m >= 2 * MR && n >= NR {
        tiled(k, n, a, b, &mut c, parallel);
        return c;
    }
    let block = |(bi, c_rows): (usize, &mut [u64])| {
        let row0 = bi * MR;
        let rows = c_rows.len() / n;
        rows_times_b(&a[row0 * k..(row0 + rows) * k], k, n, b, c_rows);
    };
    if parallel {
        c.par_chunks_mut(MR * n).enumerate().for_each(block);
    } else {
        c.chunks_mut(MR * n).enumerate().for_each(block);
    }
    c
}

/// The register-tiled product: `b` packed into `NR`-column panels, tiles of `MR` rows.
fn tiled(k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64], parallel: bool) {
    let panels = n.div_ceil(NR);
    let mut packed = vec![0u64; panels * k * NR];
    let pack = |(jp, panel): (usize, &mut [u64])| {
        let j0 = jp * NR;
        let w = NR.min(n - j0);
        for p in 0..k {
            panel[p * NR..p * NR + w].copy_from_slice(&b[p * n + j0..p * n + j0 + w]);
        }
    };
    if parallel {
        packed.par_chunks_mut(k * NR).enumerate().for_each(pack);
    } else {
        packed.chunks_mut(k * NR).enumerate().for_each(pack);
    }
    let packed = packed;
    let rows_block = |(bi, c_rows): (usize, &mut [u64])| {
        let r0 = bi * MR;
        let rows = c_rows.len() / n;
        // This tile's rows of `a`, interleaved: a_pack[p * MR + r] = a[r0 + r][p].
        let mut a_pack = vec![0u64; k * MR];
        for r in 0..rows {
            for p in 0..k {
                a_pack[p * MR + r] = a[(r0 + r) * k + p];
            }
        }
        for jp in 0..panels {
            let acc = tile(&a_pack, &packed[jp * k * NR..(jp + 1) * k * NR]);
            let j0 = jp * NR;
            let w = NR.min(n - j0);
            for (r, acc_row) in acc.iter().enumerate().take(rows) {
                c_rows[r * n + j0..r * n + j0 + w].copy_from_slice(&acc_row[..w]);
            }
        }
    };
    if parallel {
        c.par_chunks_mut(MR * n).enumerate().for_each(rows_block);
    } else {
        c.chunks_mut(MR * n).enumerate().for_each(rows_block);
    }
}

/// One `MR x NR` tile of `C` over the whole inner dimension.
#[inline]
fn tile(a_pack: &[u64], b_panel: &[u64]) -> [[u64; NR]; MR] {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        return avx512::tile(a_pack, b_panel);
    }
    tile_portable(a_pack, b_panel)
}

#[inline(always)]
fn tile_portable(a_pack: &[u64], b_panel: &[u64]) -> [[u64; NR]; MR] {
    let mut acc = [[0u64; NR]; MR];
    for (ap, bp) in a_pack.chunks_exact(MR).zip(b_panel.chunks_exact(NR)) {
        for (acc_row, &a) in acc.iter_mut().zip(ap) {
            for (c, &b) in acc_row.iter_mut().zip(bp) {
                *c = c.wrapping_add(a.wrapping_mul(b));
            }
        }
    }
    acc
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
    pub(super) use crate::kernels::avx512 as available;

    /// The portable loop compiled for AVX-512DQ, whose `vpmullq` multiplies eight 64-bit
    /// lanes at once (without it the compiler emulates the product with 32-bit multiplies).
    #[target_feature(enable = "avx512f,avx512dq")]
    fn axpy_avx512(alpha: u64, x: &[u64], y: &mut [u64]) {
        super::axpy_portable(alpha, x, y);
    }

    /// The register tile with AVX-512 intrinsics: eight 8-lane accumulators (`MR` rows of
    /// two vectors) stay in registers while the inner dimension streams by. Written with
    /// intrinsics because the compiler, left to itself, vectorises the portable loop across
    /// the inner dimension with gathers and spills.
    #[target_feature(enable = "avx512f,avx512dq")]
    fn tile_avx512(a_pack: &[u64], b_panel: &[u64]) -> [[u64; super::NR]; super::MR] {
        use std::arch::x86_64::{
            __m512i, _mm512_add_epi64, _mm512_loadu_si512, _mm512_mullo_epi64, _mm512_set1_epi64,
            _mm512_setzero_si512, _mm512_storeu_si512,
        };
        const _: () = assert!(super::NR == 16 && super::MR == 4);
        let mut acc: [__m512i; 8] = [_mm512_setzero_si512(); 8];
        for (ap, bp) in a_pack.chunks_exact(4).zip(b_panel.chunks_exact(16)) {
            // SAFETY: `bp` has exactly 16 words, so both unaligned 8-word loads are in bounds.
            #[allow(unsafe_code)]
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_si512(bp.as_ptr().cast()),
                    _mm512_loadu_si512(bp.as_ptr().add(8).cast()),
                )
            };
            for (r, &a) in ap.iter().enumerate() {
                let a = _mm512_set1_epi64(a as i64);
                acc[2 * r] = _mm512_add_epi64(acc[2 * r], _mm512_mullo_epi64(a, b0));
                acc[2 * r + 1] = _mm512_add_epi64(acc[2 * r + 1], _mm512_mullo_epi64(a, b1));
            }
        }
        let mut out = [[0u64; 16]; 4];
        for (r, row) in out.iter_mut().enumerate() {
            // SAFETY: each row has 16 words: two unaligned 8-word stores in bounds.
            #[allow(unsafe_code)]
            unsafe {
                _mm512_storeu_si512(row.as_mut_ptr().cast(), acc[2 * r]);
                _mm512_storeu_si512(row.as_mut_ptr().add(8).cast(), acc[2 * r + 1]);
            }
        }
        out
    }

    pub(super) fn tile(a_pack: &[u64], b_panel: &[u64]) -> [[u64; super::NR]; super::MR] {
        // SAFETY: as for `axpy`: the CPU was checked for the features `tile_avx512` enables.
        #[allow(unsafe_code)]
        unsafe {
            tile_avx512(a_pack, b_panel)
        }
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
            (8, 1, 16),
            (13, 70, 33),
            (64, 576, 100),
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
