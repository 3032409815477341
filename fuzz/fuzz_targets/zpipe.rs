//! cargo-fuzz target: `dclua::fuzzing::zpipe` (see that module for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dclua::fuzzing::zpipe(data));
