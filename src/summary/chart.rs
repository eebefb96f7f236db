//! The candlestick chart the tutorial notebook drew with
//! `mplfinance.plot(type='candle', volume=True, mav=(10, 20, 30))`: candles, a volume panel and
//! simple moving averages of the close, with a title, a dated axis and a legend, rendered to
//! SVG or PNG with `plotters` (PNG bytes encoded by the `png` crate).
//!
//! Candles are placed by position, not by time (mplfinance's default `show_nontrading=False`),
//! so an exchange outage does not leave an empty column; the axis labels carry the dates.
//! Moving averages are computed over all candles passed in and then the last `last` are shown,
//! so the first visible averages are already warmed up when enough history is given.
//!
//! Text is drawn with DejaVu Sans compiled into the binary (no system fonts needed).

use std::sync::Once;

use chrono::{TimeZone, Utc};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::interval::{DAY_MS, Interval};

/// One candle to draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    /// Open time, ms since the epoch (UTC).
    pub open_time: i64,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Base volume.
    pub volume: f64,
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    /// Title, e.g. `BTCUSDT 1d (spot)`.
    pub title: String,
    /// The candles' interval (for axis label format).
    pub interval: Interval,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Moving-average windows, e.g. `[10, 20, 30]`.
    pub mav: Vec<usize>,
    /// Show only the last N candles (all when `None`).
    pub last: Option<usize>,
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// There are no candles to draw.
    #[error("no candles to draw; check the symbol, interval and that the dataset has data")]
    Empty,
    /// The requested size is unusable.
    #[error("chart size {0}x{1} is out of range; width and height must be 200..=8000 pixels")]
    Size(u32, u32),
    /// The drawing backend failed.
    #[error("drawing failed: {0}")]
    Draw(String),
}

fn draw_err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError::Draw(e.to_string())
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // The font is compiled in, so this cannot fail at run time; if it ever did, plotters
        // would report a missing font when drawing text, which surfaces as a ChartError.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
        );
    });
}

/// Simple moving average of the close over `window` candles; `None` until the window fills.
pub fn moving_average(candles: &[Candle], window: usize) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(candles.len());
    let mut sum = 0.0;
    for (i, c) in candles.iter().enumerate() {
        sum += c.close;
        if i >= window {
            sum -= candles[i - window].close;
        }
        out.push((window > 0 && i + 1 >= window).then(|| sum / window as f64));
    }
    out
}

/// Render to an SVG document.
pub fn render_svg(candles: &[Candle], spec: &ChartSpec) -> Result<String, ChartError> {
    check(candles, spec)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (spec.width, spec.height)).into_drawing_area();
        draw(&root, candles, spec)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Render to a PNG image.
pub fn render_png(candles: &[Candle], spec: &ChartSpec) -> Result<Vec<u8>, ChartError> {
    check(candles, spec)?;
    let (w, h) = (spec.width, spec.height);
    let mut rgb = vec![0u8; (w as usize) * (h as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, candles, spec)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, w, h)
}

/// Encode 8-bit RGB pixels as a PNG file (the `png` crate: no image-processing stack).
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, ChartError> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(draw_err)?;
    writer.write_image_data(rgb).map_err(draw_err)?;
    writer.finish().map_err(draw_err)?;
    Ok(png)
}

fn check(candles: &[Candle], spec: &ChartSpec) -> Result<(), ChartError> {
    if !(200..=8000).contains(&spec.width) || !(200..=8000).contains(&spec.height) {
        return Err(ChartError::Size(spec.width, spec.height));
    }
    if candles.is_empty() || spec.last == Some(0) {
        return Err(ChartError::Empty);
    }
    Ok(())
}

const UP: RGBColor = RGBColor(38, 166, 154);
const DOWN: RGBColor = RGBColor(239, 83, 80);
const MA_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn label_format(interval: Interval, span_ms: i64) -> &'static str {
    match interval.fixed_ms() {
        Some(len) if len < DAY_MS && span_ms <= 2 * DAY_MS => "%m-%d %H:%M",
        Some(len) if len < DAY_MS => "%Y-%m-%d %H:%M",
        _ => "%Y-%m-%d",
    }
}

