//! The dataset lock, `<root>/klines/_kline_etl/.lock`: one writer per output dataset at a time.
//!
//! The lock is an advisory exclusive lock on the file (`flock` on Unix, `LockFileEx` on
//! Windows), held for the whole run. The operating system releases it when the holder exits
//! in any way, `kill -9` included, so a lock can never be left stuck; the file's contents (pid,
//! host, start time, pipeline) only serve the message a second run prints, and a non-empty file
//! found by a run that *gets* the lock is a stale one left by a killed run, which is taken over
//! and reported. The lock file is dot-prefixed, so readers of the dataset ignore it.
//!
//! Advisory locks on network file systems (NFS, SMB) depend on the server; run one writer per
//! dataset there by scheduling.

use std::fs::{File, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::LoadError;

/// The lock file name under `<root>/klines/_kline_etl/`.
pub const FILE_NAME: &str = crate::layout::LOCK_FILE;

/// Who holds (or held) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Host name, when known.
    pub host: String,
    /// When the lock was taken (UTC).
    pub since: String,
    /// The pipeline's `name`.
    pub pipeline: String,
}

/// A held dataset lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DatasetLock {
    file: File,
    path: PathBuf,
    /// The stale owner this lock took over, if any.
    pub took_over: Option<Owner>,
}

impl DatasetLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DatasetLock {
    fn drop(&mut self) {
        // An empty file marks a clean release; the OS drops the lock with the handle.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Where the lock file of an output root lives. Shards of one pipeline write disjoint series
/// and their own summary and resume files, so each shard has its own lock
/// (`.kline-etl.shard-2-of-4.lock`).
pub fn path(root: &Path, shard: Option<crate::shard::Shard>) -> PathBuf {
    crate::layout::lock_file(root, shard)
}

fn read_owner(file: &mut File) -> Option<Owner> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            fs_err::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Who holds the lock of the dataset under `root` right now, if anyone (never creates the
/// lock file, never blocks).
pub fn holder(root: &Path) -> Option<Owner> {
    holder_file(&path(root, None))
}

/// [`holder`] of the lock file `path`.
pub fn holder_file(path: &Path) -> Option<Owner> {
    let mut file = File::open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(read_owner(&mut file).unwrap_or(Owner {
            pid: 0,
            host: String::new(),
            since: String::new(),
            pipeline: "unknown".to_owned(),
        })),
        Err(TryLockError::Error(_)) => None,
    }
}

/// Take the lock of the dataset under `root`, waiting up to `wait` for another run to finish.
/// [`LoadError::Locked`] says who holds it when the wait runs out.
pub fn acquire(
    root: &Path,
    shard: Option<crate::shard::Shard>,
    pipeline: &str,
    wait: Duration,
) -> Result<DatasetLock, LoadError> {
    super::legacy::refuse_old_klines(root)?;
    acquire_any(root, shard, pipeline, wait)
}

/// [`acquire`] without the layout check (for `kline-etl migrate`, which converts a layout-1
/// dataset under its lock).
pub fn acquire_any(
    root: &Path,
    shard: Option<crate::shard::Shard>,
    pipeline: &str,
    wait: Duration,
) -> Result<DatasetLock, LoadError> {
    acquire_file(path(root, shard), pipeline, wait)
}

/// [`acquire`] for a dataset whose lock file is `path` (a dataset with a directory of its own,
/// e.g. `<root>/funding_rate/_kline_etl/.lock`, see [`crate::dataset`]).
pub fn acquire_file(
    path: PathBuf,
    pipeline: &str,
    wait: Duration,
) -> Result<DatasetLock, LoadError> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let mut file = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?
        .into_parts()
        .0;
    let deadline = Instant::now() + wait;
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let holder = read_owner(&mut file);
                if Instant::now() >= deadline {
                    return Err(LoadError::Locked {
                        path,
                        holder: holder.map_or_else(
                            || "another kline-etl run".to_owned(),
                            |o| {
                                format!(
                                    "pid {} on `{}` (pipeline `{}`, since {})",
                                    o.pid, o.host, o.pipeline, o.since
                                )
                            },
                        ),
                        waited_secs: wait.as_secs(),
                    });
                }
                if !announced {
                    tracing::info!(lock = %path.display(), "another run is writing this dataset; waiting for it to finish");
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(TryLockError::Error(e)) => {
                return Err(LoadError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot lock `{}`: {e}", path.display()),
                )));
            }
        }
    }
    let took_over = read_owner(&mut file);
    if let Some(o) = &took_over {
        tracing::warn!(
            pid = o.pid,
            host = %o.host,
            since = %o.since,
            "took over a stale lock: the run that held it ended without releasing it (killed or crashed); its unfinished windows are resumed"
        );
    }
    let owner = Owner {
        pid: std::process::id(),
        host: host_name(),
        since: crate::time::fmt_ms(chrono::Utc::now().timestamp_millis()),
        pipeline: pipeline.to_owned(),
    };
    let text = serde_json::to_string(&owner).unwrap_or_default();
    // The owner's line is the first write of a run: a full disk shows here, with the path.
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        return Err(LoadError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot write the lock file `{}`: {e}", path.display()),
        )));
    }
    Ok(DatasetLock {
        file,
        path,
        took_over,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_release_lets_it_in() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), None, "a", Duration::ZERO).unwrap();
        assert!(first.took_over.is_none());
        let err = acquire(dir.path(), None, "b", Duration::from_millis(300)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("pipeline `a`"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert_eq!(err.exit_code(), crate::exit::ExitCode::Locked);
        drop(first);
        let second = acquire(dir.path(), None, "b", Duration::ZERO).unwrap();
        assert!(second.took_over.is_none(), "a clean release is not stale");
    }

    #[test]
    fn a_stale_owner_record_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), None);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(
            &p,
            r#"{"pid":999999,"host":"gone","since":"2024-01-01T00:00:00Z","pipeline":"old"}"#,
        )
        .unwrap();
        let lock = acquire(dir.path(), None, "new", Duration::ZERO).unwrap();
        assert_eq!(lock.took_over.as_ref().unwrap().pid, 999_999);
        let text = fs_err::read_to_string(&p).unwrap();
        assert!(text.contains("\"pipeline\":\"new\""), "{text}");
    }
}
