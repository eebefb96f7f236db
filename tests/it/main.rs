//! The one integration-test binary (one link step for all integration tests).

mod archive;
mod config;
mod extract;
mod load;
mod run;
mod simulator;
mod summary;
