//! cargo-fuzz target: `dclua::fuzzing::file_list` (see that module for what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dclua::fuzzing::file_list(data));
