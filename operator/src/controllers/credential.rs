//! Issuing a credential with the workload's own identity, and the Secret
//! that holds it.
//!
//! The credential is requested with a token of the DynamicCredential's
//! service account (TokenRequest, audience `cairn`), so the core applies
//! that identity's policies and nothing more; its lease is owned by the
//! DynamicCredential (namespace/kind/name/uid), so it outlives the login
//! token and the operator.

use std::collections::BTreeMap;

use cairn_client::{ClientError, LeaseOwner};
use hmac::{Hmac, Mac};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::controllers::status::MANAGER;
use crate::crd::{DynamicCredential, DynamicCredentialSpec};
use crate::error::ReconcileError;

/// Secret annotation: the lease of the credential the Secret holds.
pub const LEASE_ANNOTATION: &str = "cairn.dev/lease-id";
/// Secret annotation: the lease being replaced by a rotation in flight.
pub const PREVIOUS_ANNOTATION: &str = "cairn.dev/previous-lease-id";
/// Secret annotation: when the rotation in flight switched the Secret.
pub const ROTATED_AT_ANNOTATION: &str = "cairn.dev/rotated-at";
/// Secret annotation: an HMAC of the credential.
pub const VERSION_ANNOTATION: &str = "cairn.dev/secret-version";
/// Kind named in lease owners.
pub const OWNER_KIND: &str = "DynamicCredential";
/// Lifetime of the service-account token requested for a login.
const WORKLOAD_TOKEN_SECONDS: i64 = 600;

/// A freshly issued credential. Its fields are secret: no `Debug`.
pub struct Issued {
    /// The lease id.
    pub lease_id: String,
    /// TTL granted, in seconds.
    pub lease_duration: u64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
    /// The credential's fields (e.g. username, password).
    pub data: Map<String, Value>,
}

/// The lease owner naming `dc`.
pub fn owner(dc: &DynamicCredential) -> Result<LeaseOwner, ReconcileError> {
    Ok(LeaseOwner {
        namespace: dc
            .namespace()
            .ok_or(ReconcileError::Metadata("namespace"))?,
        kind: OWNER_KIND.to_owned(),
        name: dc.name_any(),
        uid: dc.uid().ok_or(ReconcileError::Metadata("uid"))?,
    })
}

/// Issues a new credential for `dc`.
pub async fn issue(dc: &DynamicCredential, ctx: &Context) -> Result<Issued, ReconcileError> {
    let namespace = dc
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.kube.clone(), &namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![ctx.audience.clone()],
            expiration_seconds: Some(WORKLOAD_TOKEN_SECONDS),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request(
            &dc.spec.service_account_name,
            &PostParams::default(),
            &request,
        )
        .await?
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ReconcileError::CoreAnswer("the TokenRequest answered no token".into()))?;
    let auth = ctx
        .core
        .anonymous()
        .login_kubernetes(ctx.core.mount(), None, &token)
        .await
        .map_err(ReconcileError::core("log in as the service account"))?;
    let workload = ctx
        .core
        .client_with(auth.client_token.clone())
        .map_err(ReconcileError::core("build a client"))?;
    let owner = owner(dc)?;
    let result = workload
        .write_leased(
            reqwest::Method::GET,
            &dc.spec.path,
            &Map::new(),
            Some(&owner),
        )
        .await;
    // The login token is needed no more; the lease does not depend on it.
    if let Err(error) = workload.token_revoke_self().await {
        tracing::debug!(error = %error, "failed to revoke the workload login token");
    }
    let secret = result.map_err(ReconcileError::core("issue the credential"))?;
    if secret.lease_id.is_empty() {
        return Err(ReconcileError::InvalidSpec(format!(
            "path {} issued no lease: it is not a dynamic secret",
            dc.spec.path
        )));
    }
    Ok(Issued {
        lease_id: secret.lease_id.clone(),
        lease_duration: secret.lease_duration,
        renewable: secret.renewable,
        data: secret.data.unwrap_or_default(),
    })
}

