//! Fixed-point encoding in Z_2^64.
//!
//! A real `x` is the ring element `trunc(x * 2^f)` read as a two's-complement `i64`. Every
//! product of two encoded values carries scale `2^(2f)` and is truncated back by `2^f`.

use crate::error::MpcError;

/// Fractional bits the protocols accept. Below 8 the activations lose too much precision; above
/// 20 a degree-4 polynomial no longer fits the ring with a safe truncation failure rate.
pub const FRAC_BITS: std::ops::RangeInclusive<u32> = 8..=20;

/// The fixed-point format: `f` fractional bits in a 64-bit ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        FixedPoint { frac_bits: 16 }
    }
}

impl FixedPoint {
    /// The format with `frac_bits` fractional bits (8..=20).
    pub fn new(frac_bits: u32) -> Result<Self, MpcError> {
        if FRAC_BITS.contains(&frac_bits) {
            Ok(FixedPoint { frac_bits })
        } else {
            Err(MpcError::FracBits(frac_bits))
        }
    }

    /// `f`.
    pub fn frac_bits(self) -> u32 {
        self.frac_bits
    }

    /// `2^f`.
    pub fn scale(self) -> f64 {
        f64::from(self.frac_bits).exp2()
    }

    /// `trunc(x * 2^f)` in the ring (saturating for values beyond `i64`).
    pub fn encode(self, x: f64) -> u64 {
        (x * self.scale()).trunc() as i64 as u64
    }

    /// The real a ring element stands for.
    pub fn decode(self, v: u64) -> f64 {
        v as i64 as f64 / self.scale()
    }

    /// Encodes a slice.
    pub fn encode_all(self, xs: &[f64]) -> Vec<u64> {
        xs.iter().map(|&x| self.encode(x)).collect()
    }

    /// Decodes a slice.
    pub fn decode_all(self, vs: &[u64]) -> Vec<f64> {
        vs.iter().map(|&v| self.decode(v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_truncates_towards_zero_and_round_trips() {
        let fp = FixedPoint::default();
        assert_eq!(fp.encode(1.0), 65536);
        assert_eq!(fp.encode(-1.0), (-65536i64) as u64);
        assert_eq!(fp.encode(1.5 / 65536.0), 1);
        assert_eq!(fp.encode(-1.5 / 65536.0), u64::MAX);
        assert_eq!(fp.decode(fp.encode(-3.25)), -3.25);
    }

    #[test]
    fn frac_bits_are_checked() {
        assert!(FixedPoint::new(7).is_err());
        assert!(FixedPoint::new(21).is_err());
        assert_eq!(FixedPoint::new(12).map(|f| f.frac_bits()).ok(), Some(12));
    }
}
