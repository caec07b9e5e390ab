#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| medledger_types::fuzz::block_decode(data));
