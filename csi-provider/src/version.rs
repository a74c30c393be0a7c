//! Object versions: what the driver stores in the pod's
//! SecretProviderClassPodStatus and sends back on rotation polls. A version
//! must change when the file's bytes change and stay equal otherwise; it
//! must never reveal the value (those objects are readable by more people
//! than the secret).
//!
//! - A KV v2 secret or a leased credential has a non-secret identity that
//!   fixes its bytes (path and KV version number; lease id). Its version is
//!   a SHA-256 of that identity and of the object's spec, so it is stable
//!   across provider restarts: the driver sees no spurious rotation.
//! - Anything else (a KV v1 value, another engine's answer) has only its
//!   bytes; its version is an HMAC-SHA256 of them under a per-process
//!   random key, so it cannot be used to guess the value offline. A restart
//!   changes such versions once, which costs the driver a rewrite of the
//!   same bytes.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::object::ObjectSpec;

/// What fixes an object's bytes.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// KV v2 `path` at `version`.
    Kv2 {
        /// Core path read.
        path: &'a str,
        /// KV metadata version.
        version: u64,
    },
    /// A credential under lease `lease_id`.
    Lease {
        /// Lease id.
        lease_id: &'a str,
    },
    /// Only the bytes themselves.
    Content,
}

/// Computes versions; holds the per-process HMAC key.
pub struct Versioner {
    key: Zeroizing<[u8; 32]>,
}

impl Default for Versioner {
    fn default() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self { key }
    }
}

fn spec_bytes(spec: &ObjectSpec, mode: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [
        spec.file_name.as_str(),
        spec.path.as_str(),
        spec.key.as_deref().unwrap_or("\u{1}"),
        spec.encoding.name(),
    ] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(&mode.to_be_bytes());
    out
}

impl Versioner {
    /// The version of an object mounted from `source` with `contents`.
    pub fn version(
        &self,
        spec: &ObjectSpec,
        mode: u32,
        source: Source<'_>,
        contents: &[u8],
    ) -> String {
        let spec = spec_bytes(spec, mode);
        match source {
            Source::Kv2 { path, version } => {
                let mut h = Sha256::new();
                h.update(b"cairn-csi kv2\0");
                h.update(&spec);
                h.update(path.as_bytes());
                h.update(b"\0");
                h.update(version.to_be_bytes());
                format!("kv2-{}", hex::encode(&h.finalize()[..16]))
            }
            Source::Lease { lease_id } => {
                let mut h = Sha256::new();
                h.update(b"cairn-csi lease\0");
                h.update(&spec);
                h.update(lease_id.as_bytes());
                format!("lease-{}", hex::encode(&h.finalize()[..16]))
            }
            Source::Content => {
                // HMAC accepts keys of any length; new_from_slice cannot fail here.
                let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()) {
                    Ok(mac) => mac,
                    Err(_) => return String::from("content-unversioned"),
                };
                mac.update(&spec);
                mac.update(contents);
                format!("hmac-{}", hex::encode(&mac.finalize().into_bytes()[..16]))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::object::parse_objects;

    fn spec() -> ObjectSpec {
        parse_objects("- {fileName: a, path: secret/data/x, key: k}")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn kv2_versions_are_stable_across_processes_and_change_with_the_version() {
        let (a, b) = (Versioner::default(), Versioner::default());
        let s = spec();
        let v1 = a.version(
            &s,
            0o644,
            Source::Kv2 {
                path: "secret/data/x",
                version: 1,
            },
            b"v",
        );
        assert_eq!(
            v1,
            b.version(
                &s,
                0o644,
                Source::Kv2 {
                    path: "secret/data/x",
                    version: 1
                },
                b"w"
            )
        );
        assert_ne!(
            v1,
            a.version(
                &s,
                0o644,
                Source::Kv2 {
                    path: "secret/data/x",
                    version: 2
                },
                b"v"
            )
        );
        assert_ne!(
            v1,
            a.version(
                &s,
                0o600,
                Source::Kv2 {
                    path: "secret/data/x",
                    version: 1
                },
                b"v"
            )
        );
    }

    #[test]
    fn content_versions_are_keyed_and_never_the_value() {
        let (a, b) = (Versioner::default(), Versioner::default());
        let s = spec();
        let v = a.version(&s, 0o644, Source::Content, b"hunter2");
        assert_eq!(v, a.version(&s, 0o644, Source::Content, b"hunter2"));
        assert_ne!(v, a.version(&s, 0o644, Source::Content, b"hunter3"));
        assert_ne!(v, b.version(&s, 0o644, Source::Content, b"hunter2"));
        assert!(!v.contains("hunter2") && !v.contains(&hex::encode("hunter2")));
    }

    #[test]
    fn lease_versions_follow_the_lease() {
        let a = Versioner::default();
        let s = spec();
        let v = a.version(
            &s,
            0o644,
            Source::Lease {
                lease_id: "database/creds/r/1",
            },
            b"p",
        );
        assert_eq!(
            v,
            a.version(
                &s,
                0o644,
                Source::Lease {
                    lease_id: "database/creds/r/1"
                },
                b"q"
            )
        );
        assert_ne!(
            v,
            a.version(
                &s,
                0o644,
                Source::Lease {
                    lease_id: "database/creds/r/2"
                },
                b"p"
            )
        );
    }
}
