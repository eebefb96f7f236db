//! `kline-etl simulate`: serve the built-in simulator on loopback until Ctrl-C.

use crate::cli::SimulateArgs;
use crate::exit::ExitCode;
#[cfg(feature = "simulator")]
use crate::market::Market;
#[cfg(feature = "simulator")]
use crate::simulator::SimConfig;

#[cfg(feature = "simulator")]
use super::{report, runtime};

/// Without the `simulator` feature there is nothing to serve.
#[cfg(not(feature = "simulator"))]
pub fn simulate(_: &SimulateArgs) -> ExitCode {
    crate::console::error(crate::simulator::NOT_BUILT);
    ExitCode::Usage
}

#[cfg(feature = "simulator")]
pub fn simulate(args: &SimulateArgs) -> ExitCode {
    let mut config = SimConfig::default()
        .with_seed(args.seed)
        .with_extra_spot_symbols(args.extra_symbols);
    config.faults.latency.fixed_ms = args.latency_ms;
    config.memo_pages = args.memo_pages;
    if let Some(m) = args
        .market
        .as_deref()
        .and_then(|m| m.parse::<Market>().ok())
    {
        config.symbols.retain(|k, _| *k == m);
    }
    if args.window_secs != 60 {
        config = config.with_window(crate::simulator::RateWindow::seconds(args.window_secs));
    }
    if let Some(limit) = args.weight_limit {
        for market in Market::ALL {
            config = config.with_weight_limit(market, limit);
        }
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(crate::simulator::serve_until_ctrl_c(config, args.port)) {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            report(&e);
            ExitCode::Usage
        }
    }
}
