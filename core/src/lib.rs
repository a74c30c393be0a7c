//! Cairn's secrets core: a sealed, encrypted store with secrets engines, tokens,
//! ACL policies and an audit log, behind a Vault-compatible HTTP API.
//!
//! Layers, bottom to top: [`storage`] (ciphertext only) -> [`barrier`]
//! (AES-256-GCM) -> [`seal`], [`policy`], [`auth`], [`audit`], [`engines`] ->
//! [`api`] (HTTP). Only `api` and `server` know about HTTP.

pub mod api;
pub mod audit;
pub mod auth;
pub mod barrier;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod engines;
pub mod lease;
pub mod listener;
pub mod node;
pub mod policy;
pub mod seal;
pub mod server;
pub mod storage;
pub mod time;
pub mod tls_files;
