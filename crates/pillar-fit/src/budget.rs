//! The precision budget: can a polynomial be evaluated securely without wrapping the ring?
//!
//! Shares live in `Z_2^l` (`l = 64`) and encode signed fixed-point numbers with `f` fractional
//! bits, so every intermediate value must stay below `2^(l-1)` in magnitude. A power `x^k`
//! formed at full scale needs `k (f + log2 B)` bits for inputs `|x| <= B`; requiring that for
//! the top power gives the pessimistic bound `f <= (l - 1) / d - log2 B` (13 bits for `d = 4`,
//! `B = 5`).
//!
//! The single-round protocols do better by pre-scaling (FACTS.md section 4): before raising to
//! the `k`-th power each party divides its own share of `x` by `2^s_k` locally, with
//! `s_k = max(0, ceil((k - 2) f / k))`, so `x^k` is formed at scale `k (f - s_k) <= 2f`, then
//! truncated by `2^D_k`, `D_k = k (f - s_k) - f`, back to scale `f`. ESPN does this per power.
//! HoneyBadger opens a single masked value `x - r` per input, so all its powers share the
//! pre-scale of the highest, `s_d`. The powers are then weighted by the coefficients (encoded
//! at `f` bits, products at `2f`) and truncated once more.
//!
//! Local two-party truncation of a value `v` fails (returns garbage) with probability
//! `|v| / 2^l` (party 0's uniform share must land within `|v|` of the wrap-around; measured in
//! pillar-mpc's tests; the often-quoted `|v| / 2^(l-1)` bounds both signs at once); pre-scaling trades that risk and the ring's headroom against precision,
//! since `x` pre-scaled by `s` keeps only `f - s` fractional bits. [`analyze`] reports all
//! three for both protocols.

use serde::{Deserialize, Serialize};

/// The ring of the secure engine.
pub const DEFAULT_RING_BITS: u32 = 64;
/// The secure engine's default fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;
/// Truncation failure rate per activation above which [`analyze`] warns (one in a million).
pub const FAILURE_WARNING: f64 = 1e-6;

/// Why a precision cannot be analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// Ring size outside `16..=128`.
    #[error("ring bits must be between 16 and 128, got {0}")]
    RingBits(u32),
    /// Fractional bits that leave no integer part.
    #[error("fractional bits must be between 1 and {max} for a {ring}-bit ring, got {got}")]
    FracBits {
        /// Requested fractional bits.
        got: u32,
        /// Largest allowed.
        max: u32,
        /// Ring bits.
        ring: u32,
    },
    /// Input bound not a positive finite number.
    #[error("the input bound must be a positive number, got {0}")]
    Bound(f64),
}

/// Ring size and fixed-point precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precision {
    ring_bits: u32,
    frac_bits: u32,
}

impl Precision {
    /// Validates a ring of `ring_bits` with `frac_bits` fractional bits.
    pub fn new(ring_bits: u32, frac_bits: u32) -> Result<Self, BudgetError> {
        if !(16..=128).contains(&ring_bits) {
            return Err(BudgetError::RingBits(ring_bits));
        }
        if !(1..=ring_bits - 2).contains(&frac_bits) {
            return Err(BudgetError::FracBits {
                got: frac_bits,
                max: ring_bits - 2,
                ring: ring_bits,
            });
        }
        Ok(Precision {
            ring_bits,
            frac_bits,
        })
    }

    /// Ring bits `l`.
    pub fn ring_bits(&self) -> u32 {
        self.ring_bits
    }

    /// Fractional bits `f`.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }
}

impl Default for Precision {
    fn default() -> Self {
        Precision {
            ring_bits: DEFAULT_RING_BITS,
            frac_bits: DEFAULT_FRAC_BITS,
        }
    }
}

/// ESPN's local pre-scaling shift for the `power`-th power: `max(0, ceil((k - 2) f / k))`.
pub fn prescale(power: u32, frac_bits: u32) -> u32 {
    if power <= 2 {
        0
    } else {
        ((power - 2) * frac_bits).div_ceil(power)
    }
}

