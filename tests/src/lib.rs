//! Cairn's cross-program test harness.
//!
//! - [`apiserver::TestApiServer`]: an in-process Kubernetes API server (no kube-apiserver can run
//!   on the test machines) that kube-rs clients, controllers and the programs under test talk to,
//!   with TokenRequest / TokenReview for Kubernetes auth and a request recorder.
//! - [`rbac::Rules`]: RBAC rules parsed from (Cluster)Role YAML, to check the recorder's calls.
//! - [`chart`]: the Helm chart rendered with `helm template`, and the RBAC it binds to each
//!   component's service account.
//! - [`core_server::CoreServer`]: a real `cairn server --dev` process.
//! - [`postgres::Postgres`]: a real PostgreSQL server in a temporary directory.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod chart;
pub mod core_server;
pub mod or_fail;
pub mod ports;
pub mod postgres;
pub mod rbac;

pub use apiserver::{TestApiServer, TestApiServerBuilder};
pub use core_server::CoreServer;
pub use postgres::Postgres;
