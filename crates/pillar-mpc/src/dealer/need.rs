//! The kinds of correlated randomness, their layouts, and how the dealer completes them.

use super::DealerError;
use crate::kernels::{ConvGeometry, conv2d, matmul};

/// One correlation, sized. Each variant's doc gives the layout of a party's share buffer, in
/// order; `+` shares are additive mod 2^64, `^` shares are XOR. The dealer-sent part is marked
/// "(corrected)": party 0 expands it from its seed like the rest, party 1 receives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Need {
    /// Elementwise Beaver triple: `a+ | b+ | c+ (corrected)`, `c = a b`.
    Beaver {
        /// Elements.
        n: usize,
    },
    /// Squaring pair: `a+ | s+ (corrected)`, `s = a^2`.
    Square {
        /// Elements.
        n: usize,
    },
    /// Broadcast triple for `k` rows times one row: `a+ (k n) | b+ (n) | c+ (k n, corrected)`,
    /// `c[j n + i] = a[j n + i] b[i]`.
    FanOut {
        /// Rows.
        k: usize,
        /// Elements per row.
        n: usize,
    },
    /// Product of two values each known to one party: `m | c+ (corrected)`, where party 0's
    /// `m` is its whole mask `a`, party 1's `m` its whole mask `b`, and `c = a b`.
    Cross {
        /// Elements.
        n: usize,
    },
    /// Matrix triple: `A+ (m k) | B+ (k n) | C+ (m n, corrected)`, `C = A B`.
    Matmul {
        /// Rows of `A`.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Columns of `B`.
        n: usize,
    },
    /// Convolution triple: `X+ (input) | W+ (weight) | Y+ (output, corrected)`,
    /// `Y = conv(X, W)`.
    Conv2d(ConvGeometry),
    /// HoneyBadger powers: `r+ | r^2+ .. r^d+ (corrected)`, `r` uniform in the ring.
    Powers {
        /// Elements.
        n: usize,
        /// Highest power `d`.
        degree: usize,
    },
    /// Binary product of two values each known to one party: `m | c^ (corrected)`,
    /// `c = a & b` with `a`, `b` the parties' whole masks.
    CrossAnd {
        /// Words.
        n: usize,
    },
    /// One Kogge-Stone level: `a^ | b^ | aa^ (corrected) | ab^ (corrected)`, with
    /// `aa = a & (a << shift)` and `ab = a & (b << shift)`.
    PrefixAnd {
        /// Words.
        n: usize,
        /// The level's shift.
        shift: u32,
    },
    /// Random bits shared both ways: `rb^ | r+ (corrected)`, `r = (rb0 ^ rb1) & 1`.
    Bit {
        /// Elements.
        n: usize,
    },
    /// A weight mask, drawn once per connection: `b+` (no correction). Both parties' shares
    /// come from their seeds; the dealer keeps `B = b0 + b1` as the connection's next mask
    /// (numbered from 0 in the order drawn), for the `Masked*` triples below. The opened
    /// `W - B` is reused by every inference, which is safe because `W` never changes.
    WeightMask {
        /// Elements.
        n: usize,
    },
    /// Convolution triple against weight mask `mask` (an OIHW weight):
    /// `X+ (input) | Y+ (output, corrected)`, `Y = conv(X, B_mask)`.
    MaskedConv2d {
        /// The convolution.
        geometry: ConvGeometry,
        /// Which weight mask.
        mask: usize,
    },
    /// Matrix triple against weight mask `mask` (`k x n`): `A+ (m k) | C+ (m n, corrected)`,
    /// `C = A B_mask`.
    MaskedMatmul {
        /// Rows of `A`.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Columns.
        n: usize,
        /// Which weight mask.
        mask: usize,
    },
    /// Per-channel product against weight mask `mask` (`channels` elements), for a tensor
    /// whose channel is `(i / inner) % channels`: `A+ (n) | C+ (n, corrected)`,
    /// `C[i] = A[i] B_mask[(i / inner) % channels]`.
    MaskedScale {
        /// Elements.
        n: usize,
        /// Channels.
        channels: usize,
        /// Elements per channel and image.
        inner: usize,
        /// Which weight mask.
        mask: usize,
    },
    /// Random bits with a masked product: `rb^ | a+ | r+ (corrected) | ar+ (corrected)`,
    /// `r` as for [`Need::Bit`], `ar = a r`.
    BitProduct {
        /// Elements.
        n: usize,
    },
}

