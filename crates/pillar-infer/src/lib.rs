//! The third stage of pillar: secure inference of a model graph.
//!
//! A folded graph from `pillar-nn` ([`pillar_nn::FoldedGraph`]) compiles into a [`Plan`]: a public
//! [`Architecture`] (shapes, pooling, the polynomials, the fixed-point format: what the server
//! shows the client) and the server's encoded [`Weights`]. The [`mirror`] runs a plan's arithmetic
//! on plaintext, word for word what the two parties compute on shares; a [`ServerConnection`] or
//! [`ClientConnection`] runs it as one party over `pillar-mpc`; [`run_local`] runs both parties in
//! one process, and [`remote`] is the server and client as separate processes. [`compare`] sets a
//! secure run's logits against the mirror's; `cluster` (feature `test-utils`) runs a dealer,
//! servers and clients in one process. Errors are [`InferError`]s, which name the node, step or
//! value at fault.
//!
//! # Phases
//! - **Setup**, once per connection: the server sends its weights under the model's masks,
//!   `F = W - B` (one round, one way; skipped for a client that kept `F`); see
//!   [`pillar_mpc::protocols::weights`].
//! - **Offline**, per batch: every correlation the batch will consume is fetched from the
//!   dealer before the input is used ([`Architecture::needs`]).
//! - **Online**: the client's input enters as `(0, x)`, the layers run, and the server sends
//!   its share of the logits to the client, who alone learns them.

#[cfg(feature = "test-utils")]
pub mod cluster;
pub mod compare;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod local;
pub mod mirror;
pub mod operators;
mod plan;
pub mod remote;
mod run;

pub use error::{ArchitectureError, InferError, NodeProblem, StepProblem};
pub use local::{LocalReport, run_local};
pub use plan::{
    Architecture, FixedConfig, Layer, MemoryEstimate, Parties, Plan, Step, UncheckedArchitecture,
    Weights,
};
pub use run::{
    BatchReport, Client, ClientConnection, Connection, Phase, Prepared, Server, ServerConnection,
};
