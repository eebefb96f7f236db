//! Extraction: the REST client, pager, shared weight budget and retry policy.
