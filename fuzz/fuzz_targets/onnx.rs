//! Fuzz target `onnx`: see `pillar_nn::fuzzing::onnx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pillar_nn::fuzzing::onnx(data));
