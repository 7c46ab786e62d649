//! The learning-rate schedule: linear warm-up from 1% over the first epochs, then cosine
//! annealing to 0 over the rest, stepped once per epoch (FACTS.md section 2).

/// Learning rate of 0-based `epoch` out of `epochs`.
pub fn learning_rate(base: f64, epoch: usize, epochs: usize, warmup: usize) -> f64 {
    let warmup = warmup.min(epochs.saturating_sub(1));
    if epoch < warmup {
        // 0.01x at epoch 0, rising linearly to 1x at epoch `warmup`.
        let t = epoch as f64 / warmup as f64;
        return base * (0.01 + 0.99 * t);
    }
    let span = (epochs - warmup).max(1) as f64;
    let t = (epoch - warmup) as f64 / span;
    base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}
