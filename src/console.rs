//! The process's two streams. Results (the run's summary table, `status`, `plan`, `summary`,
//! where `fetch` wrote its data) go to **stdout**, so they can be piped and parsed; logs,
//! errors, notices and the progress display go to **stderr**. With `--log-format json`
//! every stderr line is one JSON object with top-level `timestamp`, `level` and `message`
//! (and a log event's fields beside them), so a log shipper never sees a plain-text line:
//! [`error`] and [`notice`] write their lines in that shape too.
//!
//! Every line written here passes through [`crate::config::redact`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether stderr lines are JSON objects (`--log-format json`).
static JSON: AtomicBool = AtomicBool::new(false);

/// Switch stderr lines to JSON objects (called once, when logging is set up).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether stderr lines are JSON objects.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Write a result to stdout; a closed pipe (`| head`) is not an error.
pub fn print(text: &str) {
    let text = crate::config::redact(text);
    crate::progress::suspended(|| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    });
}

/// An error for a person on stderr: `error: …` as text, or a JSON object with level `ERROR`.
pub fn error(message: &str) {
    line("ERROR", "error: ", message);
}

/// A notice for a person on stderr (`interrupted: stopping cleanly`, `wrote chart.png`): the
/// text as is, or a JSON object with level `INFO`.
pub fn notice(message: &str) {
    line("INFO", "", message);
}

fn line(level: &str, prefix: &str, message: &str) {
    let message = crate::config::redact(message);
    let text = if json() {
        json_line(level, &message, &chrono::Utc::now())
    } else {
        format!("{prefix}{message}\n")
    };
    crate::progress::suspended(|| {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    });
}

/// One JSON log line in the shape `tracing-subscriber`'s flattened JSON format writes.
fn json_line(level: &str, message: &str, at: &chrono::DateTime<chrono::Utc>) -> String {
    let obj = serde_json::json!({
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": level,
        "message": message,
    });
    format!("{obj}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_one_object_with_the_log_fields() {
        let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let l = json_line("ERROR", "invalid pipeline `a.yaml`\n  --> a.yaml:1:1", &at);
        assert!(l.ends_with('\n'));
        assert_eq!(l.matches('\n').count(), 1, "one line: {l}");
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123000Z");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["message"], "invalid pipeline `a.yaml`\n  --> a.yaml:1:1");
    }
}
