//! `cairn-client`: the typed async client of Cairn's HTTP API, which is
//! Vault's (paths under `/v1/`, token in `X-Vault-Token`, the
//! `{request_id, lease_id, ..., data, auth}` envelope, `{"errors": [...]}`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_client::ClientError> {
//! let client = cairn_client::Client::new("https://127.0.0.1:8200", Some("token".into()))?;
//! let secret = client.kv2("secret").read("app/db", None).await?;
//! # Ok(()) }
//! ```
//!
//! Tokens never appear in `Debug` output of the client or of the response
//! types that carry them.

#![forbid(unsafe_code)]

pub mod agent_config;
mod audit;
mod auth_kubernetes;
mod batch;
mod client;
mod envelope;
mod error;
mod generic;
mod kv;
mod lease;
mod mounts;
mod policy;
mod sys;
mod token;
mod watch;

pub use audit::{AuditDevice, EnableAudit};
pub use auth_kubernetes::KubernetesRole;
pub use batch::MAX_BATCH_PATHS;
pub use client::{Client, ClientOptions};
pub use envelope::{Auth, Secret};
pub use error::ClientError;
pub use kv::{
    Kv2, KvConfig, KvData, KvMetadata, KvMetadataUpdate, KvSubkeys, KvVersionMetadata,
    KvVersionState,
};
pub use lease::{LeaseInfo, LeaseOwner, LeaseRenewal, LEASE_OWNER_HEADER};
pub use mounts::{EnableMount, MountConfig, MountConfigInput, MountInfo, MountTune, MountTuneInfo};
pub use policy::AclPolicy;
pub use sys::{
    Health, HealthQuery, HealthStatus, InitRequest, InitResponse, InitStatus, KeyStatus, SealStatus,
};
pub use token::{TokenCreateRequest, TokenInfo};
pub use watch::WatchState;
