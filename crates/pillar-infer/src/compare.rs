//! A secure run's logits against the mirror's, image by image: whether the classes agree, how
//! far the logits are apart, which images a failed truncation hit, and which disagreements are
//! near ties rather than errors.

use pillar_nn::Tensor;

/// A logit error beyond this (in real units) is a failed truncation, not rounding: a wrapped
/// share is off by about `2^(64 - 2f)`.
pub const FAILURE_ERROR: f64 = 1.0;

/// How a batch of secure logits compares with the mirror's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agreement {
    /// Images compared.
    pub images: usize,
    /// Images whose secure class is the mirror's.
    pub same_class: usize,
    /// Largest `|secure - mirror|` logit, over images without a failed truncation.
    pub max_logit_error: f64,
    /// Images whose logits are off by more than [`FAILURE_ERROR`].
    pub truncation_failures: usize,
    /// Images whose class differs although no truncation failed: each is a near tie, its two
    /// largest mirrored logits closer than twice its logit error.
    pub near_ties: usize,
}

impl Agreement {
    /// Adds a batch: `secure` and `mirror` logits, both `[N, classes]`.
    pub fn add(&mut self, secure: &Tensor, mirror: &Tensor) {
        let classes = secure.shape().get(1).copied().unwrap_or(1).max(1);
        for (s, m) in secure
            .data()
            .chunks_exact(classes)
            .zip(mirror.data().chunks_exact(classes))
        {
            self.images += 1;
            let err = s
                .iter()
                .zip(m)
                .map(|(a, b)| f64::from((a - b).abs()))
                .fold(0.0, f64::max);
            if err > FAILURE_ERROR {
                self.truncation_failures += 1;
            } else {
                self.max_logit_error = self.max_logit_error.max(err);
            }
            if argmax(s) == argmax(m) {
                self.same_class += 1;
            } else if err <= FAILURE_ERROR && margin(m) < 2.0 * err {
                self.near_ties += 1;
            }
        }
    }

    /// The share of images whose classes agree.
    pub fn rate(&self) -> f64 {
        self.same_class as f64 / self.images.max(1) as f64
    }
}

/// The index of the largest value (the first of equals), if any.
pub fn argmax(row: &[f32]) -> Option<usize> {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(k, _)| k)
}

/// The gap between the two largest values.
pub fn margin(row: &[f32]) -> f64 {
    let mut top = [f64::NEG_INFINITY; 2];
    for &v in row {
        let v = f64::from(v);
        if v > top[0] {
            top = [v, top[0]];
        } else if v > top[1] {
            top[1] = v;
        }
    }
    top[0] - top[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[[f32; 3]]) -> Tensor {
        Tensor::new(vec![rows.len(), 3], rows.concat()).unwrap()
    }

    #[test]
    fn failures_ties_and_agreement_are_told_apart() {
        let mirror = t(&[[0.0, 1.0, 2.0], [0.5, 0.49, 0.0], [1.0, 0.0, 0.0]]);
        // Agrees within 0.1; a near tie flipped by 0.02; a failed truncation.
        let secure = t(&[[0.1, 1.0, 2.0], [0.48, 0.5, 0.0], [1.0, 9.0, 0.0]]);
        let mut a = Agreement::default();
        a.add(&secure, &mirror);
        assert_eq!(a.images, 3);
        assert_eq!(a.same_class, 1);
        assert_eq!(a.near_ties, 1);
        assert_eq!(a.truncation_failures, 1);
        assert!(
            (a.max_logit_error - 0.1).abs() < 1e-6,
            "{}",
            a.max_logit_error
        );
        assert!((a.rate() - 1.0 / 3.0).abs() < 1e-12);
    }
}