/// The single-round protocols whose budget is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Binomial expansion over Beaver products, pre-scaled per power.
    Espn,
    /// One opened `x - r` per input, one pre-scale for all powers.
    HoneyBadger,
}

impl Protocol {
    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Espn => "espn",
            Protocol::HoneyBadger => "honeybadger",
        }
    }

    fn shift(self, power: u32, degree: u32, frac_bits: u32) -> u32 {
        match self {
            Protocol::Espn => prescale(power, frac_bits),
            Protocol::HoneyBadger => prescale(degree, frac_bits),
        }
    }
}

/// How one power `x^k` is formed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerStep {
    /// `k`.
    pub power: u32,
    /// Pre-scaling shift `s` applied to each share of `x`.
    pub prescale: u32,
    /// Scale `k (f - s)` at which `x^k` is formed, in bits.
    pub scale_bits: u32,
    /// Truncation `D = k (f - s) - f` back to scale `f` (negative: an exact left shift).
    pub truncation: i64,
    /// `log2` of the largest `|x^k|` at that scale for `|x| <= B`.
    pub max_log2: f64,
}

/// The budget of one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolBudget {
    /// Which protocol.
    pub protocol: Protocol,
    /// Powers `2..=d`.
    pub steps: Vec<PowerStep>,
    /// `log2` of the largest intermediate, the coefficient products included.
    pub max_log2: f64,
    /// Probability that some local truncation of one activation fails, at `|x| = B`.
    pub truncation_failure: f64,
    /// First-order bound on `|secure - plaintext polynomial|` for `|x| <= B` from pre-scaling
    /// (one unit in the last place of each pre-scaled share), truncations and coefficient
    /// encoding. An estimate for choosing `f`, not a guarantee.
    pub error_estimate: f64,
}

/// The whole precision budget of a polynomial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Ring bits `l`.
    pub ring_bits: u32,
    /// Fractional bits `f`.
    pub frac_bits: u32,
    /// Degree `d`.
    pub degree: usize,
    /// Input bound `B`.
    pub bound: f64,
    /// ESPN and HoneyBadger.
    pub protocols: Vec<ProtocolBudget>,
    /// `log2` of the largest coefficient-weighted sum, at scale `2f`.
    pub combine_log2: f64,
    /// `log2` of the largest intermediate of either protocol.
    pub max_log2: f64,
    /// Bits between that and `2^(l-1)`; negative when it overflows.
    pub headroom_bits: f64,
    /// Whether every intermediate fits the ring.
    pub fits: bool,
    /// Largest `|c_j - enc(c_j)|` of encoding the coefficients at `f` bits (truncation).
    pub coefficient_rounding: f64,
    /// Largest `f` for which powers formed without pre-scaling fit (may be negative).
    pub max_frac_bits_without_prescale: i64,
    /// Largest `f` that fits with a truncation failure rate below [`FAILURE_WARNING`] for
    /// both protocols (`None`: no `f` does).
    pub max_safe_frac_bits: Option<u32>,
    /// What makes this precision unsafe, in words.
    pub warnings: Vec<String>,
}

