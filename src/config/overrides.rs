//! `run --symbols A,B --intervals 1h,1d`: replace a loaded pipeline's symbols or intervals
//! from the command line, checked by the same rules (and with the same messages) as the
//! pipeline file's `symbols` and `intervals`.

use std::collections::HashSet;

use super::validate::{check_interval, check_symbol};
use super::{Dataset, Pipeline, SymbolSelection};

/// A bad `--symbols` or `--intervals`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{flag}`: {message}")]
pub struct SeriesOverrideError {
    /// `--symbols` or `--intervals`.
    pub flag: &'static str,
    /// What is wrong (the pipeline validator's wording).
    pub message: String,
}

/// The comma-separated entries of a list flag, trimmed; empty entries are dropped.
pub fn split_list(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// Apply `--symbols` and `--intervals` (comma-separated) to a loaded pipeline.
pub fn override_series(
    pipeline: &mut Pipeline,
    symbols: Option<&str>,
    intervals: Option<&str>,
) -> Result<(), SeriesOverrideError> {
    let err = |flag, message: String| SeriesOverrideError { flag, message };
    if let Some(list) = symbols {
        let entries = split_list(list);
        if entries.is_empty() {
            return Err(err(
                "--symbols",
                "the list is empty; expected symbols such as `BTCUSDT,ETHUSDT`".into(),
            ));
        }
        let mut seen = HashSet::new();
        let parsed = entries
            .iter()
            .map(|s| check_symbol(s, &mut seen).map_err(|m| err("--symbols", m)))
            .collect::<Result<Vec<_>, _>>()?;
        pipeline.symbols = SymbolSelection::List(parsed);
    }
    if let Some(list) = intervals {
        if pipeline.dataset != Dataset::Klines {
            return Err(err(
                "--intervals",
                format!(
                    "intervals apply to klines pipelines only, and `{}` is a `{}` pipeline",
                    pipeline.name,
                    pipeline.dataset.as_str()
                ),
            ));
        }
        let entries = split_list(list);
        if entries.is_empty() {
            return Err(err(
                "--intervals",
                "the list is empty; expected intervals such as `1h,1d`".into(),
            ));
        }
        let mut out = Vec::new();
        for e in entries {
            let iv = check_interval(e, &out, pipeline.source.market)
                .map_err(|m| err("--intervals", m))?;
            out.push(iv);
        }
        pipeline.intervals = out;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interval::Interval;

    fn pipeline(dataset: &str) -> Pipeline {
        let range = if dataset == "klines" {
            "intervals: [1d]\nrange: { start: 2024-01-01 }\n"
        } else {
            ""
        };
        let text = format!("name: t\ndataset: {dataset}\nsymbols: [BTCUSDT]\n{range}");
        super::super::parse_str("t.yaml", &text, &|_| None).unwrap()
    }

    #[test]
    fn replaces_symbols_and_intervals() {
        let mut p = pipeline("klines");
        override_series(&mut p, Some("ETHUSDT, BNBUSDT"), Some("1h,1d")).unwrap();
        assert_eq!(
            p.symbols,
            SymbolSelection::List(vec!["ETHUSDT".parse().unwrap(), "BNBUSDT".parse().unwrap()])
        );
        assert_eq!(p.intervals, vec![Interval::H1, Interval::D1]);
        // Nothing given: nothing changes.
        let before = p.clone();
        override_series(&mut p, None, None).unwrap();
        assert_eq!(p, before);
    }

    #[test]
    fn reports_what_the_validator_reports() {
        let mut p = pipeline("klines");
        let e = override_series(&mut p, None, Some("1h,1min")).unwrap_err();
        assert_eq!(e.flag, "--intervals");
        assert!(e.to_string().contains("did you mean `1m`?"), "{e}");
        let e = override_series(&mut p, Some("btcusdt"), None).unwrap_err();
        assert!(e.to_string().contains("BTCUSDT"), "{e}");
        let e = override_series(&mut p, Some("BTCUSDT,BTCUSDT"), None).unwrap_err();
        assert!(e.to_string().contains("duplicate symbol"), "{e}");
        let e = override_series(&mut p, Some(" , "), None).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = override_series(&mut p, None, Some("1d,1d")).unwrap_err();
        assert!(e.to_string().contains("duplicate interval"), "{e}");
        let mut t = pipeline("ticker_price");
        let e = override_series(&mut t, None, Some("1d")).unwrap_err();
        assert!(e.to_string().contains("klines pipelines only"), "{e}");
        override_series(&mut t, Some("ETHUSDT"), None).unwrap();
    }
}
