//! Elementwise arithmetic correlations: Beaver triples, squaring pairs, broadcast triples,
//! cross products and HoneyBadger's powers.

use super::{Correlation, Kind, Layout, Masks, Pair, Parts, Words, add, correlations, minus};
use crate::dealer::Need;

correlations! {
    /// Elementwise Beaver triple of `n` elements: `a+ | b+ | c+ (corrected)`, `c = a b`.
    Beaver(n => usize) = Need::Beaver { n }, layout vec![n, n, n], corrected 1, parts [a, b, c];
    /// Squaring pair of `n` elements: `a+ | aa+ (corrected)`, `aa = a^2`.
    Square(n => usize) = Need::Square { n }, layout vec![n, n], corrected 1, parts [a, aa];
    /// Broadcast triple for `k` rows of `n` times one row, sized `(k, n)`:
    /// `a+ (k n) | b+ (n) | c+ (k n, corrected)`, `c[j n + i] = a[j n + i] b[i]`.
    FanOut((k, n) => (usize, usize)) = Need::FanOut { k, n },
        layout vec![k * n, n, k * n], corrected 1, parts [a, b, c];
    /// Product of two values each known whole to one party, `n` elements: `mask | c+
    /// (corrected)`, where party 0's `mask` is its whole mask `a`, party 1's its whole mask
    /// `b`, and `c = a b`.
    Cross(n => usize) = Need::Cross { n }, layout vec![n, n], corrected 1, parts [mask, c];
    /// HoneyBadger's powers of a uniform `r` (never a fixed one: `r = 1` would open `x`
    /// itself), sized `(n, d)`: `r+ | r^2+ .. r^d+ (corrected)`; [`Powers::power`] names them.
    Powers((n, d) => (usize, usize)) = Need::Powers { n, degree: d },
        layout vec![n; d], corrected d.saturating_sub(1), parts [];
}

impl Correlation for Beaver {
    fn correction(_: &usize, Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        let (a, b) = (add(p0.a(), p1.a()), add(p0.b(), p1.b()));
        let c = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| x.wrapping_mul(*y))
            .collect();
        Ok(minus(c, p0.c()))
    }
}

impl Correlation for Square {
    fn correction(_: &usize, Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        let a = add(p0.a(), p1.a());
        Ok(minus(
            a.iter().map(|x| x.wrapping_mul(*x)).collect(),
            p0.aa(),
        ))
    }
}

impl Correlation for FanOut {
    fn correction(&(_, n): &(usize, usize), p: Pair<'_, Self>, _: &Masks) -> Words {
        let (a, b) = (add(p.p0.a(), p.p1.a()), add(p.p0.b(), p.p1.b()));
        let row = |idx: usize| b[idx % n.max(1)];
        let c = a.iter().enumerate().map(|(i, x)| x.wrapping_mul(row(i)));
        Ok(minus(c.collect(), p.p0.c()))
    }
}

impl Correlation for Cross {
    fn correction(_: &usize, Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        let products = p0.mask().iter().zip(p1.mask());
        Ok(minus(
            products.map(|(a, b)| a.wrapping_mul(*b)).collect(),
            p0.c(),
        ))
    }
}

impl Powers {
    /// This party's share of `r^j`, `1 <= j <= d`.
    pub(crate) fn power(&self, j: usize) -> &[u64] {
        self.0.get(j - 1)
    }
}

impl Correlation for Powers {
    fn correction(&(_, d): &(usize, usize), Pair { p0, p1 }: Pair<'_, Self>, _: &Masks) -> Words {
        if d == 0 {
            return Ok(Vec::new());
        }
        let r = add(p0.power(1), p1.power(1));
        let mut out = Vec::with_capacity(r.len() * (d - 1));
        let mut power = r.clone();
        for j in 2..=d {
            power
                .iter_mut()
                .zip(r.iter())
                .for_each(|(p, x)| *p = p.wrapping_mul(*x));
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