impl Need {
    /// Words in a party's share buffer.
    pub fn words(&self) -> usize {
        match *self {
            Need::Beaver { n } => 3 * n,
            Need::Square { n } | Need::Cross { n } | Need::CrossAnd { n } | Need::Bit { n } => {
                2 * n
            }
            Need::FanOut { k, n } => 2 * k * n + n,
            Need::Matmul { m, k, n } => m * k + k * n + m * n,
            Need::Conv2d(g) => g.input_len() + g.weight_len() + g.output_len(),
            Need::Powers { n, degree } => n * degree,
            Need::PrefixAnd { n, .. } | Need::BitProduct { n } => 4 * n,
            Need::WeightMask { n } => n,
            Need::MaskedConv2d { geometry: g, .. } => g.input_len() + g.output_len(),
            Need::MaskedMatmul { m, k, n, .. } => m * k + m * n,
            Need::MaskedScale { n, .. } => 2 * n,
        }
    }

    /// Checks a need that came from outside the process (a dealer's client announcing what it
    /// will ask for): every size small enough that [`Need::words`] cannot overflow and the
    /// buffers fit in `max_words` words, the convolution geometry valid and shifts within a
    /// word. Sizes from a compiled plan always pass; this guards the dealer against a peer.
    pub fn check(&self, max_words: usize) -> Result<(), DealerError> {
        /// Any single count beyond this is refused before products are formed, so the sums of
        /// products of at most two counts in [`Need::words`] stay far below `usize::MAX`.
        const MAX_COUNT: usize = 1 << 28;
        let bad = |detail: String| DealerError::Protocol(format!("{self:?}: {detail}"));
        let counts: Vec<usize> = match *self {
            Need::Beaver { n }
            | Need::Square { n }
            | Need::Cross { n }
            | Need::CrossAnd { n }
            | Need::Bit { n }
            | Need::BitProduct { n }
            | Need::WeightMask { n } => vec![n],
            Need::FanOut { k, n } => vec![k, n],
            Need::Matmul { m, k, n } | Need::MaskedMatmul { m, k, n, .. } => vec![m, k, n],
            Need::Powers { n, degree } => vec![n, degree],
            Need::PrefixAnd { n, shift } => {
                if shift >= 64 {
                    return Err(bad(format!("shift {shift} is beyond a 64-bit word")));
                }
                vec![n]
            }
            Need::MaskedScale {
                n, channels, inner, ..
            } => vec![n, channels, inner],
            Need::Conv2d(g) | Need::MaskedConv2d { geometry: g, .. } => {
                g.validate().map_err(|e| bad(e.to_string()))?;
                vec![]
            }
        };
        if let Some(c) = counts.iter().find(|&&c| c > MAX_COUNT) {
            return Err(bad(format!("size {c} is beyond {MAX_COUNT}")));
        }
        if self.words() > max_words {
            return Err(bad(format!(
                "{} words is beyond the limit of {max_words}",
                self.words()
            )));
        }
        Ok(())
    }

    /// Words at the end of the buffer that party 1 gets from the dealer.
    pub fn correction_words(&self) -> usize {
        match *self {
            Need::Beaver { n }
            | Need::Square { n }
            | Need::Cross { n }
            | Need::CrossAnd { n }
            | Need::Bit { n } => n,
            Need::FanOut { k, n } => k * n,
            Need::Matmul { m, n, .. } => m * n,
            Need::Conv2d(g) => g.output_len(),
            Need::Powers { n, degree } => n * degree.saturating_sub(1),
            Need::PrefixAnd { n, .. } | Need::BitProduct { n } => 2 * n,
            Need::WeightMask { .. } => 0,
            Need::MaskedConv2d { geometry: g, .. } => g.output_len(),
            Need::MaskedMatmul { m, n, .. } => m * n,
            Need::MaskedScale { n, .. } => n,
        }
    }

