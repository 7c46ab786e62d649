//! The model graph of pillar: one intermediate representation shared by training (which
//! exports it), ONNX import, and the executors (the float reference here; the secure plan and
//! its fixed-point mirror in `pillar-infer`). It knows nothing of the secure engine.
//!
//! A graph goes through stages, each a type:
//! - [`Graph`]: a list of [`Node`]s in topological order over numbered values, as built by
//!   training's export or read from ONNX;
//! - [`TypedGraph`] ([`Graph::typed`]): every node checked against its operands (errors name
//!   the node and its operator), the shape of every value and the [`Schedule`] of a walk known
//!   once; [`exec::float::run`], the reference semantics every other executor is compared
//!   with, and [`onnx`] export take this;
//! - [`FoldedGraph`] ([`TypedGraph::fold_batchnorm`]): BatchNorm merged into the convolution
//!   or linear layer before it; what the secure stage compiles.
//!
//! [`onnx`] reads a model into a typed graph and writes one back.

mod atomic;
mod error;
pub mod exec;
mod fold;
mod graph;
mod linalg;
pub mod onnx;
mod schedule;
mod shape;
mod tensor;
#[cfg(feature = "test-utils")]
pub mod testing;
mod typed;

pub use atomic::{write_atomic, write_atomic_with};
pub use error::NnError;
pub use graph::{
    BatchNorm, Clip, Conv2d, Graph, Linear, Node, Op, OutputTransform, PolyAct, Pool, ValueId,
};
pub use schedule::Schedule;
pub use tensor::Tensor;
pub use typed::{FoldedGraph, TypedGraph, check_batch_shape};
