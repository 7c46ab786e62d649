//! The kinds of correlated randomness, typed: what a protocol takes from its session
//! (`s.correlation::<Beaver>(n)`) and what the dealer completes.
//!
//! Each kind is a type that owns one party's buffer and names its parts (`a()`, `b()`, `c()`),
//! defined once, in the module that also holds the dealer's correction for it: a protocol
//! never slices a flat buffer by offsets documented elsewhere. A part is additive (`+`) or XOR
//! (`^`) shared as its doc says. The parts party 1 receives from the dealer come last
//! ([`Layout::corrected`]): everything else either party expands from a seed, so a dealer ships
//! two seeds plus one correction per correlation instead of whole triples.
//!
//! [`Need`](crate::dealer::Need) is the kind and size named on the wire (what a client
//! announces to the dealer); it dispatches to these types for its layout and its correction.

mod arith;
mod binary;
mod linear;

pub(crate) use arith::{Beaver, Cross, FanOut, Powers, Square};
pub(crate) use binary::{Bit, BitProduct, CrossAnd, PrefixAnd};
pub(crate) use linear::{
    Conv, MaskedConv, MaskedMatmul, MaskedScale, Matmul, PreConv, PreMatmul, PreScale,
};

use zeroize::{Zeroize, Zeroizing};

use crate::dealer::{DealerError, Need, NeedProblem, WeightMasks};

/// The lengths of a correlation's parts in buffer order, and how many of the last ones party
/// 1 gets from the dealer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    lens: Vec<usize>,
    corrected: usize,
}

impl Layout {
    /// Parts of `lens` words, of which the last `corrected` come from the dealer.
    pub(crate) fn new(lens: Vec<usize>, corrected: usize) -> Layout {
        debug_assert!(corrected <= lens.len());
        Layout { lens, corrected }
    }

    /// Words in a party's buffer.
    pub(crate) fn words(&self) -> usize {
        self.lens.iter().sum()
    }

    /// Words party 1 gets from the dealer (the last parts).
    pub(crate) fn correction_words(&self) -> usize {
        self.lens[self.lens.len() - self.corrected..].iter().sum()
    }

    /// Words both parties expand from their own seeds (the first parts).
    pub(crate) fn seeded_words(&self) -> usize {
        self.words() - self.correction_words()
    }
}

/// One party's buffer of a correlation, cut into its parts; wiped when dropped, as it is a
/// share of the masks (on the dealer's side, both parties' shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts {
    words: Vec<u64>,
    ends: Vec<usize>,
}

impl Drop for Parts {
    fn drop(&mut self) {
        self.words.zeroize();
    }
}

impl Parts {
    /// `words` cut as `layout` says; it must hold exactly `layout.words()` words (the session
    /// and the dealer check this before).
    fn new(words: Vec<u64>, layout: &Layout) -> Parts {
        debug_assert_eq!(words.len(), layout.words());
        let ends = layout
            .lens
            .iter()
            .scan(0, |end, len| {
                *end += len;
                Some(*end)
            })
            .collect();
        Parts { words, ends }
    }

    /// Part `i`.
    fn get(&self, i: usize) -> &[u64] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.words[start..self.ends[i]]
    }
}

/// What sizes a kind of correlation, names it to the dealer and lays out its buffer (made by
/// [`correlation!`]).
pub(crate) trait Kind: From<Parts> {
    /// What sizes it (elements, dimensions, a geometry; for the masked products, also the
    /// weight mask's number).
    type Size;

    /// The request that names it to the dealer.
    fn need(size: &Self::Size) -> Need;

    /// Its parts' lengths.
    fn layout(size: &Self::Size) -> Layout;
}

/// Party 0's whole share of a correlation and party 1's, whose corrected parts read as zeros:
/// what the dealer completes.
pub(crate) struct Pair<'a, C> {
    /// Party 0's share.
    pub(crate) p0: &'a C,
    /// Party 1's seeded parts.
    pub(crate) p1: &'a C,
}

/// Words the dealer sends, or why not.
pub(crate) type Words = Result<Vec<u64>, DealerError>;

