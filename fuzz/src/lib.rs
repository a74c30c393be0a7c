//! The checks behind Cairn's `cargo fuzz` targets, as a library so that the
//! saved regression inputs replay under plain `cargo test` on stable Rust.
//!
//! Each module has one `check(&[u8])` that runs an input and panics when an
//! invariant breaks; the targets in `fuzz_targets/` only call it.

pub mod policy;
pub mod raft_codec;
pub mod router;
pub mod unseal;
