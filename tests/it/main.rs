//! The one integration-test binary (one link step for all integration tests).

mod config;
mod extract;
mod load;
mod run;
mod simulator;
mod snapshots_ds;
mod summary;
