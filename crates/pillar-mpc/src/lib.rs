//! The secure engine of pillar: two-party computation over additive shares in Z_2^64.
//!
//! # Model
//! Two parties, P0 (the server, with the model) and P1 (the client, with the input), each
//! hold an additive share of every secret: `x = x_0 + x_1 mod 2^64`. Reals are fixed point
//! with `f` fractional bits ([`FixedPoint`]). The parties are semi-honest (they follow the
//! protocol and try to learn from what they see); correlated randomness comes from a
//! [`Dealer`](dealer::Dealer) trusted not to collude with either, as in the paper's benchmarks.
//!
//! # Layout
//! - [`channel`]: the [`Channel`](channel::Channel) trait (one call, one round, rounds and bytes
//!   counted) and its in-memory, TCP, Noise and link-emulating implementations;
//! - [`wire`]: the one frame every link speaks, and the typed control messages in it, each
//!   checked as it is decoded;
//! - [`dealer`]: what correlated randomness each protocol needs ([`Need`](dealer::Need)),
//!   seed-expanding dealers, and the dealer as a process ([`dealer::remote`]); the kinds of
//!   correlation are types (`Beaver`, `Matmul`, ...) that name their parts and hold the
//!   dealer's correction, taken by protocols as `s.correlation::<Beaver>(n)`;
//! - [`protocols`]: sharing, truncation, Beaver products, matrix products and convolutions,
//!   pooling, the three polynomial protocols, exact ReLU and max-pooling; each activation
//!   protocol is one module behind the [`Activation`](protocols::activation::Activation)
//!   trait, with its plaintext arithmetic ([`protocols::mirror`]);
//! - [`kernels`]: the wrapping `u64` matrix product and convolution;
//! - [`Session`]: one party's state, which every protocol takes; [`Local`]: both parties in
//!   one process.
//!
//! Protocols never touch sockets, threads or clocks: they call the session's channel and
//! dealer, so the same code runs in one process for tests and benchmarks and across machines.

pub mod channel;
pub(crate) mod correlation;
pub mod dealer;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod kernels;
mod local;
mod party;
pub mod protocols;
mod ring;
mod secret;
mod session;
mod tensor;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod wire;

pub use error::MpcError;
pub use local::{Local, PartyError, Transport};
pub use party::Party;
pub use ring::{FRAC_BITS, FixedPoint};
pub use secret::{derive_seed, derive_seed_u64};
pub use session::Session;
pub use tensor::{RingTensor, Share};
