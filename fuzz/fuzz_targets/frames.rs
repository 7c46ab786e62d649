//! Fuzz target `frames`: see `pillar_mpc::fuzzing::frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pillar_mpc::fuzzing::frames(data));
