//! Cairn's secrets core: a sealed, encrypted store with secrets engines, tokens,
//! ACL policies and an audit log, behind a Vault-compatible HTTP API.
//!
//! Layers, bottom to top: [`storage`] (ciphertext only) -> [`barrier`]
//! (AES-256-GCM) -> [`seal`], [`policy`], [`auth`], [`audit`], [`engines`] ->
//! [`api`] (HTTP). Only `api` and `server` know about HTTP.

pub mod barrier;
pub mod engines;
pub mod storage;
pub mod cli;
pub mod server;
pub mod auth;
pub mod seal;
pub mod time;
pub mod config;
pub mod policy;
pub mod audit;
pub mod api;
pub mod node;
pub mod listener;
pub mod cluster;
pub mod lease;
