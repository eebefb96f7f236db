//! Stand-in for the built-in simulator in a build without the cargo feature `simulator`
//! (`cargo build --no-default-features`): no web server is compiled in, and `source.simulator`
//! and `kline-etl simulate` fail with [`NOT_BUILT`] (exit 2) instead.

/// Why a simulator pipeline or `kline-etl simulate` cannot run in this build.
pub const NOT_BUILT: &str = "this kline-etl was built without the built-in simulator (cargo \
    feature `simulator`): point `source.base_url` at an exchange, or install a build with the \
    simulator (`cargo install kline-etl`, `pip install kline-etl`, or `cargo build` with \
    default features)";

/// A running simulator: none can exist in this build.
#[derive(Debug)]
pub enum SimHandle {}

impl SimHandle {
    /// Stop it (never called: there is no handle).
    #[expect(
        clippy::unused_async,
        reason = "the signature of the real `SimHandle::shutdown`"
    )]
    pub async fn shutdown(self) {
        match self {}
    }
}

/// The simulator's start-up error: none can happen in this build.
#[derive(Debug, thiserror::Error)]
pub enum SimError {}
