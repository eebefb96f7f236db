//! `kline-etl summary`: recompute the statistics of a dataset from its Parquet files alone.

use std::fmt::Write as _;

use crate::cli::SummaryArgs;
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
    if series.is_empty() {
        crate::console::notice(&format!("note: no kline data under `{}`", root.display()));
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
    if args.describe {
        for s in &series {
            let _ = write!(out, "\n{} {} {}\n", s.market, s.symbol, s.interval);
            out.push_str(&crate::summary::report::render_describe(s));
        }
    }
    print(&out);
    ExitCode::Ok
}
