//! Delta Lake output (`output.format: delta`): each dataset directory (`klines`, a kline
//! family's, `ticker_price`, `depth`, `funding_rate`) is a Delta table. The data files are the
//! same Parquet files in the same hive directories as the `parquet` format writes; what
//! differs:
//!
//! - **Files are never replaced.** A partition that changes is written under a new name with
//!   its content's hash (`1h-2024.<16 hex>.parquet`, see [`crate::layout::versioned_file`]),
//!   and the commit removes the old file and adds the new one, so every earlier version stays
//!   readable (time travel) until a `VACUUM`. A rerun that writes the same bytes writes the
//!   same name: reruns stay idempotent.
//! - **The log is the truth.** What a table holds is what its `_delta_log` says
//!   ([`log::read_snapshot`]); files on disk that no commit added (a run killed between
//!   writing its files and committing) are ignored by every reader, kline-etl's own scans
//!   included ([`live_files`]), and the rerun writes and commits them again.
//! - **One commit per table per run**, after every file it adds is durable ([`Table::commit`]),
//!   with optimistic concurrency: the next version is written only if no one has written it
//!   (put-if-absent, [`log::LogStore`]); a writer that loses re-reads the winner's commit,
//!   checks it touched none of its partitions, and tries the next version. Shards of one
//!   pipeline write disjoint series, so they never conflict; two writers of one partition do,
//!   and the loser stops with exit 3 ([`LoadError::Conflict`]: its files stay uncommitted;
//!   its rerun redoes them).
//! - A `parquet`-format dataset switched to `delta` becomes a table at its first run: version
//!   0 adds every partition file already there.
//!
//! The protocol subset written is in [`protocol`] (reader 1, writer 2: no table features).

pub mod log;
pub mod protocol;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arrow_schema::SchemaRef;
use serde_json::json;

use self::log::{LOG_DIR, LogStore, Snapshot};
use self::protocol::{Action, Add, Format, Metadata, PROTOCOL, Remove};
use super::LoadError;

/// Test hook: with this variable set the process aborts, as if killed, after the run's files
/// are written and before the commit. Used by the integration tests only.
pub const KILL_BEFORE_COMMIT_ENV: &str = "KLINE_ETL_DELTA_KILL_BEFORE_COMMIT";

/// How many times a commit is retried after losing its version to another writer.
pub const MAX_COMMIT_ATTEMPTS: usize = 1000;

/// Whether the dataset directory `dir` is a Delta table (it has a `_delta_log`).
pub fn is_table(dir: &Path) -> bool {
    dir.join(LOG_DIR).is_dir()
}

