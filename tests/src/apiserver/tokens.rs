//! Service-account tokens: issued (TokenRequest, or minted by a test) as ES256 JWTs with the
//! claims Kubernetes puts in bound tokens, and checked (TokenReview) like the real API server:
//! signature, expiry, audiences, and the service account (and bound pod) still existing with the same uid.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::errors::ApiError;

/// The issuer in every token, as in a default cluster.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The audiences of the API server itself: the default of a TokenRequest or TokenReview without audiences.
pub const API_AUDIENCES: &[&str] = &["https://kubernetes.default.svc.cluster.local"];

/// An object a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundRef {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct K8sClaims {
    namespace: String,
    serviceaccount: BoundRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod: Option<BoundRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<BoundRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    aud: Vec<String>,
    exp: u64,
    iat: u64,
    nbf: u64,
    iss: String,
    jti: String,
    sub: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: K8sClaims,
}

/// What a token says about its holder, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Service account namespace.
    pub namespace: String,
    /// Service account name and uid.
    pub service_account: BoundRef,
    /// Pod the token is bound to.
    pub pod: Option<BoundRef>,
    /// Secret the token is bound to.
    pub secret: Option<BoundRef>,
    /// The token's audiences.
    pub audiences: Vec<String>,
    /// `jti`.
    pub id: String,
}

impl Identity {
    /// `system:serviceaccount:<ns>:<name>`.
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account.name
        )
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT this server signed.
    #[error("invalid bearer token")]
    Invalid,
    /// Past its `exp`.
    #[error("token has expired")]
    Expired,
    /// None of its audiences is acceptable.
    #[error("token audiences {have:?} is invalid for the target audiences {want:?}")]
    Audience {
        /// The token's audiences.
        have: Vec<String>,
        /// The acceptable audiences.
        want: Vec<String>,
    },
    /// The service account, pod or secret it is bound to is gone or was replaced.
    #[error("{0}")]
    Revoked(String),
}

/// Signs and verifies tokens with one ECDSA P-256 key made at server start.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: String,
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenIssuer {
    /// A fresh signing key.
    pub fn new() -> Result<TokenIssuer, ApiError> {
        let kp = rcgen::KeyPair::generate().map_err(|e| {
            ApiError::internal(format!("cannot generate the token signing key: {e}"))
        })?;
        let public_pem = kp.public_key_pem();
        let encoding = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes())
            .map_err(|e| ApiError::internal(format!("cannot load the token signing key: {e}")))?;
        let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(|e| {
            ApiError::internal(format!("cannot load the token verification key: {e}"))
        })?;
        Ok(TokenIssuer {
            encoding,
            decoding,
            public_pem,
        })
    }

    /// The PEM public key tokens are signed with (what a cluster publishes for `pem_keys`/JWKS).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// Sign a token for `ns/sa` (uid `sa_uid`), valid for `ttl` from now.
    pub fn issue(
        &self,
        ns: &str,
        sa: &BoundRef,
        audiences: &[String],
        ttl: Duration,
        pod: Option<BoundRef>,
        secret: Option<BoundRef>,
    ) -> Result<(String, u64), ApiError> {
        let now = unix_now();
        let exp = now + ttl.as_secs();
        let claims = Claims {
            aud: audiences.to_vec(),
            exp,
            iat: now,
            nbf: now,
            iss: ISSUER.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            sub: format!("system:serviceaccount:{ns}:{}", sa.name),
            kubernetes: K8sClaims {
                namespace: ns.to_string(),
                serviceaccount: sa.clone(),
                pod,
                secret,
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("cairn-e2e".to_string());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("cannot sign the token: {e}")))?;
        Ok((token, exp))
    }

    /// Verify signature, issuer and expiry; audiences are checked by [`TokenIssuer::review`].
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        v.leeway = 0;
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let c = data.claims;
        Ok(Identity {
            namespace: c.kubernetes.namespace,
            service_account: c.kubernetes.serviceaccount,
            pod: c.kubernetes.pod,
            secret: c.kubernetes.secret,
            audiences: c.aud,
            id: c.jti,
        })
    }

    /// Verify `token` for `wanted` audiences (the API server's own when empty); returns the
    /// identity and the audiences it is valid for. `exists` tells whether an object
    /// (`plural`, namespace, name, uid) still exists.
    pub fn review(
        &self,
        token: &str,
        wanted: &[String],
        exists: impl Fn(&str, &str, &BoundRef) -> bool,
    ) -> Result<(Identity, Vec<String>), TokenError> {
        let id = self.verify(token)?;
        let want: Vec<String> = if wanted.is_empty() {
            API_AUDIENCES.iter().map(|s| s.to_string()).collect()
        } else {
            wanted.to_vec()
        };
        let both: Vec<String> = want
            .iter()
            .filter(|a| id.audiences.contains(a))
            .cloned()
            .collect();
        if both.is_empty() {
            return Err(TokenError::Audience {
                have: id.audiences.clone(),
                want,
            });
        }
        if !exists("serviceaccounts", &id.namespace, &id.service_account) {
            return Err(TokenError::Revoked(format!(
                "service account {}/{} has been deleted or replaced",
                id.namespace, id.service_account.name
            )));
        }
        if let Some(pod) = &id.pod {
            if !exists("pods", &id.namespace, pod) {
                return Err(TokenError::Revoked(format!(
                    "pod {}/{} has been deleted or replaced",
                    id.namespace, pod.name
                )));
            }
        }
        if let Some(secret) = &id.secret {
            if !exists("secrets", &id.namespace, secret) {
                return Err(TokenError::Revoked(format!(
                    "secret {}/{} has been deleted or replaced",
                    id.namespace, secret.name
                )));
            }
        }
        Ok((id, both))
    }
}

