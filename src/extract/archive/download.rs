//! The archive's HTTP edge and on-disk bookkeeping: GET with retries for transport errors and
//! 5xx, 404 as "not published", bounded bodies, `Last-Modified`; the manifest of ingested files
//! (`<root>/klines/_kline_etl/archive_manifest.json`, written atomically) and the quarantine directory
//! (`<root>/_quarantine/`) where files that failed verification are kept aside, never ingested.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::load::LoadError;
use crate::shard::Shard;

/// The largest archive file accepted (a monthly `1s` zip is ~100 MiB).
pub const MAX_FILE_BYTES: usize = 512 << 20;

/// A fetched body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body.
    pub body: Bytes,
    /// The `Last-Modified` header, verbatim.
    pub last_modified: Option<String>,
}

/// Why a GET failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// HTTP 404: the file is not (yet) published.
    #[error("not found (http 404)")]
    NotFound,
    /// Another HTTP status, after retries for 5xx.
    #[error("http {0}")]
    Status(u16),
    /// Connection, timeout or body error, after retries.
    #[error("{0}")]
    Transport(String),
    /// A `3xx`: redirects are never followed (see [`crate::extract::client`]).
    #[error("http {status} redirecting to `{location}`; redirects are never followed")]
    Redirect {
        /// HTTP status.
        status: u16,
        /// The `Location` header (`none` when absent).
        location: String,
    },
}

/// A small HTTP client for archive files.
#[derive(Debug, Clone)]
pub struct ArchiveClient {
    http: reqwest::Client,
    base: String,
    retries: u32,
}

impl ArchiveClient {
    /// A client for the archive at `base` (no trailing slash).
    pub fn new(base: &str, timeout: Duration, retries: u32) -> Result<Self, GetError> {
        crate::tls::ensure_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // An unreachable archive must not stall the run: REST takes over after this.
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("kline-etl/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GetError::Transport(e.to_string()))?;
        Ok(ArchiveClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            retries,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `base/path`, retrying transport errors and 5xx with a short exponential backoff.
    pub async fn get(&self, path: &str) -> Result<Fetched, GetError> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let mut attempt = 0;
        loop {
            let result = self.get_once(&url).await;
            match result {
                Err(GetError::Transport(_) | GetError::Status(500..=599))
                    if attempt < self.retries =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                }
                other => return other,
            }
        }
    }

    async fn get_once(&self, url: &str) -> Result<Fetched, GetError> {
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| GetError::Transport(crate::error::error_chain(&e)))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(GetError::NotFound);
        }
        if resp.status().is_redirection() {
            return Err(GetError::Redirect {
                status,
                location: crate::extract::client::location_of(resp.headers()),
            });
        }
        if status != 200 {
            return Err(GetError::Status(status));
        }
        let last_modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // One allocation of the stated length: growing by doubling copied every file about
        // twice and faulted in twice its pages. A stated length is not trusted beyond 64 MiB
        // (past that the body grows as it arrives, up to `MAX_FILE_BYTES`).
        let stated = resp.content_length().map(|n| n.min(64 << 20));
        let mut body = crate::extract::client::BodyBuf::new(stated, MAX_FILE_BYTES);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| GetError::Transport(crate::error::error_chain(&e)))?
        {
            body.push(chunk).map_err(|()| {
                GetError::Transport(format!("body larger than {MAX_FILE_BYTES} bytes"))
            })?;
        }
        Ok(Fetched {
            body: body.finish(),
            last_modified,
        })
    }
}

/// One ingested archive file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// `spot`, `usdm`, `coinm`.
    pub market: String,
    /// Symbol.
    pub symbol: String,
    /// Interval (Binance spelling, `1M` for months).
    pub interval: String,
    /// First open time the file covers, ms.
    pub start_ms: i64,
    /// End of the file's period (exclusive), ms.
    pub end_ms: i64,
    /// SHA-256 of the zip (from its verified `.CHECKSUM`).
    pub sha256: String,
    /// `Last-Modified` of the `.CHECKSUM` reply.
    pub last_modified: Option<String>,
    /// Rows read from the file.
    pub rows: u64,
}

/// The files ingested so far, by archive path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Entries by archive path (`data/spot/monthly/klines/...zip`).
    pub files: BTreeMap<String, ManifestEntry>,
}

/// `<root>/klines/_kline_etl/archive_manifest.json` (per shard
/// `archive_manifest.shard-I-of-N.json`).
pub fn manifest_path(root: &Path, shard: Option<Shard>) -> PathBuf {
    crate::layout::archive_manifest_file(root, shard)
}

impl Manifest {
    /// Load the manifest; a missing or unreadable one is empty (the data on disk stays the
    /// truth: an empty manifest only means no replacement check for older files). A shard
    /// without a manifest of its own yet starts from the unsharded run's.
    pub fn load(root: &Path, shard: Option<Shard>) -> Manifest {
        let mut path = manifest_path(root, shard);
        if shard.is_some() && !path.exists() {
            path = manifest_path(root, None);
        }
        match fs_err::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), "ignoring an unreadable archive manifest: {e}");
                Manifest::default()
            }),
            Err(_) => Manifest::default(),
        }
    }

    /// Write the manifest atomically (a shard's to its own file: shards run at once).
    pub fn save(&self, root: &Path, shard: Option<Shard>) -> Result<(), LoadError> {
        crate::load::atomic::write_json(&manifest_path(root, shard), self)
    }
}

/// Keep a file that failed verification aside under `<root>/_quarantine/<archive path>`.
pub fn quarantine(root: &Path, archive_path: &str, body: &[u8]) -> Result<PathBuf, LoadError> {
    let rel = archive_path
        .trim_start_matches('/')
        .trim_start_matches("data/");
    let path = crate::layout::quarantine_dir(root).join(rel);
    crate::load::atomic::write_atomic(&path, body, |_| Ok(()), |_| false)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path(), None), Manifest::default());
        let mut m = Manifest {
            version: 1,
            ..Manifest::default()
        };
        m.files.insert(
            "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip".into(),
            ManifestEntry {
                market: "spot".into(),
                symbol: "BTCUSDT".into(),
                interval: "1m".into(),
                start_ms: 0,
                end_ms: 86_400_000,
                sha256: "ab".repeat(32),
                last_modified: Some("Tue, 02 Jan 2024 00:00:00 GMT".into()),
                rows: 1440,
            },
        );
        m.save(dir.path(), None).unwrap();
        assert_eq!(Manifest::load(dir.path(), None), m);
        // A shard starts from the unsharded manifest and then keeps its own.
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!(Manifest::load(dir.path(), Some(shard)), m);
        Manifest::default().save(dir.path(), Some(shard)).unwrap();
        assert!(
            manifest_path(dir.path(), Some(shard)).ends_with("archive_manifest.shard-2-of-3.json")
        );
        assert_eq!(Manifest::load(dir.path(), Some(shard)), Manifest::default());
        assert_eq!(Manifest::load(dir.path(), None), m);
        fs_err::write(manifest_path(dir.path(), None), b"{not json").unwrap();
        assert_eq!(Manifest::load(dir.path(), None), Manifest::default());
    }

    #[test]
    fn quarantine_keeps_the_bytes_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = quarantine(
            dir.path(),
            "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip",
            b"bad",
        )
        .unwrap();
        assert!(p.starts_with(dir.path().join("_quarantine")));
        assert_eq!(fs_err::read(&p).unwrap(), b"bad");
    }
}
