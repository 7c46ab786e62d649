//! The stages of a graph, each a type (tract's parsed -> typed -> optimised): a [`Graph`] as
//! built or imported, a [`TypedGraph`] whose nodes have been checked and whose shapes and
//! schedule are known once, and a [`FoldedGraph`] with its BatchNorms merged into the layers
//! before them, which is what the secure stage compiles.

use std::ops::Deref;

use crate::error::NnError;
use crate::graph::Graph;
use crate::schedule::Schedule;

/// A graph whose every node fits its operands, with the shape of every value and the walk
/// that executors follow. Read the graph through `Deref`; it cannot be changed in place (take
/// it back with [`TypedGraph::into_graph`] to edit it, then check it again).
#[derive(Debug, Clone, PartialEq)]
pub struct TypedGraph {
    graph: Graph,
    shapes: Vec<Vec<usize>>,
    schedule: Schedule,
}

impl Graph {
    /// Checks every node against its operands (errors name the node and its operator) and
    /// returns the graph with its shapes and schedule.
    pub fn typed(self) -> Result<TypedGraph, NnError> {
        let shapes = self.shapes()?;
        TypedGraph::with_shapes(self, shapes)
    }
}

impl TryFrom<Graph> for TypedGraph {
    type Error = NnError;

    fn try_from(g: Graph) -> Result<Self, NnError> {
        g.typed()
    }
}

impl Deref for TypedGraph {
    type Target = Graph;

    fn deref(&self) -> &Graph {
        &self.graph
    }
}

impl TypedGraph {
    /// `graph` with the `shapes` its caller inferred (or kept from a graph already checked),
    /// and its schedule.
    pub(crate) fn with_shapes(graph: Graph, shapes: Vec<Vec<usize>>) -> Result<Self, NnError> {
        let schedule = Schedule::new(
            graph.nodes.iter().map(|n| n.inputs.clone()).collect(),
            graph.output,
        )?;
        Ok(TypedGraph {
            graph,
            shapes,
            schedule,
        })
    }

    /// The shape of every value without the batch dimension, input first.
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// The shape of the output without the batch dimension.
    pub fn output_shape(&self) -> &[usize] {
        &self.shapes[self.graph.output]
    }

    /// The order of the walk and when each value is freed.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The graph, to edit it.
    pub fn into_graph(self) -> Graph {
        self.graph
    }

    /// The batch size of an input of `shape`, which must be `[N, ...input_shape]`.
    pub fn check_input(&self, shape: &[usize]) -> Result<usize, NnError> {
        check_batch_shape(&self.graph.input_shape, shape)
    }

    /// The graph with every foldable BatchNorm merged into the layer before it (see
    /// `crate::fold`).
    pub fn fold_batchnorm(&self) -> Result<FoldedGraph, NnError> {
        crate::fold::fold_batchnorm(self).map(FoldedGraph)
    }
}

/// The batch size of `[N, ...expected]`, or an error naming both shapes: the one check of an
/// input batch against a per-image shape, for every executor.
pub fn check_batch_shape(expected: &[usize], got: &[usize]) -> Result<usize, NnError> {
    match got.split_first() {
        Some((&batch, rest)) if rest == expected => Ok(batch),
        _ => Err(NnError::Input {
            expected: expected.to_vec(),
            got: got.to_vec(),
        }),
    }
}

/// A typed graph whose foldable BatchNorms are folded: a BatchNorm that reads a convolution or
/// linear layer nothing else reads is gone, merged into that layer. Those that remain (after a
/// residual sum, say) run as per-channel affine maps.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedGraph(TypedGraph);

impl Deref for FoldedGraph {
    type Target = TypedGraph;

    fn deref(&self) -> &TypedGraph {
        &self.0
    }
}

impl FoldedGraph {
    /// The typed graph, folded.
    pub fn into_typed(self) -> TypedGraph {
        self.0
    }
}
