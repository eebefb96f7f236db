//! `kline-etl migrate PATH [--dry-run]`: convert a dataset written in layout version 1 into
//! layout version 2 in place ([`crate::load::migrate`] does the work).

use std::io::Write;

use crate::cli::MigrateArgs;
use crate::exit::ExitCode;
use crate::layout;
use crate::load::migrate::{migrate as convert, needs_migration};

use super::{output_root, report};

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
    let observer = |r: &std::path::Path| -> std::sync::Arc<dyn crate::load::WriteObserver> {
        std::sync::Arc::new(crate::summary::dataset::Collector::new(r.to_owned()))
    };
    let done = convert(&root, args.dry_run, &mut out, &observer).map_err(|e| {
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
