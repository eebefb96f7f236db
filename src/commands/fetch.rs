//! `kline-etl fetch`: the pipeline you would otherwise write, built from flags and run at once
//! (incremental and locked like `run`, into the same dataset layout), then where the data is
//! and a pandas and a polars line to read it.
//!
//! ```text
//! kline-etl fetch BTCUSDT 1d --start 2020-07-05          # get_historical_klines(...)
//! kline-etl fetch --ticker                                # get_all_tickers()
//! kline-etl fetch --depth BTCUSDT                         # get_order_book(symbol=...)
//! ```
//!
//! The flags become a pipeline document ([`pipeline_yaml`], every value quoted, so nothing a
//! flag holds can change the document's shape) that goes through the pipeline validator: every
//! error is the one a pipeline file would get, reported against the flag that carried it
//! ([`flag_of`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::FetchArgs;
use crate::config::overrides::split_list;
use crate::config::{ConfigError, Dataset, Diagnostic, Pipeline, SymbolSelection};

impl FetchArgs {
    fn dataset(&self) -> Dataset {
        if self.ticker {
            Dataset::TickerPrice
        } else if self.depth {
            Dataset::Depth
        } else {
            Dataset::Klines
        }
    }
}

/// A fetch ready to run: the validated pipeline and the document it came from.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Its text, as a pipeline file would hold it.
    pub yaml: String,
}

/// Why the flags make no pipeline (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A required argument is missing, or one that does not apply is given.
    #[error("{0}")]
    Usage(String),
    /// The pipeline validator rejected a value.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diags: &[Diagnostic]) -> String {
    let mut s = "invalid `kline-etl fetch` arguments".to_owned();
    for d in diags {
        let _ = write!(s, "\n  --> {}", flag_of(&d.path));
        if !d.path.is_empty() {
            let _ = write!(s, " (`{}`)", d.path);
        }
        let _ = write!(s, ": {}", d.message);
    }
    s
}

