//! Entry points for the fuzz targets under `fuzz/`: the decoders a peer's bytes reach, driven
//! from a byte slice instead of a socket. Each must return (an error, usually) and never
//! panic, hang or allocate beyond its bounds, whatever the input.

use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::channel::read_words;
use crate::channel::secure::{self, Identity, PublicKey, Security};
use crate::dealer::remote::{Announce, DealerRequest};
use crate::dealer::{CorrectionSource, TrustedDealer, WeightMasks};

/// A peer whose bytes are `input`; what we send is dropped.
struct Peer<'a>(Cursor<&'a [u8]>);

impl Read for Peer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Peer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The word counts of the frames [`frames`] expects when the first byte is `pick`: what a
/// structure-aware target builds well-formed frames for, so that they pass the header checks
/// and reach the payload.
pub fn expected_frames(pick: u8) -> Vec<usize> {
    (0..usize::from(pick % 8) + 1)
        .map(|k| (usize::from(pick) * 7 + k * 13) % 97)
        .collect()
}

/// Frames of ring words: the first byte of `input` picks how many frames of which lengths
/// this side expects ([`expected_frames`]); the rest is what the peer sent. (A dealer's first
/// message, too.)
pub fn frames(input: &[u8]) {
    let Some((&pick, rest)) = input.split_first() else {
        return;
    };
    let mut peer = Peer(Cursor::new(rest));
    for len in expected_frames(pick) {
        let mut words = vec![0u64; len];
        if read_words(&mut peer, &mut words, Duration::from_secs(1)).is_err() {
            return;
        }
    }
    let _ = crate::wire::decode::<DealerRequest>(rest);
}

/// The start of a connection as the side that accepted it: the preamble, then (the first
/// byte of `input` odd) a Noise handshake with a fixed key that trusts one fixed peer.
pub fn handshake(input: &[u8]) {
    let Some((&pick, rest)) = input.split_first() else {
        return;
    };
    let mut peer = Peer(Cursor::new(rest));
    let security = if pick % 2 == 1 {
        let trusted = PublicKey::from_secret_for_fuzzing([7; 32]);
        Security::noise(Identity::from_secret([3; 32].into()), vec![trusted])
    } else {
        Security::Plaintext
    };
    if secure::preamble(&mut peer, &security, secure::Service::Parties, false).is_err() {
        return;
    }
    if let Security::Noise { identity, trusted } = &security {
        let _ = secure::noise_handshake(&mut peer, identity, trusted, false, "fuzz");
    }
}

/// How many weight masks the fuzzed dealer's server told it: mask `i` has `i + 1` elements,
/// so a product's mask number says the size it matches.
pub const FUZZ_MASKS: usize = 512;

/// A client's announcement to the dealer, and the corrections for every need that passes
/// the size check (at most 4,096 words each, to keep runs fast), against a server's
/// [`FUZZ_MASKS`] weight masks.
pub fn announcement(input: &[u8]) {
    let Ok(announced) = crate::wire::decode::<Announce>(input) else {
        return;
    };
    let masks = WeightMasks::from_seed(1, (1..=FUZZ_MASKS).collect());
    let mut dealer = TrustedDealer::from_seeds([1; 32], [2; 32]).with_weight_masks(Arc::new(masks));
    for need in announced.needs() {
        if need.check(4096).is_err() || dealer.correction(need).is_err() {
            return;
        }
    }
}
