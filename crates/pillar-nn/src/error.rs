//! Errors of the model graph.

/// What can be wrong with a graph or its use. Messages name the node and its operator.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A tensor whose data does not fit its shape.
    #[error("tensor: {0}")]
    Tensor(String),
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
    /// The graph as a whole is malformed.
    #[error("graph: {0}")]
    Graph(String),
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
}
