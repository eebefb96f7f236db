//! cargo-fuzz target: see `kline_etl::fuzz::time`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kline_etl::fuzz::time(data));
