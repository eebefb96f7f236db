//! Object storage outputs: `output.path: s3://bucket/prefix` (also `gs://`, `az://`,
//! `abfs://`, `file:///`) through the `object_store` crate.
//!
//! A run works on a local mirror of the dataset (`output.staging`), so every guarantee of the
//! local layout holds unchanged (the same partitioning, merge, atomic writes, resume file):
//!
//! 1. **pull**: list the objects under the prefix and download the ones that changed since the
//!    mirror last saw them (by ETag and size). Files the store no longer has are removed from
//!    the mirror, unless they are local work not uploaded yet (a run that died before its
//!    push), which is kept and uploaded next time. The state an incremental run starts from is
//!    therefore the store's. In a Delta table only the data files of its latest version are
//!    mirrored (the log first): earlier versions stay in the store for time travel.
//! 2. the run, on the mirror;
//! 3. **push**: upload every file the run created or changed (by size and modification time),
//!    data files first and the `_kline_etl/` reports and resume files last, each with one PUT: an object
//!    store shows either the old object or the new one under a name, never a partial one.
//!
//! `.kline-etl-mirror.json` in the mirror records what was seen; the lock and temporary files
//! (dot-prefixed) are never uploaded. Credentials come from the store's usual environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
//! `AWS_ALLOW_HTTP`, web identity and instance metadata; `GOOGLE_SERVICE_ACCOUNT`,
//! `GOOGLE_APPLICATION_CREDENTIALS`; `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
//! ...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::LoadError;

/// The mirror's record of what it holds, under the mirror root.
pub const MIRROR_FILE: &str = crate::layout::MIRROR_FILE;

/// Why talking to the object store failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The URL does not name a store this build can open.
    #[error("cannot open the object store `{url}`: {reason}")]
    Open {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A store request failed.
    #[error("object store `{url}`: {action} `{key}` failed")]
    Request {
        /// The store URL.
        url: String,
        /// `list`, `get`, `put`, `delete`.
        action: &'static str,
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// The mirror could not be read or written.
    #[error(transparent)]
    Local(#[from] LoadError),
}

impl RemoteError {
    /// The exit code: the output is unreachable or unwritable.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::Output
    }
}

/// One mirrored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The object's ETag when last pulled or pushed.
    e_tag: Option<String>,
    /// Its size.
    size: u64,
    /// The local file's modification time (ns since the epoch) after that pull or push.
    local_mtime_ns: u128,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Mirror {
    url: String,
    files: BTreeMap<String, Entry>,
}

/// What a pull or push moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Objects downloaded or uploaded.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects removed (mirror files the store no longer has, or store objects the run
    /// removed, such as a resume file with nothing left in it).
    pub removed: u64,
}

/// An object store output and its local mirror.
#[derive(Debug, Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    url: String,
    mirror: PathBuf,
}

/// Open the store named by `url`; `mirror` is the local directory the run works in.
pub fn open(url: &str, mirror: &Path) -> Result<Remote, RemoteError> {
    let fail = |reason: String| RemoteError::Open {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| fail(e.to_string()))?;
    let prefix = StorePath::from_url_path(parsed.path()).map_err(|e| fail(e.to_string()))?;
    crate::tls::ensure_provider();
    if parsed.scheme() == "file" {
        let root = parsed
            .to_file_path()
            .map_err(|()| fail("not an absolute local path".into()))?;
        fs_err::create_dir_all(&root).map_err(|e| fail(e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| fail(e.to_string()))?;
        return Ok(Remote {
            store: Arc::new(store),
            prefix: StorePath::default(),
            url: url.to_owned(),
            mirror: mirror.to_owned(),
        });
    }
    Ok(Remote {
        store: cloud_store(parsed.scheme(), url).map_err(fail)?,
        prefix,
        url: url.to_owned(),
        mirror: mirror.to_owned(),
    })
}

/// The object store client for a cloud URL, or why this build has none for its scheme.
fn cloud_store(scheme: &str, url: &str) -> Result<Arc<dyn ObjectStore>, String> {
    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    let built = |e: object_store::Error| e.to_string();
    match scheme {
        #[cfg(feature = "aws")]
        "s3" | "s3a" => Ok(Arc::new(
            with_aws_profile(object_store::aws::AmazonS3Builder::from_env())
                .with_url(url)
                .build()
                .map_err(built)?,
        )),
        #[cfg(feature = "gcp")]
        "gs" => Ok(Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()
                .map_err(built)?,
        )),
        #[cfg(feature = "azure")]
        "az" | "azure" | "abfs" | "abfss" => Ok(Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()
                .map_err(built)?,
        )),
        other => {
            let _ = url;
            Err(unsupported(other))
        }
    }
}

