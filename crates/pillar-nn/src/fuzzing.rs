//! Entry points for the fuzz targets under `fuzz/`: what a file or a peer hands pillar-nn.
//! Each must return (an error, usually) and never panic, hang or allocate beyond its bounds.

use crate::exec::fixed::FixedConfig;
use crate::secure::Plan;
use crate::secure::remote::decode_hello;

/// An ONNX file: parsed, and when it parses, folded and compiled for the secure engine.
pub fn onnx(input: &[u8]) {
    let Ok(graph) = crate::onnx::from_bytes(input) else {
        return;
    };
    if let Ok(folded) = crate::fold_batchnorm(&graph) {
        let _ = Plan::compile(&folded, FixedConfig::default());
    }
}

/// A server's hello, as the client decodes and checks it.
pub fn hello(input: &[u8]) {
    let _ = decode_hello(input);
}
