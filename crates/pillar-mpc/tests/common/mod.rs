//! Helpers shared by the protocol tests: run a protocol on both parties of a seeded local
//! computation and open its result.
#![allow(dead_code, clippy::unwrap_used)]

use pillar_mpc::channel::Stats;
use pillar_mpc::protocols::arith::reveal;
pub(crate) use pillar_mpc::testing::input;
use pillar_mpc::{Local, MpcError, Party, RingTensor, Session, Share};

/// The opened output and each party's rounds and bytes of the protocol alone (sharing and
/// opening excluded).
pub(crate) struct Outcome {
    /// The opened result.
    pub value: RingTensor,
    /// Each party's rounds and bytes.
    pub stats: [Stats; 2],
}

/// Shares `inputs` (the client owns the first, the server the rest, as weights), runs `f`
/// and opens its result to both.
pub(crate) fn run<F>(seed: u64, inputs: &[RingTensor], f: F) -> Outcome
where
    F: Fn(&mut Session, &[Share]) -> Result<Share, MpcError> + Sync,
{
    let [a, b] = Local::seeded(seed)
        .run(|s| {
            let mut shares = Vec::new();
            for (i, t) in inputs.iter().enumerate() {
                let owner = if i == 0 { Party::Client } else { Party::Server };
                shares.push(input(s, owner, t)?);
            }
            let before = s.stats();
            let y = f(s, &shares)?;
            let stats = s.stats().since(&before);
            Ok((reveal(s, &y)?, stats))
        })
        .unwrap();
    assert_eq!(a.0, b.0, "both parties open the same value");
    Outcome {
        value: a.0,
        stats: [a.1, b.1],
    }
}

/// Asserts that both parties used exactly `rounds` rounds and each sent `words` ring words.
pub(crate) fn assert_cost(o: &Outcome, rounds: u64, words: u64) {
    for (p, st) in o.stats.iter().enumerate() {
        assert_eq!(st.rounds, rounds, "rounds of P{p}");
        assert_eq!(st.bytes_sent, 8 * words, "bytes sent by P{p}");
        assert_eq!(st.bytes_received, 8 * words, "bytes received by P{p}");
    }
}

/// A ring tensor from signed values.
pub(crate) fn tensor(shape: &[usize], data: Vec<i64>) -> RingTensor {
    RingTensor::new(shape.to_vec(), data.into_iter().map(|v| v as u64).collect()).unwrap()
}

/// Ring elements read as signed values.
pub(crate) fn signed(t: &RingTensor) -> Vec<i64> {
    t.data().iter().map(|&v| v as i64).collect()
}

/// Elementwise sum mod 2^64: two additive shares put back together.
pub(crate) fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x.wrapping_add(*y)).collect()
}

/// Elementwise product mod 2^64.
pub(crate) fn mul(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x.wrapping_mul(*y)).collect()
}