/// Why a URL scheme cannot be opened: unknown, or its store left out of this build.
fn unsupported(scheme: &str) -> String {
    let feature = match scheme {
        "s3" | "s3a" => "aws",
        "gs" => "gcp",
        "az" | "azure" | "abfs" | "abfss" => "azure",
        _ => return format!("unsupported scheme `{scheme}` (use s3://, gs://, az:// or file://)"),
    };
    format!(
        "this kline-etl was built without `{scheme}://` support (cargo feature `{feature}`); \
         install one with it: `cargo install kline-etl --features cloud` (or `--features {feature}`), \
         or `pip install kline-etl`, whose wheel has every object store"
    )
}

/// Credentials of a named AWS profile (`AWS_PROFILE`, default `default`) from
/// `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`) and its region from `~/.aws/config`
/// (or `AWS_CONFIG_FILE`), used when the environment holds no access key.
#[cfg(feature = "aws")]
fn with_aws_profile(
    mut b: object_store::aws::AmazonS3Builder,
) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::AmazonS3ConfigKey as K;
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return b;
    }
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let read = |var: &str, default: &str| {
        let path = std::env::var_os(var).map_or_else(|| home.join(default), PathBuf::from);
        fs_err::read_to_string(path).unwrap_or_default()
    };
    let creds = ini_section(
        &read("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        &profile,
    );
    let config_section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    let config = ini_section(&read("AWS_CONFIG_FILE", ".aws/config"), &config_section);
    for (name, key) in [
        ("aws_access_key_id", K::AccessKeyId),
        ("aws_secret_access_key", K::SecretAccessKey),
        ("aws_session_token", K::Token),
    ] {
        if let Some(v) = creds.get(name) {
            b = b.with_config(key, v);
        }
    }
    if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        && let Some(r) = config.get("region")
    {
        b = b.with_config(K::Region, r);
    }
    b
}

