//! The model graph of pillar: one intermediate representation shared by training (which
//! exports it), ONNX import, and the executors (the float reference here; the secure plan and
//! its fixed-point mirror in `pillar-infer`). It knows nothing of the secure engine.
//!
//! A [`Graph`] is a list of [`Node`]s in topological order over numbered values; shapes are
//! inferred and checked ([`Graph::shapes`]), with errors that name the node and its operator.
//! [`fold_batchnorm`] merges BatchNorm into the preceding convolution or linear layer, and
//! [`exec::float::run`] is the reference semantics every other executor is compared with.
//! [`onnx`] reads and writes the graph as ONNX.

mod error;
pub mod exec;
mod fold;
mod graph;
mod linalg;
pub mod onnx;
mod shape;
mod tensor;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use error::NnError;
pub use fold::fold_batchnorm;
pub use graph::{BatchNorm, Conv2d, Graph, Linear, Node, Op, PolyAct, Pool, ValueId};
pub use tensor::Tensor;
