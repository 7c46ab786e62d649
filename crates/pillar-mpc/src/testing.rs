//! Helpers for tests and benchmarks (feature `test-utils`), where one closure runs as both
//! parties and so both hold every input. Never for a deployment: a party's code that holds
//! its peer's input has already lost the privacy the protocols give.

use crate::error::MpcError;
use crate::party::Party;
use crate::protocols::arith::{receive_share, share};
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// Shares `t` from `owner`: the owner [`share`]s it, the other party receives its share.
pub fn input(s: &mut Session, owner: Party, t: &RingTensor) -> Result<Share, MpcError> {
    if s.party() == owner {
        share(s, t)
    } else {
        receive_share(s, t.shape())
    }
}
