//! The hot loops over ring words: matrix products and convolutions in Z_2^64.
//!
//! No BLAS does wrapping 64-bit integer products, so these are written here: cache-blocked,
//! parallel over output rows with rayon, with an AVX-512 build of the inner loop picked at run
//! time where the CPU has one. They dominate the LAN time of a network's linear layers.

mod conv;
mod gemm;

pub use conv::{ConvGeometry, conv2d, im2col};
pub use gemm::matmul;
