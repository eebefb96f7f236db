//! The one integration-test binary (one link step for all integration tests).

mod bench_jobs;
mod config;
mod extract;
mod load;
mod run;
mod simulator;
mod summary;
