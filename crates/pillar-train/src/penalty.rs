//! PILLAR's out-of-range penalty and its 4-epoch warm-up (FACTS.md section 2).
//!
//! The penalty pushes every activation input back inside the range where the polynomial
//! approximates ReLU: per activation call `lambda * sum |x / r|^e` over the whole batch tensor,
//! and the MEAN over activation calls. A sum over elements (not a mean) makes the push
//! independent of the layer size, which is what the authors trained with.

use serde::{Deserialize, Serialize};

/// The penalty's knobs for a whole run (the values after warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Penalty {
    /// Weight of the penalty in the loss, `lambda`.
    pub lambda: f64,
    /// `r`: inputs with `|x| < r` cost little, outside they cost `|x/r|^e`.
    pub reg_range: f64,
    /// `e`, the exponent after warm-up (10 in the paper).
    pub exponent: u32,
}

impl Default for Penalty {
    /// The MiniONN+BN CIFAR-10 recipe: `lambda = 5e-5`, `r = 4.4`, `e = 10`.
    fn default() -> Self {
        Penalty {
            lambda: 5e-5,
            reg_range: 4.4,
            exponent: 10,
        }
    }
}

/// What one epoch trains with: the penalty exponent and weight, and the weight of the
/// cross-entropy term.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochPenalty {
    /// Exponent `e` this epoch.
    pub exponent: u32,
    /// `lambda` this epoch.
    pub lambda: f64,
    /// 0 in epoch 0 (only the penalty trains, pulling the freshly initialised network's
    /// activations into range before the task starts to matter), 1 after.
    pub ce_weight: f64,
}

/// Epochs of the penalty's warm-up: from this 0-based epoch on, [`Penalty::at_epoch`] gives
/// the full penalty.
pub const WARMUP_EPOCHS: usize = 4;

/// Leading epochs that train only the penalty (cross-entropy weight 0): a run of no more
/// epochs than this never learns its task.
pub const PENALTY_ONLY_EPOCHS: usize = 1;

impl Penalty {
    /// The warm-up schedule by 0-based epoch: e = 4, 6, 8, 10 and lambda / 100, / 50, / 10,
    /// / 5 over epochs 0-3, then the full penalty.
    pub fn at_epoch(&self, epoch: usize) -> EpochPenalty {
        let (exponent, divisor, ce_weight) = match epoch {
            0 => (4.min(self.exponent), 100.0, 0.0), // PENALTY_ONLY_EPOCHS
            1 => (6.min(self.exponent), 50.0, 1.0),
            2 => (8.min(self.exponent), 10.0, 1.0),
            3 => (self.exponent, 5.0, 1.0),
            _ => (self.exponent, 1.0, 1.0), // from WARMUP_EPOCHS on
        };
        EpochPenalty {
            exponent,
            lambda: self.lambda / divisor,
            ce_weight,
        }
    }
}

/// The penalty of one activation call on plain numbers: `sum |x / r|^e` (without lambda).
/// The training code computes the same on tensors; this is the definition tests check it by.
pub fn call_penalty(inputs: &[f64], reg_range: f64, exponent: u32) -> f64 {
    inputs
        .iter()
        .map(|x| (x / reg_range).abs().powi(exponent as i32))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constants `pillar train` warns by are the schedule's: only the first
    /// `PENALTY_ONLY_EPOCHS` epochs lack cross-entropy, and from `WARMUP_EPOCHS` on the
    /// penalty is the full one.
    #[test]
    fn the_warm_up_constants_match_the_schedule() {
        let p = Penalty::default();
        let full = EpochPenalty {
            exponent: p.exponent,
            lambda: p.lambda,
            ce_weight: 1.0,
        };
        for epoch in 0..WARMUP_EPOCHS + 3 {
            let e = p.at_epoch(epoch);
            assert_eq!(
                e.ce_weight == 0.0,
                epoch < PENALTY_ONLY_EPOCHS,
                "epoch {epoch}"
            );
            assert_eq!(e == full, epoch >= WARMUP_EPOCHS, "epoch {epoch}");
        }
    }
}
