//! CrypTen's polynomial: powers by square-and-multiply, `ceil(log2 d)` rounds.
//!
//! Round 1 squares `x` (a squaring pair: `n` words). Round `r > 1` multiplies all powers known
//! so far, `x^1..x^m` with `m = 2^(r-1)`, by `x^m` with one broadcast triple, giving
//! `x^(m+1)..x^(2m)` (each odd power as `x^j x^m`: CrypTen itself returns `x^6` for `x^5`).
//! For `d = 4`: 2 rounds and 4 words (32 bytes) per element per party, as CrypTen.

use crate::correlation::FanOut;
use crate::dealer::Need;
use crate::error::MpcError;
use crate::protocols::beaver::square_raw;
use crate::protocols::mirror::Tally;
use crate::protocols::poly::{MAX_DEGREE, PlainPowers, PolyProtocol};
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::Share;

/// The rounds: for each, the highest known power `m` and how many new powers it yields.
fn schedule(degree: usize) -> Vec<(usize, usize)> {
    let mut steps = Vec::new();
    let mut known = 1;
    while known < degree {
        let new = (2 * known).min(degree) - known;
        steps.push((known, new));
        known += new;
    }
    steps
}

/// Rounds for degree `d`.
pub fn rounds(degree: usize) -> usize {
    schedule(degree).len()
}

/// What [`evaluate`] asks the dealer for, `n` elements of degree `d`.
pub fn needs(n: usize, degree: usize) -> Vec<Need> {
    schedule(degree)
        .into_iter()
        .map(|(m, new)| {
            if m == 1 {
                Need::Square { n }
            } else {
                Need::FanOut { k: new, n }
            }
        })
        .collect()
}

/// `x^2..x^d` at scale `2^f`.
pub fn powers(s: &mut Session, x: &Share, degree: usize) -> Result<Vec<Vec<u64>>, MpcError> {
    let n = x.len();
    let f = s.fixed().frac_bits();
    let party = s.party();
    // all[k - 1] = x^k
    let mut all: Vec<Vec<u64>> = vec![x.data().to_vec()];
    for (m, new) in schedule(degree) {
        if m == 1 {
            let mut sq = square_raw(s, x.data())?;
            truncate_words(party, &mut sq, f);
            all.push(sq);
            continue;
        }
        let t: FanOut = s.correlation((new, n))?;
        let (a, b, c) = (t.a(), t.b(), t.c());
        let mut send = Vec::with_capacity((new + 1) * n);
        for j in 0..new {
            send.extend(
                all[j]
                    .iter()
                    .zip(&a[j * n..(j + 1) * n])
                    .map(|(v, a)| v.wrapping_sub(*a)),
            );
        }
        send.extend(all[m - 1].iter().zip(b).map(|(v, b)| v.wrapping_sub(*b)));
        let peer = s.exchange(&send, send.len())?;
        let opened: Vec<u64> = send
            .iter()
            .zip(&peer)
            .map(|(x, y)| x.wrapping_add(*y))
            .collect();
        let fo = &opened[new * n..];
        for j in 0..new {
            let e = &opened[j * n..(j + 1) * n];
            let mut z: Vec<u64> = (0..n)
                .map(|i| {
                    let idx = j * n + i;
                    let mut z = c[idx]
                        .wrapping_add(e[i].wrapping_mul(b[i]))
                        .wrapping_add(fo[i].wrapping_mul(a[idx]));
                    if party.is_server() {
                        z = z.wrapping_add(e[i].wrapping_mul(fo[i]));
                    }
                    z
                })
                .collect();
            truncate_words(party, &mut z, f);
            all.push(z);
        }
    }
    Ok(all.split_off(1))
}

/// `sum_k c_k x^k` for coefficients `c_0..c_d`.
pub fn evaluate(s: &mut Session, x: &Share, coefficients: &[f64]) -> Result<Share, MpcError> {
    CRYPTEN.evaluate(s, x, coefficients)
}

/// Ring words each party sends for `n` elements: `n` to square, then per later round the
/// known powers and `x^m`, `(new + 1) n`.
pub fn words_sent(n: usize, degree: usize) -> usize {
    schedule(degree)
        .into_iter()
        .map(|(m, new)| if m == 1 { n } else { (new + 1) * n })
        .sum()
}

/// CrypTen's polynomial as an activation protocol: `ceil(log2 d)` rounds.
pub const CRYPTEN: PolyProtocol = PolyProtocol {
    name: "crypten",
    rounds,
    words_sent,
    needs,
    powers,
    fused: None,
    plain: |frac_bits, d| {
        Box::new(SquareMultiply {
            schedule: schedule(d),
            frac_bits,
        })
    },
};

/// The powers on plaintext: `x^2 = (x x) >> f`, then round by round `x^(m+j) = (x^j x^m) >> f`
/// for the highest known power `m`, as [`schedule`] orders them.
struct SquareMultiply {
    schedule: Vec<(usize, usize)>,
    frac_bits: u32,
}

impl PlainPowers for SquareMultiply {
    fn powers(&self, x: u64, p: &mut [u64; MAX_DEGREE + 1], t: &mut Tally) {
        p[1] = x;
        for &(m, new) in &self.schedule {
            for j in 1..=new {
                p[m + j] = t.truncate(p[j].wrapping_mul(p[m]), self.frac_bits);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn schedule_doubles_and_covers_odd_degrees() {
        assert_eq!(super::schedule(4), vec![(1, 1), (2, 2)]);
        assert_eq!(super::schedule(5), vec![(1, 1), (2, 2), (4, 1)]);
        assert_eq!(super::schedule(1), vec![]);
        assert_eq!(super::rounds(8), 3);
    }
}
