//! The keyring: numbered AES-256-GCM key terms. New writes use the newest term;
//! a value records the term it was sealed with, so old values stay readable after
//! `sys/rotate`.
//!
//! Sealed value layout: `[version=1][term: u32 BE][nonce: 12][ciphertext+tag]`.
//! The storage key is the associated data, so a ciphertext copied to another key
//! fails authentication.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 12;

/// Failures to open a sealed value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Too short or an unknown layout version.
    #[error("sealed value is malformed")]
    Malformed,
    /// The value names a key term this keyring does not have.
    #[error("sealed value uses unknown key term {0}")]
    UnknownTerm(u32),
    /// The tag did not verify: the value was altered or belongs to another key.
    #[error("sealed value failed authentication")]
    Tampered,
}

/// Sealing failed: the value is beyond what AES-GCM can encrypt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("value is too large to seal")]
pub struct SealFailed;

/// A 256-bit key, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub struct Key(#[serde(with = "key_b64")] pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Key(k)
    }

    /// Seal `plaintext` with this key; `aad` is bound but not stored.
    pub fn seal(&self, term: u32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealFailed> {
        let cipher = Aes256Gcm::new((&self.0).into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // aes-gcm fails only past its 64 GiB message limit.
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealFailed)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&term.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Open a value sealed by [`Key::seal`] (the term in its header is not checked here).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (_, nonce, ct) = split(sealed)?;
        let cipher = Aes256Gcm::new((&self.0).into());
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Tampered)
    }
}

fn split(sealed: &[u8]) -> Result<(u32, &[u8], &[u8]), OpenError> {
    // 16 bytes of GCM tag follow the header even for an empty plaintext.
    if sealed.len() < HEADER_LEN + 16 || sealed[0] != VERSION {
        return Err(OpenError::Malformed);
    }
    let term = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
    Ok((term, &sealed[5..HEADER_LEN], &sealed[HEADER_LEN..]))
}

/// One key term and when it was installed.
#[derive(Clone, Serialize, Deserialize)]
pub struct Term {
    pub key: Key,
    /// Unix seconds.
    pub installed: i64,
}

/// All key terms; the largest is active.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct Keyring {
    terms: BTreeMap<u32, Term>,
}

impl Keyring {
    /// A keyring with one fresh term, number 1.
    pub fn generate(now: i64) -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            Term {
                key: Key::generate(),
                installed: now,
            },
        );
        Keyring { terms }
    }

    /// The active term number.
    pub fn active_term(&self) -> u32 {
        self.terms.keys().next_back().copied().unwrap_or(0)
    }

    /// When the active term was installed (unix seconds).
    pub fn active_installed(&self) -> i64 {
        self.terms
            .values()
            .next_back()
            .map(|t| t.installed)
            .unwrap_or(0)
    }

    /// A keyring with a new active term added; old terms stay for reading.
    pub fn rotated(&self, now: i64) -> Self {
        let mut next = self.clone();
        next.terms.insert(
            self.active_term() + 1,
            Term {
                key: Key::generate(),
                installed: now,
            },
        );
        next
    }

    /// Seal with the active term.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealFailed> {
        let term = self.active_term();
        let t = self.terms.get(&term).ok_or(SealFailed)?;
        t.key.seal(term, aad, plaintext)
    }

    /// Open a value sealed with any known term.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (term, _, _) = split(sealed)?;
        let t = self.terms.get(&term).ok_or(OpenError::UnknownTerm(term))?;
        t.key.open(aad, sealed)
    }

    /// Serialized form, to be sealed with the root key. Zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parse the serialized form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OpenError> {
        serde_json::from_slice(bytes).map_err(|_| OpenError::Malformed)
    }
}

mod key_b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(k: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(k));
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(serde::de::Error::custom)?,
        );
        let mut k = [0u8; 32];
        if bytes.len() != 32 {
            return Err(serde::de::Error::custom("key must be 32 bytes"));
        }
        k.copy_from_slice(&bytes);
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let ring = Keyring::generate(0);
        let sealed = ring.seal(b"secret/a", b"hunter2").unwrap();
        assert_eq!(&*ring.open(b"secret/a", &sealed).unwrap(), b"hunter2");
        // A value copied to another key does not open.
        assert_eq!(ring.open(b"secret/b", &sealed), Err(OpenError::Tampered));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let ring = Keyring::generate(0);
        let sealed = ring.seal(b"k", b"value").unwrap();
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                ring.open(b"k", &bad).is_err(),
                "bit {i} flip went unnoticed"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_terms_readable() {
        let ring = Keyring::generate(0);
        let old = ring.seal(b"k", b"v1").unwrap();
        let ring2 = ring.rotated(1);
        assert_eq!(ring2.active_term(), 2);
        let new = ring2.seal(b"k", b"v2").unwrap();
        assert_eq!(&*ring2.open(b"k", &old).unwrap(), b"v1");
        assert_eq!(&*ring2.open(b"k", &new).unwrap(), b"v2");
        assert_eq!(ring.open(b"k", &new), Err(OpenError::UnknownTerm(2)));
        let back = Keyring::from_bytes(&ring2.to_bytes()).unwrap();
        assert_eq!(&*back.open(b"k", &old).unwrap(), b"v1");
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = Keyring::generate(0);
        assert_ne!(
            ring.seal(b"k", b"v").unwrap(),
            ring.seal(b"k", b"v").unwrap()
        );
    }
}
