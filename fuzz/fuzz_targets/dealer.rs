//! Fuzz target `dealer`: see `pillar_mpc::fuzzing::announcement`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pillar_mpc::fuzzing::announcement(data));
