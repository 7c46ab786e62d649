//! Correlations of the linear layers: matrix and convolution triples of two shared operands,
//! and those taken against one of the server's weight masks ([`crate::dealer::WeightMasks`]).

use super::{Correlation, Kind, Layout, Masks, Pair, Parts, Words, add, correlations, minus};
use crate::dealer::{DealerError, Need, NeedProblem};
use crate::kernels::{ConvGeometry, conv2d, matmul};

correlations! {
    /// Matrix triple sized `(m, k, n)`: `a+ (m k) | b+ (k n) | c+ (m n, corrected)`,
    /// `C = A B`.
    Matmul((m, k, n) => (usize, usize, usize)) = Need::Matmul { m, k, n },
        layout vec![m * k, k * n, m * n], corrected 1, parts [a, b, c];
    /// Convolution triple: `x+ (input) | w+ (weight) | y+ (output, corrected)`,
    /// `Y = conv(X, W)`.
    Conv(g => ConvGeometry) = Need::Conv2d(g),
        layout vec![g.input_len(), g.weight_len(), g.output_len()], corrected 1, parts [x, w, y];
    /// Convolution triple against weight mask `mask` (an OIHW weight), sized
    /// `(geometry, mask)`: `x+ (input) | y+ (output, corrected)`, `Y = conv(X, B_mask)`.
    MaskedConv((geometry, mask) => (ConvGeometry, usize)) = Need::MaskedConv2d { geometry, mask },
        layout vec![geometry.input_len(), geometry.output_len()], corrected 1, parts [x, y];
    /// Matrix triple against weight mask `mask` (`k x n`), sized `(m, k, n, mask)`:
    /// `a+ (m k) | c+ (m n, corrected)`, `C = A B_mask`.
    MaskedMatmul((m, k, n, mask) => (usize, usize, usize, usize)) =
        Need::MaskedMatmul { m, k, n, mask }, layout vec![m * k, m * n], corrected 1, parts [a, c];
    /// Per-channel product against weight mask `mask` (`channels` elements) for a tensor of
    /// `n` elements whose channel is `(i / inner) % channels`, sized
    /// `(n, channels, inner, mask)`: `a+ (n) | c+ (n, corrected)`,
    /// `C[i] = A[i] B_mask[(i / inner) % channels]`.
    MaskedScale((n, channels, inner, mask) => (usize, usize, usize, usize)) =
        Need::MaskedScale { n, channels, inner, mask }, layout vec![n, n], corrected 1, parts [a, c];
    /// A preprocessed convolution against weight mask `mask`, sized `(geometry, mask)`:
    /// `mask (input) | c+ (output, corrected)`, `C = conv(M, B_mask)` where `M` is party 1's
    /// `mask` alone: the client's input mask, which the server never learns. Party 0's `mask`
    /// part is expanded and unused (every part of a layout is both parties').
    PreConv((geometry, mask) => (ConvGeometry, usize)) =
        Need::PreprocessedConv2d { geometry, mask },
        layout vec![geometry.input_len(), geometry.output_len()], corrected 1, parts [mask, c];
    /// A preprocessed matrix product against weight mask `mask` (`k x n`), sized
    /// `(m, k, n, mask)`: `mask (m k) | c+ (m n, corrected)`, `C = M B_mask`, `M` party 1's.
    PreMatmul((m, k, n, mask) => (usize, usize, usize, usize)) =
        Need::PreprocessedMatmul { m, k, n, mask },
        layout vec![m * k, m * n], corrected 1, parts [mask, c];
    /// A preprocessed per-channel product against weight mask `mask`, sized
    /// `(n, channels, inner, mask)`: `mask (n) | c+ (n, corrected)`,
    /// `C[i] = M[i] B_mask[(i / inner) % channels]`, `M` party 1's.
    PreScale((n, channels, inner, mask) => (usize, usize, usize, usize)) =
        Need::PreprocessedScale { n, channels, inner, mask },
        layout vec![n, n], corrected 1, parts [mask, c];
}

