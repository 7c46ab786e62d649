//! Least squares in the monomial basis.
//!
//! The columns `x^j` of a Vandermonde matrix on `[-R, R]` differ in size by up to `R^d`, which
//! makes the plain normal equations useless in `f64`. Scaling `x` into `[-1, 1]` first and
//! factoring with Householder QR keeps the solution accurate to near machine precision for
//! every degree the crate accepts; the scaling is undone on the way out.

use nalgebra::{DMatrix, DVector, Dyn, linalg::QR};

use crate::FitError;

/// QR factorisation of the Vandermonde matrix `A[i][k] = x_i^order[k]`, computed on
/// `x / scale`. Everything it returns is in column order.
pub(crate) struct Vandermonde {
    qr: QR<f64, Dyn, Dyn>,
    /// Upper-triangular factor of the scaled matrix.
    r_scaled: DMatrix<f64>,
    scale: f64,
    /// `order[k]`: the power of `x` in column `k`.
    order: Vec<usize>,
}

impl Vandermonde {
    /// Factors the matrix for `xs` (all within `[-range, range]`) with the powers `0..=degree`
    /// in their natural order.
    pub(crate) fn new(xs: &[f64], degree: usize, range: f64) -> Result<Self, FitError> {
        Self::with_order(xs, (0..=degree).collect(), range)
    }

    /// Factors with the columns sorted from the weakest (smallest norm) to the strongest.
    ///
    /// An enumeration over the triangular factor fixes the last column first. Putting the
    /// strongest column there lets the search prune early; when the range is small the high
    /// powers are nearly flat (`x^7 <= 1e-7` on `[-0.1, 0.1]`) and fixing them first would
    /// leave nothing to prune on.
    pub(crate) fn sorted(xs: &[f64], degree: usize, range: f64) -> Result<Self, FitError> {
        let norm = |j: usize| -> f64 { xs.iter().map(|x| x.powi(2 * j as i32)).sum() };
        let mut order: Vec<usize> = (0..=degree).collect();
        order.sort_by(|&a, &b| norm(a).total_cmp(&norm(b)));
        Self::with_order(xs, order, range)
    }

    fn with_order(xs: &[f64], order: Vec<usize>, range: f64) -> Result<Self, FitError> {
        let scale = range;
        let columns = order.len();
        let degree = columns - 1;
        let a = DMatrix::from_fn(xs.len(), columns, |i, k| {
            (xs[i] / scale).powi(order[k] as i32)
        });
        let qr = a.qr();
        let r_scaled = qr.r();
        let diag: Vec<f64> = (0..columns).map(|i| r_scaled[(i, i)].abs()).collect();
        let largest = diag.iter().cloned().fold(0.0, f64::max);
        // NaN counts as singular too.
        if !diag.iter().all(|&v| v > 1e-13 * largest) {
            return Err(FitError::IllConditioned { degree, range });
        }
        Ok(Vandermonde {
            qr,
            r_scaled,
            scale,
            order,
        })
    }

    /// `order[k]`: the power of `x` in column `k`.
    pub(crate) fn order(&self) -> &[usize] {
        &self.order
    }

    /// The coefficients `c` (unscaled, in column order) minimising `||A c - y||`.
    pub(crate) fn solve(&self, y: &[f64]) -> Vec<f64> {
        let mut rhs = DVector::from_column_slice(y);
        self.qr.q_tr_mul(&mut rhs);
        let head = rhs.rows(0, self.order.len()).into_owned();
        let u = self
            .r_scaled
            .solve_upper_triangular(&head)
            .expect("diagonal checked non-zero in Vandermonde::new");
        u.iter()
            .enumerate()
            .map(|(j, v)| v / self.column_scale(j))
            .collect()
    }

    /// The 2-norm condition number of the scaled matrix: how much `f64` error the solves and
    /// products with `R` can amplify.
    pub(crate) fn condition(&self) -> f64 {
        let sv = self.r_scaled.singular_values();
        let max = sv.iter().cloned().fold(0.0, f64::max);
        let min = sv.iter().cloned().fold(f64::INFINITY, f64::min);
        max / min
    }

    /// The factor of the scaled matrix, whose columns are `(x / range)^j`.
    pub(crate) fn r_scaled(&self) -> &DMatrix<f64> {
        &self.r_scaled
    }

    /// `range^order[k]`: the coefficient of column `k` in the scaled basis is the unscaled one
    /// times this.
    pub(crate) fn column_scale(&self, k: usize) -> f64 {
        self.scale.powi(self.order[k] as i32)
    }

    /// The upper-triangular `R` with `A = Q R` for the unscaled matrix.
    pub(crate) fn r(&self) -> DMatrix<f64> {
        let mut r = self.r_scaled.clone();
        for k in 0..self.order.len() {
            r.column_mut(k).scale_mut(self.column_scale(k));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_polynomial() {
        let xs: Vec<f64> = (-500..=500).map(|k| k as f64 / 100.0).collect();
        let c = [0.25, -1.5, 0.125, 0.0, 3e-3, -1e-4, 2e-6, 0.0, -1e-9];
        let y: Vec<f64> = xs
            .iter()
            .map(|&x| c.iter().rev().fold(0.0, |acc, &cj| acc * x + cj))
            .collect();
        let v = Vandermonde::new(&xs, 8, 5.0).unwrap();
        let got = v.solve(&y);
        for (g, want) in got.iter().zip(c) {
            assert!((g - want).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn sorted_puts_the_strongest_powers_last() {
        let small: Vec<f64> = (-10..=10).map(|k| k as f64 / 100.0).collect();
        assert_eq!(
            Vandermonde::sorted(&small, 3, 0.1).unwrap().order(),
            [3, 2, 1, 0]
        );
        let large: Vec<f64> = (-500..=500).map(|k| k as f64 / 100.0).collect();
        let v = Vandermonde::sorted(&large, 3, 5.0).unwrap();
        assert_eq!(v.order(), [0, 1, 2, 3]);
        // Solving in any column order gives the same polynomial.
        let y: Vec<f64> = large
            .iter()
            .map(|&x| 1.0 - 2.0 * x + 0.5 * x * x * x)
            .collect();
        let w = Vandermonde::sorted(&small, 3, 0.1).unwrap();
        let ys: Vec<f64> = small
            .iter()
            .map(|&x| 1.0 - 2.0 * x + 0.5 * x * x * x)
            .collect();
        let c = w.solve(&ys);
        for (k, want) in [0.5, 0.0, -2.0, 1.0].iter().enumerate() {
            assert!((c[k] - want).abs() < 1e-9, "{c:?}");
        }
        assert!((v.solve(&y)[3] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn r_reproduces_the_gram_matrix() {
        let xs: Vec<f64> = (-50..=50).map(|k| k as f64 / 10.0).collect();
        let v = Vandermonde::new(&xs, 3, 5.0).unwrap();
        let r = v.r();
        let gram_from_r = r.transpose() * &r;
        let direct =
            |j: usize, l: usize| -> f64 { xs.iter().map(|x| x.powi((j + l) as i32)).sum() };
        for j in 0..4 {
            for l in 0..4 {
                let size = (direct(j, j) * direct(l, l)).sqrt();
                let direct = direct(j, l);
                let rel = (gram_from_r[(j, l)] - direct).abs() / size;
                assert!(
                    rel < 1e-12,
                    "G[{j}][{l}]: {} vs {direct}",
                    gram_from_r[(j, l)]
                );
            }
        }
    }
}
