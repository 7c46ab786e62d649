//! Training convolutional networks whose activations are polynomials (PILLAR), with the
//! baselines the paper compares against, on the burn framework.
//!
//! - [`activation`]: ReLU or PolyReLU (clamped in training), Sisyphus's approximate min-max
//!   normalisation, and the [`activation::Tape`] that records every call: out-of-range ratio,
//!   largest input, PILLAR's penalty.
//! - [`penalty`]: the penalty and its 4-epoch warm-up; [`schedule`]: the learning rate.
//! - [`model`]: the paper's architectures and the export to the pillar-nn graph.
//! - [`conv`]: the CPU convolution (im2col + GEMM in NCHW, handwritten backward);
//!   [`fused`]: the activation, its penalty and statistics as single passes; [`norm`]: batch
//!   normalisation in training, likewise; [`pool`]: average pooling.
//! - [`train`](mod@train): the loop (validation-based selection, checkpoints, escape
//!   detection, QuaIL).
//! - [`device`]: the CPU backend, or a GPU through wgpu (cargo feature `wgpu`).
//! - [`data`]: MNIST (10,000 real digits embedded), CIFAR-10/100, image folders.

pub mod activation;
mod autodiff;
pub mod bench;
pub mod config;
pub mod conv;
pub mod data;
pub mod device;
pub mod fused;
pub mod metrics;
pub mod model;
pub mod norm;
pub mod penalty;
pub mod pool;
pub mod schedule;
pub mod train;

pub use config::{ActivationKind, TrainConfig};
pub use model::{Architecture, Net};
pub use train::{Checkpoints, Event, Outcome, TrainError, check_resume, train};