/// The `key = value` pairs of one `[section]` of an INI file (AWS's credentials format).
#[cfg(feature = "aws")]
fn ini_section(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

fn mtime_ns(path: &Path) -> u128 {
    fs_err::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// Files under `dir` relative to it, skipping dot-prefixed names (lock, temporaries, the
/// mirror record) at every level.
fn local_files(dir: &Path, base: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for e in fs_err::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            local_files(&path, base, out)?;
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Upload order: data first, the reports and the resume file (which describe the data) last.
fn push_rank(rel: &str) -> u8 {
    u8::from(rel.split('/').any(|p| p.starts_with('_')))
}

impl Remote {
    /// The store URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local mirror's root.
    pub fn mirror(&self) -> &Path {
        &self.mirror
    }

    fn key(&self, rel: &str) -> StorePath {
        let mut key = self.prefix.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            key = key.join(part);
        }
        key
    }

    fn relative(&self, key: &StorePath) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_owned())
            .collect();
        // Never map a key onto a path outside the mirror.
        if parts
            .iter()
            .any(|p| p.is_empty() || p == "." || p == ".." || p.contains('\\'))
        {
            return None;
        }
        Some(parts.join("/"))
    }

    fn request(
        &self,
        action: &'static str,
        key: &StorePath,
    ) -> impl Fn(object_store::Error) -> RemoteError {
        let (url, key) = (self.url.clone(), key.to_string());
        move |source| RemoteError::Request {
            url: url.clone(),
            action,
            key: key.clone(),
            source: Box::new(source),
        }
    }

    fn read_mirror(&self) -> Mirror {
        fs_err::read_to_string(self.mirror.join(MIRROR_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<Mirror>(&t).ok())
            .filter(|m| m.url == self.url)
            .unwrap_or_else(|| Mirror {
                url: self.url.clone(),
                files: BTreeMap::new(),
            })
    }

    fn write_mirror(&self, m: &Mirror) -> Result<(), LoadError> {
        super::atomic::write_json(&self.mirror.join(MIRROR_FILE), m)
    }

    /// Bring the mirror up to date with the store.
    pub async fn pull(&self) -> Result<SyncReport, RemoteError> {
        fs_err::create_dir_all(&self.mirror).map_err(LoadError::Io)?;
        let mut mirror = self.read_mirror();
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(self.request("list", &self.prefix))?;
        let mut report = SyncReport::default();
        let mut seen = std::collections::BTreeSet::new();
        // Delta tables' logs first: a table's data files are mirrored only when its latest
        // version holds them (earlier versions, and files of a writer that has not committed
        // yet, stay in the store).
        let mut listed: Vec<(String, object_store::ObjectMeta)> = listed
            .into_iter()
            .filter_map(|meta| match self.relative(&meta.location) {
                Some(rel) => Some((rel, meta)),
                None => {
                    tracing::warn!(key = %meta.location, "skipping an object outside the dataset layout");
                    None
                }
            })
            .collect();
        let is_log = super::delta::log::in_log;
        listed.sort_by_key(|(rel, _)| !is_log(rel));
        let tables: std::collections::BTreeSet<String> = listed
            .iter()
            .filter_map(|(rel, _)| rel.split_once(&format!("/{}/", super::delta::log::LOG_DIR)))
            .map(|(table, _)| table.to_owned())
            .collect();
        let mut live = BTreeMap::new();
        for (rel, meta) in listed {
            if rel.split('/').any(|p| p.starts_with('.')) {
                continue;
            }
            if !is_log(&rel)
                && let Some(table) = tables.iter().find(|t| rel.starts_with(&format!("{t}/")))
            {
                if !live.contains_key(table) {
                    let files = super::delta::live_files(&self.mirror.join(table))?;
                    live.insert(table.clone(), files);
                }
                if live[table]
                    .as_ref()
                    .is_some_and(|l| !l.contains(&self.mirror.join(&rel)))
                    && rel.ends_with(".parquet")
                {
                    continue;
                }
            }
            seen.insert(rel.clone());
            let local = self.mirror.join(&rel);
            let fresh = mirror.files.get(&rel).is_some_and(|e| {
                e.e_tag == meta.e_tag && e.size == meta.size && mtime_ns(&local) == e.local_mtime_ns
            });
            if fresh && local.is_file() {
                continue;
            }
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .map_err(self.request("get", &meta.location))?
                .bytes()
                .await
                .map_err(self.request("get", &meta.location))?;
            super::atomic::write_atomic(&local, &bytes, |_| Ok(()), |_| false)?;
            report.files += 1;
            report.bytes += bytes.len() as u64;
            mirror.files.insert(
                rel,
                Entry {
                    e_tag: meta.e_tag,
                    size: meta.size,
                    local_mtime_ns: mtime_ns(&local),
                },
            );
        }
        // Mirrored files the store no longer has are gone; files never pushed are local work.
        let gone: Vec<String> = mirror
            .files
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for rel in gone {
            let _ = fs_err::remove_file(self.mirror.join(&rel));
            mirror.files.remove(&rel);
            report.removed += 1;
        }
        self.write_mirror(&mirror)?;
        Ok(report)
    }

    /// Create the object `rel` (relative to the prefix) only if it does not exist (a
    /// conditional PUT): `Ok(false)` when it does. A Delta table's commits are written so.
    pub async fn put_if_absent(&self, rel: &str, bytes: Vec<u8>) -> Result<bool, RemoteError> {
        let key = self.key(rel);
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&key, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.request("put", &key)(e)),
        }
    }

    /// The object `rel`, `None` when the store has none.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<bytes::Bytes>, RemoteError> {
        let key = self.key(rel);
        match self.store.get(&key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(self.request("get", &key))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.request("get", &key)(e)),
        }
    }

    /// Upload what the run created or changed, data first; remove store objects whose mirror
    /// file the run removed. A Delta table's log is never uploaded so: its commits are
    /// written with [`Remote::put_if_absent`].
    pub async fn push(&self) -> Result<SyncReport, RemoteError> {
        let mut mirror = self.read_mirror();
        let mut files = Vec::new();
        local_files(&self.mirror, &self.mirror, &mut files).map_err(LoadError::Io)?;
        let is_log = super::delta::log::in_log;
        files.retain(|f| !is_log(f));
        files.sort_by_key(|f| (push_rank(f), f.clone()));
        let mut report = SyncReport::default();
        for rel in &files {
            let local = self.mirror.join(rel);
            let mtime = mtime_ns(&local);
            let size = fs_err::metadata(&local).map_err(LoadError::Io)?.len();
            if mirror
                .files
                .get(rel)
                .is_some_and(|e| e.local_mtime_ns == mtime && e.size == size)
            {
                continue;
            }
            let bytes = fs_err::read(&local).map_err(LoadError::Io)?;
            let key = self.key(rel);
            let put = self
                .store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(self.request("put", &key))?;
            report.files += 1;
            report.bytes += size;
            mirror.files.insert(
                rel.clone(),
                Entry {
                    e_tag: put.e_tag,
                    size,
                    local_mtime_ns: mtime,
                },
            );
        }
        let present: std::collections::BTreeSet<&String> = files.iter().collect();
        let removed: Vec<String> = mirror
            .files
            .keys()
            .filter(|k| !present.contains(k) && !is_log(k))
            .cloned()
            .collect();
        for rel in removed {
            let key = self.key(&rel);
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.request("delete", &key)(e)),
            }
            mirror.files.remove(&rel);
            report.removed += 1;
        }
        self.write_mirror(&mirror)?;
        Ok(report)
    }
}

