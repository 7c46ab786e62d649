//! Fuzz target `dealer`: a client's announcement to the dealer, then the corrections for
//! every need it allows (`pillar_mpc::fuzzing::announcement`).
//!
//! Structure-aware: most inputs are read as a list of needs with small sizes, products
//! against the server's weight masks (`pillar_mpc::fuzzing::FUZZ_MASKS` of them, mask `i` of
//! `i + 1` elements) whose sizes mostly match, so that they pass the decoder and the size
//! check and reach every correction; one size in a few is anything at all (zero, huge,
//! mismatched, a mask the server does not have). The rest of the inputs are raw announcement
//! bytes, as the committed corpus has them.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use pillar_mpc::dealer::Need;
use pillar_mpc::fuzzing::FUZZ_MASKS;
use pillar_mpc::kernels::ConvGeometry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    match u.arbitrary::<u8>() {
        Ok(mode) if mode % 4 != 0 => {
            if let Ok(needs) = needs(&mut u) {
                if let Ok(json) = serde_json::to_vec(&needs) {
                    pillar_mpc::fuzzing::announcement(&json);
                }
            }
        }
        _ => pillar_mpc::fuzzing::announcement(data),
    }
});

/// A size: mostly 1 to 16, sometimes up to 300, one in 16 anything (0 and huge included).
fn size(u: &mut Unstructured) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => u.arbitrary()?,
        1..=3 => u.int_in_range(0..=300)?,
        _ => u.int_in_range(1..=16)?,
    })
}

/// A convolution that mostly fits: small dimensions, a kernel no larger than the padded input.
fn geometry(u: &mut Unstructured) -> Result<ConvGeometry> {
    let small = |u: &mut Unstructured, max: usize| -> Result<usize> {
        Ok(match u.int_in_range(0u8..=15)? {
            0 => u.arbitrary()?,
            1 => u.int_in_range(0..=1 << 16)?,
            _ => u.int_in_range(1..=max.max(1))?,
        })
    };
    let (height, width, padding) = (small(u, 8)?, small(u, 8)?, small(u, 2)? % 3);
    Ok(ConvGeometry {
        batch: small(u, 2)?,
        in_channels: small(u, 4)?,
        height,
        width,
        out_channels: small(u, 4)?,
        kernel_h: small(u, height.saturating_add(2 * padding).clamp(1, 5))?,
        kernel_w: small(u, width.saturating_add(2 * padding).clamp(1, 5))?,
        stride: small(u, 3)?,
        padding,
    })
}

/// A mask to take a product against: mostly one the server has, with its size.
fn mask(u: &mut Unstructured) -> Result<(usize, Option<usize>)> {
    if u.int_in_range(0u8..=7)? == 0 {
        return Ok((size(u)?, None));
    }
    let id = u.int_in_range(0..=FUZZ_MASKS - 1)?;
    Ok((id, Some(id + 1)))
}

/// The mask of `n` elements, if the server has one: mask `n - 1`.
fn mask_of(n: usize) -> Option<usize> {
    (1..=FUZZ_MASKS).contains(&n).then(|| n - 1)
}

/// Up to 12 needs of every kind.
fn needs(u: &mut Unstructured) -> Result<Vec<Need>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(1..=12)? {
        let need = match u.int_in_range(0u8..=13)? {
            0 => Need::Beaver { n: size(u)? },
            1 => Need::Square { n: size(u)? },
            2 => Need::FanOut {
                k: size(u)?,
                n: size(u)?,
            },
            3 => Need::Cross { n: size(u)? },
            4 => Need::Matmul {
                m: size(u)?,
                k: size(u)?,
                n: size(u)?,
            },
            5 => Need::Conv2d(geometry(u)?),
            6 => Need::Powers {
                n: size(u)?,
                degree: u.int_in_range(0..=14)?,
            },
            7 => Need::CrossAnd { n: size(u)? },
            8 => Need::PrefixAnd {
                n: size(u)?,
                shift: u.int_in_range(0..=70)?,
            },
            9 => Need::Bit { n: size(u)? },
            10 => Need::BitProduct { n: size(u)? },
            11 => {
                let geometry = geometry(u)?;
                // Mostly against the mask of its weight's size (lengths of a geometry the
                // check refuses may overflow).
                let fitting = match geometry.validate() {
                    Ok(()) => mask_of(geometry.weight_len()),
                    Err(_) => None,
                };
                let mask = match fitting {
                    Some(id) if u.arbitrary()? => id,
                    _ => mask(u)?.0,
                };
                Need::MaskedConv2d { geometry, mask }
            }
            12 => {
                let (mask, len) = mask(u)?;
                let k = len.unwrap_or(size(u)?);
                Need::MaskedMatmul {
                    m: size(u)?,
                    k,
                    n: 1,
                    mask,
                }
            }
            _ => {
                let (mask, len) = mask(u)?;
                let channels = len.unwrap_or(size(u)?);
                let inner = size(u)?;
                Need::MaskedScale {
                    n: channels
                        .saturating_mul(inner)
                        .saturating_mul(size(u)? % 3 + 1),
                    channels,
                    inner,
                    mask,
                }
            }
        };
        // A product against a weight mask, as often the preprocessed protocol's.
        let need = if need.mask().is_some() && u.arbitrary()? {
            preprocessed(need)
        } else {
            need
        };
        out.push(need);
    }
    Ok(out)
}

/// The preprocessed protocol's correlation of the same layer as the masked triple `need`.
fn preprocessed(need: Need) -> Need {
    match need {
        Need::MaskedConv2d { geometry, mask } => Need::PreprocessedConv2d { geometry, mask },
        Need::MaskedMatmul { m, k, n, mask } => Need::PreprocessedMatmul { m, k, n, mask },
        Need::MaskedScale {
            n,
            channels,
            inner,
            mask,
        } => Need::PreprocessedScale {
            n,
            channels,
            inner,
            mask,
        },
        other => other,
    }
}
