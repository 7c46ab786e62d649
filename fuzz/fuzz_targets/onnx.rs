//! Fuzz target `onnx`: see `pillar_infer::fuzzing::onnx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pillar_infer::fuzzing::onnx(data));
