//! Pipeline files: read, deserialise (unknown keys rejected), interpolate `${VAR}`, then
//! validate into a [`Pipeline`]. Errors name the file, line, column and field path.
//!
//! Two stages:
//! 1. [`raw`]: the YAML shape (serde, `deny_unknown_fields`, values kept with their positions).
//!    YAML syntax errors, unknown keys and wrong YAML types stop here, with the first problem.
//! 2. [`validate`]: every value is checked and *all* problems are reported at once.
//!
//! Guards applied before and while parsing: files over [`MAX_PIPELINE_BYTES`] are rejected
//! unread, non-UTF-8 bytes are reported with their position, duplicate keys are errors, and
//! anchors/aliases are bounded so an alias bomb ("billion laughs") cannot exhaust memory.
//!
//! See [`raw`] for every key, its default and an example.

pub mod interpolate;
pub mod model;
pub mod overrides;
pub mod raw;
pub mod time;
pub mod validate;

use std::fmt;
use std::io::Read;
use std::path::Path;

pub use interpolate::{InterpolateError, interpolate};
pub use model::*;
pub use overrides::{SeriesOverrideError, override_series};
pub use time::{TimeError, parse_time};

/// The largest pipeline file accepted (1 MiB). Real pipelines are a few hundred bytes; the cap
/// keeps a mistaken path (a data file, a log) from being read into memory.
pub const MAX_PIPELINE_BYTES: u64 = 1 << 20;

/// One problem in a pipeline file, with its position (1-based line and column) and the path of
/// the field it concerns (`intervals[1]`, `source.weight_share`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field path, such as `range.start`; empty for the document as a whole.
    pub path: String,
    /// What is wrong, what was expected and what was found.
    pub message: String,
}

/// Why a pipeline could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (the message names the path).
    #[error("cannot read pipeline file")]
    Read(#[source] std::io::Error),
    /// The path is not a regular file (a directory, a FIFO, a device): refused before it is
    /// opened, since opening a FIFO without a writer blocks.
    #[error(
        "pipeline path `{source_name}` is {kind}, not a regular file; give the path of a pipeline YAML file"
    )]
    NotAFile {
        /// The path.
        source_name: String,
        /// What it is (`a directory`, `a FIFO`, ...).
        kind: &'static str,
    },
    /// The file is larger than [`MAX_PIPELINE_BYTES`].
    #[error(
        "pipeline file `{source_name}` is larger than the {limit} byte limit; is this really a pipeline file?"
    )]
    TooLarge {
        /// The file.
        source_name: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is not valid YAML, or valid YAML that is not a valid pipeline.
    #[error("{}", render(source_name, diagnostics))]
    Invalid {
        /// The file.
        source_name: String,
        /// Every problem found (at least one).
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(source_name: &str, diagnostics: &[Diagnostic]) -> String {
    use fmt::Write;
    let mut s = format!("invalid pipeline `{source_name}`");
    for d in diagnostics {
        let _ = write!(s, "\n  --> {source_name}:{}:{}", d.line, d.column);
        if !d.path.is_empty() {
            let _ = write!(s, " at `{}`", d.path);
        }
        let _ = write!(s, ": {}", d.message);
    }
    s
}

impl ConfigError {
    fn invalid(source_name: &str, line: usize, column: usize, path: &str, message: String) -> Self {
        ConfigError::Invalid {
            source_name: source_name.to_owned(),
            diagnostics: vec![Diagnostic {
                line,
                column,
                path: path.to_owned(),
                message,
            }],
        }
    }
}

/// What a file type is when it is not a regular file (`None` for a regular file).
fn not_a_regular_file(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_char_device() || kind.is_block_device() {
            return Some("a device");
        }
    }
    Some("a special file")
}

/// Read and validate the pipeline file at `path`, looking `${VAR}`s up with `env`.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Pipeline, ConfigError> {
    let source_name = path.display().to_string();
    let kind = fs_err::metadata(path)
        .map_err(ConfigError::Read)?
        .file_type();
    if let Some(kind) = not_a_regular_file(kind) {
        return Err(ConfigError::NotAFile { source_name, kind });
    }
    let file = fs_err::File::open(path).map_err(ConfigError::Read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PIPELINE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ConfigError::Read)?;
    if bytes.len() as u64 > MAX_PIPELINE_BYTES {
        return Err(ConfigError::TooLarge {
            source_name,
            limit: MAX_PIPELINE_BYTES,
        });
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.split(|b| *b == b'\n').count();
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            return Err(ConfigError::invalid(
                &source_name,
                line,
                column,
                "",
                format!(
                    "the file is not valid UTF-8 (byte 0x{:02x} at offset {}); save it as UTF-8",
                    bytes[e.valid_up_to()],
                    e.valid_up_to()
                ),
            ));
        }
    };
    parse_str(&source_name, text, env)
}

