//! Row-major tensors of ring elements, and a party's share of one.

use crate::error::MpcError;
use crate::ring::FixedPoint;

/// A row-major n-d tensor over Z_2^64: public data (weights known to both, opened values) or,
/// wrapped in [`Share`], one party's additive share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingTensor {
    shape: Vec<usize>,
    data: Vec<u64>,
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

impl RingTensor {
    /// A tensor of `shape` holding `data`; the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<u64>) -> Result<Self, MpcError> {
        match element_count(&shape) {
            Some(n) if n == data.len() => Ok(RingTensor { shape, data }),
            _ => Err(MpcError::invalid(
                "tensor",
                format!("shape {shape:?} does not hold {} elements", data.len()),
            )),
        }
    }

    /// A flat tensor.
    pub fn from_vec(data: Vec<u64>) -> Self {
        RingTensor {
            shape: vec![data.len()],
            data,
        }
    }

    /// All zeros.
    pub fn zeros(shape: Vec<usize>) -> Result<Self, MpcError> {
        let n = element_count(&shape)
            .ok_or_else(|| MpcError::invalid("tensor", format!("shape {shape:?} overflows")))?;
        Ok(RingTensor {
            shape,
            data: vec![0; n],
        })
    }

    /// Zeros of the same shape.
    pub fn zeros_like(&self) -> RingTensor {
        RingTensor {
            shape: self.shape.clone(),
            data: vec![0; self.data.len()],
        }
    }

    /// Encodes reals at the fixed-point format `fp`.
    pub fn encode(fp: FixedPoint, shape: Vec<usize>, values: &[f64]) -> Result<Self, MpcError> {
        RingTensor::new(shape, fp.encode_all(values))
    }

    /// Decodes to reals.
    pub fn decode(&self, fp: FixedPoint) -> Vec<f64> {
        fp.decode_all(&self.data)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// The elements, mutable.
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// The elements, by value.
    pub fn into_data(self) -> Vec<u64> {
        self.data
    }

    /// The same elements under another shape with as many elements.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self, MpcError> {
        RingTensor::new(shape, self.data)
    }

    /// Elementwise wrapping sum.
    pub fn add(&self, other: &RingTensor) -> Result<RingTensor, MpcError> {
        self.zip("add", other, u64::wrapping_add)
    }

    /// Elementwise wrapping difference.
    pub fn sub(&self, other: &RingTensor) -> Result<RingTensor, MpcError> {
        self.zip("sub", other, u64::wrapping_sub)
    }

    /// Elementwise wrapping product (no truncation).
    pub fn mul(&self, other: &RingTensor) -> Result<RingTensor, MpcError> {
        self.zip("mul", other, u64::wrapping_mul)
    }

    fn zip(
        &self,
        op: &'static str,
        other: &RingTensor,
        f: impl Fn(u64, u64) -> u64,
    ) -> Result<RingTensor, MpcError> {
        check_same_shape(op, &self.shape, &other.shape)?;
        Ok(RingTensor {
            shape: self.shape.clone(),
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        })
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(u64) -> u64) -> RingTensor {
        RingTensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }
}

/// Errors unless `left` and `right` are the same shape.
pub(crate) fn check_same_shape(
    op: &'static str,
    left: &[usize],
    right: &[usize],
) -> Result<(), MpcError> {
    if left == right {
        Ok(())
    } else {
        Err(MpcError::Shape {
            op,
            left: left.to_vec(),
            right: right.to_vec(),
        })
    }
}

/// This party's additive share of a secret tensor: the secret is the wrapping sum of both
/// parties' shares. A distinct type so that a share is never mistaken for a public value.
/// Its words are wiped when it is dropped: a share alone reveals nothing, but a memory dump
/// of both parties' would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share(RingTensor);

impl Drop for Share {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0.data);
    }
}

impl Share {
    /// Wraps this party's share.
    pub fn new(tensor: RingTensor) -> Self {
        Share(tensor)
    }

    /// The underlying ring tensor.
    pub fn tensor(&self) -> &RingTensor {
        &self.0
    }

    /// The underlying ring tensor, by value.
    pub fn into_tensor(mut self) -> RingTensor {
        RingTensor {
            shape: std::mem::take(&mut self.0.shape),
            data: std::mem::take(&mut self.0.data),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This party's share words.
    pub fn data(&self) -> &[u64] {
        self.0.data()
    }

    /// The same share under another shape.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Share, MpcError> {
        Ok(Share(self.into_tensor().reshape(shape)?))
    }
}
