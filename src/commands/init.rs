//! `kline-etl init [PATH]`: write an annotated starter pipeline (every common key with a
//! comment, the rest pointed at) that validates as written. An existing file is never
//! overwritten, and the file appears whole or not at all (written to a temporary file, then
//! linked into place, which fails if the name was taken meanwhile).

use std::path::{Path, PathBuf};

use crate::cli::InitArgs;

/// The starter pipeline.
pub const STARTER: &str = include_str!("starter.yaml");

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The file exists.
    #[error("`{0}` already exists; it is left as it is. Choose another PATH or remove the file")]
    Exists(PathBuf),
    /// It could not be written.
    #[error("cannot write `{path}`")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// The exit code: 2 for an existing file (fix the input), 4 for a write error.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            InitError::Exists(_) => crate::exit::ExitCode::Usage,
            InitError::Write { .. } => crate::exit::ExitCode::Output,
        }
    }
}

/// `kline-etl init`.
pub fn init(args: &InitArgs) -> crate::exit::ExitCode {
    match write_starter(&args.path) {
        Ok(()) => {
            crate::console::notice(&format!(
                "wrote `{}`; check it with `kline-etl validate {0}`, run it with `kline-etl run {0}`",
                args.path.display()
            ));
            crate::exit::ExitCode::Ok
        }
        Err(e) => {
            super::report(&e);
            e.exit_code()
        }
    }
}

/// Write [`STARTER`] to `path`, refusing to replace anything.
pub fn write_starter(path: &Path) -> Result<(), InitError> {
    if path.symlink_metadata().is_ok() {
        return Err(InitError::Exists(path.to_owned()));
    }
    let write = |source| InitError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(write)?;
    let name = path.file_name().map_or_else(
        || "pipeline.yaml".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dir.join(format!(".{name}.init-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, STARTER.as_bytes())?;
        f.sync_all()?;
        // Unlike a rename, a hard link fails when the name exists.
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(InitError::Exists(path.to_owned()))
        }
        Err(e) => Err(write(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_validates_and_plans() {
        let p = crate::config::parse_str("starter.yaml", STARTER, &|_| None).unwrap();
        assert_eq!(p.name, "starter");
        assert!(!p.intervals.is_empty());
        let plan = crate::plan::build(&p, 1_700_000_000_000);
        assert!(!plan.tasks.is_empty());
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/p.yaml");
        write_starter(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), STARTER);
        std::fs::write(&path, "mine").unwrap();
        let e = write_starter(&path).unwrap_err();
        assert!(matches!(e, InitError::Exists(_)), "{e}");
        assert_eq!(e.exit_code(), crate::exit::ExitCode::Usage);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
