//! The `kline-etl` binary: parse the command line, run, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    kline_etl::exit::ExitCode::Ok.into()
}