impl super::delta::log::ObjectLog for Remote {
    fn put_if_absent<'a>(
        &'a self,
        rel: &'a str,
        bytes: Vec<u8>,
    ) -> futures::future::BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            Remote::put_if_absent(self, rel, bytes)
                .await
                .map_err(|e| crate::error::error_chain(&e))
        })
    }

    fn get_opt<'a>(
        &'a self,
        rel: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Option<bytes::Bytes>, String>> {
        Box::pin(async move {
            Remote::get_opt(self, rel)
                .await
                .map_err(|e| crate::error::error_chain(&e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_left_out_of_the_build_say_which_feature() {
        assert!(unsupported("ftp").contains("unsupported scheme `ftp`"));
        assert!(unsupported("s3a").contains("cargo feature `aws`"));
        assert!(unsupported("gs").contains("cargo feature `gcp`"));
        assert!(unsupported("abfss").contains("cargo feature `azure`"));
    }

    #[cfg(feature = "aws")]
    #[test]
    fn aws_profiles_are_read_from_ini_sections() {
        let text = "[default]\naws_access_key_id = AKIADEFAULT\n\n[work]\n# comment\naws_access_key_id=AKIAWORK\naws_secret_access_key = s3cr3t\n";
        let work = ini_section(text, "work");
        assert_eq!(
            work.get("aws_access_key_id").map(String::as_str),
            Some("AKIAWORK")
        );
        assert_eq!(
            work.get("aws_secret_access_key").map(String::as_str),
            Some("s3cr3t")
        );
        assert_eq!(ini_section(text, "default").len(), 1);
        assert!(ini_section(text, "missing").is_empty());
    }

    #[tokio::test]
    async fn pull_and_push_mirror_a_local_store() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let url = url::Url::from_directory_path(&store_dir)
            .unwrap()
            .to_string();
        let a = open(&url, &dir.path().join("a")).unwrap();
        // Host A writes two files and pushes them, reports last.
        fs_err::create_dir_all(dir.path().join("a/klines/x")).unwrap();
        fs_err::write(dir.path().join("a/klines/x/part.parquet"), b"data").unwrap();
        fs_err::create_dir_all(dir.path().join("a/klines/_kline_etl")).unwrap();
        fs_err::write(dir.path().join("a/klines/_kline_etl/summary.json"), b"{}").unwrap();
        fs_err::write(dir.path().join("a/klines/_kline_etl/.lock"), b"").unwrap();
        let pushed = a.push().await.unwrap();
        assert_eq!(pushed.files, 2, "the lock is not uploaded");
        assert_eq!(a.push().await.unwrap().files, 0, "nothing changed");
        assert!(store_dir.join("klines/x/part.parquet").is_file());
        assert!(!store_dir.join("klines/_kline_etl/.lock").exists());

        // Host B pulls them, changes one and removes the other.
        let b = open(&url, &dir.path().join("b")).unwrap();
        assert_eq!(b.pull().await.unwrap().files, 2);
        assert_eq!(b.pull().await.unwrap().files, 0, "already mirrored");
        fs_err::write(dir.path().join("b/klines/x/part.parquet"), b"data, more").unwrap();
        fs_err::remove_file(dir.path().join("b/klines/_kline_etl/summary.json")).unwrap();
        let pushed = b.push().await.unwrap();
        assert_eq!((pushed.files, pushed.removed), (1, 1));

        // Host A sees B's version and the removal; its unpushed work survives a pull.
        fs_err::write(dir.path().join("a/klines/local-only"), b"mine").unwrap();
        let pulled = a.pull().await.unwrap();
        assert_eq!((pulled.files, pulled.removed), (1, 1));
        assert_eq!(
            fs_err::read(dir.path().join("a/klines/x/part.parquet")).unwrap(),
            b"data, more"
        );
        assert!(dir.path().join("a/klines/local-only").is_file());
    }
}
