//! Leases: every dynamic secret has one. The manager stores them (sealed,
//! under `sys/expire/`), renews them, revokes them through the engine that
//! issued them, and runs the expiry queue that revokes them on time.
//!
//! - `entry.rs`: the stored lease and its owner (a token, or a Kubernetes object);
//! - `manager.rs`: issue / renew / revoke / lookup / list;
//! - `expiry.rs`: the in-memory queue of due times and the worker that drains it.

mod entry;
mod expiry;
mod manager;
#[cfg(test)]
mod tests;

pub use entry::{LeaseEntry, Owner};
pub use manager::{Issued, LeaseError, LeaseManager, LeaseStats};
