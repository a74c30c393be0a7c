//! `cairn-operator`: reconciles the `SecretPolicy` and `DynamicCredential`
//! custom resources against the Cairn core, and revokes the leases of pods
//! that are gone.
//!
//! Pure decisions (path confinement, policy text, role unions, the
//! credential life cycle) live in [`templates`], [`policy_hcl`], [`roles`]
//! and [`rotation`]; the controllers in [`controllers`] perform them.

#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod config;
pub mod context;
pub mod controllers;
pub mod core_session;
pub mod crd;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod policy_hcl;
pub mod roles;
pub mod rotation;
pub mod run;
pub mod templates;
