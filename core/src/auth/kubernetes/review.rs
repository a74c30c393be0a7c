//! The TokenReview call: the Kubernetes API server, not Cairn, checks a
//! service-account token's signature, expiry, binding (a deleted pod's token
//! fails) and audience, and says whose it is.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::config::AuthConfig;
use crate::engines::EngineError;

/// Where a pod finds its own token and CA (used when the config names none).
const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// How long one TokenReview may take before the login fails.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// A service account the API server vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The audiences the token is valid for, of those asked.
    pub audiences: Vec<String>,
}

#[derive(Deserialize)]
struct ReviewReply {
    #[serde(default)]
    status: ReviewStatus,
}

#[derive(Deserialize, Default)]
struct ReviewStatus {
    #[serde(default)]
    authenticated: bool,
    #[serde(default)]
    user: ReviewUser,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize, Default)]
struct ReviewUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    uid: String,
}

/// Build the HTTP client for a configuration: its CA bundle if given, else
/// the in-cluster CA when running in a pod, else the system roots.
pub fn http_client(config: &AuthConfig) -> Result<reqwest::Client, EngineError> {
    let mut pem = config.kubernetes_ca_cert.clone();
    if pem.trim().is_empty() && !config.disable_local_ca_jwt {
        pem = std::fs::read_to_string(IN_CLUSTER_CA).unwrap_or_default();
    }
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(REVIEW_TIMEOUT)
        .connect_timeout(Duration::from_secs(5));
    if !pem.trim().is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| {
            EngineError::BadRequest("kubernetes_ca_cert is not a valid PEM bundle".into())
        })?;
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| {
        EngineError::Upstream(format!("failed to build the Kubernetes API client: {e}"))
    })
}

/// The bearer token for the review call: the configured reviewer JWT, the
/// pod's own token, or (as Vault does) the token under review itself.
fn reviewer_token(config: &AuthConfig, jwt: &str) -> zeroize::Zeroizing<String> {
    if !config.token_reviewer_jwt.is_empty() {
        return zeroize::Zeroizing::new(config.token_reviewer_jwt.clone());
    }
    if !config.disable_local_ca_jwt {
        if let Ok(own) = std::fs::read_to_string(IN_CLUSTER_TOKEN) {
            if !own.trim().is_empty() {
                return zeroize::Zeroizing::new(own.trim().to_owned());
            }
        }
    }
    zeroize::Zeroizing::new(jwt.to_owned())
}

/// Ask the API server about `jwt`, for `audiences` (none: the server's own).
pub async fn review(
    client: &reqwest::Client,
    config: &AuthConfig,
    jwt: &str,
    audiences: &[String],
) -> Result<Reviewed, EngineError> {
    let url = format!(
        "{}/apis/authentication.k8s.io/v1/tokenreviews",
        config.kubernetes_host
    );
    let mut spec = json!({ "token": jwt });
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    });
    let bearer = reviewer_token(config, jwt);
    let response = client
        .post(&url)
        .bearer_auth(bearer.as_str())
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            // reqwest's message names the URL and the cause, never the body.
            tracing::warn!(error = %e.without_url(), host = %config.kubernetes_host, "TokenReview call failed");
            EngineError::Upstream(format!(
                "failed to reach the Kubernetes API at {} for a TokenReview",
                config.kubernetes_host
            ))
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(EngineError::Upstream(format!(
            "the Kubernetes API refused the TokenReview call (HTTP {}): check token_reviewer_jwt and that its service account may create tokenreviews",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(EngineError::Upstream(format!(
            "the Kubernetes API answered the TokenReview call with HTTP {}",
            status.as_u16()
        )));
    }
    let reply: ReviewReply = response.json().await.map_err(|_| {
        EngineError::Upstream(
            "the Kubernetes API sent a TokenReview reply that is not valid JSON".into(),
        )
    })?;
    interpret(reply.status, audiences)
}

/// Turn a review's status into an identity, or a refusal that says why.
fn interpret(status: ReviewStatus, asked: &[String]) -> Result<Reviewed, EngineError> {
    if !status.authenticated {
        let why: String = status.error.chars().take(200).collect();
        return Err(EngineError::Denied(if why.is_empty() {
            "permission denied: the Kubernetes API did not accept the service account token".into()
        } else {
            format!("permission denied: the Kubernetes API did not accept the service account token: {why}")
        }));
    }
    let mut parts = status.user.username.splitn(4, ':');
    let (Some("system"), Some("serviceaccount"), Some(namespace), Some(name)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(EngineError::Denied(
            "permission denied: the token does not belong to a service account".into(),
        ));
    };
    if namespace.is_empty() || name.is_empty() {
        return Err(EngineError::Denied(
            "permission denied: the token does not belong to a service account".into(),
        ));
    }
    if !asked.is_empty() && !status.audiences.iter().any(|a| asked.contains(a)) {
        return Err(EngineError::Denied(format!(
            "permission denied: the token was not issued for the audience {:?}",
            asked.join(",")
        )));
    }
    Ok(Reviewed {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: status.user.uid,
        audiences: status.audiences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(authenticated: bool, username: &str, audiences: &[&str]) -> ReviewStatus {
        ReviewStatus {
            authenticated,
            user: ReviewUser {
                username: username.into(),
                uid: "u-1".into(),
            },
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            error: String::new(),
        }
    }

    #[test]
    fn service_accounts_are_recognised() {
        let r = interpret(
            status(true, "system:serviceaccount:team-a:app", &["cairn"]),
            &["cairn".into()],
        )
        .unwrap();
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("team-a", "app"));
    }

    #[test]
    fn refusals() {
        let asked = ["cairn".to_owned()];
        for (s, why) in [
            (status(false, "", &[]), "not accept"),
            (status(true, "alice", &["cairn"]), "service account"),
            (
                status(true, "system:serviceaccount:ns", &["cairn"]),
                "service account",
            ),
            (
                status(true, "system:serviceaccount:ns:app", &["api"]),
                "audience",
            ),
            (
                status(true, "system:serviceaccount:ns:app", &[]),
                "audience",
            ),
        ] {
            let e = interpret(s, &asked).unwrap_err();
            assert!(
                matches!(e, EngineError::Denied(_)) && e.to_string().contains(why),
                "{e}"
            );
        }
    }
}