/// Parse and validate pipeline text; `source_name` is used in error messages. A range that
/// mixes relative and absolute times is checked against the clock.
pub fn parse_str(
    source_name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, ConfigError> {
    parse_str_at(
        source_name,
        text,
        env,
        chrono::Utc::now().timestamp_millis(),
    )
}

/// [`parse_str`] with the clock reading `now_ms`.
pub fn parse_str_at(
    source_name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    now_ms: i64,
) -> Result<Pipeline, ConfigError> {
    if text.len() as u64 > MAX_PIPELINE_BYTES {
        return Err(ConfigError::TooLarge {
            source_name: source_name.to_owned(),
            limit: MAX_PIPELINE_BYTES,
        });
    }
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(ConfigError::invalid(
            source_name,
            1,
            1,
            "",
            "the file is empty; expected a pipeline mapping starting with `name:`".to_owned(),
        ));
    }
    let raw = parse_raw(source_name, text)?;
    validate::validate(&raw, env, now_ms).map_err(|diagnostics| ConfigError::Invalid {
        source_name: source_name.to_owned(),
        diagnostics,
    })
}

/// Parser options: strict duplicate keys, tight alias limits (pipeline files are small).
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
        budget: serde_saphyr::budget! {
            max_aliases: 100,
            max_anchors: 100,
            max_events: 100_000,
            max_depth: 64,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 8,
            max_alias_expansions_per_anchor: 100,
        },
    }
}

/// Stage 1: YAML to [`raw::RawPipeline`], with the failing field's path on error.
fn parse_raw(source_name: &str, text: &str) -> Result<raw::RawPipeline, ConfigError> {
    let mut path = String::new();
    let result =
        serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
            serde_path_to_error::deserialize::<_, raw::RawPipeline>(de).map_err(|e| {
                path = clean_path(&e.path().to_string());
                e.into_inner()
            })
        });
    result.map_err(|e| {
        let e = e.without_snippet();
        let (line, column) = e
            .location()
            .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
        // Never echo what was written at `api_key`: it may be the key.
        let found = if path.ends_with("api_key") {
            None
        } else {
            token_at(text, line, column)
        };
        let message = clean_message(&e.to_string());
        if message.contains("tab")
            && let Some((line, column, path)) = indentation_tab(text)
        {
            return ConfigError::invalid(
                source_name,
                line,
                column,
                &path,
                "a tab in the indentation; YAML indents with spaces only: replace the tab with spaces".to_owned(),
            );
        }
        let message = friendly(&message, found);
        ConfigError::invalid(source_name, line.max(1), column.max(1), &path, message)
    })
}

/// The first tab in a line's indentation: its 1-based line and column, and the key path of
/// that line (`source.market`), followed from the indentation of the lines above it.
fn indentation_tab(text: &str) -> Option<(usize, usize, String)> {
    // (indent, key) of the mappings open above the current line.
    let mut open: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - body.len();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let key = body
            .trim_start_matches("- ")
            .split_once(':')
            .map(|(k, _)| k.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|k| !k.is_empty() && !k.contains([' ', '{', '[', ',']));
        while open.last().is_some_and(|(d, _)| *d >= indent) {
            open.pop();
        }
        if let Some(col) = line[..indent].find('\t') {
            let mut path: Vec<&str> = open.iter().map(|(_, k)| k.as_str()).collect();
            if let Some(k) = &key {
                path.push(k);
            }
            return Some((i + 1, line[..col].chars().count() + 1, path.join(".")));
        }
        if let Some(k) = key {
            open.push((indent, k));
        }
    }
    None
}

/// Drop serde_path_to_error's view of our wrappers: `Spanned`'s `value` and the root `.`.
fn clean_path(p: &str) -> String {
    let p = p.replace(".value", "");
    let p = p.strip_suffix(".value").unwrap_or(&p);
    if p == "." || p == "?" {
        String::new()
    } else {
        p.to_owned()
    }
}

/// serde-saphyr appends ` at line L, column C`; we print the position ourselves.
fn clean_message(m: &str) -> String {
    let m = match m.rfind(" at line ") {
        Some(i) => &m[..i],
        None => m,
    };
    m.replace('\n', " ")
}

/// The scalar token starting at 1-based `line`/`column`, for "found `…`" in messages.
fn token_at(text: &str, line: usize, column: usize) -> Option<&str> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let start = l
        .char_indices()
        .nth(column.checked_sub(1)?)
        .map(|(i, _)| i)?;
    let rest = &l[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
        .unwrap_or(rest.len());
    let tok = &rest[..end];
    (!tok.is_empty()).then_some(tok)
}

