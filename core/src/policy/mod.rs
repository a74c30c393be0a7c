//! ACL policies: Vault's policy language (HCL or JSON), and the compiled
//! matcher that answers "may this token do that on this path?".
//!
//! - [`parse`] turns a document into a [`Policy`] (or a [`PolicyError`],
//!   which the HTTP layer answers with 400);
//! - [`Acl::new`] compiles a token's policies once; [`Acl::allows`] and
//!   [`Acl::capabilities`] are then cheap enough for every request.
//!
//! Semantics follow Vault: deny by default; `*` only as the last character
//! is a prefix glob; a `+` segment matches exactly one segment; an exact
//! pattern beats any glob; among globs Vault's priority order picks one
//! pattern, and only that pattern's capabilities count; identical patterns
//! from several policies are unioned, and `deny` on the chosen pattern
//! leaves no capability at all.

mod acl;
mod capabilities;
mod default;
mod limits;
mod name;
mod params;
mod parse;
mod rule;

pub use acl::Acl;
pub use capabilities::Capabilities;
pub use default::DEFAULT_POLICY;
pub use name::{validate_delete, validate_name, validate_write};
pub use parse::parse;
pub use rule::{ParameterValues, PathRule, Permissions, Policy};

/// Why a policy document or name was refused. Every variant is a client
/// error (HTTP 400); messages name the offending path, key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not valid HCL or JSON, or not shaped like a policy.
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    /// A key the policy language does not have.
    #[error("failed to parse policy: {context}: unknown key {key:?}")]
    UnknownKey {
        /// `policy` for the top level, else `path "<pattern>"`.
        context: String,
        /// The unknown key.
        key: String,
    },
    /// A `capabilities` entry that is not a capability.
    #[error("failed to parse policy: path {path:?}: invalid capability {capability:?} (expected create, read, update, patch, delete, list, sudo or deny)")]
    InvalidCapability {
        /// The pattern of the stanza.
        path: String,
        /// The unknown capability name.
        capability: String,
    },
    /// A legacy `policy = "..."` value that is not read, write, deny or sudo.
    #[error("failed to parse policy: path {path:?}: invalid policy {value:?} (expected read, write, deny or sudo)")]
    InvalidLegacyPolicy {
        /// The pattern of the stanza.
        path: String,
        /// The unknown value.
        value: String,
    },
    /// A pattern that cannot be used.
    #[error("failed to parse policy: path {path:?}: {reason}")]
    InvalidPath {
        /// The pattern as written.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A known key with a value of the wrong shape.
    #[error("failed to parse policy: path {path:?}: {key}: {reason}")]
    InvalidValue {
        /// The pattern of the stanza.
        path: String,
        /// The key whose value is wrong.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy name that cannot be stored.
    #[error("invalid policy name {name:?}: {reason}")]
    InvalidName {
        /// The name after trimming and lowercasing.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `root` is built in: it cannot be written or deleted.
    #[error("cannot write or delete the root policy")]
    RootPolicy,
    /// `default` can be changed but not deleted.
    #[error("cannot delete the default policy")]
    DefaultPolicy,
}
