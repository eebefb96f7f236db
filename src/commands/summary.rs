//! `kline-etl summary`: recompute the statistics of a dataset from its Parquet files alone.

use std::fmt::Write as _;

use crate::cli::SummaryArgs;
use crate::dataset::funding_rate;
use crate::exit::ExitCode;

use super::{output_root, print, print_json, report};

pub fn summary(args: &SummaryArgs) -> ExitCode {
    let root = match output_root(&args.path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let mut series = match crate::summary::dataset::summarize(&root) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    crate::summary::dataset::attribute_pending(&mut series, &crate::load::resume::read_all(&root));
    let funding = match funding_rate::summarize(&root) {
        Ok(f) => f,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    if series.is_empty() && funding.is_empty() {
        crate::console::notice(&format!("note: no kline data under `{}`", root.display()));
    }
    if series.is_empty() && !funding.is_empty() {
        // A root holding funding rates only: their statistics (`--json`: the report shape).
        if args.json {
            return print_json(&funding_rate::summary_doc(funding));
        }
        print(&funding_rate::stats::render_table(&funding));
        return ExitCode::Ok;
    }
    if args.json {
        let doc = crate::summary::report::Report::<()> {
            report_version: crate::summary::report::REPORT_VERSION,
            tool: crate::summary::report::ToolInfo::default(),
            pipeline: None,
            run: None,
            series,
        };
        return print_json(&doc);
    }
    let mut out = crate::summary::report::render_table(&series);
    if !funding.is_empty() {
        out.push_str("\nfunding_rate\n");
        out.push_str(&funding_rate::stats::render_table(&funding));
    }
    if args.describe {
        for s in &series {
            let _ = write!(out, "\n{} {} {}\n", s.market, s.symbol, s.interval);
            out.push_str(&crate::summary::report::render_describe(s));
        }
    }
    print(&out);
    ExitCode::Ok
}
