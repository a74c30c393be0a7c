//! The webhook's serving certificate, read from PEM files and reloaded when
//! they change (cert-manager or the chart rotate the Secret behind them).
//!
//! Each handshake looks at the files' metadata (two `stat` calls, a few
//! microseconds) and loads them again when device, inode, size or mtime
//! changed, so the next handshake after a rotation already serves the new
//! certificate; a Kubernetes Secret volume swaps its files with a symlink,
//! which `stat` follows. A pair that does not load (a half-written file, a
//! key that does not match) is reported once, and the previous pair is
//! served until the files change again.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::metrics::{Metrics, ReloadResult};

/// Failures to load the serving certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item.
    #[error("failed to parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is missing or malformed.
        reason: String,
    },
    /// rustls refused the pair (unsupported key, key not matching the certificate).
    #[error("failed to use the certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

type Fingerprint = [Option<Stamp>; 2];

#[derive(Debug)]
struct State {
    loaded: Fingerprint,
    failed: Option<Fingerprint>,
    current: Arc<CertifiedKey>,
}

/// A [`ResolvesServerCert`] serving the pair in two files, reloaded on change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

impl ReloadingCert {
    /// Load the pair now; fails when it cannot be served.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = fingerprint(cert_path, key_path);
        let current = Arc::new(load_pair(cert_path, key_path, &provider)?);
        Ok(Arc::new(ReloadingCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            metrics,
            state: Mutex::new(State {
                loaded,
                failed: None,
                current,
            }),
        }))
    }

    /// A rustls server config (TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1) using
    /// this resolver.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced whole, so a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Load the files again if they changed since the last attempt.
    pub fn refresh(&self) {
        let now = fingerprint(&self.cert_path, &self.key_path);
        let mut state = self.lock();
        if now == state.loaded || state.failed.as_ref() == Some(&now) {
            return;
        }
        match load_pair(&self.cert_path, &self.key_path, &self.provider) {
            Ok(pair) => {
                state.current = Arc::new(pair);
                state.loaded = now;
                state.failed = None;
                self.metrics.reload(ReloadResult::Ok);
                tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
            }
            Err(error) => {
                state.failed = Some(now);
                self.metrics.reload(ReloadResult::Error);
                tracing::warn!(%error, "serving certificate changed but cannot be loaded; keeping the previous one");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(self.lock().current.clone())
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.modified().ok(),
    })
}

fn fingerprint(cert: &Path, key: &Path) -> Fingerprint {
    [stamp(cert), stamp(key)]
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let parse = |path: &Path, reason: String| TlsError::Parse {
        path: path.to_owned(),
        reason,
    };
    let cert_pem = read(cert)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| parse(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(parse(cert, "no certificate found".into()));
    }
    let key_pem = read(key)?;
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| parse(key, e.to_string()))?
        .ok_or_else(|| parse(key, "no private key found".into()))?;
    Ok(CertifiedKey::from_der(chain, private, provider)?)
}
