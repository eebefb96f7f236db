//! Process exit codes: the one place that says what each code means. The README's exit-code
//! table is generated from the same list (see `ExitCode::ALL`), and schedulers act on them.

/// What a `kline-etl` process tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// Everything asked for was done (or there was nothing new).
    Ok,
    /// The run finished but some tasks failed (for example an invalid symbol, retries
    /// exhausted, a quality check set to `fail`). Other tasks' data was written. Alert a human
    /// or run `kline-etl repair`.
    TasksFailed,
    /// Usage or configuration error (bad flag, invalid pipeline file). Nothing was fetched or
    /// written. Fix the input; retrying will not help.
    Usage,
    /// The run stopped early but everything written is consistent: an IP ban outlasted
    /// `source.max_ban_wait`, or it was interrupted (Ctrl-C, SIGTERM). Rerun later to resume.
    Resumable,
    /// The output could not be written or read (unwritable directory, full disk, a corrupt or
    /// foreign Parquet file in the dataset). Nothing already written was damaged.
    Output,
    /// Another run holds the dataset's lock (with `--lock-wait` exhausted or `--no-wait`).
    Locked,
    /// A bug in kline-etl. Please report it.
    Internal,
}

impl ExitCode {
    /// Every exit code, in numeric order.
    pub const ALL: [ExitCode; 7] = [
        ExitCode::Ok,
        ExitCode::TasksFailed,
        ExitCode::Usage,
        ExitCode::Resumable,
        ExitCode::Output,
        ExitCode::Locked,
        ExitCode::Internal,
    ];

    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::TasksFailed => 1,
            ExitCode::Usage => 2,
            ExitCode::Resumable => 3,
            ExitCode::Output => 4,
            ExitCode::Locked => 5,
            ExitCode::Internal => 70,
        }
    }

    /// A short machine-friendly name, used in `_kline_etl/summary.json` and JSON logs.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::TasksFailed => "tasks_failed",
            ExitCode::Usage => "usage",
            ExitCode::Resumable => "resumable",
            ExitCode::Output => "output",
            ExitCode::Locked => "locked",
            ExitCode::Internal => "internal",
        }
    }
}

/// The outcome word of a run report, with the words summaries written before 0.1 used for a
/// resumable stop (`cancelled`, `banned_resumable`) read as the run's own word, `resumable`.
pub fn outcome_word(recorded: &str) -> &str {
    match recorded {
        "cancelled" | "banned_resumable" => ExitCode::Resumable.name(),
        other => other,
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_outcome_words_read_as_resumable() {
        assert_eq!(outcome_word("cancelled"), "resumable");
        assert_eq!(outcome_word("banned_resumable"), "resumable");
        assert_eq!(outcome_word("tasks_failed"), "tasks_failed");
    }

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u8> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), ExitCode::ALL.len());
    }
}
