//! The dealer's randomness is fresh: successive draws of one need share no word, two sessions
//! share no seed, and a run seeded for reproducibility masks its inputs with none of its
//! dealer's seeds. The first three checks are also played against a dealer with the flaw they
//! must catch (a stream restarted at every draw, triples reused, one seed for every session),
//! every one of which keeps the correlations correct; the last failed on the code before seeds
//! were derived per purpose.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use pillar_mpc::dealer::{Dealer, Need, SeededDealer, TrustedDealer};
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::testing::{Flaw, RestartingDealer, flawed_pair, input};
use pillar_mpc::{Local, Party, RingTensor};

/// One of every kind of correlation a batch draws (the products against a weight mask
/// apart, which need the server's masks), small.
fn needs() -> Vec<Need> {
    vec![
        Need::Beaver { n: 64 },
        Need::Square { n: 64 },
        Need::FanOut { k: 2, n: 32 },
        Need::Cross { n: 64 },
        Need::Matmul { m: 4, k: 8, n: 4 },
        Need::Conv2d(ConvGeometry {
            batch: 1,
            in_channels: 2,
            height: 4,
            width: 4,
            out_channels: 2,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            padding: 1,
        }),
        Need::Powers { n: 64, degree: 4 },
        Need::CrossAnd { n: 64 },
        Need::PrefixAnd { n: 64, shift: 2 },
        Need::Bit { n: 64 },
        Need::BitProduct { n: 64 },
    ]
}

/// Words of `b` that also occur in `a`.
fn shared(a: &[u64], b: &[u64]) -> usize {
    let a: HashSet<u64> = a.iter().copied().collect();
    b.iter().filter(|w| a.contains(w)).count()
}

/// The needs whose second draw, from either party's dealer, shares words with the first.
fn stale_needs(d0: &mut dyn Dealer, d1: &mut dyn Dealer) -> Vec<String> {
    let mut stale = Vec::new();
    for need in needs() {
        let dealers: [&mut dyn Dealer; 2] = [&mut *d0, &mut *d1];
        for d in dealers {
            let first = d.generate(&need).unwrap();
            let second = d.generate(&need).unwrap();
            let n = shared(&first, &second);
            if n > 0 {
                stale.push(format!("{need:?} of {}: {n} words again", d.party()));
            }
        }
    }
    stale
}

#[test]
fn successive_draws_of_one_need_share_no_word() {
    let (mut d0, mut d1) = TrustedDealer::pair_from_seed(3);
    assert_eq!(stale_needs(&mut d0, &mut d1), Vec::<String>::new());
    let (mut d0, mut d1) = TrustedDealer::pair();
    assert_eq!(stale_needs(&mut d0, &mut d1), Vec::<String>::new());
}

#[test]
fn a_stream_restarted_at_every_draw_is_caught() {
    let (mut d0, mut d1) = RestartingDealer::pair(3);
    let stale = stale_needs(&mut d0, &mut d1);
    // Every kind, on both sides.
    assert_eq!(stale.len(), 2 * needs().len(), "{stale:#?}");
}

#[test]
fn triples_reused_across_draws_are_caught() {
    let (mut d0, mut d1) = flawed_pair(3, Flaw::ReusedTriples);
    let stale = stale_needs(&mut d0, &mut d1);
    for kind in ["Beaver", "Matmul", "Conv2d"] {
        for party in ["P0", "P1"] {
            assert!(
                stale
                    .iter()
                    .any(|s| s.starts_with(kind) && s.contains(&format!("of {party}"))),
                "{kind} of {party}: {stale:#?}"
            );
        }
    }
}

/// Whether the first draws of two sessions' dealers share a word, for either party.
fn sessions_share_words(make: impl Fn() -> (SeededDealer, SeededDealer)) -> bool {
    let (mut a0, mut a1) = make();
    let (mut b0, mut b1) = make();
    let need = Need::Beaver { n: 64 };
    let server = shared(&a0.generate(&need).unwrap(), &b0.generate(&need).unwrap());
    let client = shared(&a1.generate(&need).unwrap(), &b1.generate(&need).unwrap());
    server + client > 0
}

#[test]
fn two_sessions_get_different_seeds() {
    assert!(!sessions_share_words(TrustedDealer::pair));
    // The flaw this catches: every session from one seed.
    assert!(sessions_share_words(|| TrustedDealer::pair_from_seed(3)));
}

/// The words of a 16-word tensor each party receives when the other shares it: the sharer's
/// input masks, `[what the server received, what the client received]`.
fn input_masks(seed: u64) -> [Vec<u64>; 2] {
    let zeros = RingTensor::zeros(vec![16]).unwrap();
    Local::seeded(seed)
        .run(|s| {
            let from_server = input(s, Party::Server, &zeros)?;
            let from_client = input(s, Party::Client, &zeros)?;
            let peers = if s.party().is_server() {
                from_client
            } else {
                from_server
            };
            Ok(peers.data().to_vec())
        })
        .unwrap()
}

#[test]
fn a_seeded_runs_input_masks_are_none_of_its_dealers_seeds() {
    let seed = 5;
    let need = Need::Beaver { n: 8 };
    // What each party's dealer draws first from its seed (the client's words that it
    // expands, not the dealer's correction).
    let seeded = need.seeded_words();
    let (mut d0, mut d1) = TrustedDealer::pair_from_seed(seed);
    let dealt = [d0.generate(&need).unwrap(), d1.generate(&need).unwrap()]
        .map(|words| words[..seeded].to_vec());
    // Were 32 bytes of either party's masks a dealer's seed, a dealer from them would draw
    // the same.
    for masks in input_masks(seed) {
        for chunk in masks.chunks(4) {
            let mut seed_bytes = [0u8; 32];
            for (b, w) in seed_bytes.chunks_mut(8).zip(chunk) {
                b.copy_from_slice(&w.to_le_bytes());
            }
            let drawn = SeededDealer::server(seed_bytes).generate(&need).unwrap();
            for d in &dealt {
                assert_ne!(&drawn[..seeded], d, "an input mask is a dealer's seed");
            }
        }
    }
}
