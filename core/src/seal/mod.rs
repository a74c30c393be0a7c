//! The seal: how the root key is protected while the node is down.
//!
//! The root key encrypts the barrier's keyring. At `sys/init` it is either split
//! into Shamir shares (the default; shares are returned once and never stored)
//! or sealed with a static key file (`seal "static"`, for dev and tests).
//! Unsealing rebuilds the root key and opens the keyring with it.

pub mod config;
pub mod shamir;
pub mod static_key;
pub mod unseal;

pub use config::{SealConfig, SealKind};
pub use unseal::{UnsealError, UnsealProgress};
