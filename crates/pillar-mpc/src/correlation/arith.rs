//! Elementwise arithmetic correlations: Beaver triples, squaring pairs, broadcast triples,
//! cross products and HoneyBadger's powers.

use super::{Correlation, Layout, Masks, Parts, add, minus};
use crate::dealer::{DealerError, Need};

/// Elementwise Beaver triple of `n` elements: `a+ | b+ | c+ (corrected)`, `c = a b`.
#[derive(Debug)]
pub(crate) struct Beaver(Parts);

impl Beaver {
    /// This party's share of `a`.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of `b`.
    pub(crate) fn b(&self) -> &[u64] {
        self.0.get(1)
    }

    /// This party's share of `c = a b`.
    pub(crate) fn c(&self) -> &[u64] {
        self.0.get(2)
    }
}

impl Correlation for Beaver {
    type Size = usize;

    fn need(&n: &usize) -> Need {
        Need::Beaver { n }
    }

    fn layout(&n: &usize) -> Layout {
        Layout::new(vec![n, n, n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        Beaver(parts)
    }

    fn correction(_: &usize, p0: &Self, p1: &Self, _: &mut Masks) -> Result<Vec<u64>, DealerError> {
        let (a, b) = (add(p0.a(), p1.a()), add(p0.b(), p1.b()));
        let c = a.iter().zip(&b).map(|(x, y)| x.wrapping_mul(*y)).collect();
        Ok(minus(c, p0.c()))
    }
}

/// Squaring pair of `n` elements: `a+ | s+ (corrected)`, `s = a^2`.
#[derive(Debug)]
pub(crate) struct Square(Parts);

impl Square {
    /// This party's share of `a`.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of `a^2`.
    pub(crate) fn aa(&self) -> &[u64] {
        self.0.get(1)
    }
}

impl Correlation for Square {
    type Size = usize;

    fn need(&n: &usize) -> Need {
        Need::Square { n }
    }

    fn layout(&n: &usize) -> Layout {
        Layout::new(vec![n, n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        Square(parts)
    }

    fn correction(_: &usize, p0: &Self, p1: &Self, _: &mut Masks) -> Result<Vec<u64>, DealerError> {
        let a = add(p0.a(), p1.a());
        Ok(minus(
            a.iter().map(|x| x.wrapping_mul(*x)).collect(),
            p0.aa(),
        ))
    }
}

/// Broadcast triple for `k` rows of `n` times one row, sized `(k, n)`:
/// `a+ (k n) | b+ (n) | c+ (k n, corrected)`, `c[j n + i] = a[j n + i] b[i]`.
#[derive(Debug)]
pub(crate) struct FanOut(Parts);

impl FanOut {
    /// This party's share of the rows `a`.
    pub(crate) fn a(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of the row `b`.
    pub(crate) fn b(&self) -> &[u64] {
        self.0.get(1)
    }

    /// This party's share of `c`, row by row `a_j b`.
    pub(crate) fn c(&self) -> &[u64] {
        self.0.get(2)
    }
}

impl Correlation for FanOut {
    type Size = (usize, usize);

    fn need(&(k, n): &(usize, usize)) -> Need {
        Need::FanOut { k, n }
    }

    fn layout(&(k, n): &(usize, usize)) -> Layout {
        Layout::new(vec![k * n, n, k * n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        FanOut(parts)
    }

    fn correction(
        &(_, n): &(usize, usize),
        p0: &Self,
        p1: &Self,
        _: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        let (a, b) = (add(p0.a(), p1.a()), add(p0.b(), p1.b()));
        let c = a
            .iter()
            .enumerate()
            .map(|(idx, x)| x.wrapping_mul(b[idx % n.max(1)]))
            .collect();
        Ok(minus(c, p0.c()))
    }
}

/// Product of two values each known whole to one party, `n` elements: `m | c+ (corrected)`,
/// where party 0's `m` is its whole mask `a`, party 1's `m` its whole mask `b`, and `c = a b`.
#[derive(Debug)]
pub(crate) struct Cross(Parts);

impl Cross {
    /// This party's whole mask (`a` for party 0, `b` for party 1).
    pub(crate) fn mask(&self) -> &[u64] {
        self.0.get(0)
    }

    /// This party's share of `c = a b`.
    pub(crate) fn c(&self) -> &[u64] {
        self.0.get(1)
    }
}

impl Correlation for Cross {
    type Size = usize;

    fn need(&n: &usize) -> Need {
        Need::Cross { n }
    }

    fn layout(&n: &usize) -> Layout {
        Layout::new(vec![n, n], 1)
    }

    fn from_parts(parts: Parts) -> Self {
        Cross(parts)
    }

    fn correction(_: &usize, p0: &Self, p1: &Self, _: &mut Masks) -> Result<Vec<u64>, DealerError> {
        let c = p0
            .mask()
            .iter()
            .zip(p1.mask())
            .map(|(a, b)| a.wrapping_mul(*b))
            .collect();
        Ok(minus(c, p0.c()))
    }
}

/// HoneyBadger's powers of a uniform `r` (never a fixed one: `r = 1` would open `x` itself),
/// sized `(n, d)`: `r+ | r^2+ .. r^d+ (corrected)`.
#[derive(Debug)]
pub(crate) struct Powers(Parts);

impl Powers {
    /// This party's share of `r^j`, `1 <= j <= d`.
    pub(crate) fn power(&self, j: usize) -> &[u64] {
        self.0.get(j - 1)
    }
}

impl Correlation for Powers {
    type Size = (usize, usize);

    fn need(&(n, degree): &(usize, usize)) -> Need {
        Need::Powers { n, degree }
    }

    fn layout(&(n, degree): &(usize, usize)) -> Layout {
        Layout::new(vec![n; degree], degree.saturating_sub(1))
    }

    fn from_parts(parts: Parts) -> Self {
        Powers(parts)
    }

    fn correction(
        &(_, degree): &(usize, usize),
        p0: &Self,
        p1: &Self,
        _: &mut Masks,
    ) -> Result<Vec<u64>, DealerError> {
        if degree == 0 {
            return Ok(Vec::new());
        }
        let r = add(p0.power(1), p1.power(1));
        let mut out = Vec::with_capacity(r.len() * (degree - 1));
        let mut power = r.clone();
        for j in 2..=degree {
            for (p, x) in power.iter_mut().zip(&r) {
                *p = p.wrapping_mul(*x);
            }
            out.extend(
                power
                    .iter()
                    .zip(p0.power(j))
                    .map(|(v, s)| v.wrapping_sub(*s)),
            );
        }
        Ok(out)
    }
}
