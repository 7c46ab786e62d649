//! The kinds of correlated randomness, their layouts, and how the dealer completes them.

use crate::kernels::{ConvGeometry, conv2d, matmul};

/// One correlation, sized. Each variant's doc gives the layout of a party's share buffer, in
/// order; `+` shares are additive mod 2^64, `^` shares are XOR. The dealer-sent part is marked
/// "(corrected)": party 0 expands it from its seed like the rest, party 1 receives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
        }
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
        }
    }

    /// Words both parties expand from their own seeds.
    pub fn seeded_words(&self) -> usize {
        self.words() - self.correction_words()
    }

    /// The dealer's side: party 1's corrected words, from party 0's whole share `p0` and
    /// party 1's seeded words `p1`.
    pub fn correction(&self, p0: &[u64], p1: &[u64]) -> Vec<u64> {
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
