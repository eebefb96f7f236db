//! Unit tests for parsing and validating pipeline text.

use super::*;
use crate::interval::Interval;
use crate::market::Market;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Pipeline, ConfigError> {
    parse_str("p.yaml", text, &no_env)
}

fn diags(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
        other => panic!("expected invalid, got {other:?}"),
    }
}

const MINIMAL: &str =
    "name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: 2020-07-05 }\n";

#[test]
fn minimal_pipeline_gets_defaults() {
    let p = parse(MINIMAL).unwrap();
    assert_eq!(p.name, "t");
    assert_eq!(p.source.market, Market::Spot);
    assert_eq!(
        p.source.endpoint,
        Endpoint::Url("https://api.binance.com".into())
    );
    assert!(p.source.api_key.is_none());
    assert!((p.source.weight_share - 0.9).abs() < f64::EPSILON);
    assert_eq!(p.source.timeout_secs, 30);
    assert_eq!(p.source.max_retries, 8);
    assert_eq!(p.source.max_ban_wait_secs, 300);
    assert_eq!(p.dataset, Dataset::Klines);
    assert_eq!(p.intervals, vec![Interval::D1]);
    assert_eq!(p.range.start, TimeSpec::At(1_593_907_200_000));
    assert_eq!(p.range.end, TimeSpec::Now);
    assert_eq!(p.output.path, std::path::PathBuf::from("data/binance"));
    assert_eq!(p.output.compression, Compression::Zstd(1));
    assert_eq!(p.output.partition, PartitionSpec::Auto);
    assert_eq!(p.output.row_group_rows, 131_072);
    assert_eq!(p.transform.prices, PriceType::Float64);
}

#[test]
fn full_pipeline_parses() {
    let text = r"
name: full.test-1
source:
  market: usdm
  base_url: http://127.0.0.1:9000/
  api_key: ${KEY}
  weight_share: 0.5
  max_ban_wait_secs: 60
  timeout_secs: 10
  max_retries: 0
dataset: klines
symbols: [BTCUSDT, ETHUSDT]
intervals: [1m, 1M]
range:
  start: 1593907200000
  end: 2021-01-01T00:00:00+01:00
transform:
  prices: decimal
  time_unit: us
  include_forming: true
  on_violation: fail
output:
  path: ${OUT:-out}/binance
  partition: month
  compression: zstd:19
  row_group_rows: 1024
";
    let env = |k: &str| (k == "KEY").then(|| "sekrit".to_owned());
    let p = parse_str("p.yaml", text, &env).unwrap();
    assert_eq!(p.source.market, Market::UsdM);
    assert_eq!(
        p.source.endpoint,
        Endpoint::Url("http://127.0.0.1:9000".into())
    );
    assert_eq!(
        p.source.api_key.as_ref().map(Secret::expose),
        Some("sekrit")
    );
    assert_eq!(p.intervals, vec![Interval::M1, Interval::Mo1]);
    assert_eq!(p.range.end, TimeSpec::At(1_609_455_600_000));
    assert_eq!(p.output.path, std::path::PathBuf::from("out/binance"));
    assert_eq!(p.output.compression, Compression::Zstd(19));
    assert_eq!(p.transform.on_violation, OnViolation::Fail);
    assert!(!format!("{p:?}").contains("sekrit"));
}

#[test]
fn simulator_and_selector() {
    let text = "name: s\nsource: { simulator: { seed: 7 } }\nsymbols: { quote: [USDT], regex: '^B', max: 3 }\nintervals: [1h]\nrange: { start: 30 days ago }\n";
    let p = parse(text).unwrap();
    assert_eq!(
        p.source.endpoint,
        Endpoint::Simulator(SimulatorSettings {
            seed: 7,
            latency_ms: 0,
            weight_limit: None
        })
    );
    assert_eq!(
        p.symbols,
        SymbolSelection::Selector(SymbolSelector {
            quote: vec!["USDT".into()],
            include_inactive: false,
            regex: Some("^B".into()),
            max: Some(3)
        })
    );
    assert_eq!(p.range.start, TimeSpec::Ago(30 * crate::interval::DAY_MS));
}

#[test]
fn all_semantic_errors_are_reported_together() {
    let text = "name: bad name\nsource:\n  market: spot\n  weight_share: 0\nsymbols: [btcusdt, BTC/USDT, ETHUSDT, ETHUSDT]\nintervals: [1min, 1H, 1d]\nrange:\n  start: 2024-01-01T00:00:00\n";
    let d = diags(text);
    let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "name",
            "source.weight_share",
            "symbols[0]",
            "symbols[1]",
            "symbols[3]",
            "intervals[0]",
            "intervals[1]",
            "range.start"
        ]
    );
    assert_eq!((d[5].line, d[5].column), (6, 13));
    assert!(
        d[5].message.contains("did you mean `1m`"),
        "{}",
        d[5].message
    );
}

