//! Fuzz target `handshake`: see `pillar_mpc::fuzzing::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pillar_mpc::fuzzing::handshake(data));
