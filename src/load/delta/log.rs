//! The transaction log on disk: `_delta_log/00000000000000000000.json`, one file per version,
//! each a line per action. Replaying the commits in order gives a [`Snapshot`]: the table's
//! protocol, metadata and the files it holds. Reading is local (an object-store output is
//! mirrored first); committing goes through a [`LogStore`], which writes a version only if no
//! one has written it (put-if-absent: a hard link on a local file system, a conditional PUT on
//! an object store), so two writers never both own one version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::protocol::{Action, Add, Metadata, Protocol};
use crate::load::LoadError;

/// The log's directory in a table.
pub const LOG_DIR: &str = "_delta_log";

/// Whether a `/`-separated path is inside a table's log (`klines/_delta_log/...`).
pub fn in_log(rel: &str) -> bool {
    rel.split('/').any(|p| p == LOG_DIR)
}

/// The commit file of `version`: 20 digits, `.json`.
pub fn commit_name(version: u64) -> String {
    format!("{version:020}.json")
}

/// The version of a commit file name, `None` for anything else (checkpoints, CRC files,
/// temporary files).
pub fn version_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A table at one version: what a reader of that version sees.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// The version (`None`: no commit yet, the table does not exist).
    pub version: Option<u64>,
    /// The latest `protocol`.
    pub protocol: Option<Protocol>,
    /// The latest `metaData`.
    pub metadata: Option<Metadata>,
    /// The files the table holds, by their `add` path.
    pub files: BTreeMap<String, Add>,
}

impl Snapshot {
    /// Apply one commit's actions (removes before adds, so a commit that replaces a file
    /// under the same path keeps the new one).
    pub fn apply(&mut self, version: u64, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Remove(r) => {
                    self.files.remove(&r.path);
                }
                Action::Protocol(p) => self.protocol = Some(*p),
                Action::Metadata(m) => self.metadata = Some(m.clone()),
                _ => {}
            }
        }
        for a in actions {
            if let Action::Add(add) = a {
                self.files.insert(add.path.clone(), add.clone());
            }
        }
        self.version = Some(version);
    }

    /// The next version to commit.
    pub fn next_version(&self) -> u64 {
        self.version.map_or(0, |v| v + 1)
    }
}

/// Parse a commit file's text; errors name the line.
pub fn parse_commit(text: &str, name: &str) -> Result<Vec<Action>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Action::parse(l).map_err(|e| format!("`{name}` line {}: {e}", i + 1)))
        .collect()
}

fn corrupt(dir: &Path, reason: String) -> LoadError {
    LoadError::Delta {
        path: dir.to_owned(),
        reason,
    }
}