/// The files the Delta table at `dir` holds at its latest version, as local paths; `None`
/// when `dir` is not a Delta table (then every file in the hive tree is the data). Cached per
/// table and log length, so the per-series scans of a large dataset replay the log once.
pub fn live_files(dir: &Path) -> Result<Option<Arc<BTreeSet<PathBuf>>>, LoadError> {
    type Cache = Mutex<BTreeMap<PathBuf, (Vec<u64>, Arc<BTreeSet<PathBuf>>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    if !is_table(dir) {
        return Ok(None);
    }
    let versions = log::versions(&dir.join(LOG_DIR))?;
    let cache = CACHE.get_or_init(Cache::default);
    if let Some((seen, files)) = lock(cache).get(dir)
        && *seen == versions
    {
        return Ok(Some(files.clone()));
    }
    let snap = log::read_snapshot(dir, versions.last().copied())?;
    only_own_files(dir, &snap)?;
    let files: Arc<BTreeSet<PathBuf>> =
        Arc::new(snap.files.keys().map(|p| log::local_path(dir, p)).collect());
    lock(cache).insert(dir.to_owned(), (versions, files.clone()));
    Ok(Some(files))
}

/// [`live_files`] of the Delta table `dir` belongs to (`dir` or one of its parents: a series
/// directory inside a table), `None` when it is in none.
pub fn live_files_of(dir: &Path) -> Result<Option<Arc<BTreeSet<PathBuf>>>, LoadError> {
    for d in dir.ancestors().take(8) {
        if is_table(d) {
            return live_files(d);
        }
    }
    Ok(None)
}

/// Keep the files a Delta table holds (all of them when `live` is `None`: a hive dataset).
pub fn retain_live(files: &mut Vec<PathBuf>, live: Option<&BTreeSet<PathBuf>>) {
    if let Some(live) = live {
        files.retain(|f| live.contains(f));
    }
}

/// Every file of the table is one kline-etl writes (see [`crate::layout::is_dataset_file`]):
/// a run finds a partition by its file's name, so a table compacted by another tool
/// (`OPTIMIZE`) is refused rather than read short or written twice.
fn only_own_files(dir: &Path, snap: &Snapshot) -> Result<(), LoadError> {
    for path in snap.files.keys() {
        let name = path.rsplit('/').next().unwrap_or(path);
        if !crate::layout::is_dataset_file(
            &percent_encoding::percent_decode_str(name).decode_utf8_lossy(),
        ) {
            return Err(err(
                dir,
                format!(
                    "version {} holds `{path}`, a file kline-etl did not write (a compaction such as OPTIMIZE by another tool?); kline-etl needs its own file per partition and period: RESTORE the version before it, or write to a new output.path",
                    snap.version.unwrap_or(0)
                ),
            ));
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn err(dir: &Path, reason: impl Into<String>) -> LoadError {
    LoadError::Delta {
        path: dir.to_owned(),
        reason: reason.into(),
    }
}

/// A partition's place in a table independent of its version: its path relative to the
/// table with the version tag removed (`market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet`).
fn canonical(rel: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(rel).decode_utf8_lossy();
    match decoded.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{}", crate::layout::unversioned(name)),
        None => crate::layout::unversioned(&decoded).into_owned(),
    }
}

/// The hive keys and values of a path relative to the table (`market=spot/.../year=2024/x`).
fn partition_values(rel: &str) -> Vec<(String, String)> {
    let mut dirs: Vec<&str> = rel.split('/').collect();
    dirs.pop();
    dirs.iter()
        .filter_map(|seg| seg.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The partition keys of a path relative to the table, in order.
fn partition_keys(rel: &str) -> Vec<String> {
    partition_values(rel).into_iter().map(|(k, _)| k).collect()
}

/// A new file's `add` (relative path `rel`, `size` bytes, written at `modified_ms`), its
/// partition values from its directories.
fn add_of(rel: String, size: u64, modified_ms: i64, stats: String) -> Add {
    Add {
        partition_values: partition_values(&rel)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
        path: rel,
        size: size as i64,
        modification_time: modified_ms,
        data_change: true,
        stats: Some(stats),
    }
}

/// `path` relative to `base`, `/`-separated (a Delta path, an object-store key), `None` when
/// it is not under `base` or not UTF-8.
pub fn slash_relative(base: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

/// A change of one partition in the pending commit.
#[derive(Debug, Clone)]
struct Change {
    /// The file it replaces (the table's, at the version the run started from).
    old: Option<Add>,
    /// The new file.
    add: Add,
}

#[derive(Debug)]
struct State {
    /// The table as committed (the log's latest version this writer knows).
    committed: Snapshot,
    /// Hive files of a dataset that is not a table yet: version 0 adds them.
    base: BTreeMap<String, Add>,
    /// Changed partitions, by canonical path.
    pending: BTreeMap<String, Change>,
    /// The data files' schema (from the first file staged).
    schema: Option<SchemaRef>,
    /// Committed and base files by canonical path (their `add` path).
    by_canon: BTreeMap<String, String>,
}

impl State {
    fn new(committed: Snapshot, base: BTreeMap<String, Add>) -> State {
        let mut s = State {
            committed,
            base,
            pending: BTreeMap::new(),
            schema: None,
            by_canon: BTreeMap::new(),
        };
        s.reindex();
        s
    }

    /// Rebuild [`State::by_canon`] after the committed files or the base changed.
    fn reindex(&mut self) {
        self.by_canon = self
            .committed
            .files
            .keys()
            .chain(self.base.keys())
            .map(|p| (canonical(p), p.clone()))
            .collect();
    }

    /// The file a partition holds now: staged in this run, else committed (or in the base).
    fn current(&self, canon: &str) -> Option<&Add> {
        if let Some(c) = self.pending.get(canon) {
            return Some(&c.add);
        }
        let path = self.by_canon.get(canon)?;
        self.committed
            .files
            .get(path)
            .or_else(|| self.base.get(path))
    }
}

/// One dataset's Delta table while a run writes it: the committed snapshot plus the
/// partitions this run has written and not committed yet. Shared by the run's writer
/// threads.
#[derive(Debug)]
pub struct Table {
    dir: PathBuf,
    name: String,
    state: Mutex<State>,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The version written.
    pub version: u64,
    /// Files added.
    pub added: usize,
    /// Files removed.
    pub removed: usize,
    /// Versions lost to other writers before this one was won.
    pub retries: usize,
}

impl Table {
    /// The table at `dir` (the dataset directory), named `name` in its metadata; a
    /// directory without a log becomes a table at the first commit (with the hive files
    /// already in it).
    pub fn open(dir: &Path, name: &str) -> Result<Arc<Table>, LoadError> {
        let committed = log::read_snapshot(dir, None)?;
        if let Some(p) = committed.protocol {
            p.check(true).map_err(|e| err(dir, e))?;
        }
        only_own_files(dir, &committed)?;
        if committed
            .metadata
            .as_ref()
            .is_some_and(Metadata::has_invariants)
        {
            return Err(err(
                dir,
                "a column of the table has `delta.invariants` (checks kline-etl does not evaluate); write to a new output.path",
            ));
        }
        let base = if committed.version.is_none() {
            existing_files(dir)?
        } else {
            BTreeMap::new()
        };
        Ok(Arc::new(Table {
            dir: dir.to_owned(),
            name: name.to_owned(),
            state: Mutex::new(State::new(committed, base)),
        }))
    }

    /// The table directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds the partition whose unversioned path is `path` (absolute, under
    /// the table), `None` when the table has none.
    pub fn current_file(&self, path: &Path) -> Option<PathBuf> {
        let canon = self.relative(path)?;
        let state = lock(&self.state);
        state
            .current(&canon)
            .map(|a| log::local_path(&self.dir, &a.path))
    }

    /// The files the table holds under `dir` (a series directory) with this run's staged
    /// changes applied, sorted.
    pub fn current_files_under(&self, dir: &Path) -> Vec<PathBuf> {
        let state = lock(&self.state);
        let unchanged = state
            .by_canon
            .iter()
            .filter(|(canon, _)| !state.pending.contains_key(*canon))
            .map(|(_, path)| path);
        let mut out: Vec<PathBuf> = unchanged
            .chain(state.pending.values().map(|c| &c.add.path))
            .map(|p| log::local_path(&self.dir, p))
            .filter(|p| p.starts_with(dir))
            .collect();
        out.sort();
        out
    }

    fn relative(&self, path: &Path) -> Option<String> {
        slash_relative(&self.dir, path)
    }

    /// Record that `file` (absolute, under the table, `bytes` long, of `schema`) now holds
    /// the partition whose unversioned path is `canonical`; committed by the next
    /// [`Table::commit`]. `stats` is the add's statistics JSON.
    pub fn stage(
        &self,
        canonical_path: &Path,
        file: &Path,
        bytes: u64,
        schema: &SchemaRef,
        stats: String,
    ) -> Result<(), LoadError> {
        let (Some(canon), Some(rel)) = (self.relative(canonical_path), self.relative(file)) else {
            return Err(err(
                &self.dir,
                format!("`{}` is not inside the table", file.display()),
            ));
        };
        let add = add_of(rel, bytes, chrono::Utc::now().timestamp_millis(), stats);
        let mut state = lock(&self.state);
        state.schema.get_or_insert_with(|| schema.clone());
        let old = match state.pending.remove(&canon) {
            Some(c) => c.old,
            None => state.current(&canon).cloned(),
        };
        state.pending.insert(canon, Change { old, add });
        Ok(())
    }

    /// Files staged and not committed.
    pub fn pending(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Commit what was staged as one new version through `store` (the table's log, local or
    /// on the object store). Nothing staged and the table exists: no commit (`Ok(None)`).
    /// Losing a version to another writer re-reads its commit and tries the next one unless
    /// that commit touched a partition of this one ([`LoadError::Conflict`], exit 3: the
    /// files stay uncommitted and a rerun redoes them).
    pub async fn commit(
        &self,
        store: LogStore<'_>,
        operation: &str,
    ) -> Result<Option<Committed>, LoadError> {
        let mut retries = 0;
        loop {
            let (version, actions, added, removed) = {
                let mut state = lock(&self.state);
                if state.pending.is_empty() && state.committed.version.is_some() {
                    return Ok(None);
                }
                if state.schema.is_none() {
                    let first = state
                        .base
                        .values()
                        .next()
                        .map(|a| log::local_path(&self.dir, &a.path));
                    state.schema = match first {
                        Some(f) => Some(super::parquet::arrow_schema_of(&f)?.0),
                        None => return Ok(None),
                    };
                }
                let (actions, added, removed) = self.actions(&state, operation)?;
                (state.committed.next_version(), actions, added, removed)
            };
            let text: String = actions.iter().map(|a| a.to_line() + "\n").collect();
            if std::env::var_os(KILL_BEFORE_COMMIT_ENV).is_some() {
                std::process::abort();
            }
            if store.put_if_absent(version, &text).await? {
                let mut state = lock(&self.state);
                state.committed.apply(version, &actions);
                state.base.clear();
                state.pending.clear();
                state.reindex();
                tracing::info!(table = %self.dir.display(), version, added, removed, retries, "committed to the Delta table");
                return Ok(Some(Committed {
                    version,
                    added,
                    removed,
                    retries,
                }));
            }
            retries += 1;
            if retries >= MAX_COMMIT_ATTEMPTS {
                return Err(err(
                    &self.dir,
                    format!("lost {retries} versions in a row to other writers; rerun"),
                ));
            }
            let Some(winner) = store.read(version).await? else {
                continue;
            };
            self.rebase(version, &winner)?;
        }
    }

    /// The actions of the next commit from the state.
    fn actions(
        &self,
        state: &State,
        operation: &str,
    ) -> Result<(Vec<Action>, usize, usize), LoadError> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions = vec![Action::CommitInfo(json!({
            "timestamp": now,
            "operation": operation,
            "operationParameters": { "mode": "Append" },
            "engineInfo": concat!("kline-etl/", env!("CARGO_PKG_VERSION")),
            "clientVersion": concat!("kline-etl-", env!("CARGO_PKG_VERSION")),
            "isBlindAppend": false,
        }))];
        let (mut added, mut removed) = (0, 0);
        if state.committed.version.is_none() {
            actions.push(Action::Protocol(PROTOCOL));
            actions.push(Action::Metadata(self.metadata(state)?));
            let replaced: BTreeSet<&str> = state
                .pending
                .values()
                .filter_map(|c| c.old.as_ref().map(|a| a.path.as_str()))
                .collect();
            for a in state
                .base
                .values()
                .filter(|a| !replaced.contains(a.path.as_str()))
            {
                actions.push(Action::Add(a.clone()));
                added += 1;
            }
        } else if let Some(m) = &state.committed.metadata {
            self.check_partitions(m, state)?;
            if m.append_only() && state.pending.values().any(|c| c.old.is_some()) {
                return Err(err(
                    &self.dir,
                    "the table is `delta.appendOnly`: kline-etl must replace partition files when they change; unset the property or write to a new table",
                ));
            }
        }
        for c in state.pending.values() {
            if let Some(old) = c
                .old
                .as_ref()
                .filter(|o| state.committed.files.contains_key(&o.path) && o.path != c.add.path)
            {
                actions.push(Action::Remove(Remove::of(old, now)));
                removed += 1;
            }
            actions.push(Action::Add(c.add.clone()));
            added += 1;
        }
        Ok((actions, added, removed))
    }

    fn metadata(&self, state: &State) -> Result<Metadata, LoadError> {
        let columns: Vec<String> = state
            .pending
            .values()
            .map(|c| &c.add)
            .chain(state.base.values())
            .next()
            .map(|a| partition_keys(&a.path))
            .unwrap_or_default();
        let schema = state
            .schema
            .as_ref()
            .ok_or_else(|| err(&self.dir, "no schema"))?;
        let schema_string =
            protocol::schema_string(schema, &columns).map_err(|e| err(&self.dir, e))?;
        let m = Metadata {
            id: uuid_v4(),
            name: Some(self.name.clone()),
            format: Format {
                provider: "parquet".into(),
                options: BTreeMap::new(),
            },
            schema_string,
            partition_columns: columns,
            configuration: BTreeMap::new(),
            created_time: Some(chrono::Utc::now().timestamp_millis()),
        };
        self.check_partitions(&m, state)?;
        Ok(m)
    }

    /// Every file's hive keys are the table's partition columns, in order.
    fn check_partitions(&self, m: &Metadata, state: &State) -> Result<(), LoadError> {
        for a in state
            .pending
            .values()
            .map(|c| &c.add)
            .chain(state.base.values())
        {
            let keys = partition_keys(&a.path);
            if keys != m.partition_columns {
                return Err(err(
                    &self.dir,
                    format!(
                        "`{}` has the partition keys {keys:?} but the table is partitioned by {:?}; write it to another output.path",
                        a.path, m.partition_columns
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Another writer won `version` with `winner`: apply it, unless it touched one of our
    /// partitions or changed the table under us.
    fn rebase(&self, version: u64, winner: &[Action]) -> Result<(), LoadError> {
        let mut state = lock(&self.state);
        let mut touched = BTreeSet::new();
        for a in winner {
            match a {
                Action::Add(x) => {
                    touched.insert(canonical(&x.path));
                }
                Action::Remove(x) => {
                    touched.insert(canonical(&x.path));
                }
                Action::Metadata(m) => {
                    if let Some(ours) = &state.committed.metadata
                        && (ours.schema_string != m.schema_string
                            || ours.partition_columns != m.partition_columns)
                    {
                        return Err(err(
                            &self.dir,
                            format!(
                                "version {version}, written by another writer meanwhile, changed the table's schema; rerun"
                            ),
                        ));
                    }
                }
                Action::Protocol(p) => p.check(true).map_err(|e| err(&self.dir, e))?,
                _ => {}
            }
        }
        let creating = state.committed.version.is_none();
        if let Some(canon) = state
            .pending
            .keys()
            .find(|k| touched.contains(*k) && !creating)
        {
            return Err(LoadError::Conflict {
                path: self.dir.clone(),
                reason: format!(
                    "version {version}, written by another writer meanwhile, changed the partition `{canon}` this run wrote too; nothing of this run was committed, rerun it"
                ),
            });
        }
        state.committed.apply(version, winner);
        if creating {
            // The winner created the table (from the same hive files, if any): from now on
            // this run's changes replace what the winner's version holds.
            state.base.clear();
        }
        state.reindex();
        if creating {
            let State {
                pending,
                committed,
                by_canon,
                ..
            } = &mut *state;
            for (canon, c) in pending.iter_mut() {
                c.old = by_canon
                    .get(canon)
                    .and_then(|p| committed.files.get(p))
                    .cloned();
            }
            if let Some(m) = state.committed.metadata.clone() {
                self.check_partitions(&m, &state)?;
            }
        }
        Ok(())
    }
}

/// The Parquet files of a hive dataset that is not a table yet, as the adds of version 0
/// (its partition files, by their unversioned names: a versioned name is a table file some
/// writer has not committed yet, another shard creating the table at the same time or a
/// killed run, and never base).
fn existing_files(dir: &Path) -> Result<BTreeMap<String, Add>, LoadError> {
    let mut out = BTreeMap::new();
    for file in super::snapshot::parquet_files(dir)? {
        let Some(rel) = slash_relative(dir, &file) else {
            continue;
        };
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if crate::layout::unversioned(name) != name {
            continue;
        }
        let meta = fs_err::metadata(&file)?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let rows = super::parquet::arrow_schema_of(&file)?.1;
        let stats = json!({ "numRecords": rows }).to_string();
        out.insert(rel.clone(), add_of(rel, meta.len(), modified, stats));
    }
    Ok(out)
}

/// A random (version 4) UUID for a new table's id.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().fold(String::with_capacity(32), |mut s, x| {
        use std::fmt::Write as _;
        let _ = write!(s, "{x:02x}");
        s
    });
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Where a table file holding `bytes` for the partition file `path` goes: its name with
/// the first 16 hex digits of the bytes' SHA-256 ([`crate::layout::versioned_file`]).
pub fn versioned_path(path: &Path, bytes: &[u8]) -> PathBuf {
    let mut tag = crate::digest::sha256_hex(bytes);
    tag.truncate(crate::layout::VERSION_TAG_LEN);
    crate::layout::versioned_file(path, &tag)
}

/// The statistics of an add: rows, and the first and last value of a time column.
pub fn stats_json(rows: u64, time: Option<(&str, i64, i64, arrow_schema::TimeUnit)>) -> String {
    let mut v = json!({ "numRecords": rows });
    if let Some((col, min, max, unit)) = time {
        v["minValues"] = json!({ col: protocol::stats_time(min, unit) });
        v["maxValues"] = json!({ col: protocol::stats_time(max, unit) });
        v["nullCount"] = json!({ col: 0 });
    }
    v.to_string()
}

#[cfg(test)]
mod tests;
