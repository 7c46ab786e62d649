//! `C = A B` over Z_2^64, row-major.

use rayon::prelude::*;

/// Columns of `B` and `C` kept hot in L1 per pass (8 KiB of `C` row), on the row-by-row path.
const NC: usize = 1024;
/// Rows of `B` per pass: a `KC x NC` panel of `B` (2 MiB) stays in L2.
const KC: usize = 256;
/// Rows of `C` per register tile.
pub(crate) const MR: usize = 4;
/// Columns of `C` per register tile: with `MR` rows, 64 accumulators, eight AVX-512 registers.
pub(crate) const NR: usize = 16;
/// Below this many multiply-adds the rayon split costs more than it saves.
pub(crate) const PARALLEL_WORK: usize = 1 << 16;

/// The wrapping product of the `m x k` matrix `a` and the `k x n` matrix `b`, as an `m x n`
/// matrix. Panics only if the slice lengths disagree with the dimensions (a caller bug; the
/// protocols check shapes first).
///
/// With enough rows, `b` is packed into column panels of `NR` and each `MR x NR` tile of `C`
/// is accumulated in registers over the whole inner dimension ([`gemm_packed`]), so that
/// every loaded word of `b` serves `MR` multiply-adds. With few rows (a matrix-vector product, a batch-1 linear
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

/// The register-tiled product: `b` packed into `NR`-column panels, then [`gemm_packed`].
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
    let m = c.len() / n;
    gemm_packed(m, k, n, a, &packed, c, 0, &|_, _, _| {}, parallel);
}

/// Words of `A` a task keeps hot while the panels of `B` stream by (half of a 1 MiB L2).
const A_BLOCK_WORDS: usize = 1 << 16;

/// Rows of `C` per parallel task of [`gemm_packed`]: a multiple of `MR`, few enough that the
/// task's rows of `A` stay in L2 while every panel of `B` passes through, else as many as
/// two tasks per thread allow. Each task streams all of `B` once and uses each panel for
/// all its rows, so more rows per task means fewer passes over `B` (which, for a
/// convolution over a large map, does not fit in cache); two per thread leave room to
/// balance the load when another process takes a core for a while.
fn rows_per_task(m: usize, k: usize, parallel: bool) -> usize {
    let round_up = |r: usize| r.div_ceil(MR) * MR;
    let cap = (A_BLOCK_WORDS / k.max(1) / MR * MR).max(MR);
    let want = if parallel {
        round_up(m.div_ceil(2 * rayon::current_num_threads()))
    } else {
        round_up(m)
    };
    want.min(cap).max(MR)
}

/// `C = A B` for a row-major `m x k` matrix `a` and `B` already packed into `NR`-column
/// panels of `k` rows each (`packed`, zeros past column `n`), into the row-major `m x n`
/// matrix `c`. Each run of a row's finished words passes through `epilogue(row, base +
/// offset in c, words)` while still in cache: where the callers fuse what follows the
/// product (a subtraction, a truncation, a bias) instead of another pass over `C`.
///
/// Tasks take blocks of rows; within one, every panel of `B` is multiplied by all the task's
/// rows before the next panel comes, so a panel is loaded once per task and the rows of `A`
/// stay in L2. `A` is read in place, four rows at a time, without packing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed<E>(
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    packed: &[u64],
    c: &mut [u64],
    base: usize,
    epilogue: &E,
    parallel: bool,
) where
    E: Fn(usize, usize, &mut [u64]) + Sync,
{
    assert_eq!(a.len(), m * k, "gemm: a is not {m} x {k}");
    assert_eq!(c.len(), m * n, "gemm: c is not {m} x {n}");
    let panels = n.div_ceil(NR);
    assert_eq!(
        packed.len(),
        panels * k * NR,
        "gemm: b is not packed for {k} x {n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    // Rows past `m` in the last block multiply zeros.
    let zeros = vec![0u64; if m.is_multiple_of(MR) { 0 } else { k }];
    let rows = rows_per_task(m, k, parallel);
    let task = |(t, c_rows): (usize, &mut [u64])| {
        let r0 = t * rows;
        let nrows = c_rows.len() / n;
        for jp in 0..panels {
            let panel = &packed[jp * k * NR..(jp + 1) * k * NR];
            let j0 = jp * NR;
            let w = NR.min(n - j0);
            for rb in (0..nrows).step_by(MR) {
                let a_rows: [&[u64]; MR] = std::array::from_fn(|r| {
                    if rb + r < nrows {
                        &a[(r0 + rb + r) * k..(r0 + rb + r + 1) * k]
                    } else {
                        &zeros[..]
                    }
                });
                let acc = tile(a_rows, panel);
                for (r, acc_row) in acc.iter().enumerate().take(nrows - rb) {
                    let row = r0 + rb + r;
                    let dst = &mut c_rows[(rb + r) * n + j0..(rb + r) * n + j0 + w];
                    dst.copy_from_slice(&acc_row[..w]);
                    epilogue(row, base + row * n + j0, dst);
                }
            }
        }
    };
    if parallel {
        c.par_chunks_mut(rows * n).enumerate().for_each(task);
    } else {
        c.chunks_mut(rows * n).enumerate().for_each(task);
    }
}

/// One `MR x NR` tile of `C` over the whole inner dimension: rows `a[r]` of `A` (each `k`
/// words) times the packed panel (`k` rows of `NR`).
#[inline]
fn tile(a: [&[u64]; MR], b_panel: &[u64]) -> [[u64; NR]; MR] {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        return avx512::tile(a, b_panel);
    }
    tile_portable(a, b_panel)
}

#[inline(always)]
fn tile_portable(a: [&[u64]; MR], b_panel: &[u64]) -> [[u64; NR]; MR] {
    let mut acc = [[0u64; NR]; MR];
    for (p, bp) in b_panel.chunks_exact(NR).enumerate() {
        for (acc_row, a_row) in acc.iter_mut().zip(a) {
            let a = a_row[p];
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
    fn tile_avx512(a: [&[u64]; super::MR], b_panel: &[u64]) -> [[u64; super::NR]; super::MR] {
        use std::arch::x86_64::{
            __m512i, _mm512_add_epi64, _mm512_loadu_si512, _mm512_mullo_epi64, _mm512_set1_epi64,
            _mm512_setzero_si512, _mm512_storeu_si512,
        };
        const _: () = assert!(super::NR == 16 && super::MR == 4);
        let mut acc: [__m512i; 8] = [_mm512_setzero_si512(); 8];
        let [a0, a1, a2, a3] = a;
        let k = b_panel.len() / 16;
        let (a0, a1, a2, a3) = (&a0[..k], &a1[..k], &a2[..k], &a3[..k]);
        for (p, bp) in b_panel.chunks_exact(16).enumerate() {
            // SAFETY: `bp` has exactly 16 words, so both unaligned 8-word loads are in bounds.
            #[allow(unsafe_code)]
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_si512(bp.as_ptr().cast()),
                    _mm512_loadu_si512(bp.as_ptr().add(8).cast()),
                )
            };
            for (r, &a) in [a0[p], a1[p], a2[p], a3[p]].iter().enumerate() {
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

    pub(super) fn tile(a: [&[u64]; super::MR], b_panel: &[u64]) -> [[u64; super::NR]; super::MR] {
        // SAFETY: as for `axpy`: the CPU was checked for the features `tile_avx512` enables.
        #[allow(unsafe_code)]
        unsafe {
            tile_avx512(a, b_panel)
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
