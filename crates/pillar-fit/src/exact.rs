//! Exact integer least squares for the quantization-aware fit.
//!
//! The problem is `min ||A a - t||^2` over integer vectors `a` in the box
//! `[-2^(P-1), 2^(P-1)]^(d+1)`, with `A[i][j] = x_i^j`. Rounding the real least-squares solution
//! is not enough: the objective's level sets are long thin ellipsoids (the coefficients of
//! `1`, `x^2` and `x^4` trade off against each other), so the best integer point can lie far
//! from the rounded one; for ReLU at `d = 4, P = 10` the constant term moves from 300 to 322.
//!
//! The solver
//! 1. factors `A = Q R` (see `lstsq`), so that `||A a - t||^2 = ||R (a - z)||^2 + rho` with
//!    `z` the real least-squares solution;
//! 2. re-centres on the rounded point `a0`, computing the residual `t - A a0` exactly in big
//!    integers so that floating-point error scales with the residual, not with `t`;
//! 3. enumerates, with the Schnorr-Euchner zig-zag, every integer point in the box whose
//!    distance `||R (a - z)||^2` is within a small relative margin of the best distance found
//!    so far, pruning a branch as soon as its partial distance exceeds that radius. The
//!    enumeration is exhaustive over the ellipsoid, so the optimum is among the candidates;
//! 4. picks the winner among the candidates by the objective evaluated exactly
//!    ([`Objective`]), which settles near-ties that `f64` cannot.

use std::time::Instant;

use nalgebra::{DMatrix, DVector};
use num_bigint::BigInt;
use num_traits::{ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

use crate::lstsq::Vandermonde;
use crate::{FitError, FitSpec, Grid};

/// Safety factor of the search radius over the `f64` error estimate of a distance (see
/// [`Enumeration::slack`]). Points within the radius are compared exactly, so a generous
/// factor costs only a few more exact evaluations.
const SLACK_FACTOR: f64 = 1e3;
/// Times the slack may be widened when the a-posteriori check finds more float error than
/// estimated.
const WIDENINGS: u32 = 3;
/// Nodes after which [`solve`] gives up (about 6 s on one core) rather than run for hours.
/// Realistic fits need a few dozen nodes (see the `fit` benchmark). The search grows only when
/// several nearly collinear high powers are pinned at the coefficient box's edge, which happens
/// on small ranges where `|c_j| <= 1/2` cannot follow the target.
pub const MAX_NODES: u64 = 200_000_000;

/// How the exact search went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverStats {
    /// Nodes of the enumeration tree visited (partial assignments within the radius).
    pub nodes: u64,
    /// Complete points within the final radius, compared in exact arithmetic.
    pub candidates: usize,
    /// Largest disagreement seen between the `f64` distances and exact arithmetic, as a
    /// fraction of the slack the search allowed for it (below 0.25 or the search is redone
    /// with a wider slack).
    pub float_error_ratio: f64,
    /// Wall-clock time of the search, in seconds.
    pub seconds: f64,
}

/// The exact solution and how it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// The optimal integers `a_0..a_d`.
    pub integers: Vec<i64>,
    /// Search statistics.
    pub stats: SolverStats,
}

/// The least-squares objective `sum_i (sum_j a_j x_i^j - t_i)^2` of a [`FitSpec`], evaluated
/// exactly.
///
/// With `x_i = k_i / s` (`s = 100`), multiplying through by `s^(2d)` makes every quantity an
/// integer: the objective becomes `a^T G a - 2 h^T a + c` with
/// `G[j][l] = s^(2d-j-l) * sum_i k_i^(j+l)`, `h[j] = s^(2d-j) * sum_i k_i^j t_i` and
/// `c = s^(2d) * sum_i t_i^2`, all computed once in big integers.
#[derive(Debug, Clone)]
pub struct Objective {
    gram: Vec<Vec<BigInt>>,
    cross: Vec<BigInt>,
    constant: BigInt,
    /// `s^(2d)`, to convert back to the paper's units.
    denominator: BigInt,
}

