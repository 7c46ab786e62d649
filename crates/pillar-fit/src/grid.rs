//! The sample points `x = -R, -R + 0.01, ..., R`.

/// The fitting grid: `x_k = k / 100` for `k = -K..=K`. Keeping the points as integers over a
/// common denominator is what lets [`crate::exact`] evaluate the objective exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    half_steps: i64,
}

impl Grid {
    /// Grid points per unit of `x` (the step is `1 / STEPS_PER_UNIT = 0.01`).
    pub const STEPS_PER_UNIT: i64 = 100;

    /// The grid `k / 100` for `k` in `-half_steps..=half_steps`.
    pub fn new(half_steps: i64) -> Self {
        Grid { half_steps }
    }

    /// `K`, the number of steps from 0 to the range.
    pub fn half_steps(&self) -> i64 {
        self.half_steps
    }

    /// Number of points, both ends included.
    pub fn len(&self) -> usize {
        (2 * self.half_steps + 1) as usize
    }

    /// Always false: a grid holds at least its centre point.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The integer numerators `k` of the points.
    pub fn ks(&self) -> impl Iterator<Item = i64> + '_ {
        -self.half_steps..=self.half_steps
    }

    /// The points as floats (each the correctly rounded `k / 100`).
    pub fn xs(&self) -> impl Iterator<Item = f64> + '_ {
        self.ks().map(|k| k as f64 / Self::STEPS_PER_UNIT as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_both_ends() {
        let g = Grid::new(500);
        assert_eq!(g.len(), 1001);
        let xs: Vec<f64> = g.xs().collect();
        assert_eq!(xs[0], -5.0);
        assert_eq!(xs[500], 0.0);
        assert_eq!(xs[1000], 5.0);
        assert_eq!(xs[529], 0.29);
    }
}