/// A kind of correlated randomness, and how the dealer completes it.
pub(crate) trait Correlation: Kind {
    /// The dealer's side: party 1's corrected parts, in order and concatenated. `masks` holds
    /// the connection's weight masks.
    fn correction(size: &Self::Size, shares: Pair<'_, Self>, masks: &Masks) -> Words;
}

/// Declares correlation types, one a line: its name and size (a pattern and its type), the
/// [`Need`] that names it, its parts' lengths in buffer order (the last `corrected` ones from
/// the dealer) and their names, each an accessor of this party's share of that part.
macro_rules! correlations {
    ($(
        $(#[$doc:meta])*
        $name:ident($size:pat => $ty:ty) = $need:expr,
        layout $lens:expr, corrected $corrected:expr, parts [$($part:ident),* $(,)?];
    )+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name(Parts);

        impl $name {
            correlations!(@parts 0; $($part),*);
        }

        impl From<Parts> for $name {
            fn from(parts: Parts) -> Self {
                $name(parts)
            }
        }

        impl Kind for $name {
            type Size = $ty;

            fn need(&$size: &$ty) -> Need {
                $need
            }

            // The size's pattern names what the need takes; the layout may not use all of it.
            #[allow(unused_variables)]
            fn layout(&$size: &$ty) -> Layout {
                Layout::new($lens, $corrected)
            }
        }
    )+};
    (@parts $index:expr;) => {};
    (@parts $index:expr; $part:ident $(, $rest:ident)*) => {
        pub(crate) fn $part(&self) -> &[u64] {
            self.0.get($index)
        }
        correlations!(@parts $index + 1; $($rest),*);
    };
}
pub(crate) use correlations;

/// A party's share of `C` from a buffer of `layout.words()` words.
pub(crate) fn share<C: Correlation>(words: Vec<u64>, layout: &Layout) -> C {
    C::from(Parts::new(words, layout))
}

/// The dealer's correction of `C` from party 0's whole buffer and party 1's seeded words.
fn correct<C: Correlation>(size: &C::Size, p0: Vec<u64>, mut p1: Vec<u64>, masks: &Masks) -> Words {
    let layout = C::layout(size);
    p1.resize(layout.words(), 0);
    let (p0, p1) = (
        C::from(Parts::new(p0, &layout)),
        C::from(Parts::new(p1, &layout)),
    );
    C::correction(size, Pair { p0: &p0, p1: &p1 }, masks)
}

impl Need {
    /// The layout of a party's buffer.
    pub(crate) fn layout(&self) -> Layout {
        match *self {
            Need::Beaver { n } => Beaver::layout(&n),
            Need::Square { n } => Square::layout(&n),
            Need::FanOut { k, n } => FanOut::layout(&(k, n)),
            Need::Cross { n } => Cross::layout(&n),
            Need::Matmul { m, k, n } => Matmul::layout(&(m, k, n)),
            Need::Conv2d(g) => Conv::layout(&g),
            Need::Powers { n, degree } => Powers::layout(&(n, degree)),
            Need::CrossAnd { n } => CrossAnd::layout(&n),
            Need::PrefixAnd { n, shift } => PrefixAnd::layout(&(n, shift)),
            Need::Bit { n } => Bit::layout(&n),
            Need::MaskedConv2d { geometry, mask } => MaskedConv::layout(&(geometry, mask)),
            Need::MaskedMatmul { m, k, n, mask } => MaskedMatmul::layout(&(m, k, n, mask)),
            Need::MaskedScale {
                n,
                channels,
                inner,
                mask,
            } => MaskedScale::layout(&(n, channels, inner, mask)),
            Need::PreprocessedConv2d { geometry, mask } => PreConv::layout(&(geometry, mask)),
            Need::PreprocessedMatmul { m, k, n, mask } => PreMatmul::layout(&(m, k, n, mask)),
            Need::PreprocessedScale {
                n,
                channels,
                inner,
                mask,
            } => PreScale::layout(&(n, channels, inner, mask)),
            Need::BitProduct { n } => BitProduct::layout(&n),
        }
    }