/// The commit versions in a local `_delta_log` directory, sorted; empty when there is none.
pub fn versions(log: &Path) -> Result<Vec<u64>, LoadError> {
    let mut out = Vec::new();
    let entries = match fs_err::read_dir(log) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for e in entries {
        if let Some(v) = version_of(&e?.file_name().to_string_lossy()) {
            out.push(v);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Replay the local log of the table at `table` up to `at` (the latest version when `None`).
/// The commits must run from version 0 without a hole: a log whose early commits were
/// cleaned up after a checkpoint written by another tool is refused with the reason.
pub fn read_snapshot(table: &Path, at: Option<u64>) -> Result<Snapshot, LoadError> {
    let log = table.join(LOG_DIR);
    let mut snap = Snapshot::default();
    for (i, v) in versions(&log)?.into_iter().enumerate() {
        if at.is_some_and(|at| v > at) {
            break;
        }
        if v != i as u64 {
            return Err(corrupt(
                &log,
                format!(
                    "the log has no commit {i} (it starts at or jumps to version {v}, after a checkpoint and log cleanup by another tool); kline-etl replays the JSON commits from version 0"
                ),
            ));
        }
        let name = commit_name(v);
        let text = fs_err::read_to_string(log.join(&name))?;
        let actions = parse_commit(&text, &name).map_err(|e| corrupt(&log, e))?;
        snap.apply(v, &actions);
    }
    if let Some(p) = snap.protocol {
        p.check(false).map_err(|e| corrupt(&log, e))?;
    } else if snap.version.is_some() {
        return Err(corrupt(&log, "the log has no `protocol` action".into()));
    }
    Ok(snap)
}

/// The local path of a file an `add` names (its path is URI-encoded, relative to the table).
pub fn local_path(table: &Path, add_path: &str) -> PathBuf {
    let decoded = percent_encoding::percent_decode_str(add_path).decode_utf8_lossy();
    table.join(decoded.as_ref())
}

/// An object store a table's commits go to: create-only writes and reads of objects named
/// relative to the output's prefix. The object-store output (`load::remote::Remote`)
/// implements it; errors are the store's, as text.
pub trait ObjectLog: Sync {
    /// Create `rel` with `bytes` unless it exists: `Ok(false)` when it does.
    fn put_if_absent<'a>(
        &'a self,
        rel: &'a str,
        bytes: Vec<u8>,
    ) -> futures::future::BoxFuture<'a, Result<bool, String>>;
    /// The object `rel`, `None` when there is none.
    fn get_opt<'a>(
        &'a self,
        rel: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Option<bytes::Bytes>, String>>;
}

/// Where commits are written: the table's own directory, or its object store (whose copy
/// the local mirror holds).
#[derive(Clone, Copy)]
pub enum LogStore<'a> {
    /// A local table at this directory.
    Local(&'a Path),
    /// An object store: the mirror's table directory, and the table's directory relative
    /// to the mirror root (`klines`), which is its key under the store's prefix.
    Remote {
        /// The store.
        remote: &'a dyn ObjectLog,
        /// The local mirror of the table.
        mirror: &'a Path,
        /// The table's path relative to the mirror root, `/`-separated.
        table: &'a str,
    },
}

impl LogStore<'_> {
    /// The local table directory.
    pub fn local(&self) -> &Path {
        match self {
            LogStore::Local(p) => p,
            LogStore::Remote { mirror, .. } => mirror,
        }
    }

    fn rel(&self, name: &str) -> String {
        match self {
            LogStore::Local(_) => format!("{LOG_DIR}/{name}"),
            LogStore::Remote { table, .. } => format!("{table}/{LOG_DIR}/{name}"),
        }
    }

    /// Write commit `version` unless it exists: `Ok(false)` when another writer has it.
    /// A remote commit is also written to the mirror's log.
    pub async fn put_if_absent(&self, version: u64, text: &str) -> Result<bool, LoadError> {
        let name = commit_name(version);
        let local = self.local().join(LOG_DIR).join(&name);
        match self {
            LogStore::Local(_) => link_if_absent(&local, text.as_bytes()),
            LogStore::Remote { remote, .. } => {
                let rel = self.rel(&name);
                let won = remote
                    .put_if_absent(&rel, text.as_bytes().to_vec())
                    .await
                    .map_err(|e| corrupt(&local, e))?;
                if won {
                    crate::load::atomic::write_atomic(
                        &local,
                        text.as_bytes(),
                        |_| Ok(()),
                        |_| false,
                    )?;
                }
                Ok(won)
            }
        }
    }

    /// The actions of a commit another writer made (read from the store, so a commit made
    /// on another host is seen), `None` when the version does not exist yet.
    pub async fn read(&self, version: u64) -> Result<Option<Vec<Action>>, LoadError> {
        let name = commit_name(version);
        let text = match self {
            LogStore::Local(t) => match fs_err::read_to_string(t.join(LOG_DIR).join(&name)) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            },
            LogStore::Remote { remote, mirror, .. } => {
                let rel = self.rel(&name);
                let Some(bytes) = remote.get_opt(&rel).await.map_err(|e| corrupt(mirror, e))?
                else {
                    return Ok(None);
                };
                let local = mirror.join(LOG_DIR).join(&name);
                crate::load::atomic::write_atomic(&local, &bytes, |_| Ok(()), |_| false)?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        parse_commit(&text, &name)
            .map(Some)
            .map_err(|e| corrupt(self.local(), e))
    }
}

/// Create `path` with `bytes` only if it does not exist, atomically: a complete temporary
/// file hard-linked to the name (`link` fails when the name exists), as delta-rs and Spark
/// commit to a local file system.
fn link_if_absent(path: &Path, bytes: &[u8]) -> Result<bool, LoadError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let tmp = crate::load::atomic::temp_path(path);
    let write = |what: &str, e: std::io::Error| LoadError::Write {
        path: path.to_owned(),
        source: std::io::Error::new(e.kind(), format!("{what}: {e}")),
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| write("create", e))?;
        f.write_all(bytes).map_err(|e| write("write", e))?;
        f.sync_all().map_err(|e| write("fsync", e))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(write("link", e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    if matches!(result, Ok(true)) {
        crate::load::atomic::sync_dir(dir)?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::delta::protocol::{PROTOCOL, Remove};

    fn add(path: &str) -> Add {
        Add {
            path: path.into(),
            partition_values: BTreeMap::new(),
            size: 1,
            modification_time: 0,
            data_change: true,
            stats: None,
        }
    }

    #[test]
    fn commit_names_have_twenty_digits() {
        assert_eq!(commit_name(7), "00000000000000000007.json");
        assert_eq!(version_of("00000000000000000007.json"), Some(7));
        for other in [
            "00000000000000000007.checkpoint.parquet",
            "7.json",
            ".00000000000000000007.json.tmp-1-0",
            "_last_checkpoint",
        ] {
            assert_eq!(version_of(other), None, "{other}");
        }
    }

    #[test]
    fn replay_keeps_what_is_added_and_not_removed_since() {
        let mut s = Snapshot::default();
        assert_eq!(s.next_version(), 0);
        s.apply(
            0,
            &[
                Action::Protocol(PROTOCOL),
                Action::Add(add("a")),
                Action::Add(add("b")),
            ],
        );
        s.apply(
            1,
            &[
                Action::Remove(Remove::of(&add("a"), 1)),
                Action::Add(add("c")),
            ],
        );
        // Replacing a file under its own path in one commit keeps it.
        s.apply(
            2,
            &[
                Action::Remove(Remove::of(&add("b"), 2)),
                Action::Add(add("b")),
            ],
        );
        assert_eq!(s.files.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(s.next_version(), 3);
    }

    #[test]
    fn a_version_is_written_once_and_the_loser_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path();
        let path = table.join(LOG_DIR).join(commit_name(0));
        assert!(
            link_if_absent(
                &path,
                b"{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n"
            )
            .unwrap()
        );
        assert!(!link_if_absent(&path, b"other").unwrap());
        assert!(fs_err::read_to_string(&path).unwrap().contains("protocol"));
        // No temporary is left behind either way.
        assert_eq!(fs_err::read_dir(table.join(LOG_DIR)).unwrap().count(), 1);
        let snap = read_snapshot(table, None).unwrap();
        assert_eq!(snap.version, Some(0));
        // A hole in the log is refused, naming the missing version.
        fs_err::write(table.join(LOG_DIR).join(commit_name(2)), "").unwrap();
        let e = read_snapshot(table, None).unwrap_err().to_string();
        assert!(e.contains("no commit 1"), "{e}");
        assert_eq!(read_snapshot(table, Some(0)).unwrap().version, Some(0));
    }

    #[test]
    fn encoded_paths_map_to_local_files() {
        assert_eq!(
            local_path(Path::new("/t"), "market=spot/symbol=A%20B/x.parquet"),
            Path::new("/t/market=spot/symbol=A B/x.parquet")
        );
    }
}
