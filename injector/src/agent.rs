//! The objects the injector adds to a pod: the agent's containers and the
//! volumes they share with the app, as Kubernetes JSON.

use cairn_client::agent_config::{ENV_VAR, OUTPUT_DIR, TOKEN_FILE};
use serde_json::{json, Value};

/// The audience of the projected service-account token the agent logs in with.
pub const TOKEN_AUDIENCE: &str = "cairn";
/// Lifetime asked for the projected token; the kubelet refreshes it at 80 %.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3600;
/// Where the agent sees the core's CA certificate.
pub const CA_DIR: &str = "/etc/cairn/ca";
/// The key of the CA ConfigMap.
pub const CA_KEY: &str = "ca.crt";
/// Size bound of the in-memory secrets volume (it counts against the pod's memory).
pub const SECRETS_SIZE_LIMIT: &str = "16Mi";
/// How long a native sidecar may take for its first render (periods of 1 s).
pub const STARTUP_FAILURE_THRESHOLD: i32 = 300;

/// How one agent container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRole {
    /// `cairn-agent --init`: renders once and exits.
    Init,
    /// An init container with `restartPolicy: Always` whose startup probe
    /// passes after the first render, so the app starts with its files.
    NativeSidecar,
    /// A regular container next to the app.
    ClassicSidecar,
}

/// The names the agent's objects got in this pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentNames {
    /// The shared in-memory volume.
    pub secrets_volume: String,
    /// The projected token volume.
    pub token_volume: String,
    /// The CA volume, when a CA ConfigMap is configured.
    pub ca_volume: Option<String>,
}

/// The directory of [`TOKEN_FILE`], where the token volume is mounted.
pub fn token_dir() -> &'static str {
    TOKEN_FILE
        .rsplit_once('/')
        .map_or(TOKEN_FILE, |(dir, _)| dir)
}

/// The file name of [`TOKEN_FILE`] inside the token volume.
fn token_file_name() -> &'static str {
    TOKEN_FILE
        .rsplit_once('/')
        .map_or(TOKEN_FILE, |(_, name)| name)
}

/// The pod volumes the agent needs.
pub fn volumes(names: &AgentNames, ca_configmap: Option<&str>) -> Vec<Value> {
    let mut volumes = vec![
        json!({
            "name": names.secrets_volume,
            "emptyDir": {"medium": "Memory", "sizeLimit": SECRETS_SIZE_LIMIT},
        }),
        json!({
            "name": names.token_volume,
            "projected": {
                "defaultMode": 0o440,
                "sources": [{"serviceAccountToken": {
                    "audience": TOKEN_AUDIENCE,
                    "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    "path": token_file_name(),
                }}],
            },
        }),
    ];
    if let (Some(volume), Some(configmap)) = (&names.ca_volume, ca_configmap) {
        volumes.push(json!({
            "name": volume,
            "configMap": {
                "name": configmap,
                "items": [{"key": CA_KEY, "path": CA_KEY}],
                "defaultMode": 0o444,
            },
        }));
    }
    volumes
}

/// The read-only mount of the secrets volume in an app container.
pub fn app_mount(names: &AgentNames, path: &str) -> Value {
    json!({"name": names.secrets_volume, "mountPath": path, "readOnly": true})
}

/// One agent container.
pub fn container(
    role: AgentRole,
    name: &str,
    image: &str,
    port: u16,
    names: &AgentNames,
    config_json: &str,
) -> Value {
    let mut mounts = vec![
        json!({"name": names.secrets_volume, "mountPath": OUTPUT_DIR}),
        json!({"name": names.token_volume, "mountPath": token_dir(), "readOnly": true}),
    ];
    if let Some(ca) = &names.ca_volume {
        mounts.push(json!({"name": ca, "mountPath": CA_DIR, "readOnly": true}));
    }
    let args = match role {
        AgentRole::Init => json!(["--init"]),
        // Probes come from the kubelet to the pod's IP, not to loopback.
        AgentRole::NativeSidecar | AgentRole::ClassicSidecar => {
            json!(["--http-addr", format!("0.0.0.0:{port}")])
        }
    };
    let mut c = json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [{"name": ENV_VAR, "value": config_json}],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "64Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    let probe = |path: &str, period: i32, failures: i32| {
        json!({
            "httpGet": {"path": path, "port": port},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 1,
        })
    };
    match role {
        AgentRole::Init => {}
        AgentRole::NativeSidecar => {
            c["restartPolicy"] = json!("Always");
            c["startupProbe"] = probe("/readyz", 1, STARTUP_FAILURE_THRESHOLD);
            c["livenessProbe"] = probe("/healthz", 10, 3);
        }
        AgentRole::ClassicSidecar => {
            c["readinessProbe"] = probe("/readyz", 5, 3);
            c["livenessProbe"] = probe("/healthz", 10, 3);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_path_splits() {
        assert_eq!(token_dir(), "/var/run/secrets/cairn");
        assert_eq!(token_file_name(), "token");
    }
}
