//! NumPy `.npy` files of float tensors: how a user hands pillar the exact tensor it checked in
//! PyTorch (`numpy.save("x.npy", x.numpy())`).
//!
//! Only what such a tensor is gets in: little-endian `float32`, or `float64` (numpy's default,
//! e.g. `numpy.random.rand`) converted to the `float32` the model computes in, C order, every
//! value finite. The header is parsed here rather than with `npyz`: `npyz` allocates whatever
//! header length a file declares (up to 4 GiB) before reading it and parses it with a
//! recursive grammar, where pillar needs the three keys of a plain array only. Every size is
//! checked against the file's length and the caller's element budget before the data is
//! allocated.

use std::io::Read;
use std::path::Path;

use super::DataError;

/// The longest header read: numpy's own reader refuses longer ones by default
/// (`max_header_size`), and a plain array's is under 128 bytes.
pub const MAX_HEADER: usize = 10_000;

/// Most dimensions an array may have (numpy's own limit is 64).
const MAX_DIMS: usize = 32;

/// The file's magic string.
const MAGIC: &[u8] = b"\x93NUMPY";

/// An array of `f32` in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Its shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Its elements, the last index varying fastest.
    pub data: Vec<f32>,
}

/// The element types read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// What the header says.
#[derive(Debug)]
struct Header {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Where the data starts.
    offset: usize,
}

impl Header {
    /// Bytes of data the header announces, if at most `max_elements` elements.
    fn data_bytes(&self, name: &str, max_elements: usize) -> Result<usize, DataError> {
        let elements = self
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= max_elements)
            .ok_or_else(|| {
                malformed(
                    name,
                    format!(
                        "an array of shape {:?} is more than the {max_elements} values pillar \
                         takes here",
                        self.shape
                    ),
                )
            })?;
        Ok(elements * self.dtype.size())
    }
}

/// Whether `bytes` start like an `.npy` file.
pub fn is_npy(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Reads the array in `path`, of at most `max_elements` values: the header is read and checked
/// first, the file's length against it, and only then the data.
pub fn read(path: &Path, max_elements: usize) -> Result<Array, DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut prefix = Vec::new();
    (&mut file)
        .take((12 + MAX_HEADER) as u64)
        .read_to_end(&mut prefix)
        .map_err(io)?;
    let header = header(&prefix, &name)?;
    let expected = header.offset as u64 + header.data_bytes(&name, max_elements)? as u64;
    check_length(&name, expected, len)?;
    let mut bytes = prefix;
    // Bounded: `expected` is within the budget, and the file was that long a moment ago.
    file.take(expected.saturating_sub(bytes.len() as u64))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    parse(&bytes, &name, max_elements)
}

