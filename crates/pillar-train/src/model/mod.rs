//! Networks: the layer list with residual blocks ([`net`]), the paper's architectures
//! ([`zoo`]) and the conversion to the pillar-nn graph that ONNX export and every executor
//! share ([`export`]).

pub mod export;
pub mod net;
pub mod zoo;

pub use net::{Flow, Layer, Net, Pool, Residual};
pub use zoo::Architecture;