impl Correlation for Matmul {
    fn correction(size: &(usize, usize, usize), p: Pair<'_, Self>, _: &Masks) -> Words {
        let &(m, k, n) = size;
        let product = matmul(m, k, n, &add(p.p0.a(), p.p1.a()), &add(p.p0.b(), p.p1.b()));
        Ok(minus(product, p.p0.c()))
    }
}

impl Correlation for Conv {
    fn correction(g: &ConvGeometry, Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        let (x, w) = (add(p0.x(), p1.x()), add(p0.w(), p1.w()));
        Ok(minus(conv2d(g, &x, &w), p0.y()))
    }
}

impl Correlation for MaskedConv {
    fn correction(size: &(ConvGeometry, usize), p: Pair<'_, Self>, masks: &Masks) -> Words {
        let (g, id) = size;
        let b = masks.get(*id, g.weight_len(), &Self::need(size))?;
        Ok(minus(conv2d(g, &add(p.p0.x(), p.p1.x()), &b), p.p0.y()))
    }
}

impl Correlation for MaskedMatmul {
    fn correction(size: &Self::Size, p: Pair<'_, Self>, masks: &Masks) -> Words {
        let &(m, k, n, id) = size;
        let b = masks.get(id, k * n, &Self::need(size))?;
        Ok(minus(
            matmul(m, k, n, &add(p.p0.a(), p.p1.a()), &b),
            p.p0.c(),
        ))
    }
}

/// `a[i] b[(i / inner) % channels]`: a per-channel product, the dealer's side of
/// [`MaskedScale`] and [`PreScale`]. `b` must be non-empty when `a` is.
fn scale_by_channel(
    a: &[u64],
    b: &[u64],
    channels: usize,
    inner: usize,
    need: Need,
) -> Result<Vec<u64>, DealerError> {
    if b.is_empty() && !a.is_empty() {
        return Err(DealerError::Need {
            need: Box::new(need),
            problem: NeedProblem::NoChannels { elements: a.len() },
        });
    }
    let channel = |i: usize| b[(i / inner.max(1)) % channels.max(1)];
    Ok(a.iter()
        .enumerate()
        .map(|(i, x)| x.wrapping_mul(channel(i)))
        .collect())
}

impl Correlation for PreConv {
    fn correction(size: &(ConvGeometry, usize), p: Pair<'_, Self>, masks: &Masks) -> Words {
        let (g, id) = size;
        let b = masks.get(*id, g.weight_len(), &Self::need(size))?;
        Ok(minus(conv2d(g, p.p1.mask(), &b), p.p0.c()))
    }
}

impl Correlation for PreMatmul {
    fn correction(size: &Self::Size, p: Pair<'_, Self>, masks: &Masks) -> Words {
        let &(m, k, n, id) = size;
        let b = masks.get(id, k * n, &Self::need(size))?;
        Ok(minus(matmul(m, k, n, p.p1.mask(), &b), p.p0.c()))
    }
}

impl Correlation for PreScale {
    fn correction(size: &Self::Size, p: Pair<'_, Self>, masks: &Masks) -> Words {
        let &(_, channels, inner, id) = size;
        let b = masks.get(id, channels, &Self::need(size))?;
        let c = scale_by_channel(p.p1.mask(), &b, channels, inner, Self::need(size))?;
        Ok(minus(c, p.p0.c()))
    }
}

impl Correlation for MaskedScale {
    fn correction(size: &Self::Size, p: Pair<'_, Self>, masks: &Masks) -> Words {
        let a = add(p.p0.a(), p.p1.a());
        let &(_, channels, inner, id) = size;
        let b = masks.get(id, channels, &Self::need(size))?;
        let c = scale_by_channel(&a, &b, channels, inner, Self::need(size))?;
        Ok(minus(c, p.p0.c()))
    }
}
