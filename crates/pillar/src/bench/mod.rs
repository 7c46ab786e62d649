//! Measurements behind `pillar bench`: what is timed, how often, and how it is summarised.

pub(crate) mod activations;
pub(crate) mod delay_line;
pub(crate) mod netns;
pub(crate) mod stats;
