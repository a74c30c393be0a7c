//! The custom resources of group `cairn.dev`, version `v1alpha1`: their Rust
//! types (the source of the CRD YAML in `crds/`) and the pieces they share.

mod condition;
mod dynamic_credential;
mod secret_policy;
mod yaml;

pub use condition::{ready_condition, ConditionReason, READY};
pub use dynamic_credential::{
    DynamicCredential, DynamicCredentialSpec, DynamicCredentialStatus, RestartTarget,
    RestartTargetKind, RotationStatus,
};
pub use secret_policy::{
    Capability, PolicyRule, SecretPolicy, SecretPolicySpec, SecretPolicyStatus,
};
pub use yaml::{crd_yaml, crd_yaml_files};

/// The API group of Cairn's custom resources.
pub const GROUP: &str = "cairn.dev";
/// The finalizer the operator puts on both kinds, so it can clean up the
/// core (policies, roles, leases) before an object goes.
pub const FINALIZER: &str = "cairn.dev/cleanup";