    /// The weight mask this triple is taken against, if any.
    pub fn mask(&self) -> Option<usize> {
        match *self {
            Need::MaskedConv2d { mask, .. }
            | Need::MaskedMatmul { mask, .. }
            | Need::MaskedScale { mask, .. } => Some(mask),
            _ => None,
        }
    }

    /// Elements of the weight mask this triple needs, to check it against the one drawn.
    fn mask_len(&self) -> Option<usize> {
        match *self {
            Need::MaskedConv2d { geometry: g, .. } => Some(g.weight_len()),
            Need::MaskedMatmul { k, n, .. } => Some(k * n),
            Need::MaskedScale { channels, .. } => Some(channels),
            _ => None,
        }
    }

    /// Words both parties expand from their own seeds.
    pub fn seeded_words(&self) -> usize {
        self.words() - self.correction_words()
    }

    /// The dealer's side: party 1's corrected words, from party 0's whole share `p0` and
    /// party 1's seeded words `p1`. `masks` holds the connection's weight masks: a
    /// [`Need::WeightMask`] adds one, a `Masked*` triple reads one.
    pub fn correction(
        &self,
        p0: &[u64],
        p1: &[u64],
        masks: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        if let Need::WeightMask { n } = *self {
            let b = p0[..n]
                .iter()
                .zip(&p1[..n])
                .map(|(a, b)| a.wrapping_add(*b));
            masks.0.push(b.collect());
            return Ok(Vec::new());
        }
        let mask = match (self.mask(), self.mask_len()) {
            (Some(id), Some(len)) => {
                let b = masks.0.get(id).ok_or_else(|| {
                    DealerError::Protocol(format!(
                        "{self:?} uses weight mask {id}, but only {} were drawn",
                        masks.0.len()
                    ))
                })?;
                if b.len() != len {
                    return Err(DealerError::Protocol(format!(
                        "{self:?} needs a weight mask of {len} elements; mask {id} has {}",
                        b.len()
                    )));
                }
                b.as_slice()
            }
            _ => &[],
        };
        Ok(self.correction_given(p0, p1, mask))
    }

