//! Collecting unseal shares until the threshold is reached.

use uuid::Uuid;
use zeroize::Zeroizing;

use super::shamir::{self, SHARE_LEN};
use crate::barrier::Key;

/// Why a submitted share was refused. None of these messages contain the share.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnsealError {
    #[error("unseal key is not valid hex or base64")]
    Encoding,
    #[error("unseal key has the wrong length: expected {SHARE_LEN} bytes, got {0}")]
    Length(usize),
    #[error("unseal key is malformed")]
    Malformed,
    #[error("this unseal key share was already submitted")]
    Duplicate,
    #[error("unseal failed: the key shares do not rebuild the root key; progress was reset")]
    WrongShares,
    #[error("Vault is not initialized")]
    NotInitialized,
}

/// Decode a share given as hex (Vault's `keys`) or base64 (`keys_base64`).
pub fn decode_share(text: &str) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = hex::decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
        .map_err(|_| UnsealError::Encoding)?;
    let bytes = Zeroizing::new(bytes);
    if bytes.len() != SHARE_LEN {
        return Err(UnsealError::Length(bytes.len()));
    }
    // x = 0 would be the secret itself: never a valid share.
    if bytes[0] == 0 {
        return Err(UnsealError::Malformed);
    }
    Ok(bytes)
}

/// Shares submitted so far in one unseal attempt.
#[derive(Default)]
pub struct UnsealProgress {
    shares: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
}

impl UnsealProgress {
    /// How many shares are held.
    pub fn progress(&self) -> usize {
        self.shares.len()
    }

    /// The attempt's nonce (empty when nothing was submitted).
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Forget every submitted share.
    pub fn reset(&mut self) {
        self.shares.clear();
        self.nonce.clear();
    }

    /// Add one share. Returns the rebuilt candidate key once `threshold` shares
    /// are held (and clears the progress); the caller checks it against the keyring.
    pub fn submit(
        &mut self,
        share: Zeroizing<Vec<u8>>,
        threshold: u8,
    ) -> Result<Option<Key>, UnsealError> {
        // Same x coordinate means the same share (or a conflicting copy of it).
        if self.shares.iter().any(|s| s[0] == share[0]) {
            return Err(UnsealError::Duplicate);
        }
        if self.shares.is_empty() {
            self.nonce = Uuid::new_v4().to_string();
        }
        self.shares.push(share);
        if self.shares.len() < threshold as usize {
            return Ok(None);
        }
        let key = shamir::combine(&self.shares, threshold);
        self.reset();
        key.map(Some).ok_or(UnsealError::WrongShares)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_duplicates_and_garbage() {
        let key = Key::generate();
        let shares = shamir::split(&key, 5, 3);
        let hexes: Vec<String> = shares.iter().map(|s| hex::encode(s.as_slice())).collect();

        assert_eq!(decode_share("zz-not-a-key!"), Err(UnsealError::Encoding));
        assert_eq!(decode_share("abcd"), Err(UnsealError::Length(2)));
        assert_eq!(
            decode_share(&format!("00{}", "11".repeat(32))),
            Err(UnsealError::Malformed)
        );

        let mut p = UnsealProgress::default();
        assert!(matches!(
            p.submit(decode_share(&hexes[0]).unwrap(), 3),
            Ok(None)
        ));
        assert!(matches!(
            p.submit(decode_share(&hexes[0]).unwrap(), 3),
            Err(UnsealError::Duplicate)
        ));
        assert_eq!(p.progress(), 1);
        assert!(matches!(
            p.submit(decode_share(&hexes[3]).unwrap(), 3),
            Ok(None)
        ));
        let rebuilt = p
            .submit(decode_share(&hexes[4]).unwrap(), 3)
            .unwrap()
            .unwrap();
        assert_eq!(rebuilt.0, key.0);
        assert_eq!(p.progress(), 0);
    }
}
