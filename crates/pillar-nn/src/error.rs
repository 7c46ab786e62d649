//! Errors of the model graph.

/// What can be wrong with a graph or its use. Messages name the node and its operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// A tensor whose data does not fit its shape.
    #[error("tensor: shape {shape:?} does not hold {values} values")]
    Tensor {
        /// The shape.
        shape: Vec<usize>,
        /// Values given.
        values: usize,
    },
    /// A node whose operands do not fit its operator.
    #[error("node {node:?} ({op}): {detail}")]
    Node {
        /// The node's name.
        node: String,
        /// Its operator.
        op: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The output is not a value the graph computes.
    #[error("graph: the output is value {output}, but there are only {steps} nodes")]
    Output {
        /// The output's value.
        output: usize,
        /// Nodes (or steps).
        steps: usize,
    },
    /// A node (or step) that reads a value computed after it.
    #[error("graph: step {step} reads value {value}, which is not computed before it")]
    ReadsAhead {
        /// The step.
        step: usize,
        /// The value.
        value: usize,
    },
    /// An ONNX model that cannot be read or mapped onto the graph.
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
    /// A failure reading or writing a file, with the file's path.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: Box<NnError>,
    },
    /// An input batch of the wrong shape.
    #[error(
        "input of shape {got:?} does not fit the graph's {expected:?} (plus a batch dimension)"
    )]
    Input {
        /// The graph's input shape, without batch.
        expected: Vec<usize>,
        /// What was given.
        got: Vec<usize>,
    },
    /// An input value that is not a finite number.
    #[error("input value {value} at index {index} is not a finite number")]
    InputValue {
        /// Its flat index in the batch.
        index: usize,
        /// The value.
        value: f32,
    },
}

/// An error at `node`, naming it and its operator.
pub(crate) fn node_error(node: &crate::graph::Node, detail: impl Into<String>) -> NnError {
    NnError::Node {
        node: node.name.clone(),
        op: node.op.name(),
        detail: detail.into(),
    }
}
