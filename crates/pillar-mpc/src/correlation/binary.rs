//! Correlations of the binary protocols: XOR-shared ANDs for the Kogge-Stone adder, and random
//! bits shared both ways for turning a sign into an arithmetic value.

use super::{Correlation, Kind, Layout, Masks, Pair, Parts, Words, add, correlations, minus, xor};
use zeroize::Zeroizing;

use crate::dealer::Need;

correlations! {
    /// Binary product of two values each known whole to one party, `n` words:
    /// `mask | c^ (corrected)`, `c = a & b` with `a`, `b` the parties' whole masks.
    CrossAnd(n => usize) = Need::CrossAnd { n }, layout vec![n, n], corrected 1, parts [mask, c];
    /// One Kogge-Stone level of `n` words with shift `shift`, sized `(n, shift)`: `a^` (the
    /// propagate bits' mask) `| b^` (the generate bits') `| aa^ (corrected) | ab^ (corrected)`,
    /// `aa = a & (a << shift)`, `ab = a & (b << shift)`.
    PrefixAnd((n, shift) => (usize, u32)) = Need::PrefixAnd { n, shift },
        layout vec![n; 4], corrected 2, parts [a, b, aa, ab];
    /// Random bits of `n` elements shared both ways (daBits): `rb^ | r+ (corrected)`,
    /// `r = (rb0 ^ rb1) & 1`, XOR-shared in bit 0 of `rb`, additively in `r`.
    Bit(n => usize) = Need::Bit { n }, layout vec![n, n], corrected 1, parts [rb, r];
    /// Random bits with a masked product, `n` elements:
    /// `rb^ | a+ | r+ (corrected) | ar+ (corrected)`, `r` as for [`Bit`], `ar = a r`.
    BitProduct(n => usize) = Need::BitProduct { n },
        layout vec![n; 4], corrected 2, parts [rb, a, r, ar];
}

/// The bits `(rb0 ^ rb1) & 1`.
fn bits(rb0: &[u64], rb1: &[u64]) -> Vec<u64> {
    xor(rb0, rb1).iter().map(|r| r & 1).collect()
}

impl Correlation for CrossAnd {
    fn correction(_: &usize, Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        // `a & b` of the parties' whole masks: wiped like every whole mask here.
        let ands: Zeroizing<Vec<u64>> = Zeroizing::new(
            p0.mask()
                .iter()
                .zip(p1.mask())
                .map(|(a, b)| a & b)
                .collect(),
        );
        // Party 1's correction, sent anyway: no need to wipe it.
        Ok(ands.iter().zip(p0.c()).map(|(a, s)| a ^ s).collect())
    }
}

impl Correlation for PrefixAnd {
    fn correction(&(_, shift): &(usize, u32), p: Pair<'_, Self>, _: &Masks) -> Words {
        // `Need::check` keeps a shift from outside below 64.
        let shl = |v: u64| v.checked_shl(shift).unwrap_or(0);
        let (a, b) = (xor(p.p0.a(), p.p1.a()), xor(p.p0.b(), p.p1.b()));
        let mut out = Vec::with_capacity(2 * a.len());
        out.extend(a.iter().zip(p.p0.aa()).map(|(a, s)| (a & shl(*a)) ^ s));
        let ab = a.iter().zip(b.iter()).map(|(a, b)| a & shl(*b));
        out.extend(ab.zip(p.p0.ab()).map(|(v, s)| v ^ s));
        Ok(out)
    }
}

impl Correlation for Bit {
    fn correction(_: &usize, Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        Ok(minus(bits(p0.rb(), p1.rb()), p0.r()))
    }
}

impl Correlation for BitProduct {
    fn correction(_: &usize, Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        let r = bits(p0.rb(), p1.rb());
        let a = add(p0.a(), p1.a());
        let ar: Vec<u64> = a.iter().zip(&r).map(|(a, r)| a.wrapping_mul(*r)).collect();
        let mut out = minus(r, p0.r());
        out.extend(minus(ar, p0.ar()));
        Ok(out)
    }
}
