//! The symmetric ciphers behind transit keys: AES-256-GCM and
//! ChaCha20-Poly1305, each with a 96-bit random nonce, and HKDF-SHA256
//! derivation of per-context keys.
//!
//! Sealed bytes are `nonce || ciphertext || tag`, the layout Vault uses.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::TransitError;

/// Length of every transit key (and of its HMAC key), in bytes.
pub const KEY_LEN: usize = 32;
/// Nonce length of both ciphers.
pub const NONCE_LEN: usize = 12;
/// Tag length of both ciphers.
pub const TAG_LEN: usize = 16;

/// The kinds of key this engine can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// AES-256 in GCM mode with a 96-bit nonce (Vault's default).
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    /// ChaCha20-Poly1305.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl KeyType {
    /// The type named `name` (Vault's spelling).
    pub fn parse(name: &str) -> Option<KeyType> {
        match name {
            "aes256-gcm96" => Some(KeyType::Aes256Gcm96),
            "chacha20-poly1305" => Some(KeyType::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Vault's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

/// A keyed cipher, built once per key version (or per context for derived
/// keys). Both variants wipe their key schedule when dropped.
#[derive(Clone)]
// Inline rather than boxed: derived keys build one per item, and a box would
// be an allocation each time plus a pointer chase on every encryption.
#[allow(clippy::large_enum_variant)]
pub enum Aead {
    /// AES-256-GCM.
    Aes(Aes256Gcm),
    /// ChaCha20-Poly1305.
    ChaCha(ChaCha20Poly1305),
}

impl Aead {
    /// The cipher of type `kind` keyed with `key`.
    pub fn new(kind: KeyType, key: &[u8; KEY_LEN]) -> Aead {
        match kind {
            KeyType::Aes256Gcm96 => Aead::Aes(Aes256Gcm::new(key.into())),
            KeyType::ChaCha20Poly1305 => Aead::ChaCha(ChaCha20Poly1305::new(key.into())),
        }
    }

    /// Encrypt `plaintext` with a fresh random nonce, writing
    /// `nonce || ciphertext || tag` into `out` (cleared first, so a caller can
    /// reuse one buffer for a whole batch).
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TransitError> {
        out.clear();
        out.reserve(NONCE_LEN + plaintext.len() + TAG_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        // thread_rng is a CSPRNG reseeded from the OS; a syscall per nonce
        // would cost more than the encryption itself.
        rand::thread_rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = &mut out[NONCE_LEN..];
        let tag = match self {
            Aead::Aes(c) => c.encrypt_in_place_detached((&nonce).into(), aad, body),
            Aead::ChaCha(c) => c.encrypt_in_place_detached((&nonce).into(), aad, body),
        }
        .map_err(|_| TransitError::bad("plaintext is too large to encrypt"))?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypt `nonce || ciphertext || tag` in place and return the plaintext,
    /// a sub-slice of `sealed`. Any failure of the tag is
    /// [`TransitError::Authentication`], with no detail.
    pub fn open<'a>(&self, sealed: &'a mut [u8], aad: &[u8]) -> Result<&'a [u8], TransitError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(TransitError::Malformed {
                what: "ciphertext",
                why: "ciphertext is too short",
            });
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let tag_at = rest.len() - TAG_LEN;
        let (body, tag) = rest.split_at_mut(tag_at);
        let nonce: &[u8] = nonce;
        let tag: &[u8] = tag;
        match self {
            Aead::Aes(c) => c.decrypt_in_place_detached(nonce.into(), aad, body, tag.into()),
            Aead::ChaCha(c) => c.decrypt_in_place_detached(nonce.into(), aad, body, tag.into()),
        }
        .map_err(|_| TransitError::Authentication)?;
        Ok(body)
    }
}

/// The key for `context` under a derived key version: HKDF-SHA256 with the
/// version's key as input key material, no salt, and the context as info (the
/// construction Vault's `hkdf_sha256` KDF uses).
pub fn derive_key(
    key: &[u8; KEY_LEN],
    context: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, TransitError> {
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(None, key)
        .expand(context, &mut okm[..])
        .map_err(|_| TransitError::bad("key derivation failed"))?;
    Ok(okm)
}

/// `len` random bytes from the operating system's CSPRNG.
pub fn random_bytes(len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

/// A fresh random key.
pub fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(&mut key[..]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ciphers_round_trip_and_detect_tampering() {
        for kind in [KeyType::Aes256Gcm96, KeyType::ChaCha20Poly1305] {
            let key = random_key();
            let aead = Aead::new(kind, &key);
            let mut sealed = Vec::new();
            aead.seal(b"attack at dawn", b"ad", &mut sealed).unwrap();
            assert_eq!(sealed.len(), NONCE_LEN + 14 + TAG_LEN);
            let mut copy = sealed.clone();
            assert_eq!(aead.open(&mut copy, b"ad").unwrap(), b"attack at dawn");

            let mut wrong_ad = sealed.clone();
            assert!(matches!(
                aead.open(&mut wrong_ad, b"other"),
                Err(TransitError::Authentication)
            ));
            for i in [0, NONCE_LEN, sealed.len() - 1] {
                let mut flipped = sealed.clone();
                flipped[i] ^= 1;
                assert!(
                    matches!(
                        aead.open(&mut flipped, b"ad"),
                        Err(TransitError::Authentication)
                    ),
                    "{i}"
                );
            }
            let other = Aead::new(kind, &random_key());
            let mut copy = sealed.clone();
            assert!(matches!(
                other.open(&mut copy, b"ad"),
                Err(TransitError::Authentication)
            ));
            assert!(aead.open(&mut [0u8; 27], b"").is_err());
        }
    }

    #[test]
    fn nonces_differ_between_encryptions() {
        let aead = Aead::new(KeyType::Aes256Gcm96, &random_key());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        aead.seal(b"same", b"", &mut a).unwrap();
        aead.seal(b"same", b"", &mut b).unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn derivation_depends_on_key_and_context() {
        let key = random_key();
        let a = derive_key(&key, b"tenant-a").unwrap();
        assert_eq!(*a, *derive_key(&key, b"tenant-a").unwrap());
        assert_ne!(*a, *derive_key(&key, b"tenant-b").unwrap());
        assert_ne!(*a, *derive_key(&random_key(), b"tenant-a").unwrap());
        assert_ne!(*a, *key);
    }

    #[test]
    fn hkdf_matches_rfc5869_shape() {
        // RFC 5869 test case 3 (no salt, no info) truncated to 32 bytes.
        let ikm = [0x0bu8; 22];
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(&[], &mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }
}
