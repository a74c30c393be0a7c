//! The controllers: SecretPolicy, DynamicCredential, and the pod-lease
//! garbage collector.

pub mod adoption;
pub mod credential;
pub mod dynamic_credential;
pub mod events;
pub mod pod_gc;
pub mod rollout;
pub mod secret_policy;
pub mod status;