/// Half the width of a candle body, in candle slots.
const BODY_WIDTH: f64 = 0.35;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    all: &[Candle],
    spec: &ChartSpec,
) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    register_font();
    let shown = spec.last.unwrap_or(all.len()).min(all.len());
    let skip = all.len() - shown;
    let candles = &all[skip..];
    let averages: Vec<(usize, Vec<Option<f64>>)> = spec
        .mav
        .iter()
        .map(|w| (*w, moving_average(all, *w).split_off(skip)))
        .collect();

    root.fill(&WHITE).map_err(draw_err)?;
    let title_h = (spec.height / 14).clamp(24, 60);
    let (title_area, body) = root.split_vertically(title_h);
    title_area
        .titled(&spec.title, ("sans-serif", title_h * 3 / 5).into_font())
        .map_err(draw_err)?;
    let price_h = body.dim_in_pixel().1 * 3 / 4;
    let (price_area, volume_area) = body.split_vertically(price_h);

    let mut lo = candles.iter().map(|c| c.low).fold(f64::INFINITY, f64::min);
    let mut hi = candles
        .iter()
        .map(|c| c.high)
        .fold(f64::NEG_INFINITY, f64::max);
    for (_, ma) in &averages {
        for v in ma.iter().flatten() {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-6).max(1e-12);
    let n = candles.len();
    let x_range = -0.5f64..(n as f64 - 0.5);
    let first = candles[0].open_time;
    let span = candles[n - 1].open_time - first;
    let fmt = label_format(spec.interval, span);
    let date_label = |x: &f64| -> String {
        let i = x.round();
        if i < 0.0 || i >= n as f64 {
            return String::new();
        }
        Utc.timestamp_millis_opt(candles[i as usize].open_time)
            .single()
            .map(|d| d.format(fmt).to_string())
            .unwrap_or_default()
    };
    let label_font = ("sans-serif", (spec.height / 60).clamp(11, 20));

    let mut price = ChartBuilder::on(&price_area)
        .margin(8)
        .x_label_area_size(0)
        .y_label_area_size(spec.width / 12)
        .build_cartesian_2d(x_range.clone(), (lo - pad)..(hi + pad))
        .map_err(draw_err)?;
    price
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .y_desc("Price")
        .y_label_style(label_font)
        .x_labels(0)
        .draw()
        .map_err(draw_err)?;

    let body_w = BODY_WIDTH;
    price
        .draw_series(candles.iter().enumerate().map(|(i, c)| {
            let x = i as f64;
            let color = if c.close >= c.open { UP } else { DOWN };
            PathElement::new(vec![(x, c.low), (x, c.high)], color.stroke_width(1))
        }))
        .map_err(draw_err)?;
    price
        .draw_series(candles.iter().enumerate().map(|(i, c)| {
            let x = i as f64;
            let (color, top, bottom) = if c.close >= c.open {
                (UP, c.close, c.open)
            } else {
                (DOWN, c.open, c.close)
            };
            // A doji still gets a visible body.
            let bottom = if (top - bottom).abs() < pad * 1e-3 {
                bottom - pad * 1e-3
            } else {
                bottom
            };
            Rectangle::new([(x - body_w, top), (x + body_w, bottom)], color.filled())
        }))
        .map_err(draw_err)?;
    for (k, (w, ma)) in averages.iter().enumerate() {
        let color = MA_COLORS[k % MA_COLORS.len()];
        let points: Vec<(f64, f64)> = ma
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
            .collect();
        price
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(format!("MA {w}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    if !averages.is_empty() {
        price
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(label_font)
            .draw()
            .map_err(draw_err)?;
    }

    draw_volume(&volume_area, candles, spec, &date_label, label_font)
}

/// The volume panel under the prices: one bar per candle, coloured like its candle, with
/// the time axis.
fn draw_volume<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    candles: &[Candle],
    spec: &ChartSpec,
    date_label: &dyn Fn(&f64) -> String,
    label_font: (&str, u32),
) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    let n = candles.len();
    let x_range = -0.5f64..(n as f64 - 0.5);
    let body_w = BODY_WIDTH;
    let vmax = candles.iter().map(|c| c.volume).fold(0.0, f64::max);
    let mut volume = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(spec.height / 14)
        .y_label_area_size(spec.width / 12)
        .build_cartesian_2d(x_range, 0.0..(vmax * 1.1).max(1e-12))
        .map_err(draw_err)?;
    volume
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .y_desc("Volume")
        .x_desc("Open time (UTC)")
        .x_labels(6.min(n))
        .x_label_formatter(date_label)
        .label_style(label_font)
        .y_labels(3)
        .draw()
        .map_err(draw_err)?;
    volume
        .draw_series(candles.iter().enumerate().map(|(i, c)| {
            let x = i as f64;
            let color = if c.close >= c.open { UP } else { DOWN };
            Rectangle::new(
                [(x - body_w, 0.0), (x + body_w, c.volume)],
                color.mix(0.7).filled(),
            )
        }))
        .map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candles(n: usize) -> Vec<Candle> {
        (0..n)
            .map(|i| {
                let base = 100.0 + (i as f64 * 0.7).sin() * 10.0;
                Candle {
                    open_time: 1_600_000_000_000 + i as i64 * DAY_MS,
                    open: base,
                    high: base + 3.0,
                    low: base - 3.0,
                    close: base + if i % 2 == 0 { 1.5 } else { -1.5 },
                    volume: 1000.0 + i as f64,
                }
            })
            .collect()
    }

    fn spec(last: Option<usize>) -> ChartSpec {
        ChartSpec {
            title: "TEST 1d".into(),
            interval: Interval::D1,
            width: 800,
            height: 500,
            mav: vec![3, 5],
            last,
        }
    }

    #[test]
    fn moving_average_warms_up() {
        let c = candles(5);
        let ma = moving_average(&c, 3);
        assert_eq!(ma[0], None);
        assert_eq!(ma[1], None);
        let expected = (c[0].close + c[1].close + c[2].close) / 3.0;
        assert!((ma[2].unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn svg_has_the_size_and_one_body_per_candle() {
        let svg = render_svg(&candles(40), &spec(Some(25))).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains(r#"width="800""#) && svg.contains(r#"height="500""#));
        assert!(svg.contains("TEST 1d") && svg.contains("MA 3") && svg.contains("MA 5"));
        // One filled body per candle in the price panel and one volume bar per candle.
        let up = svg.matches("fill=\"#26A69A\"").count();
        let down = svg.matches("fill=\"#EF5350\"").count();
        assert_eq!(up + down, 25 * 2, "up {up} down {down}");
    }

    #[test]
    fn png_is_a_png_of_the_requested_size() {
        let png = render_png(&candles(30), &spec(None)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((w, h), (800, 500));
        // It decodes, and the candles' colours are in it.
        let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(
            (frame.width, frame.height, frame.color_type),
            (800, 500, png::ColorType::Rgb)
        );
        let has = |rgb: [u8; 3]| pixels.chunks_exact(3).any(|p| p == rgb);
        assert!(
            has([UP.0, UP.1, UP.2]) && has([DOWN.0, DOWN.1, DOWN.2]),
            "up and down candles drawn"
        );
    }

    #[test]
    fn png_encoding_keeps_every_pixel() {
        let rgb: Vec<u8> = (0..=255).cycle().take(7 * 5 * 3).collect();
        let png = encode_png(&rgb, 7, 5).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .unwrap();
        let mut out = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut out).unwrap();
        assert_eq!(out, rgb);
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        assert!(matches!(
            render_svg(&[], &spec(None)),
            Err(ChartError::Empty)
        ));
        let mut s = spec(None);
        s.width = 10;
        assert!(matches!(
            render_png(&candles(3), &s),
            Err(ChartError::Size(10, 500))
        ));
    }
}
