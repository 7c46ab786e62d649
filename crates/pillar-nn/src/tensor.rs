//! Dense row-major f32 tensors: weights and activations of the float reference.

use crate::error::NnError;

/// A row-major tensor of `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` holding `data`; the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, NnError> {
        let n: Option<usize> = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if n != Some(data.len()) {
            return Err(NnError::Tensor {
                shape,
                values: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// All zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![0.0; n],
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The values, by value.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The same values under another shape with as many elements.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self, NnError> {
        Tensor::new(shape, self.data)
    }
}
