//! Summary statistics on real Binance data (the intabyu BTCUSDT 1h fixture, five months with
//! the 2023-03-24 halt), compared with values computed independently from the CSV text here.

use kline_etl::config::{PriceType, TimeUnit};
use kline_etl::interval::Interval;
use kline_etl::summary::dataset::summarize;
use kline_etl::summary::series::GapCause;

use super::load::{intabyu_lines, load_pages, opts, task};

fn column(lines: &[Vec<String>], i: usize) -> Vec<f64> {
    lines.iter().map(|l| l[i].parse::<f64>().unwrap()).collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn real_fixture_statistics_match_independent_values_and_show_the_outage_gap() {
    for prices in [PriceType::Float64, PriceType::Decimal] {
        let dir = tempfile::tempdir().unwrap();
        let lines = intabyu_lines();
        let o = opts(prices, TimeUnit::Millisecond);
        load_pages(dir.path(), &o, &task("BTCUSDT", Interval::H1), &lines, 1000);
        let series = summarize(dir.path()).unwrap();
        assert_eq!(series.len(), 1);
        let s = &series[0];
        assert_eq!(s.range.rows, 3623);
        assert_eq!(s.range.expected_rows, 3624);
        assert_eq!(s.range.missing, 1);
        assert_eq!(s.range.gaps.len(), 1, "{:?}", s.range.gaps);
        assert_eq!(s.range.gaps[0].start, "2023-03-24T13:00:00.000Z");
        assert_eq!(s.range.gaps[0].end, "2023-03-24T14:00:00.000Z");
        assert_eq!(s.range.gaps[0].cause, GapCause::ExchangeNone);
        assert_eq!(
            s.range.first_open_time.as_deref(),
            Some("2023-01-01T00:00:00.000Z")
        );
        assert_eq!(
            s.range.last_open_time.as_deref(),
            Some("2023-05-31T23:00:00.000Z")
        );

        let (open, high, low, close) = (
            column(&lines, 1),
            column(&lines, 2),
            column(&lines, 3),
            column(&lines, 4),
        );
        let volume = column(&lines, 5);
        let quote = column(&lines, 7);
        let trades = column(&lines, 8);
        assert_eq!(s.range.open, Some(open[0]));
        assert_eq!(s.range.close, close.last().copied());
        assert_eq!(
            s.range.high,
            Some(high.iter().copied().fold(f64::MIN, f64::max))
        );
        assert_eq!(
            s.range.low,
            Some(low.iter().copied().fold(f64::MAX, f64::min))
        );
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        assert!(rel(s.range.volume, volume.iter().sum()) < 1e-9);
        assert!(rel(s.range.quote_volume, quote.iter().sum()) < 1e-9);
        assert!(rel(s.range.trades, trades.iter().sum()) < 1e-12);
        let vwap = quote.iter().sum::<f64>() / volume.iter().sum::<f64>();
        assert!(rel(s.range.vwap.unwrap(), vwap) < 1e-9);

        let (m, sd) = mean_std(&close);
        let d = &s.describe["close"];
        assert_eq!(d.count, 3623);
        assert!(rel(d.mean.unwrap(), m) < 1e-9);
        assert!(rel(d.std.unwrap(), sd) < 1e-9);
        let mut sorted = close.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[(sorted.len() - 1) / 2];
        assert!(
            rel(d.p50.unwrap(), median) <= 0.005,
            "{:?} vs {median}",
            d.p50
        );

        let returns: Vec<f64> = close.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
        let (rm, rsd) = mean_std(&returns);
        assert!(rel(s.log_return_mean.unwrap(), rm) < 1e-6);
        assert!(rel(s.log_return_std.unwrap(), rsd) < 1e-9);
        let annual = rsd * (365.0f64 * 24.0).sqrt();
        assert!(rel(s.annualised_volatility.unwrap(), annual) < 1e-9);
        assert_eq!(s.partitions.len(), 1);
        assert_eq!(s.partitions[0].range.rows, 3623);
    }
}
