//! The protocols, each a function of a [`Session`](crate::Session) and shares.
//!
//! Every protocol that communicates documents its rounds and the words each party sends, and
//! has a `needs` function listing the correlated randomness it will ask the dealer for, in
//! order, so that a plan can fetch it all before the input arrives.

pub mod activation;
pub mod arith;
pub mod beaver;
mod binary;
pub mod clip;
pub mod linear;
pub mod maxpool;
pub mod mirror;
pub mod poly;
pub mod pool;
pub mod preprocessed;
pub mod relu;
pub mod truncation;
pub mod weights;
