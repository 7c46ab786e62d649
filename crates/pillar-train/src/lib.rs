//! Training convolutional networks whose activations are polynomials (PILLAR), and the data
//! sets they train on.
//!
//! So far this crate holds the data: [`data::mnist`] reads MNIST in the IDX format, and ships
//! 10,000 real digits inside the binary so that every command has a default data set that
//! needs no download.

pub mod data;
