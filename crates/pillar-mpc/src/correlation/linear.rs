//! Correlations of the linear layers: matrix and convolution triples of two shared operands,
//! and those taken against a weight mask drawn once per connection.

use super::{Correlation, Layout, Masks, Parts, add, minus};
use crate::dealer::{DealerError, Need, NeedProblem};
use crate::kernels::{ConvGeometry, conv2d, matmul};

/// Matrix triple sized `(m, k, n)`: `A+ (m k) | B+ (k n) | C+ (m n, corrected)`, `C = A B`.
#[derive(Debug)]
pub(crate) struct Matmul(Parts);

impl Matmul {
    /// This party's share of `A`.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of `B`.
    pub(crate) fn b(&self) -> &[u64] {
        self.0.get(1)
    }

    /// This party's share of `C = A B`.
    pub(crate) fn c(&self) -> &[u64] {
        self.0.get(2)
    }
}

impl Correlation for Matmul {
    type Size = (usize, usize, usize);

    fn need(&(m, k, n): &Self::Size) -> Need {
        Need::Matmul { m, k, n }
    }

    fn layout(&(m, k, n): &Self::Size) -> Layout {
        Layout::new(vec![m * k, k * n, m * n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        Matmul(parts)
    }

    fn correction(
        &(m, k, n): &Self::Size,
        p0: &Self,
        p1: &Self,
        _: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        let (a, b) = (add(p0.a(), p1.a()), add(p0.b(), p1.b()));
        Ok(minus(matmul(m, k, n, &a, &b), p0.c()))
    }
}

/// Convolution triple: `X+ (input) | W+ (weight) | Y+ (output, corrected)`,
/// `Y = conv(X, W)`.
#[derive(Debug)]
pub(crate) struct Conv(Parts);

impl Conv {
    /// This party's share of the input mask `X`.
    pub(crate) fn x(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of the weight mask `W`.
    pub(crate) fn w(&self) -> &[u64] {
        self.0.get(1)
    }

    /// This party's share of `Y = conv(X, W)`.
    pub(crate) fn y(&self) -> &[u64] {
        self.0.get(2)
    }
}

impl Correlation for Conv {
    type Size = ConvGeometry;

    fn need(g: &ConvGeometry) -> Need {
        Need::Conv2d(*g)
    }

    fn layout(g: &ConvGeometry) -> Layout {
        Layout::new(vec![g.input_len(), g.weight_len(), g.output_len()], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        Conv(parts)
    }

    fn correction(
        g: &ConvGeometry,
        p0: &Self,
        p1: &Self,
        _: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        let (x, w) = (add(p0.x(), p1.x()), add(p0.w(), p1.w()));
        Ok(minus(conv2d(g, &x, &w), p0.y()))
    }
}

/// A weight mask of `n` elements, drawn once per connection: `b+` (no correction). Both
/// parties' shares come from their seeds; the dealer keeps `B = b0 + b1` as the connection's
/// next mask (numbered from 0 in the order drawn), for the `Masked*` triples. The opened
/// `W - B` is reused by every inference, which is safe because `W` never changes.
#[derive(Debug)]
pub(crate) struct WeightMask(Parts);

impl WeightMask {
    /// This party's share of `B`.
    pub(crate) fn into_b(self) -> Vec<u64> {
        self.0.words
    }
}

impl Correlation for WeightMask {
    type Size = usize;

    fn need(&n: &usize) -> Need {
        Need::WeightMask { n }
    }

    fn layout(&n: &usize) -> Layout {
        Layout::new(vec![n], 0)
    }

    fn from_parts(parts: Parts) -> Self {
        WeightMask(parts)
    }

    fn correction(
        _: &usize,
        p0: &Self,
        p1: &Self,
        masks: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        masks.0.push(add(p0.0.get(0), p1.0.get(0)));
        Ok(Vec::new())
    }
}

/// Convolution triple against weight mask `mask` (an OIHW weight), sized `(geometry, mask)`:
/// `X+ (input) | Y+ (output, corrected)`, `Y = conv(X, B_mask)`.
#[derive(Debug)]
pub(crate) struct MaskedConv(Parts);

impl MaskedConv {
    /// This party's share of the input mask `X`.
    pub(crate) fn x(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of `Y = conv(X, B)`.
    pub(crate) fn y(&self) -> &[u64] {
        self.0.get(1)
    }
}

impl Correlation for MaskedConv {
    type Size = (ConvGeometry, usize);

    fn need(&(geometry, mask): &Self::Size) -> Need {
        Need::MaskedConv2d { geometry, mask }
    }

    fn layout((g, _): &Self::Size) -> Layout {
        Layout::new(vec![g.input_len(), g.output_len()], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        MaskedConv(parts)
    }

    fn correction(
        size: &Self::Size,
        p0: &Self,
        p1: &Self,
        masks: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        let (g, id) = size;
        let b = masks.get(*id, g.weight_len(), &Self::need(size))?;
        let x = add(p0.x(), p1.x());
        Ok(minus(conv2d(g, &x, b), p0.y()))
    }
}

/// Matrix triple against weight mask `mask` (`k x n`), sized `(m, k, n, mask)`:
/// `A+ (m k) | C+ (m n, corrected)`, `C = A B_mask`.
#[derive(Debug)]
pub(crate) struct MaskedMatmul(Parts);

impl MaskedMatmul {
    /// This party's share of `A`.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of `C = A B`.
    pub(crate) fn c(&self) -> &[u64] {
        self.0.get(1)
    }
}

impl Correlation for MaskedMatmul {
    type Size = (usize, usize, usize, usize);

    fn need(&(m, k, n, mask): &Self::Size) -> Need {
        Need::MaskedMatmul { m, k, n, mask }
    }

    fn layout(&(m, k, n, _): &Self::Size) -> Layout {
        Layout::new(vec![m * k, m * n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        MaskedMatmul(parts)
    }

    fn correction(
        size: &Self::Size,
        p0: &Self,
        p1: &Self,
        masks: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        let &(m, k, n, id) = size;
        let b = masks.get(id, k * n, &Self::need(size))?;
        let a = add(p0.a(), p1.a());
        Ok(minus(matmul(m, k, n, &a, b), p0.c()))
    }
}

/// Per-channel product against weight mask `mask` (`channels` elements) for a tensor of `n`
/// elements whose channel is `(i / inner) % channels`, sized `(n, channels, inner, mask)`:
/// `A+ (n) | C+ (n, corrected)`, `C[i] = A[i] B_mask[(i / inner) % channels]`.
#[derive(Debug)]
pub(crate) struct MaskedScale(Parts);

impl MaskedScale {
    /// This party's share of `A`.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of `C`.
    pub(crate) fn c(&self) -> &[u64] {
        self.0.get(1)
    }
}

impl Correlation for MaskedScale {
    type Size = (usize, usize, usize, usize);

    fn need(&(n, channels, inner, mask): &Self::Size) -> Need {
        Need::MaskedScale {
            n,
            channels,
            inner,
            mask,
        }
    }

    fn layout(&(n, ..): &Self::Size) -> Layout {
        Layout::new(vec![n, n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        MaskedScale(parts)
    }

    fn correction(
        size: &Self::Size,
        p0: &Self,
        p1: &Self,
        masks: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        let &(_, channels, inner, id) = size;
        let b = masks.get(id, channels, &Self::need(size))?;
        let a = add(p0.a(), p1.a());
        if b.is_empty() && !a.is_empty() {
            return Err(DealerError::Need {
                need: Box::new(Self::need(size)),
                problem: NeedProblem::NoChannels { elements: a.len() },
            });
        }
        let c = a
            .iter()
            .enumerate()
            .map(|(i, x)| x.wrapping_mul(b[(i / inner.max(1)) % channels.max(1)]))
            .collect();
        Ok(minus(c, p0.c()))
    }
}