/// Parses a whole `.npy` file held in memory, named `name` in errors.
pub fn parse(bytes: &[u8], name: &str, max_elements: usize) -> Result<Array, DataError> {
    let header = header(bytes, name)?;
    let size = header.data_bytes(name, max_elements)?;
    check_length(name, (header.offset + size) as u64, bytes.len() as u64)?;
    let raw = &bytes[header.offset..];
    let data: Vec<f32> = match header.dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
    };
    if let Some(at) = data.iter().position(|v| !v.is_finite()) {
        let (index, value) = (unravel(at, &header.shape), data[at]);
        return Err(malformed(
            name,
            format!(
                "the value at {index:?} is {value}{}: a model input must be a finite float32",
                if header.dtype == Dtype::F64 {
                    " (as float32)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(Array {
        shape: header.shape,
        data,
    })
}

/// The multi-index of flat position `at` in C order.
fn unravel(mut at: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        index[i] = at % d.max(1);
        at /= d.max(1);
    }
    index
}

fn check_length(name: &str, expected: u64, found: u64) -> Result<(), DataError> {
    if found < expected {
        return Err(DataError::Truncated {
            name: name.to_string(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::TrailingBytes {
            name: name.to_string(),
            extra: found - expected,
        });
    }
    Ok(())
}

fn malformed(name: &str, detail: impl Into<String>) -> DataError {
    DataError::Malformed {
        name: name.to_string(),
        detail: detail.into(),
    }
}

/// The preamble (magic, version, header length) and the header dictionary.
fn header(bytes: &[u8], name: &str) -> Result<Header, DataError> {
    if !is_npy(bytes) {
        return Err(malformed(
            name,
            "not a NumPy .npy file (it does not start with \\x93NUMPY)",
        ));
    }
    let truncated = |expected: usize| DataError::Truncated {
        name: name.to_string(),
        expected: expected as u64,
        found: bytes.len() as u64,
    };
    let (len, start) = match bytes.get(6..8) {
        Some([1, 0]) => {
            let b = bytes.get(8..10).ok_or_else(|| truncated(10))?;
            (usize::from(u16::from_le_bytes([b[0], b[1]])), 10)
        }
        Some([2 | 3, 0]) => {
            let b = bytes.get(8..12).ok_or_else(|| truncated(12))?;
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12)
        }
        Some(v) => {
            return Err(malformed(
                name,
                format!("format version {}.{}; pillar reads 1.0 to 3.0", v[0], v[1]),
            ));
        }
        None => return Err(truncated(8)),
    };
    if len > MAX_HEADER {
        return Err(malformed(
            name,
            format!("a header of {len} bytes, more than the {MAX_HEADER} numpy itself reads"),
        ));
    }
    let text = bytes
        .get(start..start + len)
        .ok_or_else(|| truncated(start + len))?;
    let text = std::str::from_utf8(text).map_err(|_| malformed(name, "the header is not text"))?;
    let (descr, fortran, shape) =
        Dict::parse(text).map_err(|e| malformed(name, format!("header {text:?}: {e}")))?;
    if fortran {
        return Err(malformed(
            name,
            "the array is in Fortran order; save it in C order \
             (numpy.save(f, numpy.ascontiguousarray(x)))",
        ));
    }
    let dtype = match descr.as_str() {
        "<f4" => Dtype::F32,
        "<f8" => Dtype::F64,
        other => {
            return Err(malformed(
                name,
                format!(
                    "dtype {other:?}; pillar reads little-endian float32 ('<f4') or float64 \
                     ('<f8'): save x.astype(numpy.float32)"
                ),
            ));
        }
    };
    Ok(Header {
        dtype,
        shape,
        offset: start + len,
    })
}

/// The header's dictionary: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`,
/// keys in any order, each once, nothing else.
struct Dict<'a> {
    rest: &'a str,
}

impl<'a> Dict<'a> {
    fn parse(text: &'a str) -> Result<(String, bool, Vec<usize>), String> {
        let mut d = Dict { rest: text };
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        d.expect('{')?;
        loop {
            if d.eat('}') {
                break;
            }
            let key = d.string()?;
            d.expect(':')?;
            let duplicate = match key {
                "descr" => descr.replace(d.string()?.to_string()).is_some(),
                "fortran_order" => fortran.replace(d.boolean()?).is_some(),
                "shape" => shape.replace(d.tuple()?).is_some(),
                other => return Err(format!("unknown key {other:?}")),
            };
            if duplicate {
                return Err(format!("key {key:?} twice"));
            }
            if !d.eat(',') {
                d.expect('}')?;
                break;
            }
        }
        if !d.rest.trim().is_empty() {
            return Err("text after the dictionary".into());
        }
        match (descr, fortran, shape) {
            (Some(descr), Some(fortran), Some(shape)) => Ok((descr, fortran, shape)),
            _ => Err("it lacks one of descr, fortran_order, shape".into()),
        }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {c:?}"))
        }
    }

    fn string(&mut self) -> Result<&'a str, String> {
        self.skip_space();
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err("expected a quoted string".into()),
        };
        let body = &self.rest[1..];
        let end = body.find(quote).ok_or("an unterminated string")?;
        self.rest = &body[end + 1..];
        Ok(&body[..end])
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(value);
            }
        }
        Err("expected True or False".into())
    }

    /// `()`, `(3,)`, `(2, 3)`; Python 2's numpy wrote `(2L, 3L)`.
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(dims);
            }
            self.skip_space();
            let digits = self.rest.len()
                - self
                    .rest
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            if digits == 0 {
                return Err("a dimension that is not a non-negative integer".into());
            }
            let dim = self.rest[..digits]
                .parse::<usize>()
                .map_err(|_| format!("dimension {} is too large", &self.rest[..digits]))?;
            self.rest = &self.rest[digits..];
            self.rest = self.rest.strip_prefix('L').unwrap_or(self.rest);
            dims.push(dim);
            if dims.len() > MAX_DIMS {
                return Err(format!("more than {MAX_DIMS} dimensions"));
            }
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(dims);
            }
        }
    }
}