    fn correction_given(&self, p0: &[u64], p1: &[u64], mask: &[u64]) -> Vec<u64> {
        let add = |x: &[u64], y: &[u64]| -> Vec<u64> {
            x.iter().zip(y).map(|(a, b)| a.wrapping_add(*b)).collect()
        };
        let xor =
            |x: &[u64], y: &[u64]| -> Vec<u64> { x.iter().zip(y).map(|(a, b)| a ^ b).collect() };
        // `value - share0` (additive) over a slice.
        let minus = |value: Vec<u64>, share0: &[u64]| -> Vec<u64> {
            value
                .iter()
                .zip(share0)
                .map(|(v, s)| v.wrapping_sub(*s))
                .collect()
        };
        match *self {
            Need::Beaver { n } => {
                let a = add(&p0[..n], &p1[..n]);
                let b = add(&p0[n..2 * n], &p1[n..2 * n]);
                let c: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x.wrapping_mul(*y)).collect();
                minus(c, &p0[2 * n..])
            }
            Need::Square { n } => {
                let a = add(&p0[..n], &p1[..n]);
                minus(a.iter().map(|x| x.wrapping_mul(*x)).collect(), &p0[n..])
            }
            Need::FanOut { k, n } => {
                let a = add(&p0[..k * n], &p1[..k * n]);
                let b = add(&p0[k * n..k * n + n], &p1[k * n..k * n + n]);
                let c = a
                    .iter()
                    .enumerate()
                    .map(|(idx, x)| x.wrapping_mul(b[idx % n]))
                    .collect();
                minus(c, &p0[k * n + n..])
            }
            Need::Cross { n } => {
                let c = p0[..n]
                    .iter()
                    .zip(&p1[..n])
                    .map(|(a, b)| a.wrapping_mul(*b))
                    .collect();
                minus(c, &p0[n..])
            }
            Need::Matmul { m, k, n } => {
                let a = add(&p0[..m * k], &p1[..m * k]);
                let b = add(&p0[m * k..m * k + k * n], &p1[m * k..m * k + k * n]);
                minus(matmul(m, k, n, &a, &b), &p0[m * k + k * n..])
            }
            Need::Conv2d(g) => {
                let (xi, wi) = (g.input_len(), g.weight_len());
                let x = add(&p0[..xi], &p1[..xi]);
                let w = add(&p0[xi..xi + wi], &p1[xi..xi + wi]);
                minus(conv2d(&g, &x, &w), &p0[xi + wi..])
            }
            Need::Powers { n, degree } => {
                let r = add(&p0[..n], &p1[..n]);
                let mut out = Vec::with_capacity(n * degree.saturating_sub(1));
                let mut power = r.clone();
                for j in 2..=degree {
                    for (p, x) in power.iter_mut().zip(&r) {
                        *p = p.wrapping_mul(*x);
                    }
                    let share0 = &p0[(j - 1) * n..j * n];
                    out.extend(power.iter().zip(share0).map(|(v, s)| v.wrapping_sub(*s)));
                }
                out
            }
            Need::CrossAnd { n } => {
                let c: Vec<u64> = p0[..n].iter().zip(&p1[..n]).map(|(a, b)| a & b).collect();
                xor(&c, &p0[n..])
            }
            Need::PrefixAnd { n, shift } => {
                let a = xor(&p0[..n], &p1[..n]);
                let b = xor(&p0[n..2 * n], &p1[n..2 * n]);
                let mut out = Vec::with_capacity(2 * n);
                out.extend(
                    a.iter()
                        .zip(&p0[2 * n..3 * n])
                        .map(|(a, s)| (a & (a << shift)) ^ s),
                );
                out.extend(
                    a.iter()
                        .zip(&b)
                        .zip(&p0[3 * n..])
                        .map(|((a, b), s)| (a & (b << shift)) ^ s),
                );
                out
            }
            Need::Bit { n } => {
                let r: Vec<u64> = xor(&p0[..n], &p1[..n]).iter().map(|r| r & 1).collect();
                minus(r, &p0[n..])
            }
            Need::WeightMask { .. } => Vec::new(),
            Need::MaskedConv2d { geometry: g, .. } => {
                let xi = g.input_len();
                let x = add(&p0[..xi], &p1[..xi]);
                minus(conv2d(&g, &x, mask), &p0[xi..])
            }
            Need::MaskedMatmul { m, k, n, .. } => {
                let a = add(&p0[..m * k], &p1[..m * k]);
                minus(matmul(m, k, n, &a, mask), &p0[m * k..])
            }
            Need::MaskedScale {
                n, channels, inner, ..
            } => {
                let a = add(&p0[..n], &p1[..n]);
                let c = a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x.wrapping_mul(mask[(i / inner.max(1)) % channels.max(1)]))
                    .collect();
                minus(c, &p0[n..])
            }
            Need::BitProduct { n } => {
                let r: Vec<u64> = xor(&p0[..n], &p1[..n]).iter().map(|r| r & 1).collect();
                let a = add(&p0[n..2 * n], &p1[n..2 * n]);
                let ar: Vec<u64> = a.iter().zip(&r).map(|(a, r)| a.wrapping_mul(*r)).collect();
                let mut out = minus(r, &p0[2 * n..3 * n]);
                out.extend(minus(ar, &p0[3 * n..]));
                out
            }
        }
    }
}

/// The weight masks of one connection, as the dealer knows them (`B = b0 + b1`), in the order
/// drawn.
#[derive(Debug, Clone, Default)]
pub struct Masks(Vec<Vec<u64>>);

impl Masks {
    /// Masks drawn so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none was drawn.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
