#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| split_core::fuzzing::h1_response(data));
