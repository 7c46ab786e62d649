//! Executors of a graph: the float reference. (The fixed-point mirror of the secure protocols
//! walks the compiled secure plan, in `pillar-infer`.)

pub mod float;
