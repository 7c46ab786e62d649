//! Fuzz target `frames`: frames of ring words as a channel reads them, and the bytes as a
//! request to the dealer (`pillar_mpc::fuzzing::frames`).
//!
//! Structure-aware: most inputs are read as the frames the reader expects, each with a
//! well-formed header of this wire version and its payload, so that they reach the payload
//! reads; one frame in a few is wrong in one way (another length, another kind, another
//! version, a header of anything, a payload cut short). The rest of the inputs are raw bytes,
//! as the committed corpus has them.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use pillar_mpc::wire::{self, Kind};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    match u.arbitrary::<u8>() {
        Ok(mode) if mode % 4 != 0 => {
            if let Ok(bytes) = frames(&mut u) {
                pillar_mpc::fuzzing::frames(&bytes);
            }
        }
        _ => pillar_mpc::fuzzing::frames(data),
    }
});

/// The driver's first byte, then a frame for each length it expects.
fn frames(u: &mut Unstructured) -> Result<Vec<u8>> {
    let pick: u8 = u.arbitrary()?;
    let mut out = vec![pick];
    for len in pillar_mpc::fuzzing::expected_frames(pick) {
        let words = |u: &mut Unstructured, n: usize| -> Result<Vec<u8>> {
            Ok(u.bytes(n.saturating_mul(8).min(u.len()))?.to_vec())
        };
        match u.int_in_range(0u8..=15)? {
            0 => {
                let other = u.int_in_range(0..=200)?;
                out.extend(wire::header(Kind::Words, other));
                out.extend(words(u, other as usize)?);
            }
            1 => {
                out.extend(wire::header(Kind::Message, len as u32));
                out.extend(words(u, len)?);
            }
            2 => {
                let mut h = wire::header(Kind::Words, len as u32);
                h[0] = u.arbitrary()?;
                out.extend(h);
                out.extend(words(u, len)?);
            }
            3 => out.extend(u.arbitrary::<[u8; wire::HEADER]>()?),
            4 => {
                out.extend(wire::header(Kind::Words, len as u32));
                let cut = u.int_in_range(0..=len.saturating_mul(8))?;
                out.extend(u.bytes(cut.min(u.len()))?);
                break;
            }
            _ => {
                out.extend(wire::header(Kind::Words, len as u32));
                let mut payload = words(u, len)?;
                payload.resize(len * 8, 0);
                out.extend(payload);
            }
        }
    }
    Ok(out)
}
