//! Correlations of the binary protocols: XOR-shared ANDs for the Kogge-Stone adder, and random
//! bits shared both ways for turning a sign into an arithmetic value.

use super::{Correlation, Layout, Masks, Parts, add, minus, xor};
use crate::dealer::{DealerError, Need};

/// Binary product of two values each known whole to one party, `n` words:
/// `m | c^ (corrected)`, `c = a & b` with `a`, `b` the parties' whole masks.
#[derive(Debug)]
pub(crate) struct CrossAnd(Parts);

impl CrossAnd {
    /// This party's whole mask.
    pub(crate) fn mask(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's XOR share of `a & b`.
    pub(crate) fn c(&self) -> &[u64] {
        self.0.get(1)
    }
}

impl Correlation for CrossAnd {
    type Size = usize;

    fn need(&n: &usize) -> Need {
        Need::CrossAnd { n }
    }

    fn layout(&n: &usize) -> Layout {
        Layout::new(vec![n, n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        CrossAnd(parts)
    }

    fn correction(_: &usize, p0: &Self, p1: &Self, _: &mut Masks) -> Result<Vec<u64>, DealerError> {
        let c: Vec<u64> = p0
            .mask()
            .iter()
            .zip(p1.mask())
            .map(|(a, b)| a & b)
            .collect();
        Ok(xor(&c, p0.c()))
    }
}

/// One Kogge-Stone level of `n` words with shift `shift`, sized `(n, shift)`:
/// `a^ | b^ | aa^ (corrected) | ab^ (corrected)`, `aa = a & (a << shift)`,
/// `ab = a & (b << shift)`.
#[derive(Debug)]
pub(crate) struct PrefixAnd(Parts);

impl PrefixAnd {
    /// This party's share of the mask `a` of the propagate bits.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of the mask `b` of the generate bits.
    pub(crate) fn b(&self) -> &[u64] {
        self.0.get(1)
    }

    /// This party's share of `a & (a << shift)`.
    pub(crate) fn aa(&self) -> &[u64] {
        self.0.get(2)
    }

    /// This party's share of `a & (b << shift)`.
    pub(crate) fn ab(&self) -> &[u64] {
        self.0.get(3)
    }
}

impl Correlation for PrefixAnd {
    type Size = (usize, u32);

    fn need(&(n, shift): &(usize, u32)) -> Need {
        Need::PrefixAnd { n, shift }
    }

    fn layout(&(n, _): &(usize, u32)) -> Layout {
        Layout::new(vec![n, n, n, n], 2)
    }

    fn from_parts(parts: Parts) -> Self {
        PrefixAnd(parts)
    }

    fn correction(
        &(_, shift): &(usize, u32),
        p0: &Self,
        p1: &Self,
        _: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        // `Need::check` keeps a shift from outside below 64.
        let shl = |v: u64| v.checked_shl(shift).unwrap_or(0);
        let (a, b) = (xor(p0.a(), p1.a()), xor(p0.b(), p1.b()));
        let mut out = Vec::with_capacity(2 * a.len());
        out.extend(a.iter().zip(p0.aa()).map(|(a, s)| (a & shl(*a)) ^ s));
        out.extend(
            a.iter()
                .zip(&b)
                .zip(p0.ab())
                .map(|((a, b), s)| (a & shl(*b)) ^ s),
        );
        Ok(out)
    }
}

/// Random bits of `n` elements shared both ways (daBits): `rb^ | r+ (corrected)`,
/// `r = (rb0 ^ rb1) & 1`.
#[derive(Debug)]
pub(crate) struct Bit(Parts);

impl Bit {
    /// This party's XOR share of the bits (in bit 0).
    pub(crate) fn rb(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's additive share of the same bits.
    pub(crate) fn r(&self) -> &[u64] {
        self.0.get(1)
    }
}

/// The bits `(rb0 ^ rb1) & 1`.
fn bits(rb0: &[u64], rb1: &[u64]) -> Vec<u64> {
    xor(rb0, rb1).iter().map(|r| r & 1).collect()
}

impl Correlation for Bit {
    type Size = usize;

    fn need(&n: &usize) -> Need {
        Need::Bit { n }
    }

    fn layout(&n: &usize) -> Layout {
        Layout::new(vec![n, n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        Bit(parts)
    }

    fn correction(_: &usize, p0: &Self, p1: &Self, _: &mut Masks) -> Result<Vec<u64>, DealerError> {
        Ok(minus(bits(p0.rb(), p1.rb()), p0.r()))
    }
}

/// Random bits with a masked product, `n` elements:
/// `rb^ | a+ | r+ (corrected) | ar+ (corrected)`, `r` as for [`Bit`], `ar = a r`.
#[derive(Debug)]
pub(crate) struct BitProduct(Parts);

impl BitProduct {
    /// This party's XOR share of the bits (in bit 0).
    pub(crate) fn rb(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of the mask `a`.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(1)
    }

    /// This party's additive share of the bits.
    pub(crate) fn r(&self) -> &[u64] {
        self.0.get(2)
    }

    /// This party's share of `a r`.
    pub(crate) fn ar(&self) -> &[u64] {
        self.0.get(3)
    }
}

impl Correlation for BitProduct {
    type Size = usize;

    fn need(&n: &usize) -> Need {
        Need::BitProduct { n }
    }

    fn layout(&n: &usize) -> Layout {
        Layout::new(vec![n, n, n, n], 2)
    }

    fn from_parts(parts: Parts) -> Self {
        BitProduct(parts)
    }

    fn correction(_: &usize, p0: &Self, p1: &Self, _: &mut Masks) -> Result<Vec<u64>, DealerError> {
        let r = bits(p0.rb(), p1.rb());
        let a = add(p0.a(), p1.a());
        let ar: Vec<u64> = a.iter().zip(&r).map(|(a, r)| a.wrapping_mul(*r)).collect();
        let mut out = minus(r, p0.r());
        out.extend(minus(ar, p0.ar()));
        Ok(out)
    }
}