impl Objective {
    /// Precomputes the exact quadratic form of `spec`'s objective.
    pub fn new(spec: &FitSpec) -> Self {
        let grid = spec.grid();
        let targets = spec.integer_targets();
        let d = spec.degree();
        let m = d + 1;
        let s = BigInt::from(Grid::STEPS_PER_UNIT);
        let s_pow: Vec<BigInt> = (0..=2 * d as u32).map(|e| s.pow(e)).collect();

        let mut power_sums = vec![BigInt::zero(); 2 * d + 1];
        let mut target_sums = vec![BigInt::zero(); m];
        let mut target_square = BigInt::zero();
        for (k, &t) in grid.ks().zip(&targets) {
            let k = BigInt::from(k);
            let t = BigInt::from(t);
            let mut kp = BigInt::from(1);
            for (p, sum) in power_sums.iter_mut().enumerate() {
                if p < m {
                    target_sums[p] += &kp * &t;
                }
                *sum += &kp;
                kp *= &k;
            }
            target_square += &t * &t;
        }
        let gram = (0..m)
            .map(|j| {
                (0..m)
                    .map(|l| &s_pow[2 * d - j - l] * &power_sums[j + l])
                    .collect()
            })
            .collect();
        let cross = (0..m)
            .map(|j| &s_pow[2 * d - j] * &target_sums[j])
            .collect();
        Objective {
            gram,
            cross,
            constant: &s_pow[2 * d] * target_square,
            denominator: s_pow[2 * d].clone(),
        }
    }

    /// The objective at `a`, scaled by `s^(2d)` to be an exact integer. Comparisons between
    /// two points are exact.
    ///
    /// # Panics
    /// If `a` does not have `degree + 1` entries.
    pub fn scaled(&self, a: &[i64]) -> BigInt {
        assert_eq!(a.len(), self.cross.len(), "one integer per coefficient");
        let a: Vec<BigInt> = a.iter().map(|&v| BigInt::from(v)).collect();
        let mut total = self.constant.clone();
        for (j, aj) in a.iter().enumerate() {
            let row: BigInt = self.gram[j].iter().zip(&a).map(|(g, al)| g * al).sum();
            total += aj * (row - 2 * &self.cross[j]);
        }
        total
    }

    /// The objective at `a` in the paper's units (`t` scaled by `2^P`), as a float.
    pub fn value(&self, a: &[i64]) -> f64 {
        ratio(&self.scaled(a), &self.denominator)
    }

    /// `objective(a) - objective(b)` in the paper's units, exact up to the final rounding.
    fn difference(&self, a: &[i64], b: &[i64]) -> f64 {
        ratio(&(self.scaled(a) - self.scaled(b)), &self.denominator)
    }
}

fn ratio(num: &BigInt, den: &BigInt) -> f64 {
    // Both can exceed f64's range only for absurd inputs; the scale factors cancel.
    let shift = den.bits().saturating_sub(900);
    let num = (num >> shift).to_f64().unwrap_or(f64::NAN);
    let den = (den >> shift).to_f64().unwrap_or(f64::NAN);
    num / den
}

/// Solves `spec`'s integer least-squares problem exactly, giving up after [`MAX_NODES`].
pub fn solve(spec: &FitSpec) -> Result<Solution, FitError> {
    solve_within(spec, MAX_NODES)
}

