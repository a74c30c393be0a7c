//! `auth/<mount>/config`: where the Kubernetes API server is and how to call
//! its TokenReview API.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroize;

use crate::engines::fields::{bool_field, list_field, str_field, string_field, OneString};
use crate::engines::EngineError;

/// Storage key of the configuration inside the mount's view.
pub const CONFIG_KEY: &str = "config";

/// The method's configuration. `token_reviewer_jwt` is a credential: it is
/// stored sealed and never returned by a read.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    /// Base URL of the API server, e.g. `https://10.0.0.1:443`.
    pub kubernetes_host: String,
    /// PEM CA bundle for the API server's certificate (empty: the system roots,
    /// or the in-cluster CA file when running in a pod).
    pub kubernetes_ca_cert: String,
    /// Bearer token for the TokenReview call (empty: the pod's own token when
    /// running in a cluster, else the JWT being reviewed, as Vault does).
    pub token_reviewer_jwt: String,
    /// Accepted and returned for compatibility; signatures are checked by the
    /// TokenReview call, never locally.
    pub pem_keys: Vec<String>,
    /// Accepted and returned for compatibility (see `pem_keys`).
    pub issuer: String,
    /// Do not fall back to the pod's own CA and token.
    pub disable_local_ca_jwt: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("kubernetes_host", &self.kubernetes_host)
            .field(
                "token_reviewer_jwt_set",
                &!self.token_reviewer_jwt.is_empty(),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for AuthConfig {
    fn drop(&mut self) {
        self.token_reviewer_jwt.zeroize();
    }
}

impl AuthConfig {
    /// Build from a write's body; `previous` supplies fields left out (Vault
    /// keeps the stored reviewer JWT when a write omits it).
    pub fn from_body(
        data: &Map<String, Value>,
        previous: Option<&AuthConfig>,
    ) -> Result<AuthConfig, EngineError> {
        let host = str_field(data, "kubernetes_host")?
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| EngineError::BadRequest("no host provided".into()))?;
        let kubernetes_host = normalize_host(host)?;
        let kubernetes_ca_cert = string_field(data, "kubernetes_ca_cert")?.unwrap_or_default();
        if !kubernetes_ca_cert.trim().is_empty() {
            check_pem_certs(&kubernetes_ca_cert)?;
        }
        let token_reviewer_jwt = match string_field(data, "token_reviewer_jwt")? {
            Some(jwt) => jwt,
            None => previous
                .map(|p| p.token_reviewer_jwt.clone())
                .unwrap_or_default(),
        };
        Ok(AuthConfig {
            kubernetes_host,
            kubernetes_ca_cert,
            token_reviewer_jwt,
            pem_keys: list_field(data, "pem_keys", OneString::Whole)?.unwrap_or_default(),
            issuer: string_field(data, "issuer")?.unwrap_or_default(),
            disable_local_ca_jwt: bool_field(data, "disable_local_ca_jwt")?.unwrap_or(false),
        })
    }

    /// Vault's read shape: everything but the reviewer JWT itself.
    pub fn to_json(&self) -> Value {
        json!({
            "kubernetes_host": self.kubernetes_host,
            "kubernetes_ca_cert": self.kubernetes_ca_cert,
            "pem_keys": self.pem_keys,
            "issuer": self.issuer,
            "disable_iss_validation": true,
            "disable_local_ca_jwt": self.disable_local_ca_jwt,
            "token_reviewer_jwt_set": !self.token_reviewer_jwt.is_empty(),
        })
    }
}

/// Accept `host`, `host:port` or a URL; answer a URL without a trailing `/`.
/// Plain `http://` is allowed (test clusters, local proxies), as in Vault.
fn normalize_host(host: &str) -> Result<String, EngineError> {
    let url = if host.contains("://") {
        host.to_owned()
    } else {
        format!("https://{host}")
    };
    let parsed = reqwest::Url::parse(&url).map_err(|_| {
        EngineError::BadRequest(
            "kubernetes_host must be a host, a host:port pair or an http(s) URL".into(),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(EngineError::BadRequest(
            "kubernetes_host must be an http or https URL with a host".into(),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// At least one certificate, and nothing that does not parse.
pub fn check_pem_certs(pem: &str) -> Result<(), EngineError> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    let certs: Vec<_> = rustls_pemfile::certs(&mut reader)
        .collect::<Result<_, _>>()
        .map_err(|_| EngineError::BadRequest("kubernetes_ca_cert is not valid PEM".into()))?;
    if certs.is_empty() {
        return Err(EngineError::BadRequest(
            "kubernetes_ca_cert holds no PEM certificate".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn hosts_are_normalized_and_checked() {
        let c = AuthConfig::from_body(&body(json!({"kubernetes_host": "10.0.0.1:6443"})), None)
            .unwrap();
        assert_eq!(c.kubernetes_host, "https://10.0.0.1:6443");
        let c = AuthConfig::from_body(
            &body(json!({"kubernetes_host": "http://127.0.0.1:8080/"})),
            None,
        )
        .unwrap();
        assert_eq!(c.kubernetes_host, "http://127.0.0.1:8080");
        for bad in [
            json!({}),
            json!({"kubernetes_host": ""}),
            json!({"kubernetes_host": "ftp://x"}),
        ] {
            assert!(
                AuthConfig::from_body(&body(bad.clone()), None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn garbage_ca_is_refused() {
        let e = AuthConfig::from_body(
            &body(json!({"kubernetes_host": "k8s", "kubernetes_ca_cert": "not a cert"})),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("kubernetes_ca_cert"), "{e}");
    }

    #[test]
    fn reviewer_jwt_is_kept_across_writes_and_never_read_back() {
        let first = AuthConfig::from_body(
            &body(json!({"kubernetes_host": "k8s", "token_reviewer_jwt": "reviewer-secret"})),
            None,
        )
        .unwrap();
        let second =
            AuthConfig::from_body(&body(json!({"kubernetes_host": "k8s2"})), Some(&first)).unwrap();
        assert_eq!(second.token_reviewer_jwt, "reviewer-secret");
        let shown = second.to_json().to_string() + &format!("{second:?}");
        assert!(!shown.contains("reviewer-secret"));
        assert_eq!(second.to_json()["token_reviewer_jwt_set"], json!(true));
    }
}
