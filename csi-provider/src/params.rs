//! The `attributes` of a MountRequest: the SecretProviderClass parameters
//! plus what the driver adds about the pod (name, namespace, uid, service
//! account and its tokens), and the mount's default permission.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::MountError;
use crate::object::{parse_objects, ObjectSpec};

/// Attribute holding the projected service-account tokens (audience ->
/// `{token, expirationTimestamp}`), as the driver sets it.
pub const TOKENS_ATTRIBUTE: &str = "csi.storage.k8s.io/serviceAccount.tokens";
const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";

/// The audience asked for when the SecretProviderClass names none.
pub const DEFAULT_AUDIENCE: &str = "cairn";
/// The Kubernetes auth mount used when none is named.
pub const DEFAULT_AUTH_MOUNT: &str = "kubernetes";
/// The file mode used when the driver sends none.
pub const DEFAULT_MODE: u32 = 0o644;

/// The pod a Mount is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID: distinguishes two pods of the same name over time.
    pub uid: String,
    /// Service account, when the driver says.
    pub service_account: Option<String>,
}

impl Pod {
    /// The lease owner naming this pod (`<ns>/Pod/<name>/<uid>`).
    pub fn owner(&self) -> cairn_client::LeaseOwner {
        cairn_client::LeaseOwner {
            namespace: self.namespace.clone(),
            kind: "Pod".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }
}

/// Everything a Mount needs, parsed and validated.
pub struct MountParams {
    /// The pod.
    pub pod: Pod,
    /// The service-account token for [`MountParams::audience`].
    pub jwt: Zeroizing<String>,
    /// The objects to mount.
    pub objects: Vec<ObjectSpec>,
    /// Core address overriding the provider's (`address` / `vaultAddress`).
    pub address: Option<String>,
    /// CA certificate (PEM text or a file path) overriding the provider's.
    pub ca_cert: Option<String>,
    /// Kubernetes-auth role; `None` uses the `<namespace>.<serviceAccount>` role.
    pub role: Option<String>,
    /// Kubernetes auth mount.
    pub auth_mount: String,
    /// Token audience.
    pub audience: String,
    /// Mode of files whose object names none.
    pub default_mode: u32,
}

impl fmt::Debug for MountParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MountParams")
            .field("pod", &self.pod)
            .field("jwt", &"<redacted>")
            .field("objects", &self.objects)
            .field("address", &self.address)
            .field("role", &self.role)
            .field("auth_mount", &self.auth_mount)
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenEntry {
    token: String,
}

fn invalid(msg: impl Into<String>) -> MountError {
    MountError::InvalidArgument(msg.into())
}

/// Parses a MountRequest's `attributes` (JSON string map) and `permission`
/// (JSON-encoded decimal file mode).
pub fn parse(attributes: &str, permission: &str) -> Result<MountParams, MountError> {
    let mut attrs: HashMap<String, String> = serde_json::from_str(attributes)
        .map_err(|_| invalid("attributes are not a JSON map of strings"))?;
    // Take the tokens out first so nothing below can echo them.
    let tokens = Zeroizing::new(attrs.remove(TOKENS_ATTRIBUTE).unwrap_or_default());
    let take = |attrs: &mut HashMap<String, String>,
                names: &[&str]|
     -> Result<Option<String>, MountError> {
        let mut found = None;
        for name in names {
            if let Some(v) = attrs.remove(*name).filter(|v| !v.trim().is_empty()) {
                if found.is_some() {
                    return Err(invalid(format!(
                        "parameters {names:?} are given more than once"
                    )));
                }
                found = Some(v.trim().to_owned());
            }
        }
        Ok(found)
    };
    let required =
        |attrs: &mut HashMap<String, String>, name: &str| -> Result<String, MountError> {
            take(attrs, &[name])?.ok_or_else(|| invalid(format!("attribute {name} is missing")))
        };
    let pod = Pod {
        namespace: required(&mut attrs, POD_NAMESPACE)?,
        name: required(&mut attrs, POD_NAME)?,
        uid: required(&mut attrs, POD_UID)?,
        service_account: take(&mut attrs, &[SERVICE_ACCOUNT])?,
    };
    for (what, value) in [
        ("namespace", &pod.namespace),
        ("name", &pod.name),
        ("uid", &pod.uid),
    ] {
        if value.contains('/') || value.contains('\0') {
            return Err(invalid(format!("pod {what} {value:?} is malformed")));
        }
    }
    let objects_yaml =
        take(&mut attrs, &["objects"])?.ok_or_else(|| invalid("parameter objects is missing"))?;
    let objects = parse_objects(&objects_yaml)?;
    let audience = take(&mut attrs, &["audience"])?.unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    let jwt = token_for(&tokens, &audience)?;
    Ok(MountParams {
        pod,
        jwt,
        objects,
        address: take(&mut attrs, &["address", "vaultAddress"])?,
        ca_cert: take(&mut attrs, &["caCert", "vaultCACertPath"])?,
        role: take(&mut attrs, &["role", "roleName"])?,
        auth_mount: take(&mut attrs, &["authMount", "vaultKubernetesMountPath"])?
            .map(|m| m.trim_matches('/').to_owned())
            .unwrap_or_else(|| DEFAULT_AUTH_MOUNT.into()),
        audience,
        default_mode: parse_permission(permission)?,
    })
}

/// The token of `audience` from the driver's token map.
fn token_for(tokens: &str, audience: &str) -> Result<Zeroizing<String>, MountError> {
    if tokens.trim().is_empty() {
        return Err(MountError::NoToken {
            audience: audience.into(),
        });
    }
    let mut map: HashMap<String, TokenEntry> = serde_json::from_str(tokens).map_err(|_| {
        invalid(format!(
            "attribute {TOKENS_ATTRIBUTE} is not a JSON map of tokens"
        ))
    })?;
    let entry = map.remove(audience).ok_or_else(|| MountError::NoToken {
        audience: audience.into(),
    })?;
    let token = Zeroizing::new(entry.token);
    for other in map.values_mut() {
        zeroize::Zeroize::zeroize(&mut other.token);
    }
    if token.is_empty() {
        return Err(MountError::NoToken {
            audience: audience.into(),
        });
    }
    Ok(token)
}

/// `permission` is the driver's `os.FileMode` as JSON: a decimal number,
/// possibly quoted.
fn parse_permission(permission: &str) -> Result<u32, MountError> {
    let text = permission.trim().trim_matches('"');
    if text.is_empty() {
        return Ok(DEFAULT_MODE);
    }
    let mode: u32 = text
        .parse()
        .map_err(|_| invalid(format!("permission {permission:?} is not a file mode")))?;
    if mode > 0o777 {
        return Err(invalid(format!("permission {mode} is above 0777")));
    }
    Ok(mode)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(extra: serde_json::Value) -> String {
        let mut base = json!({
            "csi.storage.k8s.io/pod.name": "web-0",
            "csi.storage.k8s.io/pod.namespace": "team-a",
            "csi.storage.k8s.io/pod.uid": "1234",
            "csi.storage.k8s.io/serviceAccount.name": "web",
            "csi.storage.k8s.io/serviceAccount.tokens":
                json!({"cairn": {"token": "jwt-cairn", "expirationTimestamp": "x"},
                       "other": {"token": "jwt-other"}}).to_string(),
            "objects": "- {fileName: a, path: secret/data/x, key: k}\n",
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base.to_string()
    }

    #[test]
    fn parses_pod_token_and_defaults() {
        let p = parse(&attributes(json!({})), "420").unwrap();
        assert_eq!(p.pod.owner().header_value(), "team-a/Pod/web-0/1234");
        assert_eq!(p.jwt.as_str(), "jwt-cairn");
        assert_eq!(p.audience, "cairn");
        assert_eq!(p.auth_mount, "kubernetes");
        assert_eq!(p.default_mode, 0o644);
        assert!(p.role.is_none());
        assert!(!format!("{p:?}").contains("jwt-cairn"));
    }

    #[test]
    fn audience_and_vault_names() {
        let p = parse(
            &attributes(
                json!({"audience": "other", "roleName": "r", "vaultAddress": "http://h:1"}),
            ),
            "\"384\"",
        )
        .unwrap();
        assert_eq!(p.jwt.as_str(), "jwt-other");
        assert_eq!(p.role.as_deref(), Some("r"));
        assert_eq!(p.address.as_deref(), Some("http://h:1"));
        assert_eq!(p.default_mode, 0o600);
    }

    #[test]
    fn missing_audience_token_is_named() {
        let err = parse(&attributes(json!({"audience": "vault"})), "").unwrap_err();
        assert!(matches!(err, MountError::NoToken { ref audience } if audience == "vault"));
        assert!(!err.to_string().contains("jwt-"));
    }

    #[test]
    fn refuses_bad_attributes() {
        assert!(parse("[]", "").is_err());
        assert!(parse(&attributes(json!({"csi.storage.k8s.io/pod.uid": ""})), "").is_err());
        assert!(parse(
            &attributes(json!({"csi.storage.k8s.io/pod.name": "a/b"})),
            ""
        )
        .is_err());
        assert!(parse(&attributes(json!({"role": "a", "roleName": "b"})), "").is_err());
        assert!(parse(&attributes(json!({})), "4095").is_err());
        assert!(parse(&attributes(json!({})), "rw").is_err());
    }
}