/// The flag that carried the value at a pipeline field path.
pub fn flag_of(path: &str) -> &'static str {
    const FLAGS: &[(&str, &str)] = &[
        ("symbols", "SYMBOLS"),
        ("intervals", "INTERVALS"),
        ("range.start", "--start"),
        ("range.end", "--end"),
        ("range", "--start/--end"),
        ("source.market", "--market"),
        ("source.base_url", "--base-url"),
        ("source", "--market/--base-url"),
        ("transform.prices", "--prices"),
        ("output.format", "--format"),
        ("output", "--output"),
        ("depth_limit", "--depth-limit"),
    ];
    FLAGS
        .iter()
        .find(|(p, _)| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
        .map_or("the arguments", |(_, f)| f)
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn quoted_list(entries: &[&str]) -> String {
    let items: Vec<String> = entries.iter().map(|e| quoted(e)).collect();
    format!("[{}]", items.join(", "))
}

/// The pipeline document the flags describe (not yet validated).
pub fn pipeline_yaml(args: &FetchArgs) -> Result<String, FetchError> {
    let dataset = args.dataset();
    let usage = |m: &str| Err(FetchError::Usage(m.to_owned()));
    let symbols = args.symbols.as_deref().map(split_list);
    if dataset == Dataset::Klines {
        if symbols.is_none() {
            return usage(
                "`kline-etl fetch` needs SYMBOLS and INTERVALS, such as `kline-etl fetch BTCUSDT 1d --start 2020-07-05` (or `--ticker`, `--depth SYMBOLS`)",
            );
        }
        if args.intervals.is_none() {
            return usage(
                "missing INTERVALS after SYMBOLS, such as `1d` or `1h,1d` (comma-separated)",
            );
        }
        if args.start.is_none() {
            return usage(
                "missing `--start TIME`: the first candle to fetch, such as `--start 2020-07-05` or `--start '30 days ago'`",
            );
        }
    } else {
        if args.intervals.is_some() {
            return usage(
                "INTERVALS apply to klines only; `--ticker` and `--depth` take one snapshot of SYMBOLS",
            );
        }
        if dataset == Dataset::Depth && symbols.is_none() {
            return usage("`--depth` needs SYMBOLS, such as `kline-etl fetch --depth BTCUSDT`");
        }
    }
    let mut y = String::from("# written by `kline-etl fetch`\nname: fetch\nsource:\n");
    let _ = writeln!(y, "  market: {}", quoted(&args.market));
    if args.simulator {
        y.push_str("  simulator: {}\n");
    } else if let Some(u) = &args.base_url {
        let _ = writeln!(y, "  base_url: {}", quoted(u));
    }
    let _ = writeln!(y, "dataset: {}", dataset.as_str());
    match &symbols {
        Some(list) => {
            let _ = writeln!(y, "symbols: {}", quoted_list(list));
        }
        None => y.push_str("symbols: {}                  # every trading symbol\n"),
    }
    if let Some(iv) = &args.intervals {
        let _ = writeln!(y, "intervals: {}", quoted_list(&split_list(iv)));
    }
    if let Some(n) = args.depth_limit {
        let _ = writeln!(y, "depth_limit: {n}");
    }
    if let Some(start) = &args.start {
        let _ = writeln!(y, "range:\n  start: {}", quoted(start));
        let _ = writeln!(y, "  end: {}", quoted(args.end.as_deref().unwrap_or("now")));
    }
    let _ = writeln!(y, "transform:\n  prices: {}", quoted(&args.prices));
    let _ = writeln!(y, "output:\n  path: {}", quoted(&args.output));
    let _ = writeln!(y, "  format: {}", quoted(&args.format));
    Ok(y)
}

/// The flags as a validated pipeline (`env` resolves `${VAR}` as in a pipeline file).
pub fn prepare(
    args: &FetchArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Fetch, FetchError> {
    let yaml = pipeline_yaml(args)?;
    match crate::config::parse_str("kline-etl fetch", &yaml, env) {
        Ok(pipeline) => Ok(Fetch { pipeline, yaml }),
        Err(ConfigError::Invalid { diagnostics, .. }) => Err(FetchError::Invalid(diagnostics)),
        Err(e) => Err(FetchError::Usage(e.to_string())),
    }
}

/// A Python string literal.
fn py(s: &str) -> String {
    quoted(s)
}

fn slash(p: &Path) -> String {
    p.display().to_string()
}

/// Where a finished fetch put its data, with a pandas and a polars line that read it (stdout).
pub fn where_note(p: &Pipeline) -> String {
    let mut out = String::new();
    let names: Vec<String> = match &p.symbols {
        SymbolSelection::List(l) => l.iter().map(ToString::to_string).collect(),
        SymbolSelection::Selector(_) => Vec::new(),
    };
    match p.dataset {
        _ if p.output.format == crate::config::OutputFormat::Delta => {
            // A Delta table per dataset: read at its latest version.
            let dir = match p.dataset {
                Dataset::Klines => crate::layout::klines_dir(&crate::layout::kline_root(p)),
                other => crate::layout::dataset_dir(&p.output.path, other),
            };
            let _ = writeln!(out, "data: {} (a Delta Lake table)", slash(&dir));
            let _ = writeln!(
                out,
                "  deltalake: DeltaTable({}).to_pandas()",
                py(&slash(&dir))
            );
            let _ = writeln!(out, "  polars: pl.read_delta({})", py(&slash(&dir)));
        }
        Dataset::Klines => {
            // Layout 2: the klines directory is one table; symbol and interval are filters.
            let dir = crate::layout::klines_dir(&crate::layout::kline_root(p));
            let _ = writeln!(out, "data: {}", slash(&dir));
            let ivs: Vec<String> = p.intervals.iter().map(|i| py(i.as_str())).collect();
            let syms: Vec<String> = names.iter().map(|n| py(n)).collect();
            let mut filters = vec![format!("(\"interval\", \"in\", [{}])", ivs.join(", "))];
            let mut exprs = vec![format!("pl.col(\"interval\").is_in([{}])", ivs.join(", "))];
            if !syms.is_empty() {
                filters.push(format!("(\"symbol\", \"in\", [{}])", syms.join(", ")));
                exprs.push(format!("pl.col(\"symbol\").is_in([{}])", syms.join(", ")));
            }
            let _ = writeln!(
                out,
                "  pandas: pd.read_parquet({}, filters=[{}])",
                py(&slash(&dir)),
                filters.join(", ")
            );
            let _ = writeln!(
                out,
                "  polars: pl.scan_parquet({}, hive_partitioning=True).filter({}).collect()",
                py(&slash(&dir.join("**").join("*.parquet"))),
                exprs.join(", ")
            );
        }
        Dataset::TickerPrice | Dataset::Depth => {
            let root = crate::layout::dataset_dir(&p.output.path, p.dataset);
            let glob = root.join("**").join("*.parquet");
            let _ = writeln!(out, "data: {}", slash(&root));
            let _ = writeln!(out, "  pandas: pd.read_parquet({})", py(&slash(&root)));
            let _ = writeln!(
                out,
                "  polars: pl.scan_parquet({}, hive_partitioning=True).collect()",
                py(&slash(&glob))
            );
        }
        Dataset::FundingRate => {
            let root = crate::dataset::funding_rate::store::dataset_dir(&p.output.path);
            let _ = writeln!(out, "data: {}", slash(&root));
            let _ = writeln!(out, "  pandas: pd.read_parquet({})", py(&slash(&root)));
        }
    }
    out
}

/// The name a fetch's run is reported under (no pipeline file exists).
pub fn source_name() -> PathBuf {
    PathBuf::from("kline-etl fetch")
}

/// `kline-etl fetch`: the flags' pipeline, run like `run`, then where its data is.
pub fn fetch(args: &FetchArgs, global: &crate::cli::GlobalArgs) -> crate::exit::ExitCode {
    use crate::exit::ExitCode;
    let f = match prepare(args, &super::process_env) {
        Ok(f) => f,
        Err(e) => {
            super::report(&e);
            return ExitCode::Usage;
        }
    };
    if args.print_pipeline {
        super::print(&f.yaml);
        return ExitCode::Ok;
    }
    let opts = crate::run::RunOptions {
        concurrency: args.concurrency.map(usize::from),
        pipeline_hash: Some(super::run::sha256_hex(f.yaml.as_bytes())),
        print_table: global.quiet == 0,
        lock_wait: std::time::Duration::from_secs(args.lock.lock_wait),
        ..crate::run::RunOptions::default()
    };
    let code = super::run::run_all(&[(&source_name(), f.pipeline.clone())], &opts, global);
    if matches!(
        code,
        ExitCode::Ok | ExitCode::TasksFailed | ExitCode::Resumable
    ) {
        super::print(&where_note(&f.pipeline));
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> FetchArgs {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            f: FetchArgs,
        }
        let mut v = vec!["fetch"];
        v.extend_from_slice(argv);
        T::try_parse_from(v).unwrap().f
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_notebook_call_becomes_a_klines_pipeline() {
        let f = prepare(&args(&["BTCUSDT", "1d", "--start", "2020-07-05"]), &no_env).unwrap();
        let p = &f.pipeline;
        assert_eq!(p.dataset, Dataset::Klines);
        assert_eq!(
            p.symbols,
            SymbolSelection::List(vec!["BTCUSDT".parse().unwrap()])
        );
        assert_eq!(p.intervals, vec![crate::interval::Interval::D1]);
        assert_eq!(p.output.path, PathBuf::from("data/binance"));
        // The document is a pipeline file: it validates on its own.
        crate::config::parse_str("x.yaml", &f.yaml, &no_env).unwrap();
        let note = where_note(p);
        assert!(
            note.contains(
                "pd.read_parquet(\"data/binance/klines\", filters=[(\"interval\", \"in\", [\"1d\"]), (\"symbol\", \"in\", [\"BTCUSDT\"])])"
            ),
            "{note}"
        );
        assert!(
            note.contains("pl.scan_parquet(\"data/binance/klines/**/*.parquet\", hive_partitioning=True).filter(pl.col(\"interval\").is_in([\"1d\"]), pl.col(\"symbol\").is_in([\"BTCUSDT\"])).collect()"),
            "{note}"
        );
    }

    #[test]
    fn errors_name_the_flag_with_the_validators_words() {
        let e = prepare(&args(&["BTCUSDT", "1d,1min", "--start", "x"]), &no_env).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                "--> INTERVALS (`intervals[1]`): unknown interval `1min` (did you mean `1m`?)"
            ),
            "{text}"
        );
        assert!(
            text.contains("--> --start (`range.start`): cannot read `x`"),
            "{text}"
        );
        let e = prepare(
            &args(&["BTCUSDT", "1d", "--start", "2024-01-01", "--market", "spt"]),
            &no_env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--> --market"), "{e}");
        let e = prepare(&args(&["BTCUSDT", "1d"]), &no_env).unwrap_err();
        assert!(e.to_string().contains("--start"), "{e}");
        let e = prepare(&args(&["--depth"]), &no_env).unwrap_err();
        assert!(e.to_string().contains("needs SYMBOLS"), "{e}");
        let e = prepare(&args(&["--ticker", "BTCUSDT", "1d"]), &no_env).unwrap_err();
        assert!(
            e.to_string().contains("INTERVALS apply to klines only"),
            "{e}"
        );
    }

    #[test]
    fn values_cannot_change_the_documents_shape() {
        let f = prepare(
            &args(&[
                "BTCUSDT",
                "1d",
                "--start",
                "2024-01-01",
                "-o",
                "a\"\n  b: [x]",
            ]),
            &no_env,
        )
        .unwrap();
        assert_eq!(f.pipeline.output.path, PathBuf::from("a\"\n  b: [x]"));
        let e = prepare(
            &args(&["BTC\"USDT]", "1d", "--start", "2024-01-01"]),
            &no_env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("SYMBOLS (`symbols[0]`)"), "{e}");
    }

    #[test]
    fn snapshots() {
        let f = prepare(&args(&["--ticker"]), &no_env).unwrap();
        assert_eq!(f.pipeline.dataset, Dataset::TickerPrice);
        assert!(matches!(f.pipeline.symbols, SymbolSelection::Selector(_)));
        let f = prepare(
            &args(&["--depth", "BTCUSDT", "--depth-limit", "20", "--simulator"]),
            &no_env,
        )
        .unwrap();
        assert_eq!(f.pipeline.depth_limit, Some(20));
        let note = where_note(&f.pipeline);
        assert!(
            note.contains("pd.read_parquet(\"data/binance/depth\")"),
            "{note}"
        );
        let e = prepare(
            &args(&[
                "--depth",
                "BTCUSDT",
                "--depth-limit",
                "7",
                "--market",
                "usdm",
            ]),
            &no_env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--depth-limit"), "{e}");
    }

    #[test]
    fn the_format_flag_is_output_format() {
        let a = [
            "BTCUSDT",
            "1d",
            "--start",
            "2020-07-05",
            "--format",
            "delta",
        ];
        let f = prepare(&args(&a), &no_env).unwrap();
        assert_eq!(f.pipeline.output.format, crate::config::OutputFormat::Delta);
        assert!(where_note(&f.pipeline).contains("pl.read_delta(\"data/binance/klines\")"));
        let plain = prepare(&args(&a[..4]), &no_env).unwrap();
        assert_eq!(
            plain.pipeline.output.format,
            crate::config::OutputFormat::Parquet
        );
        let bad = ["BTCUSDT", "1d", "--start", "2020-07-05", "--format", "orc"];
        let e = prepare(&args(&bad), &no_env).unwrap_err().to_string();
        assert!(e.contains("--format") && e.contains("orc"), "{e}");
    }

    #[test]
    fn every_field_path_has_its_flag() {
        assert_eq!(flag_of("symbols[3]"), "SYMBOLS");
        assert_eq!(flag_of("range.start"), "--start");
        assert_eq!(flag_of("range"), "--start/--end");
        assert_eq!(flag_of("output.path"), "--output");
        assert_eq!(flag_of("output.format"), "--format");
        assert_eq!(flag_of("source.base_url"), "--base-url");
        assert_eq!(flag_of("sourcex"), "the arguments");
    }
}
