//! Division by a public power of two, locally (the 2-party method of SecureML).
//!
//! Party 0 shifts its share right; party 1 negates, shifts and negates back. For a secret `v`
//! with `|v|` much below 2^63 the results sum to `floor(v / 2^k)` or one more, unless party
//! 0's uniform share lands within `|v|` of the wrap-around point, which happens with
//! probability `|v| / 2^64`: then the result is off by about `2^(64-k)`. No communication.

use crate::error::MpcError;
use crate::party::Party;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// Largest truncation the ring supports.
pub const MAX_BITS: u32 = 62;

/// Errors for a truncation beyond the ring.
pub fn check(bits: u32) -> Result<(), MpcError> {
    if bits > MAX_BITS {
        Err(MpcError::Truncation(bits))
    } else {
        Ok(())
    }
}

/// One share word divided by `2^bits` (`bits <= 62`, checked by the callers).
#[inline]
pub fn truncate_word(party: Party, w: u64, bits: u32) -> u64 {
    match party {
        Party::Server => w >> bits,
        Party::Client => (w.wrapping_neg() >> bits).wrapping_neg(),
    }
}

/// Truncates this party's share words in place.
pub(crate) fn truncate_words(party: Party, words: &mut [u64], bits: u32) {
    if bits == 0 {
        return;
    }
    for w in words {
        *w = truncate_word(party, *w, bits);
    }
}

/// Brings words at scale `2^from` to scale `2^to`: a truncation when `from > to`, an exact
/// multiplication when `from < to`.
pub(crate) fn rescale_words(party: Party, words: &mut [u64], from: u32, to: u32) {
    if from > to {
        truncate_words(party, words, from - to);
    } else if to > from {
        for w in words {
            *w <<= to - from;
        }
    }
}

/// `x / 2^bits`, locally.
pub fn truncate(s: &Session, x: &Share, bits: u32) -> Result<Share, MpcError> {
    check(bits)?;
    let mut words = x.data().to_vec();
    truncate_words(s.party(), &mut words, bits);
    Ok(Share::new(RingTensor::new(x.shape().to_vec(), words)?))
}
