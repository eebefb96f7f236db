//! Summary: mergeable statistics, `_summary.json` and the run report.