/// Analyses evaluating the polynomial with `coefficients` (`c_0..c_d`) on inputs `|x| <= bound`.
pub fn analyze(
    precision: Precision,
    bound: f64,
    coefficients: &[f64],
) -> Result<Budget, BudgetError> {
    if !(bound.is_finite() && bound > 0.0) {
        return Err(BudgetError::Bound(bound));
    }
    let core = Core::new(precision, bound, coefficients);
    let ring = precision.ring_bits;
    let max_safe_frac_bits = (1..=ring - 2).rev().find(|&f| {
        let p = Precision {
            ring_bits: ring,
            frac_bits: f,
        };
        Core::new(p, bound, coefficients).is_safe()
    });
    let degree = coefficients.len().saturating_sub(1);
    let limit = f64::from(ring - 1);
    let mut warnings = Vec::new();
    let safe_hint = match max_safe_frac_bits {
        Some(f) => format!("at most f = {f} is safe"),
        None => "no fractional precision is safe; lower the degree or the bound".to_string(),
    };
    if !core.fits() {
        warnings.push(format!(
            "intermediates reach 2^{:.1} for |x| <= {bound} at f = {}, beyond the {ring}-bit \
             ring's 2^{}: the secure result would wrap around ({safe_hint})",
            core.max_log2(),
            precision.frac_bits,
            ring - 1
        ));
    }
    for p in &core.protocols {
        if p.truncation_failure > FAILURE_WARNING {
            warnings.push(format!(
                "{}: local truncation fails for about 1 in {:.0} activations at |x| = {bound} \
                 ({safe_hint})",
                p.protocol.name(),
                1.0 / p.truncation_failure.min(1.0)
            ));
        }
    }
    let max_log2 = core.max_log2();
    let scale = f64::from(precision.frac_bits).exp2();
    Ok(Budget {
        ring_bits: ring,
        frac_bits: precision.frac_bits,
        degree,
        bound,
        combine_log2: core.combine_log2,
        max_log2,
        headroom_bits: limit - max_log2,
        fits: core.fits(),
        coefficient_rounding: coefficients
            .iter()
            .map(|c| (c - (c * scale).trunc() / scale).abs())
            .fold(0.0, f64::max),
        max_frac_bits_without_prescale: (limit / degree.max(1) as f64 - bound.log2()).floor()
            as i64,
        max_safe_frac_bits,
        protocols: core.protocols,
        warnings,
    })
}

/// The numbers of one precision, before the search for the safest one.
struct Core {
    limit: f64,
    protocols: Vec<ProtocolBudget>,
    combine_log2: f64,
}

impl Core {
    fn new(precision: Precision, bound: f64, coefficients: &[f64]) -> Self {
        let f = precision.frac_bits;
        let limit = f64::from(precision.ring_bits - 1);
        let degree = coefficients.len().saturating_sub(1) as u32;
        let log_b = bound.log2();
        let ulp = (-f64::from(f)).exp2();
        let ring_bits = f64::from(precision.ring_bits);
        let fail = |log2: f64| (log2 - ring_bits).exp2();
        let combine_log2 = (coefficients
            .iter()
            .enumerate()
            .map(|(k, c)| c.abs() * bound.powi(k as i32))
            .sum::<f64>()
            .max(ulp)
            .log2())
            + 2.0 * f64::from(f);
        let scale = f64::from(f).exp2();
        let encoding: f64 = coefficients
            .iter()
            .enumerate()
            .map(|(k, c)| (c - (c * scale).trunc() / scale).abs() * bound.powi(k as i32))
            .sum();

        let protocols = [Protocol::Espn, Protocol::HoneyBadger]
            .into_iter()
            .map(|protocol| {
                let steps: Vec<PowerStep> = (2..=degree)
                    .map(|k| {
                        let s = protocol.shift(k, degree, f);
                        let scale_bits = k * (f - s);
                        PowerStep {
                            power: k,
                            prescale: s,
                            scale_bits,
                            truncation: i64::from(scale_bits) - i64::from(f),
                            max_log2: f64::from(k) * log_b + f64::from(scale_bits),
                        }
                    })
                    .collect();
                let mut failure = fail(combine_log2);
                let mut error = ulp + encoding;
                let mut prescaled = false;
                for step in &steps {
                    let c = coefficients[step.power as usize].abs();
                    if step.truncation > 0 {
                        failure += fail(step.max_log2);
                        error += c * ulp;
                    }
                    if step.prescale > 0 {
                        // ESPN pre-scales once per power, HoneyBadger once per input.
                        if protocol == Protocol::Espn || !prescaled {
                            failure += fail(log_b + f64::from(f));
                            prescaled = true;
                        }
                        let k = f64::from(step.power);
                        let input_ulp = (-f64::from(f - step.prescale)).exp2();
                        error += c * k * bound.powi(step.power as i32 - 1) * input_ulp;
                    }
                }
                let max_log2 = steps
                    .iter()
                    .map(|s| s.max_log2)
                    .fold(combine_log2, f64::max);
                ProtocolBudget {
                    protocol,
                    steps,
                    max_log2,
                    truncation_failure: failure,
                    error_estimate: error,
                }
            })
            .collect();
        Core {
            limit,
            protocols,
            combine_log2,
        }
    }

