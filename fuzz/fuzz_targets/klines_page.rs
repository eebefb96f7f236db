//! cargo-fuzz target: see `kline_etl::fuzz::klines_page`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kline_etl::fuzz::klines_page(data));
