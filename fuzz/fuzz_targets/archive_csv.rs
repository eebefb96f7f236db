//! cargo-fuzz target: see `kline_etl::fuzz::archive_csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kline_etl::fuzz::archive_csv(data));