#[test]
fn one_second_klines_are_spot_only() {
    let d = diags(
        "name: t\nsource: { market: coinm }\nsymbols: [BTCUSD_PERP]\nintervals: [1s]\nrange: { start: 2024-01-01 }\n",
    );
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("`coinm`"), "{}", d[0].message);
}

#[test]
fn start_must_precede_end() {
    let d = diags(
        "name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: 2024-01-02, end: 2024-01-01 }\n",
    );
    assert_eq!(d[0].path, "range.start");
    let d = diags(
        "name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: 2024-01-01, end: 2024-01-01 }\n",
    );
    assert_eq!(d.len(), 1);
    // Relative words against absolute times (or each other) are decided against the clock
    // at validation time: a schedule cannot succeed doing nothing forever.
    let d = diags("name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: 2999-01-01 }\n");
    assert_eq!(d[0].path, "range.start");
    assert!(
        d[0].message
            .contains("(resolved now: [`2999-01-01T00:00:00Z`, `"),
        "{}",
        d[0].message
    );
    let d = diags(
        "name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: now, end: yesterday }\n",
    );
    assert_eq!(d.len(), 1);
    assert!(
        d[0].message
            .starts_with("range start `now` is not before its end `yesterday`"),
        "{}",
        d[0].message
    );
    for ok in [
        "{ start: yesterday, end: today }",
        "{ start: 3 days ago, end: today }",
        "{ start: 2020-01-01, end: 1 day ago }",
    ] {
        let text = format!("name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: {ok}\n");
        assert!(parse(&text).is_ok(), "{ok}");
    }
}

#[test]
fn unknown_keys_name_the_path() {
    let d = diags("name: t\nsource:\n  markte: spot\nsymbols: [A]\n");
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].column), (3, 3));
    assert!(d[0].path.starts_with("source"), "{:?}", d[0]);
    assert!(d[0].message.contains("markte"), "{:?}", d[0]);
}

#[test]
fn unset_env_var_is_named() {
    let d = diags(&format!(
        "{MINIMAL}source:\n  api_key: ${{BINANCE_API_KEY}}\n"
    ));
    assert_eq!(d[0].path, "source.api_key");
    assert!(d[0].message.contains("`BINANCE_API_KEY`"));
    let p = parse(&format!(
        "{MINIMAL}source: {{ api_key: '${{BINANCE_API_KEY:-}}' }}\n"
    ))
    .unwrap();
    assert!(p.source.api_key.is_none());
}

#[test]
fn base_url_and_simulator_conflict() {
    let d = diags(&format!(
        "{MINIMAL}source: {{ base_url: 'http://x', simulator: {{}} }}\n"
    ));
    assert_eq!(d[0].path, "source.base_url");
    let d = diags(&format!("{MINIMAL}source: {{ base_url: 'ftp://x' }}\n"));
    assert!(d[0].message.contains("`ftp://x`"));
}

#[test]
fn compression_spellings() {
    for (s, ok) in [
        ("zstd", true),
        ("zstd:1", true),
        ("zstd:22", true),
        ("zstd:0", false),
        ("zstd:23", false),
        ("gzip", false),
        ("snappy", true),
        ("none", true),
    ] {
        let r = parse(&format!("{MINIMAL}output: {{ compression: '{s}' }}\n"));
        assert_eq!(r.is_ok(), ok, "{s}");
    }
}

#[test]
fn non_klines_datasets_take_no_intervals() {
    let p = parse("name: t\ndataset: ticker_price\nsymbols: [BTCUSDT]\n").unwrap();
    assert!(p.intervals.is_empty());
    assert_eq!(resolve_range(&p, 5), Ok((5, 5)));
    let d = diags("name: t\ndataset: depth\nsymbols: [BTCUSDT]\nintervals: [1d]\n");
    assert_eq!(d[0].path, "intervals");
}

#[test]
fn override_range_checks_order() {
    let mut p = parse(MINIMAL).unwrap();
    override_range(&mut p, Some("2024-01-01"), Some("2024-02-01")).unwrap();
    assert_eq!(p.range.start, TimeSpec::At(1_704_067_200_000));
    assert!(override_range(&mut p, Some("2024-03-01"), None).is_err());
    assert!(override_range(&mut p, Some("garbage"), None).is_err());
}

#[test]
fn errors_render_with_positions() {
    let e =
        parse("name: t\nsymbols: [BTCUSDT]\nintervals: [1d, 1min]\nrange: { start: 2020-07-05 }\n")
            .unwrap_err()
            .to_string();
    assert!(
        e.starts_with("invalid pipeline `p.yaml`\n  --> p.yaml:3:17 at `intervals[1]`: unknown interval `1min` (did you mean `1m`?)"),
        "{e}"
    );
}

