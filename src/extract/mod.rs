//! Extraction: the REST client, pager, shared weight budget and retry policy.

pub mod budget;
pub mod paging;
pub mod retry;
