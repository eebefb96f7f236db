//! Atomic file replacement: write a dot-prefixed temporary sibling, fsync it, let the caller
//! check it, rename it over the destination and fsync the directory. A reader sees the old
//! file or the new one, never a partial one; a crash leaves at most a dot-prefixed temporary
//! file that every hive reader ignores.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::LoadError;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The directory holding `path` (`.` for a bare file name, whose parent is the empty path).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The temporary sibling used while replacing `path` (`.<name>.tmp-<pid>-<n>`).
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = parent(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Replace `path` with `bytes` atomically. `check` runs on the fsynced temporary file before
/// the rename (for example a read-back of a Parquet footer); if it fails, nothing is renamed.
/// `keep_temp_on` says which errors leave the temporary file behind (crash-safety tests).
///
/// A failing file-system operation (a full disk, a directory that is a file) is
/// [`LoadError::Write`], naming `path` (and, through the operation's own message, the
/// temporary file); the destination is left as it was and the temporary file removed.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    check: impl FnOnce(&Path) -> Result<(), LoadError>,
    keep_temp_on: impl Fn(&LoadError) -> bool,
) -> Result<(), LoadError> {
    replace_with(
        path,
        |tmp| {
            let mut f = fs_err::File::create(tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        },
        check,
        keep_temp_on,
    )
}

/// [`write_atomic`] with the temporary file's contents written by `write` (a fault injected
/// there in tests takes the same path as a real one).
fn replace_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
    check: impl FnOnce(&Path) -> Result<(), LoadError>,
    keep_temp_on: impl Fn(&LoadError) -> bool,
) -> Result<(), LoadError> {
    let failed = |source: std::io::Error| LoadError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = parent(path);
    fs_err::create_dir_all(dir).map_err(failed)?;
    let tmp = temp_path(path);
    let result = (|| {
        write(&tmp).map_err(failed)?;
        check(&tmp)?;
        fs_err::rename(&tmp, path).map_err(failed)?;
        sync_dir(dir).map_err(|e| match e {
            LoadError::Io(source) => failed(source),
            other => other,
        })?;
        Ok(())
    })();
    if let Err(e) = result {
        if !keep_temp_on(&e) {
            let _ = fs_err::remove_file(&tmp);
        }
        return Err(e);
    }
    remove_stale_temps(path);
    Ok(())
}

/// Replace `path` with `value` as pretty JSON and a final newline, atomically: the run
/// reports, the resume file and the manifests.
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), LoadError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| LoadError::Report {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, |_| Ok(()), |_| false)
}

/// Fsync a directory so a rename in it is durable (a no-op where directories cannot be opened).
pub fn sync_dir(dir: &Path) -> Result<(), LoadError> {
    #[cfg(unix)]
    {
        fs_err::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Remove `.<name>.tmp-*` leftovers of crashed runs for `path`, after `path` was just written
/// successfully. A temporary file of another process that is still running is left alone:
/// processes that may write one file at once (snapshot runs, which take no lock) must not
/// remove each other's file between its write and its rename.
pub fn remove_stale_temps(path: &Path) {
    let dir = parent(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.tmp-");
    if let Ok(entries) = fs_err::read_dir(dir) {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = file.strip_prefix(&prefix)
                && is_stale(rest, &e)
            {
                let _ = fs_err::remove_file(e.path());
            }
        }
    }
}

/// Whether the temporary file whose name ends in `<pid>-<n>` (`rest`) is a leftover: this
/// process's own, or of a process that is gone (Linux: no `/proc/<pid>`; elsewhere: older
/// than ten minutes, far longer than any one write takes).
fn is_stale(rest: &str, entry: &fs_err::DirEntry) -> bool {
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return true;
    };
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        return !proc.join(pid.to_string()).exists();
    }
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn only_temporaries_of_gone_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        let own = temp_path(&path);
        // The parent of this test process is alive (it runs the tests); pid 4194304 is above
        // Linux's pid limit, so no process has it.
        let live = dir.path().join(format!(
            ".summary.json.tmp-{}-0",
            std::os::unix::process::parent_id()
        ));
        let gone = dir.path().join(".summary.json.tmp-4194304-0");
        for p in [&own, &live, &gone] {
            fs_err::write(p, b"x").unwrap();
        }
        remove_stale_temps(&path);
        assert!(!own.exists() && !gone.exists());
        assert!(
            live.exists(),
            "another running process's temporary file is kept"
        );
    }

    #[test]
    fn replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/_summary.json");
        write_atomic(&p, b"one", |_| Ok(()), |_| false).unwrap();
        assert_eq!(parent(Path::new("c.svg")), Path::new("."));
        write_atomic(&p, b"two", |_| Ok(()), |_| false).unwrap();
        assert_eq!(fs_err::read(&p).unwrap(), b"two");
        let failed = write_atomic(
            &p,
            b"three",
            |t| {
                Err(LoadError::Verify {
                    path: t.to_owned(),
                    reason: "no".into(),
                })
            },
            |_| false,
        );
        assert!(failed.is_err());
        assert_eq!(fs_err::read(&p).unwrap(), b"two");
        let names: Vec<String> = fs_err::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["_summary.json"]);
    }

    /// A full disk while a file is replaced (injected as `ENOSPC`, os error 28, where the
    /// bytes are written: the sandbox cannot fill a real disk): the error names the file, the
    /// old contents stay and no temporary file is left.
    #[test]
    fn a_full_disk_names_the_file_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("klines/market=spot/part.parquet");
        write_atomic(&p, b"old", |_| Ok(()), |_| false).unwrap();
        let err = replace_with(
            &p,
            |tmp| {
                fs_err::write(tmp, b"half")?;
                Err(std::io::Error::from_raw_os_error(28))
            },
            |_| Ok(()),
            |_| false,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(&err, LoadError::Write { path, source }
            if path == &p && source.kind() == std::io::ErrorKind::StorageFull));
        assert!(msg.contains(&format!("`{}`", p.display())), "{msg}");
        assert!(msg.contains("os error 28"), "{msg}");
        assert_eq!(err.exit_code(), crate::exit::ExitCode::Output);
        assert_eq!(fs_err::read(&p).unwrap(), b"old");
        let names: Vec<String> = fs_err::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["part.parquet"], "no temporary file left");
    }

    /// Another I/O error (a file where the partition's directory belongs) names the file too.
    #[test]
    fn a_file_in_place_of_the_directory_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("klines"), b"not a directory").unwrap();
        let p = dir.path().join("klines/market=spot/part.parquet");
        let err = write_atomic(&p, b"new", |_| Ok(()), |_| false).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LoadError::Write { .. }), "{err:?}");
        assert!(
            msg.contains(&format!("cannot write `{}`", p.display())),
            "{msg}"
        );
        assert!(msg.contains("klines"), "{msg}");
    }
}
