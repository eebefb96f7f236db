//! `kline-etl status`: per series on disk, what is stored, missing and pending, and the last run.

use crate::cli::StatusArgs;
use crate::exit::ExitCode;

use super::{output_root, print, print_json, report};

pub fn status(args: &StatusArgs) -> ExitCode {
    let root = match output_root(&args.path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let st = match crate::status::status(&root) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return e.exit_code();
        }
    };
    if args.json {
        return print_json(&st);
    }
    print(&crate::status::render(&st));
    ExitCode::Ok
}
