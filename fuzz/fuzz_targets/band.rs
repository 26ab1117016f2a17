#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| banded_fuzz::band(data));