/// Solves `spec`'s integer least-squares problem exactly, or reports
/// [`FitError::SearchTooLarge`] after `max_nodes` nodes of the enumeration.
pub fn solve_within(spec: &FitSpec, max_nodes: u64) -> Result<Solution, FitError> {
    let started = Instant::now();
    let grid = spec.grid();
    let xs: Vec<f64> = grid.xs().collect();
    let targets = spec.integer_targets();
    // All search vectors below are in the factor's column order; `natural` converts back.
    let vandermonde = Vandermonde::sorted(&xs, spec.degree(), spec.range())?;
    let order = vandermonde.order().to_vec();
    let bound = 1i64 << (spec.bits() - 1);
    let objective = Objective::new(spec);

    // A first centre from the float fit, then re-centring on exact residuals until the
    // continuous optimum rounds to the centre itself.
    let real: Vec<f64> = targets.iter().map(|&t| t as f64).collect();
    let zero = vec![0i64; spec.degree() + 1];
    let first = Centred::new(&vandermonde, &real, &zero, bound);
    let mut start: Vec<i64> = first.z.iter().map(|v| v.round() as i64).collect();
    let mut centred = Centred::exact(&vandermonde, grid, &targets, &start, bound);
    for _ in 0..4 {
        let shift: Vec<i64> = centred.z.iter().map(|v| v.round() as i64).collect();
        if shift.iter().all(|&s| s == 0) {
            break;
        }
        start.iter_mut().zip(&shift).for_each(|(a, s)| *a += s);
        centred = Centred::exact(&vandermonde, grid, &targets, &start, bound);
    }

    let mut search = Enumeration::new(&vandermonde, &centred);
    let mut nodes = 0;
    for _ in 0..=WIDENINGS {
        let (candidates, visited) = search.run(max_nodes.saturating_sub(nodes))?;
        nodes += visited;
        let points: Vec<Vec<i64>> = candidates
            .iter()
            .map(|delta| {
                let column: Vec<i64> = start.iter().zip(delta).map(|(a, d)| a + d).collect();
                natural(&order, &column)
            })
            .collect();
        let (best_index, best) = points
            .iter()
            .enumerate()
            .map(|(i, a)| (objective.scaled(a), i))
            .min()
            .map(|(_, i)| (i, points[i].clone()))
            .expect("the first descent always reaches a leaf");
        let error_ratio = search.float_error_ratio(&objective, &start, &candidates[best_index]);
        if error_ratio <= 0.25 {
            return Ok(Solution {
                integers: best,
                stats: SolverStats {
                    nodes,
                    candidates: candidates.len(),
                    float_error_ratio: error_ratio,
                    seconds: started.elapsed().as_secs_f64(),
                },
            });
        }
        search.factor *= 1e3;
    }
    Err(FitError::Uncertified {
        degree: spec.degree(),
        range: spec.range(),
        bits: spec.bits(),
    })
}

/// The problem re-centred on an integer point `start`: `delta = a - start`.
struct Centred {
    /// Unconstrained real optimum.
    w: Vec<f64>,
    /// Box-constrained real optimum (the search's centre).
    z: Vec<f64>,
    /// The box.
    lo: Vec<i64>,
    hi: Vec<i64>,
    /// `||t - A start||`, the size float errors scale with.
    residual_norm: f64,
}

impl Centred {
    /// Centres on `start` given the residual `t - A start` in floating point.
    fn new(v: &Vandermonde, residual: &[f64], start: &[i64], bound: i64) -> Self {
        let w = v.solve(residual);
        let lo: Vec<i64> = start.iter().map(|a| -bound - a).collect();
        let hi: Vec<i64> = start.iter().map(|a| bound - a).collect();
        let z = box_optimum(v, &w, &lo, &hi);
        Centred {
            w,
            z,
            lo,
            hi,
            residual_norm: residual.iter().map(|r| r * r).sum::<f64>().sqrt(),
        }
    }

    /// Centres on `start` with the residual computed exactly, so that float error scales with
    /// the residual rather than with the targets.
    fn exact(v: &Vandermonde, grid: Grid, targets: &[i64], start: &[i64], bound: i64) -> Self {
        let residual = exact_residual(grid, targets, &natural(v.order(), start));
        Centred::new(v, &residual, start, bound)
    }
}

/// A vector in column order (`column[k]` belongs to power `order[k]`) in power order.
fn natural(order: &[usize], column: &[i64]) -> Vec<i64> {
    let mut out = vec![0; column.len()];
    for (k, &power) in order.iter().enumerate() {
        out[power] = column[k];
    }
    out
}

/// `t_i - sum_j a_j x_i^j` for every grid point, exact before the final rounding to `f64`.
fn exact_residual(grid: Grid, targets: &[i64], a: &[i64]) -> Vec<f64> {
    let d = a.len() - 1;
    let s = BigInt::from(Grid::STEPS_PER_UNIT);
    let s_pow: Vec<BigInt> = (0..=d as u32).map(|e| s.pow(e)).collect();
    let denominator = &s_pow[d];
    grid.ks()
        .zip(targets)
        .map(|(k, &t)| {
            // Horner on sum_j a_j k^j s^(d-j) = s^d * p(k / s).
            let k = BigInt::from(k);
            let mut acc = BigInt::from(a[d]);
            for j in (0..d).rev() {
                acc = acc * &k + BigInt::from(a[j]) * &s_pow[d - j];
            }
            ratio(&(BigInt::from(t) * denominator - acc), denominator)
        })
        .collect()
}

