//! Transform: exchange rows (JSON pages) into typed Arrow batches, plus quality checks.