/// The TokenReview `status` for a review's outcome.
pub fn review_status(outcome: &Result<(Identity, Vec<String>), TokenError>) -> Value {
    match outcome {
        Ok((id, audiences)) => {
            let mut extra = json!({});
            if let Some(pod) = &id.pod {
                extra["authentication.kubernetes.io/pod-name"] = json!([pod.name]);
                extra["authentication.kubernetes.io/pod-uid"] = json!([pod.uid]);
            }
            extra["authentication.kubernetes.io/credential-id"] = json!([format!("JTI={}", id.id)]);
            json!({
                "authenticated": true,
                "user": {
                    "username": id.username(),
                    "uid": id.service_account.uid,
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", id.namespace), "system:authenticated"],
                    "extra": extra,
                },
                "audiences": audiences,
            })
        }
        Err(e) => json!({"user": {}, "error": format!("[invalid bearer token, {e}]")}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa() -> BoundRef {
        BoundRef {
            name: "app".into(),
            uid: "u-1".into(),
        }
    }

    #[test]
    fn issue_and_review() {
        let issuer = TokenIssuer::new().unwrap();
        let (tok, _) = issuer
            .issue(
                "ns",
                &sa(),
                &["cairn".into()],
                Duration::from_secs(600),
                None,
                None,
            )
            .unwrap();
        let all = |_: &str, _: &str, _: &BoundRef| true;
        let (id, aud) = issuer
            .review(&tok, &["cairn".into(), "other".into()], all)
            .unwrap();
        assert_eq!(id.username(), "system:serviceaccount:ns:app");
        assert_eq!(aud, vec!["cairn".to_string()]);
        assert!(matches!(
            issuer.review(&tok, &["vault".into()], all),
            Err(TokenError::Audience { .. })
        ));
        assert!(matches!(
            issuer.review(&tok, &[], all),
            Err(TokenError::Audience { .. })
        ));
        let gone = |p: &str, _: &str, _: &BoundRef| p != "serviceaccounts";
        assert!(matches!(
            issuer.review(&tok, &["cairn".into()], gone),
            Err(TokenError::Revoked(_))
        ));
        let other = TokenIssuer::new().unwrap();
        assert_eq!(other.verify(&tok).unwrap_err(), TokenError::Invalid);
        let (old, _) = issuer
            .issue("ns", &sa(), &["cairn".into()], Duration::ZERO, None, None)
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(issuer.verify(&old).unwrap_err(), TokenError::Expired);
        assert_eq!(issuer.verify("garbage").unwrap_err(), TokenError::Invalid);
    }
}