/// `argmin ||R (z - w)||^2` over `lo <= z <= hi`, by a primal active-set method in the scaled
/// basis (where the problem is well conditioned). Only the speed of the search depends on
/// how good this is, never its exactness.
fn box_optimum(v: &Vandermonde, w: &[f64], lo: &[i64], hi: &[i64]) -> Vec<f64> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Free,
        Lower,
        Upper,
    }
    let r = v.r_scaled();
    let m = w.len();
    let scale: Vec<f64> = (0..m).map(|j| v.column_scale(j)).collect();
    let w: Vec<f64> = (0..m).map(|j| w[j] * scale[j]).collect();
    let lo: Vec<f64> = (0..m).map(|j| lo[j] as f64 * scale[j]).collect();
    let hi: Vec<f64> = (0..m).map(|j| hi[j] as f64 * scale[j]).collect();
    let rw = r * DVector::from_column_slice(&w);

    let mut z: Vec<f64> = (0..m).map(|j| w[j].clamp(lo[j], hi[j])).collect();
    let mut state: Vec<State> = (0..m)
        .map(|j| {
            if w[j] < lo[j] {
                State::Lower
            } else if w[j] > hi[j] {
                State::Upper
            } else {
                State::Free
            }
        })
        .collect();
    for _ in 0..10 * m + 10 {
        let free: Vec<usize> = (0..m).filter(|&j| state[j] == State::Free).collect();
        let mut rhs = rw.clone();
        for j in (0..m).filter(|&j| state[j] != State::Free) {
            rhs -= r.column(j) * z[j];
        }
        let goal = if free.is_empty() {
            DVector::zeros(0)
        } else {
            match r.select_columns(&free).svd(true, true).solve(&rhs, 0.0) {
                Ok(goal) => goal,
                Err(_) => break,
            }
        };
        // Walk from the feasible z toward the subspace optimum; stop at the first bound.
        let mut step = 1.0;
        let mut blocking = None;
        for (i, &j) in free.iter().enumerate() {
            let (target, edge, side) = if goal[i] > hi[j] {
                (goal[i], hi[j], State::Upper)
            } else if goal[i] < lo[j] {
                (goal[i], lo[j], State::Lower)
            } else {
                continue;
            };
            let t = ((edge - z[j]) / (target - z[j])).clamp(0.0, 1.0);
            if t < step {
                step = t;
                blocking = Some((j, edge, side));
            }
        }
        for (i, &j) in free.iter().enumerate() {
            z[j] += step * (goal[i] - z[j]);
        }
        if let Some((j, edge, side)) = blocking {
            z[j] = edge;
            state[j] = side;
            continue;
        }
        // At the optimum of this face: free a bound whose multiplier has the wrong sign.
        let residual = r * DVector::from_column_slice(&z) - &rw;
        let gradient = r.transpose() * residual;
        let wrong = (0..m)
            .map(|j| match state[j] {
                State::Lower => -gradient[j],
                State::Upper => gradient[j],
                State::Free => 0.0,
            })
            .enumerate()
            .filter(|&(_, violation)| violation > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match wrong {
            Some((j, _)) => state[j] = State::Free,
            None => break,
        }
    }
    (0..m).map(|j| z[j] / scale[j]).collect()
}

/// A Schnorr-Euchner enumeration of the integer points `delta` in the box whose objective,
/// relative to the continuous box optimum `z`, is within the radius.
///
/// For any `z`, `obj(delta) - obj(z) = ||R (delta - z)||^2 + l^T (delta - z)` exactly, with
/// `l = 2 R^T R (z - w)`. The quadratic part has the triangular structure the zig-zag needs;
/// the linear part is separable, so each coordinate's contribution is a convex function of its
/// value and can be visited in increasing order. When `z` is the box optimum every linear term
/// is non-negative on the box (first-order optimality), so the coordinates not yet chosen can
/// only add; the `floor` below accounts for whatever the float `z` misses of that.
struct Enumeration {
    r: DMatrix<f64>,
    z: Vec<f64>,
    linear: Vec<f64>,
    /// `floor[i]`: least possible linear contribution of coordinates `0..i`.
    floor: Vec<f64>,
    lo: Vec<i64>,
    hi: Vec<i64>,
    order: Vec<usize>,
    condition: f64,
    residual_norm: f64,
    factor: f64,
}

