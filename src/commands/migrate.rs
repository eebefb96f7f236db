//! `kline-etl migrate PATH [--dry-run]`: convert a dataset written in layout version 1 into
//! layout version 2 in place ([`crate::load::migrate`] does the work).

use std::io::Write;
use std::path::PathBuf;

use crate::exit::ExitCode;
use crate::layout;
use crate::load::migrate::{migrate as convert, needs_migration};

use super::{output_root, report};

/// `kline-etl migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// An output root (the pipeline's `output.path`) or a pipeline file.
    #[arg(value_name = "PIPELINE|PATH")]
    pub path: PathBuf,
    /// List what would be converted, moved and removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Run `kline-etl migrate`: the steps on stdout, a closing line, errors on stderr with their
/// exit code (4 output, 5 locked).
pub fn migrate(args: &MigrateArgs) -> ExitCode {
    let root = match output_root(&args.path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let mut out = std::io::stdout().lock();
    if !needs_migration(&root) {
        let _ = writeln!(
            out,
            "`{}` is already in layout version {}: nothing to migrate",
            root.display(),
            layout::LAYOUT_VERSION
        );
        return ExitCode::Ok;
    }
    let done = convert(&root, args.dry_run, &mut out).map_err(|e| {
        report(&e);
        e.exit_code()
    });
    let funding = done.and_then(|r| {
        crate::dataset::funding_rate::store::migrate_v1(&root, args.dry_run, &mut out)
            .map(|f| (r, f))
            .map_err(|e| {
                report(&e);
                e.exit_code()
            })
    });
    match funding {
        Ok((r, f)) => {
            let _ = writeln!(
                out,
                "{} {} partition files ({} rows) into {} layout-{} files, {} reports moved{}",
                if args.dry_run {
                    "would convert"
                } else {
                    "converted"
                },
                r.files_converted + f.files,
                r.rows + f.rows,
                r.files_written + f.files,
                layout::LAYOUT_VERSION,
                r.reports_moved + f.reports,
                if args.dry_run {
                    " (dry run: nothing changed)"
                } else {
                    ""
                }
            );
            ExitCode::Ok
        }
        Err(code) => code,
    }
}
