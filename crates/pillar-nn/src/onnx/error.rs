//! What can go wrong reading or writing ONNX. Every message names the node, tensor or
//! metadata key at fault, and for a node its operator as the model spells it.

/// An ONNX model that cannot be decoded or mapped onto a [`crate::Graph`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The model is larger than [`super::MAX_MODEL_BYTES`]; refused before reading it.
    #[error("the model is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The model holds more of something than pillar decodes; refused before decoding, since
    /// small encodings of many parts decode to many times the file's size.
    #[error("the model holds more than {limit} {what}, the limit")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not a well-formed protobuf (found before decoding).
    #[error("not an ONNX model: {0}")]
    Malformed(String),
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model: {0}")]
    Decode(#[source] prost::DecodeError),
    /// The model as a whole (opsets, graph inputs and outputs) does not fit pillar.
    #[error("{0}")]
    Model(String),
    /// A node that pillar cannot import.
    #[error("node {node:?} ({op}): {detail}")]
    Node {
        /// The node's name (or, if it has none, its operator and position).
        node: String,
        /// Its operator, prefixed with its domain when that is not the default one.
        op: String,
        /// What is wrong and, where there is one, what would work.
        detail: String,
    },
    /// A constant tensor whose contents do not fit its declared type and shape.
    #[error("tensor {name:?}: {detail}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A pillar metadata entry that does not parse or contradicts the graph.
    #[error("metadata {key:?}: {detail}")]
    Metadata {
        /// The entry's key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}
