//! Errors of the transit engine and how they reach the wire.

use crate::barrier::BarrierError;
use crate::engines::EngineError;

/// Why a transit operation failed. Messages follow Vault's wording where
/// clients match on it, and never carry key material, plaintext, context or
/// ciphertext: at most a field name, a version number or a key name.
#[derive(Debug, thiserror::Error)]
pub enum TransitError {
    /// The named key does not exist.
    #[error("encryption key not found")]
    KeyNotFound,
    /// The AEAD tag did not verify: the ciphertext was altered, belongs to
    /// another key, or the context / associated data differ. Deliberately says
    /// nothing more.
    #[error("cipher: message authentication failed")]
    Authentication,
    /// The ciphertext or HMAC was made with a version below
    /// `min_decryption_version`.
    #[error("ciphertext or signature version is disallowed by policy (too old)")]
    TooOld,
    /// A ciphertext or HMAC string is malformed; `what` is `ciphertext` or
    /// `HMAC`, `why` a fixed description.
    #[error("invalid {what}: {why}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Any other bad input; the message names the field, never its value.
    #[error("{0}")]
    BadInput(String),
    /// Storage or barrier failure.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

impl TransitError {
    /// A [`TransitError::BadInput`] with `message`.
    pub fn bad(message: impl Into<String>) -> Self {
        TransitError::BadInput(message.into())
    }
}

impl From<crate::engines::fields::FieldError> for TransitError {
    fn from(e: crate::engines::fields::FieldError) -> Self {
        TransitError::BadInput(e.0)
    }
}

impl From<TransitError> for EngineError {
    fn from(e: TransitError) -> Self {
        match e {
            TransitError::Barrier(b) => EngineError::Barrier(b),
            other => EngineError::BadRequest(other.to_string()),
        }
    }
}
