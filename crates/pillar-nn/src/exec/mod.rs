//! Executors of a graph: the float reference, and the fixed-point simulator of the secure
//! protocols.

pub mod fixed;
pub mod float;
