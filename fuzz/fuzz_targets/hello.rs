//! Fuzz target `hello`: see `pillar_infer::fuzzing::hello`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pillar_infer::fuzzing::hello(data));
