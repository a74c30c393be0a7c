//! `cairn-injector`: the mutating admission webhook that adds the Cairn agent
//! to pods annotated `cairn.dev/inject: "true"` (or the Vault injector's
//! `vault.hashicorp.com/agent-inject`).
//!
//! The decision is the pure [`mutate`] (pod and [`Config`] in, JSON Patch or
//! [`Deny`] out); [`review`] speaks `AdmissionReview` v1 around it; [`server`]
//! serves it over TLS with a certificate reloaded from files ([`tls`]).

#![forbid(unsafe_code)]

pub mod agent;
pub mod annotations;
pub mod cli;
pub mod config;
pub mod deny;
pub mod metrics;
pub mod mutate;
pub mod review;
pub mod server;
pub mod tls;
pub mod vault_template;

pub use config::Config;
pub use deny::Deny;
pub use mutate::mutate;
pub use review::review;
