//! Tests against the real lab live in `tests/`; this crate has no library code.
