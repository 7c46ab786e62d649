//! Secure inference of a graph: compile it into a [`Plan`] (a public [`Architecture`] and the
//! server's [`Weights`]), then run it as two parties over `pillar_mpc`.
//!
//! The plan mirrors [`crate::exec::fixed`] layer for layer: the same encodings, products and
//! truncations, so a secure run equals the fixed-point executor's result up to the secure
//! truncation's stochastic rounding (and the rare failed truncation it counts).
//!
//! # Phases
//! - **Setup**, once per connection: the server's weights enter as the sharing `(W, 0)` and
//!   their Beaver masks are opened (`W - B`, one round); see
//!   [`pillar_mpc::protocols::weights`].
//! - **Offline**, per batch: every correlation the batch will consume is fetched from the
//!   dealer before the input is used ([`Architecture::needs`]).
//! - **Online**: the client's input enters as `(0, x)`, the layers run, and the server sends
//!   its share of the logits to the client, who alone learns them.

mod check;
mod local;
mod plan;
pub mod remote;
mod run;

pub use crate::exec::fixed::FixedConfig;
pub use local::{LocalReport, run_local};
pub use plan::{Architecture, Layer, Plan, Step, Weights};
pub use run::{BatchReport, Connection, Phase};
