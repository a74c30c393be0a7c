//! Peer TLS: every cluster connection is mutually authenticated with
//! certificates signed by the cluster CA, as etcd's peer TLS is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;

/// Peer TLS failures, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error("failed to read cluster TLS file {path}: {message}")]
    File { path: String, message: String },
    #[error("invalid cluster TLS configuration: {0}")]
    Config(String),
}

/// The three files of a node's peer identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTlsFiles {
    /// This node's certificate (PEM), used both as server and as client.
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// The cluster CA (PEM) that every peer certificate must chain to.
    pub ca_file: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, PeerTlsError> {
    std::fs::read(path).map_err(|e| PeerTlsError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PeerTlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| PeerTlsError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PeerTlsError::File {
            path: path.display().to_string(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, PeerTlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| PeerTlsError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .ok_or_else(|| PeerTlsError::File {
            path: path.display().to_string(),
            message: "no private key found".into(),
        })
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, PeerTlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(path)? {
        store
            .add(cert)
            .map_err(|e| PeerTlsError::Config(format!("bad CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl PeerTlsFiles {
    /// The acceptor of the cluster listener: refuses any client without a
    /// certificate signed by the cluster CA.
    pub fn acceptor(&self) -> Result<TlsAcceptor, PeerTlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots(&self.ca_file)?, provider())
                .build()
                .map_err(|e| PeerTlsError::Config(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PeerTlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert_file)?, key(&self.key_file)?)
            .map_err(|e| PeerTlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// The client side: presents this node's certificate and trusts only the
    /// cluster CA.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, PeerTlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PeerTlsError::Config(e.to_string()))?
            .with_root_certificates(roots(&self.ca_file)?)
            .with_client_auth_cert(certs(&self.cert_file)?, key(&self.key_file)?)
            .map_err(|e| PeerTlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}
