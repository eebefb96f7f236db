//! Unit tests of the Delta table writer: staging, commits, conflicts.
