//! Executors of a graph: the float reference (and, next, the fixed-point simulator of the
//! secure protocols).

pub mod float;
