//! Errors of the secure engine.

use crate::channel::ChannelError;
use crate::dealer::DealerError;

/// Everything a protocol can fail with. Each says which operation and which values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MpcError {
    /// The link to the peer failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The correlated randomness could not be had.
    #[error(transparent)]
    Dealer(#[from] DealerError),
    /// Two operands of different shapes.
    #[error("{op}: shapes {left:?} and {right:?} do not match")]
    Shape {
        /// The operation.
        op: &'static str,
        /// Left operand's shape.
        left: Vec<usize>,
        /// Right operand's shape.
        right: Vec<usize>,
    },
    /// An argument outside what the operation accepts.
    #[error("{op}: {detail}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A truncation the 64-bit ring cannot do.
    #[error("truncation by 2^{0} is beyond the 64-bit ring: at most 2^62")]
    Truncation(u32),
    /// Fractional bits out of range.
    #[error("{0} fractional bits: pillar supports 8 to 20")]
    FracBits(u32),
}

impl MpcError {
    /// An invalid argument to `op`, with what is wrong.
    pub fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        MpcError::Invalid {
            op,
            detail: detail.into(),
        }
    }
}
