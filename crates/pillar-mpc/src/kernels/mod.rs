//! The hot loops over ring words: matrix products and convolutions in Z_2^64.
//!
//! No BLAS does wrapping 64-bit integer products, so these are written here: cache-blocked,
//! parallel over output rows with rayon, with an AVX-512 build of the inner loop picked at run
//! time where the CPU has one. They dominate the LAN time of a network's linear layers.

mod conv;
mod gemm;

/// Whether this CPU has AVX-512F and AVX-512DQ (checked once): DQ's `vpmullq` multiplies
/// eight 64-bit lanes at once, without it the compiler emulates the product with 32-bit
/// multiplies. The hot loops have a build for it, picked at run time.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
    })
}

pub use conv::{ConvGeometry, conv2d, conv2d_with, im2col};
pub use gemm::matmul;