#[test]
fn one_month_interval_on_a_short_range_is_fine() {
    // `1M` is a month, not a minute: valid even when the range is shorter than a month.
    let p = parse(
        "name: t\nsymbols: [BTCUSDT]\nintervals: [1M, 1m]\nrange: { start: 2024-01-01, end: 2024-01-02 }\n",
    )
    .unwrap();
    assert_eq!(p.intervals, vec![Interval::Mo1, Interval::M1]);
}

#[test]
fn the_api_key_never_appears_in_errors() {
    let text = format!("{MINIMAL}source:\n  api_key: hunter2${{oops\n  weight_share: 2\n");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("source.api_key"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let env = |_: &str| Some("hunter2".to_owned());
    let text = format!("{MINIMAL}source:\n  api_key: ${{KEY}}\n  weight_share: 2\n");
    let e = parse_str("p.yaml", &text, &env).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("hunter2"));
    let e = parse(&format!("{MINIMAL}source:\n  api_key: [hunter2]\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("source.api_key"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn empty_ranges_are_caught_once_now_is_known() {
    // Valid when validated on 2023-12-01, empty once the clock passes 2024-01-04.
    let p = parse_str_at(
        "p.yaml",
        "name: t\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange: { start: 3 days ago, end: 2024-01-01 }\n",
        &no_env,
        1_701_388_800_000,
    )
    .unwrap();
    let now = 1_704_067_200_000 + 10 * crate::interval::DAY_MS;
    let e = resolve_range(&p, now).unwrap_err();
    assert!(e.to_string().contains("`2024-01-01T00:00:00Z`"), "{e}");
    let p = parse(MINIMAL).unwrap();
    assert_eq!(resolve_range(&p, now), Ok((1_593_907_200_000, now)));
}

#[test]
fn parser_messages_are_reworded() {
    assert_eq!(
        friendly(
            "unknown field `intervls`, expected one of `name`, `intervals`",
            None
        ),
        "unknown key `intervls` (did you mean `intervals`?); expected one of `name`, `intervals`"
    );
    assert_eq!(
        friendly(
            "unknown field `zzz`, expected one of `name`, `intervals`",
            None
        ),
        "unknown key `zzz`; expected one of `name`, `intervals`"
    );
    assert_eq!(
        friendly("invalid u64", Some("-1")),
        "expected a whole number; found `-1`"
    );
    assert_eq!(
        friendly("budget breached: Aliases { aliases: 101 }", None),
        "the file exceeds a YAML safety limit (`aliases: 101`); pipeline files may use at most 100 anchors, 100 aliases, 100000 YAML events and nesting depth 64"
    );
    assert_eq!(token_at("a: 1\nb: [x, y]\n", 2, 5), Some("x"));
    assert_eq!(token_at("a: 1\n", 9, 1), None);
    assert_eq!(edit_distance("nmae", "name"), 2);
    assert_eq!(edit_distance("", "abc"), 3);
}

#[test]
fn wrong_yaml_types_say_what_was_found() {
    let d = diags(&format!("{MINIMAL}source:\n  timeout_secs: 2.5\n"));
    assert_eq!(d[0].path, "source.timeout_secs");
    assert!(d[0].message.contains("found `2.5`"), "{}", d[0].message);
    let d = diags("name: t\nsymbols: BTCUSDT\n");
    assert_eq!(d[0].path, "symbols");
}

#[test]
fn anchors_and_aliases_are_bounded() {
    let mut text = String::from(
        "name: t\nintervals: [1d]\nrange: { start: 2024-01-01 }\nsymbols:\n  - &s BTCUSDT\n",
    );
    for _ in 0..200 {
        text.push_str("  - *s\n");
    }
    let d = diags(&text);
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("safety limit"), "{}", d[0].message);
    // A few aliases are fine (they are ordinary YAML).
    let ok = "name: t\nintervals: &i [1d]\nrange: { start: 2024-01-01 }\nsymbols: [&s BTCUSDT]\n";
    assert!(parse(ok).is_ok());
}

#[test]
fn a_tab_names_its_key_path_and_says_to_use_spaces() {
    let d = diags(
        "name: t\nsource:\n\tmarket: spot\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange:\n  start: 2024-01-01\n",
    );
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].line, d[0].column, d[0].path.as_str()),
        (3, 1, "source.market")
    );
    assert!(
        d[0].message.contains("indents with spaces only"),
        "{}",
        d[0].message
    );
    let d = diags(
        "name: t\nsource:\n  market: spot\nsymbols: [BTCUSDT]\nintervals: [1d]\nrange:\n  # the start\n\t start: 2024-01-01\n",
    );
    assert_eq!(
        (d[0].line, d[0].column, d[0].path.as_str()),
        (8, 1, "range.start")
    );
}