/// The Secret's data: every field under its own name, or the template's
/// mapping. Non-string values are stored as JSON.
pub fn secret_data(
    spec: &DynamicCredentialSpec,
    data: &Map<String, Value>,
) -> Result<BTreeMap<String, ByteString>, ReconcileError> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    match &spec.template {
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(text(v))))
            .collect()),
        Some(template) => template
            .iter()
            .map(|(key, field)| {
                data.get(field)
                    .map(|v| (key.clone(), ByteString(text(v))))
                    .ok_or_else(|| {
                        ReconcileError::InvalidSpec(format!(
                            "template key {key} names field {field:?}, which the credential lacks"
                        ))
                    })
            })
            .collect(),
    }
}

/// An HMAC-SHA256 of the Secret's data, keyed with the object's uid and
/// lease: it changes when the credential changes and reveals nothing.
pub fn secret_version(uid: &str, lease_id: &str, data: &BTreeMap<String, ByteString>) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(format!("{uid}/{lease_id}").as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; unreachable in practice.
        Err(_) => return String::new(),
    };
    for (k, v) in data {
        mac.update(&(k.len() as u64).to_be_bytes());
        mac.update(k.as_bytes());
        mac.update(&(v.0.len() as u64).to_be_bytes());
        mac.update(&v.0);
    }
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// A digest of the spec fields a credential depends on.
pub fn issued_for(spec: &DynamicCredentialSpec) -> String {
    let text = serde_json::json!({
        "path": spec.path,
        "serviceAccountName": spec.service_account_name,
        "secretName": spec.secret_name,
        "template": spec.template,
    })
    .to_string();
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Writes the Secret by server-side apply, owned by `dc`. `previous` and
/// `rotated_at` mark a rotation in flight.
pub async fn apply_secret(
    dc: &DynamicCredential,
    ctx: &Context,
    issued: &Issued,
    previous: Option<&str>,
    rotated_at: Option<&str>,
) -> Result<String, ReconcileError> {
    let namespace = dc
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let uid = dc.uid().ok_or(ReconcileError::Metadata("uid"))?;
    let data = secret_data(&dc.spec, &issued.data)?;
    let version = secret_version(&uid, &issued.lease_id, &data);
    let mut annotations = BTreeMap::from([
        (LEASE_ANNOTATION.to_owned(), issued.lease_id.clone()),
        (VERSION_ANNOTATION.to_owned(), version.clone()),
    ]);
    if let Some(previous) = previous {
        annotations.insert(PREVIOUS_ANNOTATION.to_owned(), previous.to_owned());
    }
    if let Some(at) = rotated_at {
        annotations.insert(ROTATED_AT_ANNOTATION.to_owned(), at.to_owned());
    }
    let owner = dc
        .controller_owner_ref(&())
        .ok_or(ReconcileError::Metadata("owner reference"))?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(dc.spec.secret_name.clone()),
            namespace: Some(namespace.clone()),
            annotations: Some(annotations),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "cairn-operator".to_owned(),
            )])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    };
    let api: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let mut value = serde_json::to_value(&secret)
        .map_err(|e| ReconcileError::CoreAnswer(format!("Secret does not serialize: {e}")))?;
    value["apiVersion"] = Value::from("v1");
    value["kind"] = Value::from("Secret");
    api.patch(
        &dc.spec.secret_name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(version)
}

/// Whether `dc`'s Secret exists, is owned by `dc` and names `lease_id`.
/// Reads only its metadata: the credential stays out of the operator.
pub async fn secret_holds(
    dc: &DynamicCredential,
    ctx: &Context,
    lease_id: &str,
) -> Result<bool, ReconcileError> {
    let namespace = dc
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let uid = dc.uid().ok_or(ReconcileError::Metadata("uid"))?;
    let api: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let Some(secret) = api.get_metadata_opt(&dc.spec.secret_name).await? else {
        return Ok(false);
    };
    Ok(secret.owner_references().iter().any(|o| o.uid == uid)
        && secret
            .annotations()
            .get(LEASE_ANNOTATION)
            .map(String::as_str)
            == Some(lease_id))
}

