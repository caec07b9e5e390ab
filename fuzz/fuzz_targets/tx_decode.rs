#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| medledger_types::fuzz::tx_decode(data));
