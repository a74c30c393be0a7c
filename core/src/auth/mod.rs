//! Authentication: who is calling. Tokens are the one credential every request
//! carries; auth methods (mounted under `auth/` through `sys/auth`) exchange
//! other proofs, such as a Kubernetes service-account token, for tokens.

pub mod kubernetes;
pub mod token;

use std::collections::BTreeMap;

/// What an auth method grants after a successful login: the token the core
/// then issues. Times are seconds; 0 means the system default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginGrant {
    /// Policies of the token (`default` is added unless `no_default_policy`).
    pub policies: Vec<String>,
    /// Leave out the `default` policy.
    pub no_default_policy: bool,
    /// Initial TTL.
    pub ttl: i64,
    /// Hard cap on the token's life.
    pub max_ttl: i64,
    /// Periodic tokens renew to this TTL forever.
    pub period: i64,
    /// Shown in lookups and the audit log, e.g. `kubernetes-team-a-app`.
    pub display_name: String,
    /// Token metadata (e.g. `service_account_namespace`, which binds the
    /// leases the token may own to its namespace).
    pub meta: BTreeMap<String, String>,
    /// The identity's stable name for the reply's `auth.metadata` and the
    /// audit log (Vault's entity alias; for Kubernetes the service account's
    /// uid or `<namespace>/<name>`).
    pub alias_name: String,
}
