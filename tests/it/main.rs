//! The one integration-test binary (one link step for all integration tests).

mod analyst;
mod archive;
mod bench_jobs;
mod config;
mod delta;
mod extract;
mod funding_rate;
mod fuzz_regressions;
mod harness;
mod hostile;
mod layout;
mod load;
mod never_wrong;
mod nightly;
mod run;
mod simulator;
mod snapshots_ds;
mod soak;
// S3 output on moto: needs the `aws` feature (`scripts/test.sh` enables `cloud`).
#[cfg(feature = "aws")]
mod store;
mod summary;
