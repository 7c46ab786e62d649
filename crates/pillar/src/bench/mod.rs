//! Measurements behind `pillar bench`: what is timed, how often, and how it is summarised.

pub mod activations;
pub mod stats;
