//! `kline-etl plan`: the tasks a run would fetch now (from the data on disk and the resume
//! file), their requests, weight and the least time at the budget.

use crate::cli::PlanArgs;
use crate::config;
use crate::exit::ExitCode;
use crate::plan;

use super::{load_with_range, now_ms, print, print_json, report, runtime};

pub fn plan(args: &PlanArgs) -> ExitCode {
    let Some(p) = load_with_range(&args.pipeline, &args.range) else {
        return ExitCode::Usage;
    };
    let now = match args.now.as_deref().map(config::parse_time) {
        None => now_ms(),
        Some(Ok(t)) => t.resolve(now_ms()),
        Some(Err(e)) => {
            report(&e);
            return ExitCode::Usage;
        }
    };
    if let Err(e) = config::resolve_range(&p, now) {
        report(&e);
        return ExitCode::Usage;
    }
    let mut p = p;
    let mut resolved = None;
    if let (true, config::SymbolSelection::Selector(sel)) = (args.resolve, &p.symbols) {
        let selector = plan::describe_selector(sel);
        let runtime = match runtime() {
            Ok(r) => r,
            Err(code) => return code,
        };
        match runtime.block_on(crate::dataset::resolve_symbols(&p)) {
            Ok(symbols) => {
                resolved = Some((selector, symbols.iter().map(ToString::to_string).collect()));
                p.symbols = config::SymbolSelection::List(symbols);
            }
            Err(e) => {
                report(&e);
                return e.exit_code();
            }
        }
    }
    let mut plan = match plan::build_on_disk(&p, now, false, None) {
        Ok(plan) => plan,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    if let Some((selector, symbols)) = resolved {
        plan.selector = Some(selector);
        plan.resolved_symbols = Some(symbols);
    }
    if let Some(n) = args.shards {
        let config::SymbolSelection::List(symbols) = &p.symbols else {
            crate::console::error(
                "`plan --shards` needs the pipeline's symbols: add `--resolve` to resolve its selector first",
            );
            return ExitCode::Usage;
        };
        if p.dataset != config::Dataset::Klines {
            crate::console::error(&format!(
                "`--shards` applies to kline pipelines; a `{}` pipeline is not sharded",
                p.dataset.as_str()
            ));
            return ExitCode::Usage;
        }
        plan.shards = Some(plan.shards(&p, symbols, n));
    }
    if args.json {
        print_json(&plan)
    } else {
        print(&plan.to_string());
        ExitCode::Ok
    }
}
