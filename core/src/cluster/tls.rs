//! Peer TLS: every cluster connection is mutually authenticated with
//! certificates signed by the cluster CA, as etcd's peer TLS is. A node's
//! own certificate and key are read again when their files change; the CA is
//! read at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;

use crate::tls_files::{read_certs, CertFiles, TlsFileError};

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

impl From<TlsFileError> for PeerTlsError {
    fn from(e: TlsFileError) -> Self {
        PeerTlsError::File {
            path: e.path,
            message: e.message,
        }
    }
}

/// This node's certificate and key, read again when their files change.
fn identity(files: &PeerTlsFiles) -> Result<Arc<CertFiles>, PeerTlsError> {
    Ok(Arc::new(CertFiles::load(
        &files.cert_file,
        &files.key_file,
        provider(),
    )?))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, PeerTlsError> {
    let mut store = RootCertStore::empty();
    for cert in read_certs(path)? {
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
            .with_cert_resolver(identity(self)?);
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
            .with_client_cert_resolver(identity(self)?);
        // HTTP/1.1 only (see `client`); the listener still accepts h2 from
        // nodes of earlier versions.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}
