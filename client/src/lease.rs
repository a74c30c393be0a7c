//! Leases of dynamic secrets: issue a secret under a lease owned by a
//! Kubernetes object, renew, look up and revoke (`sys/leases/*`).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::client::{api_error, decode_response, Body, Client};
use crate::envelope::Secret;
use crate::error::ClientError;

/// The header naming the object that owns the lease a request issues.
pub const LEASE_OWNER_HEADER: &str = "X-Cairn-Lease-Owner";

/// A Kubernetes object owning a lease: `namespace/kind/name/uid`. The core
/// allows a token to name objects of its own namespace only; such a lease
/// outlives the token that created it and is revoked when the object goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl LeaseOwner {
    /// The header value.
    pub fn header_value(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace, self.kind, self.name, self.uid
        )
    }
}

/// A lease as renew answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LeaseRenewal {
    #[serde(default)]
    pub lease_id: String,
    /// Seconds left after the renewal (capped by the lease's max TTL).
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default)]
    pub renewable: bool,
}

/// A lease as `sys/leases/lookup` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LeaseInfo {
    #[serde(default)]
    pub id: String,
    /// RFC 3339, or `null` for a lease that never expires.
    #[serde(default)]
    pub expire_time: Option<String>,
    #[serde(default)]
    pub issue_time: Option<String>,
    #[serde(default)]
    pub renewable: bool,
    /// Seconds left.
    #[serde(default)]
    pub ttl: i64,
}

impl Client {
    /// `POST path` (e.g. `database/creds/team-a-ro`) issuing a secret whose
    /// lease is owned by `owner` instead of the calling token. Answers the
    /// whole envelope: `lease_id`, `lease_duration` and the secret in `data`.
    pub async fn write_leased(
        &self,
        method: Method,
        path: &str,
        data: &Map<String, Value>,
        owner: Option<&LeaseOwner>,
    ) -> Result<Secret<Map<String, Value>>, ClientError> {
        let body = if data.is_empty() && method == Method::GET {
            Body::Empty
        } else {
            Body::Json(Value::Object(data.clone()))
        };
        let response = self.send_owned(method, path, body, owner).await?;
        decode_response(response).await
    }

    /// Send a request whose leases `owner` (when given) is to own
    /// (`X-Cairn-Lease-Owner`); a non-2xx answer is the error.
    pub(crate) async fn send_owned(
        &self,
        method: Method,
        path: &str,
        body: Body,
        owner: Option<&LeaseOwner>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.request(method, path, &[], body);
        if let Some(owner) = owner {
            request = request.header(LEASE_OWNER_HEADER, owner.header_value());
        }
        let response = request.send().await.map_err(ClientError::Connection)?;
        let status = response.status();
        if !status.is_success() {
            return Err(api_error(status, response).await);
        }
        Ok(response)
    }

    /// `PUT sys/leases/renew`: extend a lease by `increment` seconds (0: the
    /// lease's TTL again), capped by its max TTL.
    pub async fn renew_lease(
        &self,
        lease_id: &str,
        increment: u64,
    ) -> Result<LeaseRenewal, ClientError> {
        let body = Body::Json(json!({ "lease_id": lease_id, "increment": increment }));
        let renewed: LeaseRenewal = self
            .json(Method::PUT, "sys/leases/renew", &[], body)
            .await?;
        Ok(renewed)
    }

    /// `PUT sys/leases/lookup`; `None` when the lease does not exist.
    pub async fn lookup_lease(&self, lease_id: &str) -> Result<Option<LeaseInfo>, ClientError> {
        let body = Body::Json(json!({ "lease_id": lease_id }));
        match self
            .json::<Secret<LeaseInfo>>(Method::PUT, "sys/leases/lookup", &[], body)
            .await
        {
            Ok(secret) => Ok(secret.data),
            Err(ClientError::Api {
                status: 400,
                errors,
            }) if errors.iter().any(|e| e.contains("invalid lease")) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT sys/leases/revoke`: revoke one lease now (its secret is destroyed).
    pub async fn revoke_lease(&self, lease_id: &str) -> Result<(), ClientError> {
        let body = Body::Json(json!({ "lease_id": lease_id }));
        self.empty(Method::PUT, "sys/leases/revoke", body).await
    }
}
