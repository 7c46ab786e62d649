//! What a protocol asks the dealer for, by kind and size: the name of a correlation on the
//! wire. The layouts and the dealer's corrections live with the typed correlations in
//! [`crate::correlation`].

use super::{DealerError, NeedProblem};
use crate::kernels::ConvGeometry;

/// One correlation, sized: its kind and size as the dealer is asked for it. The layout of a
/// party's buffer and the dealer's correction are those of the type in `crate::correlation`
/// each variant names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Need {
    /// An elementwise Beaver triple: `Beaver`.
    Beaver {
        /// Elements.
        n: usize,
    },
    /// A squaring pair: `Square`.
    Square {
        /// Elements.
        n: usize,
    },
    /// A broadcast triple for `k` rows times one row: `FanOut`.
    FanOut {
        /// Rows.
        k: usize,
        /// Elements per row.
        n: usize,
    },
    /// A product of two values each known to one party: `Cross`.
    Cross {
        /// Elements.
        n: usize,
    },
    /// A matrix triple `C = A B`: `Matmul`.
    Matmul {
        /// Rows of `A`.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Columns of `B`.
        n: usize,
    },
    /// A convolution triple: `Conv`.
    Conv2d(ConvGeometry),
    /// HoneyBadger's powers of a uniform `r`: `Powers`.
    Powers {
        /// Elements.
        n: usize,
        /// Highest power `d`.
        degree: usize,
    },
    /// A binary product of two values each known to one party: `CrossAnd`.
    CrossAnd {
        /// Words.
        n: usize,
    },
    /// One Kogge-Stone level: `PrefixAnd`.
    PrefixAnd {
        /// Words.
        n: usize,
        /// The level's shift.
        shift: u32,
    },
    /// Random bits shared both ways: `Bit`.
    Bit {
        /// Elements.
        n: usize,
    },
    /// A convolution triple against a weight mask: `MaskedConv`.
    MaskedConv2d {
        /// The convolution.
        geometry: ConvGeometry,
        /// Which weight mask.
        mask: usize,
    },
    /// A matrix triple against a weight mask: `MaskedMatmul`.
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
    /// A per-channel product against a weight mask: `MaskedScale`.
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
    /// A convolution of the client's input mask by a weight mask, for a preprocessed
    /// convolution: `PreConv`.
    PreprocessedConv2d {
        /// The convolution.
        geometry: ConvGeometry,
        /// Which weight mask.
        mask: usize,
    },
    /// A matrix product of the client's input mask by a weight mask: `PreMatmul`.
    PreprocessedMatmul {
        /// Rows of the input.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Columns.
        n: usize,
        /// Which weight mask.
        mask: usize,
    },
    /// A per-channel product of the client's input mask by a weight mask: `PreScale`.
    PreprocessedScale {
        /// Elements.
        n: usize,
        /// Channels.
        channels: usize,
        /// Elements per channel and image.
        inner: usize,
        /// Which weight mask.
        mask: usize,
    },
    /// Random bits with a masked product: `BitProduct`.
    BitProduct {
        /// Elements.
        n: usize,
    },
}

impl Need {
    /// Words in a party's share buffer.
    pub fn words(&self) -> usize {
        self.layout().words()
    }

    /// Checks a need that came from outside the process (a dealer's client announcing what it
    /// will ask for): no size empty (no protocol asks for an empty correlation, and the
    /// corrections index what their sizes promise), every size small enough that
    /// [`Need::words`] cannot overflow and the buffers fit in `max_words` words, the
    /// convolution geometry valid (its buffer lengths formed checked) and shifts within a
    /// word. Sizes from a compiled plan always pass; this guards the dealer against a peer.
    pub fn check(&self, max_words: usize) -> Result<(), DealerError> {
        /// Any single count beyond this is refused before products are formed, so the sums of
        /// products of at most two counts in [`Need::words`] stay far below `usize::MAX`.
        const MAX_COUNT: usize = 1 << 28;
        let bad = |problem: NeedProblem| DealerError::Need {
            need: Box::new(self.clone()),
            problem,
        };
        let counts: Vec<usize> = match *self {
            Need::Beaver { n }
            | Need::Square { n }
            | Need::Cross { n }
            | Need::CrossAnd { n }
            | Need::Bit { n }
            | Need::BitProduct { n } => vec![n],
            Need::FanOut { k, n } => vec![k, n],
            Need::Matmul { m, k, n }
            | Need::MaskedMatmul { m, k, n, .. }
            | Need::PreprocessedMatmul { m, k, n, .. } => vec![m, k, n],
            Need::Powers { n, degree } => {
                let limit = crate::protocols::poly::MAX_DEGREE;
                if degree > limit {
                    return Err(bad(NeedProblem::Degree { degree, limit }));
                }
                vec![n, degree]
            }
            Need::PrefixAnd { n, shift } => {
                if shift >= 64 {
                    return Err(bad(NeedProblem::Shift(shift)));
                }
                vec![n]
            }
            Need::MaskedScale {
                n, channels, inner, ..
            }
            | Need::PreprocessedScale {
                n, channels, inner, ..
            } => vec![n, channels, inner],
            // Kernel and stride are the geometry's own to check.
            Need::Conv2d(g)
            | Need::MaskedConv2d { geometry: g, .. }
            | Need::PreprocessedConv2d { geometry: g, .. } => {
                vec![g.batch, g.in_channels, g.height, g.width, g.out_channels]
            }
        };
        if counts.contains(&0) {
            return Err(bad(NeedProblem::Empty { sizes: counts }));
        }
        if let Need::Conv2d(g)
        | Need::MaskedConv2d { geometry: g, .. }
        | Need::PreprocessedConv2d { geometry: g, .. } = self
        {
            g.validate()
                .map_err(|e| bad(NeedProblem::Geometry(Box::new(e))))?;
        }
        if let Some(&size) = counts.iter().find(|&&c| c > MAX_COUNT) {
            return Err(bad(NeedProblem::Count {
                size,
                limit: MAX_COUNT,
            }));
        }
        let words = self.words();
        if words > max_words {
            return Err(bad(NeedProblem::Words {
                words,
                limit: max_words,
            }));
        }
        Ok(())
    }

    /// Words at the end of the buffer that party 1 gets from the dealer.
    pub fn correction_words(&self) -> usize {
        self.layout().correction_words()
    }

    /// The weight mask this triple is taken against, if any.
    pub fn mask(&self) -> Option<usize> {
        match *self {
            Need::MaskedConv2d { mask, .. }
            | Need::MaskedMatmul { mask, .. }
            | Need::MaskedScale { mask, .. }
            | Need::PreprocessedConv2d { mask, .. }
            | Need::PreprocessedMatmul { mask, .. }
            | Need::PreprocessedScale { mask, .. } => Some(mask),
            _ => None,
        }
    }

    /// Words both parties expand from their own seeds.
    pub fn seeded_words(&self) -> usize {
        self.layout().seeded_words()
    }

    /// Elements of the weight mask a product against one regenerates at the dealer (0 for
    /// any other need). Sizes must be checked.
    pub fn weight_mask_words(&self) -> usize {
        match *self {
            Need::MaskedConv2d { geometry, .. } | Need::PreprocessedConv2d { geometry, .. } => {
                geometry.weight_len()
            }
            Need::MaskedMatmul { k, n, .. } | Need::PreprocessedMatmul { k, n, .. } => k * n,
            Need::MaskedScale { channels, .. } | Need::PreprocessedScale { channels, .. } => {
                channels
            }
            _ => 0,
        }
    }
}
