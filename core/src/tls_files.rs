//! A TLS certificate and key read from PEM files, and read again when the
//! files change, so a renewed certificate (cert-manager, or the chart's
//! upgrade) takes effect without restarting — and unsealing — the node.
//!
//! The files are checked at most once per `RECHECK`, on a handshake, by
//! their modification times (Kubernetes swaps a mounted Secret's files
//! through a symlink, which changes what `stat` follows to). A pair that does
//! not load — half written, or a key that does not match the certificate —
//! is refused with a warning and the previous pair stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Least time between two looks at the files.
const RECHECK: Duration = if cfg!(test) {
    Duration::from_millis(50)
} else {
    Duration::from_secs(5)
};

/// A file that could not be used, and why (paths and parse errors only).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsFileError {
    pub path: String,
    pub message: String,
}

fn file_error(path: &Path, message: impl ToString) -> TlsFileError {
    TlsFileError {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The certificate chain of a PEM file (at least one certificate).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let pem = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate found"));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let pem = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| file_error(path, e))?);
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| file_error(path, e))?
        .ok_or_else(|| file_error(path, "no private key found"))
}

type Stamp = (Option<SystemTime>, Option<SystemTime>);

/// A certificate and key that follow their files.
#[derive(Debug)]
pub struct CertFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    stamp: Stamp,
    /// The stamp of files that did not load, so they are reported once.
    failed: Option<Stamp>,
    next_check: Instant,
}

impl CertFiles {
    /// Loads the pair now; an unusable pair is an error here, at start.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsFileError> {
        let stamp = stamp(cert_file, key_file);
        let current = Arc::new(load_pair(cert_file, key_file, &provider)?);
        Ok(CertFiles {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            state: Mutex::new(State {
                current,
                stamp,
                failed: None,
                next_check: Instant::now() + RECHECK,
            }),
        })
    }

    /// The pair to present: the files' current one if they changed and load.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= state.next_check {
            state.next_check = now + RECHECK;
            let stamp = stamp(&self.cert_file, &self.key_file);
            if stamp != state.stamp && state.failed.as_ref() != Some(&stamp) {
                match load_pair(&self.cert_file, &self.key_file, &self.provider) {
                    Ok(pair) => {
                        state.current = Arc::new(pair);
                        state.stamp = stamp;
                        state.failed = None;
                        tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
                    }
                    // Tried again once the files change again.
                    Err(e) => {
                        tracing::warn!(
                            error = %e,
                            "TLS certificate files changed but do not load; keeping the previous certificate"
                        );
                        state.failed = Some(stamp);
                    }
                }
            }
        }
        state.current.clone()
    }
}

fn stamp(cert_file: &Path, key_file: &Path) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert_file), modified(key_file))
}

fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsFileError> {
    let certs = read_certs(cert_file)?;
    let key = read_key(key_file)?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| file_error(key_file, e))
}

impl rustls::server::ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for CertFiles {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> rcgen::CertifiedKey {
        let pair = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        std::fs::write(dir.join("tls.crt"), pair.cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), pair.key_pair.serialize_pem()).unwrap();
        pair
    }

    fn served(files: &CertFiles) -> Vec<u8> {
        files.current().cert[0].as_ref().to_vec()
    }

    #[test]
    fn changed_files_are_picked_up_and_broken_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_pair(dir.path(), "first.example");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let files = CertFiles::load(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
            provider,
        )
        .unwrap();
        assert_eq!(served(&files), first.cert.der().to_vec());

        // A renewal: after the recheck interval the new pair is served.
        std::thread::sleep(Duration::from_millis(20));
        let second = write_pair(dir.path(), "second.example");
        std::thread::sleep(RECHECK + Duration::from_millis(20));
        assert_eq!(served(&files), second.cert.der().to_vec());

        // A certificate without its key (half of an update): the old pair stays.
        std::thread::sleep(Duration::from_millis(20));
        let third = rcgen::generate_simple_self_signed(vec!["third.example".into()]).unwrap();
        std::fs::write(dir.path().join("tls.crt"), third.cert.pem()).unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(20));
        assert_eq!(served(&files), second.cert.der().to_vec());

        // Once the key follows, the pair loads.
        std::fs::write(dir.path().join("tls.key"), third.key_pair.serialize_pem()).unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(20));
        assert_eq!(served(&files), third.cert.der().to_vec());
    }

    #[test]
    fn an_unusable_pair_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "a.example");
        let other = rcgen::generate_simple_self_signed(vec!["b.example".into()]).unwrap();
        std::fs::write(dir.path().join("tls.key"), other.key_pair.serialize_pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let err = CertFiles::load(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
            provider.clone(),
        )
        .unwrap_err();
        assert!(err.path.ends_with("tls.key"), "{err}");
        std::fs::write(dir.path().join("tls.crt"), "not pem").unwrap();
        let err = CertFiles::load(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
            provider,
        )
        .unwrap_err();
        assert!(err.message.contains("no certificate"), "{err}");
    }
}
