//! The IDX file format (MNIST's): a magic number, big-endian dimensions, then raw data.
//!
//! Every size is checked against the bytes actually present before anything is allocated, so
//! a corrupt or hostile header cannot make the reader allocate gigabytes.

use std::io::Read;

use flate2::read::GzDecoder;

use super::DataError;

/// Largest decompressed file accepted: the full MNIST training images are 47 MB.
pub const MAX_DECOMPRESSED: u64 = 512 << 20;

/// The element type code of unsigned bytes, the only one MNIST uses.
pub const UNSIGNED_BYTE: u8 = 0x08;

/// A parsed IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// The magic number of an unsigned-byte IDX file with `ndims` dimensions (2049 for labels,
/// 2051 for images).
pub fn magic(ndims: u8) -> u32 {
    u32::from_be_bytes([0, 0, UNSIGNED_BYTE, ndims])
}

/// Returns `bytes`, gunzipped if they start with the gzip magic, bounded by
/// [`MAX_DECOMPRESSED`].
pub fn decompress(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            name: name.to_string(),
            source,
        })?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(DataError::TooLarge {
            name: name.to_string(),
            limit: MAX_DECOMPRESSED,
        });
    }
    Ok(out)
}

/// Parses an unsigned-byte IDX array with exactly `ndims` dimensions.
pub fn parse(
    bytes: &[u8],
    ndims: u8,
    name: &str,
    what: &'static str,
) -> Result<IdxArray, DataError> {
    let truncated = |expected: u64| DataError::Truncated {
        name: name.to_string(),
        expected,
        found: bytes.len() as u64,
    };
    let header_len = 4 + 4 * usize::from(ndims);
    let found = read_u32(bytes, 0).ok_or_else(|| truncated(header_len as u64))?;
    let expected = magic(ndims);
    if found != expected {
        return Err(DataError::BadMagic {
            name: name.to_string(),
            found,
            expected,
            what,
        });
    }
    let dims: Vec<usize> = (0..usize::from(ndims))
        .map(|i| read_u32(bytes, 4 + 4 * i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| truncated(header_len as u64))?;
    // u64 arithmetic: the product of up to three u32 dimensions can exceed usize on 32-bit.
    let elements: u128 = dims.iter().map(|&d| d as u128).product();
    let total = elements + header_len as u128;
    let total = u64::try_from(total).unwrap_or(u64::MAX);
    if (bytes.len() as u64) < total {
        return Err(truncated(total));
    }
    if bytes.len() as u64 > total {
        return Err(DataError::TrailingBytes {
            name: name.to_string(),
            extra: bytes.len() as u64 - total,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header_len..].to_vec(),
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let chunk = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
}

/// Serialises an unsigned-byte IDX array (for tests and tools that write data sets).
pub fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic(dims.len() as u8).to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_are_mnists() {
        assert_eq!(magic(1), 2049);
        assert_eq!(magic(3), 2051);
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let a = parse(&bytes, 2, "x", "test").unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn huge_dimensions_are_rejected_without_allocating() {
        let bytes = encode(&[u32::MAX, u32::MAX, u32::MAX], &[0; 16]);
        let err = parse(&bytes, 3, "huge", "images").unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    }

    #[test]
    fn short_headers_are_truncated_files() {
        for len in 0..16 {
            let bytes = &encode(&[1, 1, 1], &[0])[..len];
            let err = parse(bytes, 3, "short", "images").unwrap_err();
            assert!(matches!(err, DataError::Truncated { .. }), "{len}: {err}");
        }
    }
}
