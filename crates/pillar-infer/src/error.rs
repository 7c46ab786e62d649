//! Errors of the secure stage.

use pillar_mpc::MpcError;
use pillar_nn::{NnError, Node};

/// What can go wrong compiling, mirroring or running a graph securely. Messages name the node
/// (or step), its operator and the value at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// The graph itself, or an input that does not fit it.
    #[error(transparent)]
    Graph(#[from] NnError),
    /// The two-party computation, its link or its dealer.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// A node the secure engine cannot run as it stands.
    #[error("node {node:?} ({op}): {detail}")]
    Node {
        /// The node's name.
        node: String,
        /// Its operator.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Fractional bits the secure engine does not support, so nothing would mirror it.
    #[error(
        "{0} fractional bits: the secure engine supports {min} to {max}",
        min = pillar_mpc::FRAC_BITS.start(),
        max = pillar_mpc::FRAC_BITS.end()
    )]
    FracBits(u32),
    /// Weights that do not belong to the architecture they are served with.
    #[error("the weights do not belong to this architecture")]
    Weights,
    /// An online phase given an input of another batch size than its offline phase fetched.
    #[error("a batch prepared for {prepared} images was given {given}")]
    Batch {
        /// Images the offline phase fetched correlations for.
        prepared: usize,
        /// Images in the input.
        given: usize,
    },
}

impl pillar_mpc::PartyError for InferError {
    fn is_peer_gone(&self) -> bool {
        matches!(self, InferError::Mpc(e) if e.is_peer_gone())
    }
}

/// An error at `node`, naming it and its operator.
pub(crate) fn node_error(node: &Node, detail: impl Into<String>) -> InferError {
    InferError::Node {
        node: node.name.clone(),
        op: node.op.name(),
        detail: detail.into(),
    }
}
