//! The `static` seal: the root key is sealed with a 32-byte key read from a file,
//! so a node unseals itself at start. For dev and tests; production uses Shamir.

use std::path::Path;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::barrier::Key;

/// Storage key of the root key sealed with the static key.
pub const SEALED_ROOT_KEY_PATH: &str = "core/sealed-root-key";

/// Failures to read the key file.
#[derive(Debug, thiserror::Error)]
pub enum StaticKeyError {
    #[error("failed to read seal key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("seal key file {path} must hold 32 bytes (raw, hex or base64)")]
    Format { path: String },
}

/// Read a 32-byte key from `path`: raw bytes, or hex / base64 text.
pub fn read_key_file(path: &Path) -> Result<Key, StaticKeyError> {
    let shown = path.display().to_string();
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| StaticKeyError::Read {
        path: shown.clone(),
        source,
    })?);
    let decoded: Zeroizing<Vec<u8>> = if bytes.len() == 32 {
        Zeroizing::new(bytes.to_vec())
    } else {
        let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
        Zeroizing::new(
            hex::decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
                .unwrap_or_default(),
        )
    };
    if decoded.len() != 32 {
        return Err(StaticKeyError::Format { path: shown });
    }
    let mut k = [0u8; 32];
    k.copy_from_slice(&decoded);
    Ok(Key(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_raw_hex_and_base64() {
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; 32];
        for (name, content) in [
            ("raw", key.to_vec()),
            ("hex", hex::encode(key).into_bytes()),
            (
                "b64",
                base64::engine::general_purpose::STANDARD
                    .encode(key)
                    .into_bytes(),
            ),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            assert_eq!(read_key_file(&p).unwrap().0, key);
        }
        let p = dir.path().join("short");
        std::fs::write(&p, b"abc").unwrap();
        assert!(matches!(
            read_key_file(&p),
            Err(StaticKeyError::Format { .. })
        ));
    }
}