/// The zig-zag state of one coordinate: its quadratic centre, and the next candidates above
/// and below the minimiser of its contribution.
#[derive(Clone, Copy, Default)]
struct Level {
    centre: f64,
    up: i64,
    down: i64,
}

impl Enumeration {
    fn new(v: &Vandermonde, c: &Centred) -> Self {
        let r = v.r();
        let m = c.z.len();
        let diff = DVector::from_iterator(m, (0..m).map(|j| c.z[j] - c.w[j]));
        let linear: Vec<f64> = (r.transpose() * (&r * diff) * 2.0)
            .iter()
            .copied()
            .collect();
        let mut floor = vec![0.0; m + 1];
        for j in 0..m {
            let least = (linear[j] * (c.lo[j] as f64 - c.z[j]))
                .min(linear[j] * (c.hi[j] as f64 - c.z[j]))
                .min(0.0);
            floor[j + 1] = floor[j] + least;
        }
        Enumeration {
            r,
            z: c.z.clone(),
            linear,
            floor,
            lo: c.lo.clone(),
            hi: c.hi.clone(),
            order: v.order().to_vec(),
            condition: v.condition(),
            residual_norm: c.residual_norm,
            factor: SLACK_FACTOR,
        }
    }

    /// The radius beyond the best value found: `factor` times a first-order estimate of the
    /// `f64` error of a computed value `q`. Perturbing `R` by `eps * cond` relative and the
    /// centre by `eps * ||residual||` changes `q` by about
    /// `eps * (cond * (q + |l|.|delta - z|) + sqrt(q) * ||residual||)`.
    fn slack(&self, best: f64) -> f64 {
        let linear_size: f64 = self.linear.iter().map(|l| l.abs()).sum();
        let q = best.abs() + 1.0;
        self.factor
            * f64::EPSILON
            * (self.condition * (q + linear_size) + q.sqrt() * self.residual_norm)
    }

    /// The objective of `delta` relative to `z`, computed in floating point as the search does.
    fn value(&self, delta: &[i64]) -> f64 {
        let m = delta.len();
        let d: Vec<f64> = (0..m).map(|j| delta[j] as f64 - self.z[j]).collect();
        let rd = &self.r * DVector::from_column_slice(&d);
        rd.norm_squared() + (0..m).map(|j| self.linear[j] * d[j]).sum::<f64>()
    }

    /// Every point within the final radius, and the number of tree nodes visited.
    fn run(&self, max_nodes: u64) -> Result<(Vec<Vec<i64>>, u64), FitError> {
        let m = self.z.len();
        let mut delta = vec![0i64; m];
        // partial[i]: contribution of coordinates i..m; partial[m] = 0.
        let mut partial = vec![0.0f64; m + 1];
        let mut levels = vec![Level::default(); m];
        let mut found: Vec<(f64, Vec<i64>)> = Vec::new();
        let mut best = f64::INFINITY;
        let mut radius = f64::INFINITY;
        let mut nodes = 0u64;

        let mut i = m - 1;
        levels[i] = self.level(i, &delta);
        loop {
            let next = self.next(i, &mut levels[i]);
            let within = next.filter(|&(_, q)| partial[i + 1] + q + self.floor[i] <= radius);
            let Some((v, q)) = within else {
                // Values come in increasing order of contribution: the rest are no better.
                if i == m - 1 {
                    break;
                }
                i += 1;
                continue;
            };
            nodes += 1;
            if nodes > max_nodes {
                return Err(FitError::SearchTooLarge { nodes: max_nodes });
            }
            delta[i] = v;
            partial[i] = partial[i + 1] + q;
            if i > 0 {
                i -= 1;
                levels[i] = self.level(i, &delta);
            } else {
                if partial[0] < best {
                    best = partial[0];
                    radius = best + self.slack(best);
                    found.retain(|(q, _)| *q <= radius);
                }
                found.push((partial[0], delta.clone()));
            }
        }
        Ok((found.into_iter().map(|(_, d)| d).collect(), nodes))
    }