    fn max_log2(&self) -> f64 {
        self.protocols
            .iter()
            .map(|p| p.max_log2)
            .fold(self.combine_log2, f64::max)
    }

    fn fits(&self) -> bool {
        self.max_log2() < self.limit
    }

    fn is_safe(&self) -> bool {
        self.fits()
            && self
                .protocols
                .iter()
                .all(|p| p.truncation_failure <= FAILURE_WARNING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PILLAR: [f64; 5] = [0.314453125, 0.5, 0.15625, 0.0, -0.0029296875];

    fn espn(b: &Budget) -> &ProtocolBudget {
        &b.protocols[0]
    }

    #[test]
    fn prescale_matches_the_facts_table() {
        // (s_3, s_4, D_2, D_3, D_4): f=12: (4, 6, 12, 12, 12); f=16: (6, 8, 16, 14, 16).
        for (f, want) in [(12, [4, 6, 12, 12, 12]), (16, [6, 8, 16, 14, 16])] {
            let b = analyze(Precision::new(64, f).unwrap(), 5.0, &PILLAR).unwrap();
            let s = &espn(&b).steps;
            let got = [
                i64::from(s[1].prescale),
                i64::from(s[2].prescale),
                s[0].truncation,
                s[1].truncation,
                s[2].truncation,
            ];
            assert_eq!(got, want, "f = {f}");
        }
    }

    #[test]
    fn default_pillar_polynomial_fits_with_room_to_spare() {
        let b = analyze(Precision::default(), 5.0, &PILLAR).unwrap();
        assert!(b.fits);
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
        // x^4 at scale 2^32: 5^4 * 2^32 = 2^41.29.
        assert!((b.max_log2 - (625f64.log2() + 32.0)).abs() < 1e-9);
        assert!((b.headroom_bits - 21.71).abs() < 0.01);
        // Without pre-scaling: f <= 63/4 - log2 5 = 13.4.
        assert_eq!(b.max_frac_bits_without_prescale, 13);
        // HoneyBadger pre-scales x by 2^8 for every power, so x^2 is formed at scale f exactly.
        let hb = &b.protocols[1];
        assert_eq!(hb.steps[0].prescale, 8);
        assert_eq!(hb.steps[0].truncation, 0);
        assert!(hb.error_estimate > espn(&b).error_estimate);
    }

    #[test]
    fn too_much_precision_overflows_and_warns() {
        let b = analyze(Precision::new(64, 30).unwrap(), 5.0, &PILLAR).unwrap();
        assert!(!b.fits);
        assert!(b.warnings[0].contains("wrap around"), "{:?}", b.warnings);
        let safe = b.max_safe_frac_bits.unwrap();
        let at_safe = analyze(Precision::new(64, safe).unwrap(), 5.0, &PILLAR).unwrap();
        assert!(at_safe.warnings.is_empty(), "{:?}", at_safe.warnings);
        let above = analyze(Precision::new(64, safe + 1).unwrap(), 5.0, &PILLAR).unwrap();
        assert!(!above.warnings.is_empty());
    }

    #[test]
    fn failure_rate_follows_the_largest_truncated_value() {
        let b = analyze(Precision::new(64, 20).unwrap(), 5.0, &PILLAR).unwrap();
        // x^4 at scale 4 * (20 - 10) = 40 bits: 625 * 2^40 / 2^64 dominates.
        let dominant = 625.0 * 2f64.powi(40 - 64);
        let p = espn(&b).truncation_failure;
        assert!(p > dominant && p < 1.2 * dominant, "{p} vs {dominant}");
        assert!(b.warnings.iter().any(|w| w.contains("truncation fails")));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(Precision::new(8, 4), Err(BudgetError::RingBits(8)));
        assert!(matches!(
            Precision::new(64, 63),
            Err(BudgetError::FracBits { got: 63, .. })
        ));
        assert_eq!(
            analyze(Precision::default(), 0.0, &PILLAR),
            Err(BudgetError::Bound(0.0))
        );
    }
}
