//! Constant tensors: decoding `TensorProto` payloads (raw little-endian bytes or the typed
//! repeated fields) with every length checked against the dimensions, and encoding f32 and
//! f64 tensors as raw bytes.

use super::error::OnnxError;
use super::external::{External, is_external};
use super::proto::{TensorProto, data_type};

/// The elements of a constant, in the precision the file stored them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// `FLOAT`.
    F32(Vec<f32>),
    /// `DOUBLE`.
    F64(Vec<f64>),
    /// `INT64` and `INT32` (shape arithmetic, exponents).
    I64(Vec<i64>),
}

/// A decoded constant: dimensions (with the batch dimension, if any, as stored) and data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    /// Its dimensions; `[]` for a scalar.
    pub dims: Vec<usize>,
    /// Its elements, row-major.
    pub data: Data,
}

impl Const {
    /// Number of elements.
    pub(super) fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// Element `i` as f64 (exact for f32 and f64; integers as the nearest f64).
    pub(super) fn get(&self, i: usize) -> Option<f64> {
        match &self.data {
            Data::F32(v) => v.get(i).map(|&x| f64::from(x)),
            Data::F64(v) => v.get(i).copied(),
            Data::I64(v) => v.get(i).map(|&x| x as f64),
        }
    }

    /// The elements as f32, for weights; `None` for integers. Doubles are rounded.
    pub(super) fn to_f32(&self) -> Option<Vec<f32>> {
        match &self.data {
            Data::F32(v) => Some(v.clone()),
            Data::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            Data::I64(_) => None,
        }
    }

    /// The elements as integers, for shapes and axes; `None` for floats.
    pub(super) fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            _ => None,
        }
    }
}

fn tensor_err(name: &str, detail: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        detail: detail.into(),
    }
}

/// Decodes `t`; `name` is used in errors (initializers have one, attribute values may not).
/// Data stored outside the model is read from `external` (the model's folder), and refused
/// without it.
pub(crate) fn decode_in(
    t: &TensorProto,
    name: &str,
    external: Option<&mut External>,
) -> Result<Const, OnnxError> {
    if t.segment.is_some() {
        return Err(tensor_err(
            name,
            "chunked (segmented) tensors are not supported",
        ));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(usize::try_from(d).map_err(|_| tensor_err(name, format!("dimension {d}")))?);
    }
    let n = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| tensor_err(name, format!("dimensions {dims:?} overflow")))?;
    let kind = t.data_type.unwrap_or(0);
    let stored;
    let raw = if is_external(t) {
        let Some(external) = external else {
            return Err(tensor_err(
                name,
                "its data is stored in an external file, and external data needs the model's \
                 path: use onnx::load, or save the model with its weights inside (onnx.save(model, path, \
                 save_as_external_data=False))",
            ));
        };
        let need = external_bytes(t, name)?;
        stored = external.read(t, need).map_err(|d| tensor_err(name, d))?;
        Some(stored.as_slice())
    } else {
        t.raw_data.as_deref()
    };
    let check = |got: usize, field: &str| {
        if got == n {
            Ok(())
        } else {
            Err(tensor_err(
                name,
                format!("{field} holds {got} elements, its dimensions {dims:?} need {n}"),
            ))
        }
    };
    let data = match kind {
        data_type::FLOAT => Data::F32(match raw {
            Some(bytes) => {
                check(bytes.len() / 4, "raw_data")?;
                exact_chunks::<4>(bytes, name)?
                    .map(f32::from_le_bytes)
                    .collect()
            }
            None => {
                check(t.float_data.len(), "float_data")?;
                t.float_data.clone()
            }
        }),
        data_type::DOUBLE => Data::F64(match raw {
            Some(bytes) => {
                check(bytes.len() / 8, "raw_data")?;
                exact_chunks::<8>(bytes, name)?
                    .map(f64::from_le_bytes)
                    .collect()
            }
            None => {
                check(t.double_data.len(), "double_data")?;
                t.double_data.clone()
            }
        }),
        data_type::INT64 => Data::I64(match raw {
            Some(bytes) => {
                check(bytes.len() / 8, "raw_data")?;
                exact_chunks::<8>(bytes, name)?
                    .map(i64::from_le_bytes)
                    .collect()
            }
            None => {
                check(t.int64_data.len(), "int64_data")?;
                t.int64_data.clone()
            }
        }),
        data_type::BOOL => Data::I64(match raw {
            Some(bytes) => {
                check(bytes.len(), "raw_data")?;
                bytes.iter().map(|&b| i64::from(b != 0)).collect()
            }
            None => {
                check(t.int32_data.len(), "int32_data")?;
                t.int32_data.iter().map(|&v| i64::from(v != 0)).collect()
            }
        }),
        data_type::INT32 => Data::I64(match raw {
            Some(bytes) => {
                check(bytes.len() / 4, "raw_data")?;
                exact_chunks::<4>(bytes, name)?
                    .map(|b| i64::from(i32::from_le_bytes(b)))
                    .collect()
            }
            None => {
                check(t.int32_data.len(), "int32_data")?;
                t.int32_data.iter().map(|&v| i64::from(v)).collect()
            }
        }),
        other => return Err(unsupported_type(name, other)),
    };
    Ok(Const { dims, data })
}

/// Bytes per element of the element types pillar reads.
fn element_bytes(kind: i32) -> Option<u64> {
    match kind {
        data_type::BOOL => Some(1),
        data_type::FLOAT | data_type::INT32 => Some(4),
        data_type::DOUBLE | data_type::INT64 => Some(8),
        _ => None,
    }
}

/// The bytes tensor `t` holds by its dimensions and type, for data stored outside the model;
/// checked before any is read.
pub(crate) fn external_bytes(t: &TensorProto, name: &str) -> Result<u64, OnnxError> {
    let kind = t.data_type.unwrap_or(0);
    let size = element_bytes(kind).ok_or_else(|| unsupported_type(name, kind))?;
    t.dims
        .iter()
        .try_fold(size, |n, &d| {
            u64::try_from(d).ok().and_then(|d| n.checked_mul(d))
        })
        .ok_or_else(|| tensor_err(name, format!("dimensions {:?} overflow", t.dims)))
}

fn unsupported_type(name: &str, kind: i32) -> OnnxError {
    tensor_err(
        name,
        format!(
            "element type {kind} ({}) is not supported; pillar reads float, double, int32, \
             int64 and bool",
            type_name(kind)
        ),
    )
}

/// The bytes as little-endian words of `N` bytes, refusing a ragged tail.
fn exact_chunks<'a, const N: usize>(
    bytes: &'a [u8],
    name: &str,
) -> Result<impl Iterator<Item = [u8; N]> + 'a, OnnxError> {
    if !bytes.len().is_multiple_of(N) {
        return Err(tensor_err(
            name,
            format!(
                "raw_data of {} bytes is not a whole number of {N}-byte elements",
                bytes.len()
            ),
        ));
    }
    Ok(bytes.chunks_exact(N).map(|c| {
        let mut word = [0u8; N];
        word.copy_from_slice(c);
        word
    }))
}

/// The ONNX name of an element type, for messages.
pub(crate) fn type_name(t: i32) -> &'static str {
    match t {
        0 => "undefined",
        1 => "float",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "double",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "other",
    }
}

/// An f32 tensor stored as raw little-endian bytes, the way exporters write weights.
pub(crate) fn encode_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An f64 tensor stored as raw little-endian bytes (exact polynomial coefficients).
pub(crate) fn encode_f64(dims: &[usize], data: &[f64]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::DOUBLE),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}