    /// Starts coordinate `i` given the choices already made for `i + 1..m`.
    fn level(&self, i: usize, delta: &[i64]) -> Level {
        let m = self.z.len();
        let shift: f64 = (i + 1..m)
            .map(|j| self.r[(i, j)] * (delta[j] as f64 - self.z[j]))
            .sum();
        let rii = self.r[(i, i)];
        let centre = self.z[i] - shift / rii;
        let minimiser = centre - self.linear[i] / (2.0 * rii * rii);
        // `as` saturates, so a minimiser far outside i64 still lands on the box edge.
        let floor = minimiser.floor() as i64;
        Level {
            centre,
            down: floor.min(self.hi[i]),
            up: floor.saturating_add(1).max(self.lo[i]),
        }
    }

    /// Coordinate `i`'s contribution at value `v`.
    fn contribution(&self, i: usize, level: &Level, v: i64) -> f64 {
        let e = self.r[(i, i)] * (v as f64 - level.centre);
        e * e + self.linear[i] * (v as f64 - self.z[i])
    }

    /// The next value of coordinate `i` in increasing order of contribution, within the box.
    fn next(&self, i: usize, level: &mut Level) -> Option<(i64, f64)> {
        let up = (level.up <= self.hi[i]).then(|| self.contribution(i, level, level.up));
        let down = (level.down >= self.lo[i]).then(|| self.contribution(i, level, level.down));
        let take_up = match (up, down) {
            (None, None) => return None,
            (Some(u), Some(d)) => u <= d,
            (u, _) => u.is_some(),
        };
        if take_up {
            level.up += 1;
            Some((level.up - 1, up.unwrap_or_default()))
        } else {
            level.down -= 1;
            Some((level.down + 1, down.unwrap_or_default()))
        }
    }

    /// Checks the float values against exact arithmetic around the winner: the largest
    /// disagreement over the winner's neighbours, relative to the slack allowed for it.
    fn float_error_ratio(&self, objective: &Objective, start: &[i64], best: &[i64]) -> f64 {
        let m = best.len();
        let absolute = |delta: &[i64]| -> Vec<i64> {
            let column: Vec<i64> = start.iter().zip(delta).map(|(a, d)| a + d).collect();
            natural(&self.order, &column)
        };
        let best_abs = absolute(best);
        let best_value = self.value(best);
        let mut probes: Vec<Vec<i64>> = Vec::new();
        for j in 0..m {
            for step in [-1, 1] {
                let mut p = best.to_vec();
                p[j] += step;
                if (self.lo[j]..=self.hi[j]).contains(&p[j]) {
                    probes.push(p);
                }
            }
        }
        probes
            .iter()
            .map(|p| {
                let value = self.value(p);
                let exact = objective.difference(&absolute(p), &best_abs);
                // Each of the two values carries its own error, which grows with its size.
                let allowed = self.slack(value) + self.slack(best_value);
                ((value - best_value) - exact).abs() / allowed
            })
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    #[test]
    fn objective_matches_direct_float_evaluation() {
        let spec = FitSpec::new(Target::Relu, 4, 5.0, 10).unwrap();
        let objective = Objective::new(&spec);
        let t = spec.integer_targets();
        let a = [322i64, 512, 160, 0, -3];
        let direct: f64 = spec
            .grid()
            .xs()
            .zip(&t)
            .map(|(x, &t)| {
                let p: f64 = a.iter().rev().fold(0.0, |acc, &aj| acc * x + aj as f64);
                (p - t as f64).powi(2)
            })
            .sum();
        let exact = objective.value(&a);
        assert!(
            (exact - direct).abs() < 1e-9 * direct,
            "{exact} vs {direct}"
        );
    }

    #[test]
    fn exact_residual_is_exact_on_a_representable_polynomial() {
        // p(x) = 2 + 3x - x^2 at x = k/100 has an exact decimal value; t = p * 100^2.
        let grid = Grid::new(300);
        let targets: Vec<i64> = grid.ks().map(|k| 20000 + 300 * k - k * k).collect();
        let r = exact_residual(grid, &targets, &[20000, 30000, -10000]);
        assert!(r.iter().all(|&v| v == 0.0), "{r:?}");
    }
}
