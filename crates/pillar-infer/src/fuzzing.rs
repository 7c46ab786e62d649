//! Entry points for the fuzz targets under `fuzz/`: what a file or a peer hands the secure
//! stage. Each must return (an error, usually) and never panic, hang or allocate beyond its
//! bounds.

use crate::plan::{FixedConfig, Plan};
use crate::remote::decode_hello;

/// An ONNX file: parsed, and when it parses, folded and compiled for the secure engine.
pub fn onnx(input: &[u8]) {
    let Ok(graph) = pillar_nn::onnx::from_bytes(input) else {
        return;
    };
    if let Ok(folded) = graph.fold_batchnorm() {
        let _ = Plan::compile(&folded, FixedConfig::default());
    }
}

/// A server's hello, as the client decodes and checks it.
pub fn hello(input: &[u8]) {
    let _ = decode_hello(input);
}
