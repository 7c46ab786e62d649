//! The protocols' arithmetic on plaintext: what each computes on the opened values, with every
//! share truncation an exact floor, and a [`Tally`] of what a layer did to the ring (its
//! largest value, its truncations and their expected failures). `pillar-infer`'s fixed-point
//! mirror runs whole networks with these; each activation protocol provides its own
//! ([`Activation::mirror`](crate::protocols::activation::Activation::mirror)).

/// One activation layer's arithmetic on plaintext, prepared once per layer (coefficients
/// encoded, shifts worked out).
pub trait Mirror: Send + Sync {
    /// The layer on the encoded `x`, with its ring values and truncations counted in `t`.
    fn eval(&self, x: &[u64], t: &mut Tally) -> Vec<u64>;
}

/// A mirror that applies `f` to each element.
pub(crate) struct Elementwise<F>(pub(crate) F);

impl<F: Fn(u64, &mut Tally) -> u64 + Send + Sync> Mirror for Elementwise<F> {
    fn eval(&self, x: &[u64], t: &mut Tally) -> Vec<u64> {
        x.iter().map(|&v| (self.0)(v, t)).collect()
    }
}

/// Counters of one layer, accumulated while it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Largest `|v|` of any ring value formed, read as a signed word.
    pub max_abs: u64,
    /// Values divided by a power of two (local share truncations in the secure run).
    pub truncations: u64,
    /// `sum |v|` over those values, exactly (a sum of `2^63`-bounded words fits `u128` for any
    /// batch), so that merging parts in any order gives the same result.
    pub abs_sum: u128,
}

impl Tally {
    /// Notes a value formed.
    #[inline]
    pub fn see(&mut self, v: u64) {
        self.max_abs = self.max_abs.max((v as i64).unsigned_abs());
    }

    /// Notes that the shared value `v` is truncated once (possibly by several shifts of the
    /// same shares, which fail together).
    #[inline]
    pub fn count_truncation(&mut self, v: u64) {
        self.truncations += 1;
        self.abs_sum += u128::from((v as i64).unsigned_abs());
    }

    /// `sum |v| / 2^64`: the expected number of failed truncations, each failing with
    /// probability `|v| / 2^64`.
    pub fn expected_failures(&self) -> f64 {
        self.abs_sum as f64 / 2f64.powi(64)
    }

    /// `floor(v / 2^bits)` of the signed value: the secure truncation without its one-unit
    /// error. Counted unless `bits` is 0 (the protocols do nothing then).
    #[inline]
    pub fn truncate(&mut self, v: u64, bits: u32) -> u64 {
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
    pub fn rescale(&mut self, v: u64, from: u32, to: u32) -> u64 {
        if from > to {
            self.truncate(v, from - to)
        } else {
            self.see(v);
            v << (to - from)
        }
    }

    /// Adds another part of the batch's counts.
    pub fn merge(&mut self, other: &Tally) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.truncations += other.truncations;
        self.abs_sum += other.abs_sum;
    }
}