/// Removes the rotation marks from the Secret once the previous credential
/// is revoked.
pub async fn clear_rotation_marks(
    dc: &DynamicCredential,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let namespace = dc
        .namespace()
        .ok_or(ReconcileError::Metadata("namespace"))?;
    let api: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let patch = serde_json::json!({ "metadata": { "annotations": {
        PREVIOUS_ANNOTATION: null, ROTATED_AT_ANNOTATION: null } } });
    match api
        .patch(
            &dc.spec.secret_name,
            &PatchParams {
                field_manager: Some(MANAGER.to_owned()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Revokes one lease; one already gone is fine.
pub async fn revoke(ctx: &Context, lease_id: &str) -> Result<(), ReconcileError> {
    let client = ctx.core.client().await;
    match client.revoke_lease(lease_id).await {
        Ok(()) => Ok(()),
        Err(e) if is_gone(&e) => Ok(()),
        Err(e) => Err(ReconcileError::core("revoke a lease")(e)),
    }
}

/// Whether the core says the lease does not exist (any more).
pub fn is_gone(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status: 404, .. } => true,
        ClientError::Api {
            status: 400,
            errors,
        } => errors
            .iter()
            .any(|m| m.contains("invalid lease") || m.contains("not found")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(template: Option<&[(&str, &str)]>) -> DynamicCredentialSpec {
        serde_json::from_value(serde_json::json!({
            "path": "database/creds/team-a_ro",
            "serviceAccountName": "web",
            "secretName": "web-db",
            "template": template.map(|t| t.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()),
        }))
        .unwrap()
    }

    fn creds() -> Map<String, Value> {
        serde_json::json!({"username": "v-web-1", "password": "s3cret", "port": 5432})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn defaults_apply() {
        let s = spec(None);
        assert_eq!(s.renewal_percent, 67);
        assert!(s.revoke_on_delete);
        assert_eq!(s.revoke_grace_period_seconds, 30);
    }

    #[test]
    fn data_is_every_field_or_the_template() {
        let all = secret_data(&spec(None), &creds()).unwrap();
        assert_eq!(all["username"].0, b"v-web-1");
        assert_eq!(all["port"].0, b"5432");
        let mapped = secret_data(
            &spec(Some(&[("PGUSER", "username"), ("PGPASSWORD", "password")])),
            &creds(),
        )
        .unwrap();
        assert_eq!(mapped.len(), 2);
        assert_eq!(mapped["PGPASSWORD"].0, b"s3cret");
        let missing = secret_data(&spec(Some(&[("X", "token")])), &creds());
        assert!(matches!(missing, Err(ReconcileError::InvalidSpec(_))));
    }

    #[test]
    fn version_changes_with_the_credential_and_hides_it() {
        let a = secret_data(&spec(None), &creds()).unwrap();
        let mut other = creds();
        other.insert("password".into(), Value::from("other"));
        let b = secret_data(&spec(None), &other).unwrap();
        let va = secret_version("uid", "lease/1", &a);
        assert_eq!(va, secret_version("uid", "lease/1", &a));
        assert_ne!(va, secret_version("uid", "lease/1", &b));
        assert_ne!(va, secret_version("uid", "lease/2", &a));
        assert!(!va.contains("s3cret"));
        assert_eq!(va.len(), 32);
    }

    #[test]
    fn issued_for_tracks_credential_fields_only() {
        let mut a = spec(None);
        let base = issued_for(&a);
        a.renewal_percent = 50;
        assert_eq!(issued_for(&a), base);
        a.path = "database/creds/team-a_rw".into();
        assert_ne!(issued_for(&a), base);
    }
}
