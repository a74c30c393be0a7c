//! The Kubernetes auth method: enable and configure it, manage its roles, and
//! log in with a service-account token.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{Body, Client};
use crate::envelope::{Auth, Secret};
use crate::error::ClientError;

/// A Kubernetes auth role (`auth/<mount>/role/<name>`), as written and read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesRole {
    /// Service account names allowed to log in (`*` for any).
    #[serde(default)]
    pub bound_service_account_names: Vec<String>,
    /// Namespaces allowed to log in (`*` for any).
    #[serde(default)]
    pub bound_service_account_namespaces: Vec<String>,
    /// Policies of the tokens the role issues.
    #[serde(default)]
    pub token_policies: Vec<String>,
    /// Token TTL in seconds (0: the system default).
    #[serde(default)]
    pub token_ttl: u64,
    /// Token max TTL in seconds (0: none beyond the system's).
    #[serde(default)]
    pub token_max_ttl: u64,
    /// The audience the service-account token must carry (empty: the API
    /// server's own, Vault's default).
    #[serde(default)]
    pub audience: String,
}

fn no_auth_block() -> ClientError {
    ClientError::Api {
        status: 200,
        errors: vec!["the login response carried no auth block".into()],
    }
}

impl Client {
    /// `POST sys/auth/<path>`: enable an auth method of type `kind`.
    pub async fn enable_auth(&self, path: &str, kind: &str) -> Result<(), ClientError> {
        let body = Body::Json(json!({ "type": kind }));
        self.empty(Method::POST, &format!("sys/auth/{path}"), body)
            .await
    }

    /// `POST auth/<mount>/config`.
    pub async fn configure_kubernetes_auth(
        &self,
        mount: &str,
        kubernetes_host: &str,
        kubernetes_ca_cert: Option<&str>,
        token_reviewer_jwt: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut body = json!({ "kubernetes_host": kubernetes_host });
        if let Some(ca) = kubernetes_ca_cert {
            body["kubernetes_ca_cert"] = Value::from(ca);
        }
        if let Some(jwt) = token_reviewer_jwt {
            body["token_reviewer_jwt"] = Value::from(jwt);
        }
        self.empty(
            Method::POST,
            &format!("auth/{mount}/config"),
            Body::Json(body),
        )
        .await
    }

    /// `POST auth/<mount>/role/<name>`.
    pub async fn write_kubernetes_role(
        &self,
        mount: &str,
        name: &str,
        role: &KubernetesRole,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_value(role)
            .map_err(|source| ClientError::Decode { status: 0, source })?;
        self.empty(
            Method::POST,
            &format!("auth/{mount}/role/{name}"),
            Body::Json(body),
        )
        .await
    }

    /// `GET auth/<mount>/role/<name>`; `None` when there is no such role.
    pub async fn read_kubernetes_role(
        &self,
        mount: &str,
        name: &str,
    ) -> Result<Option<KubernetesRole>, ClientError> {
        match self
            .json::<Secret<KubernetesRole>>(
                Method::GET,
                &format!("auth/{mount}/role/{name}"),
                &[],
                Body::Empty,
            )
            .await
        {
            Ok(secret) => Ok(secret.data),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE auth/<mount>/role/<name>`.
    pub async fn delete_kubernetes_role(&self, mount: &str, name: &str) -> Result<(), ClientError> {
        self.empty(
            Method::DELETE,
            &format!("auth/{mount}/role/{name}"),
            Body::Empty,
        )
        .await
    }

    /// LIST `auth/<mount>/role`.
    pub async fn list_kubernetes_roles(&self, mount: &str) -> Result<Vec<String>, ClientError> {
        self.list_keys(&format!("auth/{mount}/role")).await
    }

    /// `POST auth/<mount>/login` with a service-account token. With no
    /// `role`, the core uses the `<namespace>.<serviceAccount>` role. The
    /// returned [`Auth`] holds the new token; the client's own token is
    /// left unchanged (see [`Client::set_token`]).
    pub async fn login_kubernetes(
        &self,
        mount: &str,
        role: Option<&str>,
        jwt: &str,
    ) -> Result<Auth, ClientError> {
        let mut body = json!({ "jwt": jwt });
        if let Some(role) = role {
            body["role"] = Value::from(role);
        }
        let secret: Secret<Value> = self
            .json(
                Method::POST,
                &format!("auth/{mount}/login"),
                &[],
                Body::Json(body),
            )
            .await?;
        secret.auth.ok_or_else(no_auth_block)
    }
}