/// Writes `data` of `shape` as a version 1.0 `.npy` file of little-endian float32, C order:
/// what `numpy.save` writes for a float32 array (tests and tools that hand pillar tensors).
pub fn to_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads with spaces so that the data starts at a multiple of 64, then a newline.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(
        &u16::try_from(header.len())
            .unwrap_or(u16::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn error(bytes: &[u8]) -> String {
        parse(bytes, "x.npy", 1 << 20).unwrap_err().to_string()
    }

    #[test]
    fn reads_what_numpy_writes_in_every_version() {
        let values = [1.5f32, -2.0, 0.25, 3.0, 4.0, -0.5];
        let bytes = to_bytes(&[2, 3], &values);
        assert_eq!((bytes.len() - 4 * 6) % 64, 0);
        let a = parse(&bytes, "x.npy", 6).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, values);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        for (version, header) in [
            (
                2,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
            ),
            (
                3,
                "{\"shape\": (2L, 3L), \"descr\": \"<f4\", \"fortran_order\": False}",
            ),
            (1, "{'fortran_order':False,'shape':(6,),'descr':'<f4'}   \n"),
        ] {
            let a = parse(&with_header(version, header, &raw), "x.npy", 6).unwrap();
            assert_eq!(a.data, values, "{header}");
        }
        // float64 is converted; a scalar has shape [].
        let raw: Vec<u8> = [0.1f64, 1e10]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
        let a = parse(&with_header(1, header, &raw), "x.npy", 2).unwrap();
        assert_eq!(a.data, vec![0.1f32, 1e10f32]);
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
        let a = parse(&with_header(1, header, &7f32.to_le_bytes()), "x.npy", 1).unwrap();
        assert_eq!((a.shape.len(), a.data), (0, vec![7.0]));
    }

    #[test]
    fn a_file_pillar_cannot_take_says_what_to_change() {
        let raw = [0u8; 24];
        let h = |descr: &str, fortran: &str, shape: &str| {
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
        };
        for (bytes, says) in [
            (
                with_header(1, &h("<f4", "True", "(2, 3)"), &raw),
                "Fortran order",
            ),
            (
                with_header(1, &h(">f4", "False", "(2, 3)"), &raw),
                "\">f4\"",
            ),
            (with_header(1, &h("|u1", "False", "(24,)"), &raw), "astype"),
            (with_header(1, &h("<i8", "False", "(3,)"), &raw), "float32"),
            (
                with_header(1, &h("<f4", "False", "(2, 4)"), &raw),
                "truncated: the header announces",
            ),
            (
                with_header(1, &h("<f4", "False", "(2, 2)"), &raw),
                "8 unexpected bytes",
            ),
            (
                with_header(4, &h("<f4", "False", "(6,)"), &raw),
                "version 4.0",
            ),
            (
                b"PK\x03\x04 an npz archive".to_vec(),
                "not a NumPy .npy file",
            ),
            (MAGIC.to_vec(), "truncated"),
            (
                with_header(1, "{'descr': '<f4', 'shape': (6,)}", &raw),
                "lacks",
            ),
            (
                with_header(
                    1,
                    "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False}",
                    &raw,
                ),
                "twice",
            ),
            (
                with_header(1, &h("<f4", "False", "(-1, 6)"), &raw),
                "non-negative integer",
            ),
            (
                with_header(1, &h("<f4", "False", "(99999999999999999999999,)"), &raw),
                "too large",
            ),
            (
                with_header(
                    1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (6 }",
                    &raw,
                ),
                "expected ')'",
            ),
            (
                with_header(1, &h("<f4", "False", "[6]"), &raw),
                "expected '('",
            ),
            (with_header(1, "{'descr': '<f4", &raw), "unterminated"),
            (
                with_header(1, &format!("{}{}", h("<f4", "False", "(6,)"), "x"), &raw),
                "text after",
            ),
        ] {
            let e = error(&bytes);
            assert!(
                e.contains(says) && e.starts_with("x.npy: "),
                "{says:?} not in {e}"
            );
        }
        // NaN, inf and float64 beyond float32's range are named by their index.
        let mut nan = to_bytes(&[2, 3], &[0.0; 6]);
        let at = nan.len() - 8;
        nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(error(&nan).contains("at [1, 1] is NaN"), "{}", error(&nan));
        let big = 1e300f64.to_le_bytes();
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }";
        let e = error(&with_header(1, header, &big));
        assert!(e.contains("inf (as float32)"), "{e}");
    }

    #[test]
    fn sizes_from_the_header_are_bounded_before_anything_is_allocated() {
        // A shape whose product overflows, one beyond the budget, a header longer than
        // numpy's limit, and a version-2 length of 4 GiB: refused from the first bytes.
        let h =
            |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}}}");
        let huge = (0..20).map(|_| "65536").collect::<Vec<_>>().join(", ");
        assert!(error(&with_header(1, &h(&format!("({huge})")), &[])).contains("more than"));
        let e = parse(&with_header(1, &h("(1000, 1000)"), &[]), "x.npy", 999_999).unwrap_err();
        assert!(e.to_string().contains("more than the 999999 values"), "{e}");
        let long = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}}{}",
            " ".repeat(MAX_HEADER)
        );
        assert!(error(&with_header(1, &long, &[0; 4])).contains("a header of"));
        let mut v2 = MAGIC.to_vec();
        v2.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(error(&v2).contains("more than the 10000"), "{}", error(&v2));
        // Deeply nested brackets are just an error, not a recursion.
        let deep = format!("{{'shape': {}", "(".repeat(5000));
        assert!(error(&with_header(1, &deep, &[])).contains("non-negative integer"));
        let dims = format!("({})", vec!["1"; MAX_DIMS + 1].join(", "));
        assert!(error(&with_header(1, &h(&dims), &[0; 4])).contains("dimensions"));
    }

    #[test]
    fn read_checks_the_file_length_before_reading_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let bytes = to_bytes(&[1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path, 4).unwrap().data, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(
            read(&path, 3)
                .unwrap_err()
                .to_string()
                .contains("more than the 3 values")
        );
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let e = read(&path, 4).unwrap_err().to_string();
        assert!(e.contains("x.npy: truncated"), "{e}");
        let e = read(&dir.path().join("none.npy"), 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read") && e.contains("none.npy"), "{e}");
    }
}
