//! Least squares in the monomial basis.
//!
//! The columns `x^j` of a Vandermonde matrix on `[-R, R]` differ in size by up to `R^d`, which
//! makes the plain normal equations useless in `f64`. Scaling `x` into `[-1, 1]` first and
//! factoring with Householder QR keeps the solution accurate to near machine precision for
//! every degree the crate accepts; the scaling is undone on the way out.

use nalgebra::{DMatrix, DVector, Dyn, linalg::QR};

use crate::FitError;

/// QR factorisation of the Vandermonde matrix `A[i][j] = x_i^j`, computed on `x / scale`.
pub(crate) struct Vandermonde {
    qr: QR<f64, Dyn, Dyn>,
    /// Upper-triangular factor of the scaled matrix.
    r_scaled: DMatrix<f64>,
    scale: f64,
    columns: usize,
}

impl Vandermonde {
    /// Factors the matrix for `xs` (all within `[-range, range]`) and `degree`.
    pub(crate) fn new(xs: &[f64], degree: usize, range: f64) -> Result<Self, FitError> {
        let scale = range;
        let columns = degree + 1;
        let a = DMatrix::from_fn(xs.len(), columns, |i, j| (xs[i] / scale).powi(j as i32));
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
            columns,
        })
    }

    /// The coefficients `c` (monomial basis, unscaled) minimising `||A c - y||`.
    pub(crate) fn solve(&self, y: &[f64]) -> Vec<f64> {
        let mut rhs = DVector::from_column_slice(y);
        self.qr.q_tr_mul(&mut rhs);
        let head = rhs.rows(0, self.columns).into_owned();
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

    /// `range^j`: coefficient `j` in the scaled basis is coefficient `j` times this.
    pub(crate) fn column_scale(&self, j: usize) -> f64 {
        self.scale.powi(j as i32)
    }

    /// The upper-triangular `R` with `A = Q R` for the unscaled matrix.
    pub(crate) fn r(&self) -> DMatrix<f64> {
        let mut r = self.r_scaled.clone();
        for j in 0..self.columns {
            r.column_mut(j).scale_mut(self.column_scale(j));
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
