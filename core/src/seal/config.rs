//! The seal configuration, kept in plaintext beside the sealed keyring so a
//! sealed node can say how many shares it needs.

use serde::{Deserialize, Serialize};

/// Storage key of the seal configuration (plaintext: it holds no secret).
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";

/// How the root key is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealKind {
    /// Split into Shamir shares held by operators.
    Shamir,
    /// Sealed with a key file on the node; unsealed automatically at start.
    Static,
}

impl SealKind {
    /// The `type` Vault's seal-status reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SealKind::Shamir => "shamir",
            SealKind::Static => "static",
        }
    }
}

/// The persisted seal configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealConfig {
    pub kind: SealKind,
    pub secret_shares: u8,
    pub secret_threshold: u8,
}

/// Bad `sys/init` parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealConfigError {
    #[error("secret_shares must be between 1 and 255")]
    Shares,
    #[error("secret_threshold must be at least 1 and at most secret_shares")]
    Threshold,
    #[error("secret_threshold must be greater than 1 when secret_shares is greater than 1")]
    ThresholdOne,
}

impl SealConfig {
    /// A Shamir configuration, validated as Vault validates it.
    pub fn shamir(shares: u64, threshold: u64) -> Result<Self, SealConfigError> {
        if shares == 0 || shares > 255 {
            return Err(SealConfigError::Shares);
        }
        if threshold == 0 || threshold > shares {
            return Err(SealConfigError::Threshold);
        }
        if shares > 1 && threshold == 1 {
            return Err(SealConfigError::ThresholdOne);
        }
        Ok(SealConfig {
            kind: SealKind::Shamir,
            secret_shares: shares as u8,
            secret_threshold: threshold as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_vault() {
        assert!(SealConfig::shamir(5, 3).is_ok());
        assert!(SealConfig::shamir(1, 1).is_ok());
        assert_eq!(SealConfig::shamir(0, 0), Err(SealConfigError::Shares));
        assert_eq!(SealConfig::shamir(3, 4), Err(SealConfigError::Threshold));
        assert_eq!(SealConfig::shamir(3, 1), Err(SealConfigError::ThresholdOne));
        assert_eq!(SealConfig::shamir(256, 3), Err(SealConfigError::Shares));
    }
}