    /// The dealer's side: party 1's corrected words, from party 0's whole share `p0` and
    /// party 1's seeded words `p1`. `masks` are the server's weight masks, which the
    /// `Masked*` and `Preprocessed*` products read.
    pub(crate) fn correction(
        &self,
        p0: Vec<u64>,
        p1: Vec<u64>,
        masks: &Masks,
    ) -> Result<Vec<u64>, DealerError> {
        match *self {
            Need::Beaver { n } => correct::<Beaver>(&n, p0, p1, masks),
            Need::Square { n } => correct::<Square>(&n, p0, p1, masks),
            Need::FanOut { k, n } => correct::<FanOut>(&(k, n), p0, p1, masks),
            Need::Cross { n } => correct::<Cross>(&n, p0, p1, masks),
            Need::Matmul { m, k, n } => correct::<Matmul>(&(m, k, n), p0, p1, masks),
            Need::Conv2d(g) => correct::<Conv>(&g, p0, p1, masks),
            Need::Powers { n, degree } => correct::<Powers>(&(n, degree), p0, p1, masks),
            Need::CrossAnd { n } => correct::<CrossAnd>(&n, p0, p1, masks),
            Need::PrefixAnd { n, shift } => correct::<PrefixAnd>(&(n, shift), p0, p1, masks),
            Need::Bit { n } => correct::<Bit>(&n, p0, p1, masks),
            Need::MaskedConv2d { geometry, mask } => {
                correct::<MaskedConv>(&(geometry, mask), p0, p1, masks)
            }
            Need::MaskedMatmul { m, k, n, mask } => {
                correct::<MaskedMatmul>(&(m, k, n, mask), p0, p1, masks)
            }
            Need::MaskedScale {
                n,
                channels,
                inner,
                mask,
            } => correct::<MaskedScale>(&(n, channels, inner, mask), p0, p1, masks),
            Need::PreprocessedConv2d { geometry, mask } => {
                correct::<PreConv>(&(geometry, mask), p0, p1, masks)
            }
            Need::PreprocessedMatmul { m, k, n, mask } => {
                correct::<PreMatmul>(&(m, k, n, mask), p0, p1, masks)
            }
            Need::PreprocessedScale {
                n,
                channels,
                inner,
                mask,
            } => correct::<PreScale>(&(n, channels, inner, mask), p0, p1, masks),
            Need::BitProduct { n } => correct::<BitProduct>(&n, p0, p1, masks),
        }
    }
}

/// The server's weight masks as the dealer knows them, if it was told them: products against
/// a mask regenerate it ([`WeightMasks`]), so nothing is kept per connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Masks(pub(crate) Option<std::sync::Arc<WeightMasks>>);

impl Masks {
    /// Mask `id`, which the correlation `need` expects to hold `len` elements.
    fn get(&self, id: usize, len: usize, need: &Need) -> Result<Zeroizing<Vec<u64>>, DealerError> {
        match &self.0 {
            Some(masks) => masks.mask(id, len, need),
            None => Err(DealerError::Need {
                need: Box::new(need.clone()),
                problem: NeedProblem::NoMask { mask: id, drawn: 0 },
            }),
        }
    }
}

/// `x + y` elementwise: on the dealer's side a whole mask, hence wiped when dropped.
fn add(x: &[u64], y: &[u64]) -> Zeroizing<Vec<u64>> {
    Zeroizing::new(x.iter().zip(y).map(|(a, b)| a.wrapping_add(*b)).collect())
}

/// `x ^ y` elementwise, wiped when dropped as [`add`].
fn xor(x: &[u64], y: &[u64]) -> Zeroizing<Vec<u64>> {
    Zeroizing::new(x.iter().zip(y).map(|(a, b)| a ^ b).collect())
}

/// `value - share0` elementwise: party 1's additive share of `value`, which is wiped.
fn minus(value: Vec<u64>, share0: &[u64]) -> Vec<u64> {
    let value = Zeroizing::new(value);
    value
        .iter()
        .zip(share0)
        .map(|(v, s)| v.wrapping_sub(*s))
        .collect()
}
