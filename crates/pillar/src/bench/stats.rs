//! Summaries of repeated timings.

use std::time::Duration;

/// The median of repeated timings and the half-width of its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    /// Median, seconds.
    pub median_s: f64,
    /// Half-width of the 95% confidence interval of the median, seconds: half the distance
    /// between the order statistics at ranks `K/2 -+ 0.98 sqrt(K)` (distribution-free, so a
    /// stray slow repeat does not inflate it as it would a mean's interval).
    pub ci95_s: f64,
}

impl Summary {
    /// Summarises `samples` (at least one).
    pub(crate) fn of(samples: &[Duration]) -> Summary {
        let mut s: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        s.sort_by(f64::total_cmp);
        let k = s.len();
        if k == 0 {
            return Summary {
                median_s: f64::NAN,
                ci95_s: f64::NAN,
            };
        }
        let median = if k % 2 == 1 {
            s[k / 2]
        } else {
            0.5 * (s[k / 2 - 1] + s[k / 2])
        };
        let half = 0.98 * (k as f64).sqrt();
        let lo = ((k as f64 / 2.0 - half).floor().max(0.0) as usize).min(k - 1);
        let hi = ((k as f64 / 2.0 + half).ceil() as usize).min(k - 1);
        Summary {
            median_s: median,
            ci95_s: 0.5 * (s[hi] - s[lo]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_and_interval() {
        let s = Summary::of(&ms(&[5, 1, 3]));
        assert!((s.median_s - 0.003).abs() < 1e-12);
        let s = Summary::of(&ms(&[10; 20]));
        assert_eq!(s.ci95_s, 0.0);
        let twenty: Vec<u64> = (1..=20).collect();
        let s = Summary::of(&ms(&twenty));
        assert!((s.median_s - 0.0105).abs() < 1e-12);
        // Ranks 10 -+ 4.4: from the 5th to the 15th smallest (0-based 5 and 15).
        assert!((s.ci95_s - 0.5 * (0.016 - 0.006)).abs() < 1e-12, "{s:?}");
        assert_eq!(Summary::of(&ms(&[7])).ci95_s, 0.0);
    }
}
