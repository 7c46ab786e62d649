//! What one layer did to the ring: its largest value and its truncations.

/// Counters of one layer, accumulated while it runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Largest `|v|` of any ring value formed, read as a signed word.
    pub(crate) max_abs: u64,
    /// Values divided by a power of two (local share truncations in the secure run).
    pub(crate) truncations: u64,
    /// `sum |v|` over those values, exactly (a sum of `2^63`-bounded words fits `u128` for any
    /// batch), so that merging parts in any order gives the same result.
    pub(crate) abs_sum: u128,
}

impl Tally {
    /// Notes a value formed.
    #[inline]
    pub(crate) fn see(&mut self, v: u64) {
        self.max_abs = self.max_abs.max((v as i64).unsigned_abs());
    }

    /// Notes that the shared value `v` is truncated once (possibly by several shifts of the
    /// same shares, which fail together).
    #[inline]
    pub(crate) fn count_truncation(&mut self, v: u64) {
        self.truncations += 1;
        self.abs_sum += u128::from((v as i64).unsigned_abs());
    }

    /// `sum |v| / 2^64`: the expected number of failed truncations, each failing with
    /// probability `|v| / 2^64`.
    pub(crate) fn expected_failures(&self) -> f64 {
        self.abs_sum as f64 / 2f64.powi(64)
    }

    /// `floor(v / 2^bits)` of the signed value: the secure truncation without its one-unit
    /// error. Counted unless `bits` is 0 (the protocols do nothing then).
    #[inline]
    pub(crate) fn truncate(&mut self, v: u64, bits: u32) -> u64 {
        self.see(v);
        if bits == 0 {
            return v;
        }
        self.count_truncation(v);
        ((v as i64) >> bits) as u64
    }

    /// Brings `v` at scale `2^from` to `2^to`, as `truncation::rescale_words`: a truncation
    /// when `from > to`, an exact left shift otherwise.
    #[inline]
    pub(crate) fn rescale(&mut self, v: u64, from: u32, to: u32) -> u64 {
        if from > to {
            self.truncate(v, from - to)
        } else {
            self.see(v);
            v << (to - from)
        }
    }

    /// Adds another part of the batch's counts.
    pub(crate) fn merge(&mut self, other: &Tally) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.truncations += other.truncations;
        self.abs_sum += other.abs_sum;
    }
}
