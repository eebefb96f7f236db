//! `kline-etl validate`: check pipeline files without touching the network or the output.

use crate::cli::ValidateArgs;
use crate::config;
use crate::exit::ExitCode;

use super::{load, print, report};

pub fn validate(args: &ValidateArgs) -> ExitCode {
    let mut failed = false;
    for path in &args.pipelines {
        match load(path) {
            Ok(p) => {
                let symbols = match &p.symbols {
                    config::SymbolSelection::List(l) => format!("{} symbol(s)", l.len()),
                    config::SymbolSelection::Selector(_) => "a symbol selector".to_owned(),
                };
                let intervals = if p.intervals.is_empty() {
                    String::new()
                } else {
                    format!(", {} interval(s)", p.intervals.len())
                };
                print(&format!(
                    "ok: `{}` ({}: {} {}, {symbols}{intervals})\n",
                    path.display(),
                    p.name,
                    p.source.market,
                    p.dataset.as_str(),
                ));
            }
            Err(e) => {
                report(&e);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::Usage
    } else {
        ExitCode::Ok
    }
}