/// Reword serde-saphyr's and serde's messages in our style (lowercase, values in backticks,
/// say what was expected and what was found).
fn friendly(msg: &str, found: Option<&str>) -> String {
    let found_suffix = found.map_or(String::new(), |f| format!("; found `{}`", f.escape_debug()));
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((key, expected)) = rest.split_once("`, expected one of ")
    {
        let options: Vec<&str> = expected.split(", ").map(|o| o.trim_matches('`')).collect();
        let hint =
            closest(key, &options).map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
        let listed: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
        return format!(
            "unknown key `{key}`{hint}; expected one of {}",
            listed.join(", ")
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((key, _)) = rest.split_once('`')
    {
        return format!("unknown key `{key}`; this mapping takes no keys");
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return format!("duplicate key `{key}`; each key may appear only once");
    }
    if msg.starts_with("multiple YAML documents") {
        return "more than one YAML document (`---`); a pipeline file holds exactly one".to_owned();
    }
    if let Some(detail) = msg.strip_prefix("budget breached: ") {
        // `Aliases { aliases: 101 }` -> `aliases: 101`
        let detail = detail
            .split_once('{')
            .map_or(detail, |(_, d)| d.trim_end_matches('}'))
            .trim();
        return format!(
            "the file exceeds a YAML safety limit (`{detail}`); pipeline files may use at most 100 anchors, 100 aliases, 100000 YAML events and nesting depth 64"
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {expected}; found {}", article(got));
    }
    if msg == "expected sequence start" {
        return format!("expected a list such as `[a, b]`{found_suffix}");
    }
    if msg == "expected mapping start" {
        return format!("expected a mapping of `key: value` pairs{found_suffix}");
    }
    if msg.starts_with("invalid ") || msg.starts_with("expected ") {
        let what = msg
            .trim_start_matches("invalid ")
            .trim_start_matches("expected ");
        return format!("expected {}{found_suffix}", article(what));
    }
    msg.to_owned()
}

/// `floating point` -> `a number`, `u64` -> `a whole number`, others unchanged.
fn article(what: &str) -> String {
    match what {
        "floating point" | "f64" | "f32" => "a number".to_owned(),
        "u64" | "u32" | "u16" | "u8" | "i64" | "i32" | "usize" => "a whole number".to_owned(),
        "boolean" | "bool" => "`true` or `false`".to_owned(),
        "sequence" => "a list".to_owned(),
        "map" => "a mapping".to_owned(),
        other => other.to_owned(),
    }
}

/// The option closest to `key` by edit distance, if it is close enough to be a typo.
fn closest<'a>(key: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (edit_distance(key, o), *o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Apply `--from`/`--to` overrides to a loaded pipeline's range.
pub fn override_range(
    pipeline: &mut Pipeline,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(), OverrideError> {
    if let Some(f) = from {
        pipeline.range.start = parse_time(f).map_err(|e| OverrideError::Time {
            flag: "--from",
            source: e,
        })?;
    }
    if let Some(t) = to {
        pipeline.range.end = parse_time(t).map_err(|e| OverrideError::Time {
            flag: "--to",
            source: e,
        })?;
    }
    // Snapshot datasets have no range (it stays `now..now`).
    let (start, end) = (pipeline.range.start, pipeline.range.end);
    let now = chrono::Utc::now().timestamp_millis();
    if pipeline.dataset.has_range()
        && !time::ordered(start, end).unwrap_or_else(|| start.resolve(now) < end.resolve(now))
    {
        return Err(OverrideError::Empty);
    }
    Ok(())
}

/// The pipeline's range resolved at `now_ms`, checked to be non-empty. A range that mixes
/// relative and absolute times (`start: 3 days ago`, `end: 2024-01-01`) can only be checked
/// here, once "now" is known.
///
/// Snapshot datasets (`ticker_price`, `depth`) have no range; they resolve to `(now, now)`.
pub fn resolve_range(pipeline: &Pipeline, now_ms: i64) -> Result<(i64, i64), EmptyRange> {
    let (start, end) = pipeline.range.resolve(now_ms);
    if !pipeline.dataset.has_range() {
        Ok((now_ms, now_ms))
    } else if start < end {
        Ok((start, end))
    } else {
        Err(EmptyRange {
            name: pipeline.name.clone(),
            start: crate::time::format_utc(start),
            end: crate::time::format_utc(end),
        })
    }
}

/// A range that resolves to nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the range of pipeline `{name}` resolves to [`{start}`, `{end}`), which is empty; the start must be before the end"
)]
pub struct EmptyRange {
    /// The pipeline's name.
    pub name: String,
    /// Resolved start.
    pub start: String,
    /// Resolved end.
    pub end: String,
}

/// A bad `--from`/`--to`.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// The flag's value is not a time.
    #[error("invalid `{flag}`")]
    Time {
        /// `--from` or `--to`.
        flag: &'static str,
        /// Why.
        #[source]
        source: TimeError,
    },
    /// Start is not before end.
    #[error("the range start is not before its end; the range is `[start, end)`")]
    Empty,
}

#[cfg(test)]
mod tests;
