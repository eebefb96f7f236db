//! `kline-etl chart`: the notebook's candlestick + volume + moving-average figure, as SVG or PNG.

use crate::cli::ChartArgs;
use crate::exit::ExitCode;
use crate::market::Market;

use super::{output_root, report};

pub fn chart(args: &ChartArgs) -> ExitCode {
    use crate::summary::chart::{ChartSpec, render_png, render_svg};
    let usage = |msg: String| {
        crate::console::error(&msg);
        ExitCode::Usage
    };
    let root = match output_root(&args.path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let market: Market = match args.market.parse() {
        Ok(m) => m,
        Err(e) => return usage(format!("{e}")),
    };
    let symbol: crate::symbol::Symbol = match args.symbol.parse() {
        Ok(s) => s,
        Err(e) => return usage(format!("{e}")),
    };
    let interval: crate::interval::Interval = match args.interval.parse() {
        Ok(i) => i,
        Err(e) => return usage(format!("{e}")),
    };
    let mut mav = Vec::new();
    for w in args.mav.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match w.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => mav.push(n),
            _ => {
                return usage(format!(
                    "`--mav` takes whole numbers from 1 to 1000, found `{w}`"
                ));
            }
        }
    }
    let ext = args
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let png = match ext.as_deref() {
        Some("png") => true,
        Some("svg") => false,
        _ => {
            return usage(format!(
                "`--output {}` must end in `.svg` or `.png`",
                args.output.display()
            ));
        }
    };
    let rows = match crate::summary::dataset::read_series(&root, market, &symbol, interval) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return usage(format!(
                "no {market} {symbol} {interval} data under `{}`; run a pipeline first or check the names",
                root.display()
            ));
        }
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    let candles = crate::summary::dataset::candles(&rows);
    let spec = ChartSpec {
        title: format!("{symbol} {interval} ({market})"),
        interval,
        width: args.width,
        height: args.height,
        mav,
        last: Some(args.last as usize),
    };
    let bytes = if png {
        render_png(&candles, &spec)
    } else {
        render_svg(&candles, &spec).map(String::into_bytes)
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return usage(format!("{e}")),
    };
    if let Err(e) = crate::load::atomic::write_atomic(&args.output, &bytes, |_| Ok(()), |_| false) {
        report(&e);
        return ExitCode::Output;
    }
    crate::console::notice(&format!(
        "wrote `{}` ({} candles)",
        args.output.display(),
        candles.len().min(args.last as usize)
    ));
    ExitCode::Ok
}
