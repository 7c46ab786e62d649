//! Fuzz target `hello`: see `pillar_nn::fuzzing::hello`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pillar_nn::fuzzing::hello(data));
