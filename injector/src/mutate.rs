//! The decision: a pod and the injector's config in, a JSON Patch (or
//! nothing, or a refusal) out. Pure: no I/O, no clock, no Kubernetes API.
//!
//! The patch only adds: annotations, volumes, mounts and containers are
//! appended or inserted, never replaced, so fields of the pod this build
//! does not know (newer Kubernetes) are kept as they are.

use std::collections::{BTreeMap, BTreeSet};

use cairn_client::agent_config::{AgentConfig, AgentMode, OUTPUT_DIR, SCHEMA_VERSION, TOKEN_FILE};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde_json::{json, Value};

use crate::agent::{self, AgentNames, AgentRole, CA_DIR, CA_KEY};
use crate::annotations::{self, InjectRequest, STATUS_ANNOTATION, STATUS_INJECTED};
use crate::config::Config;
use crate::deny::Deny;

/// The agent's container names (a suffix is added when the pod has them).
pub const INIT_CONTAINER: &str = "cairn-agent-init";
/// The sidecar's container name.
pub const SIDECAR_CONTAINER: &str = "cairn-agent";

/// Decide what to do with a pod at creation: `Ok(None)` leaves it alone
/// (no annotation, skipped namespace, already injected), `Ok(Some(patch))`
/// injects the agent, `Err(deny)` refuses the pod.
pub fn mutate(pod: &Pod, config: &Config) -> Result<Option<Patch>, Deny> {
    let no_annotations = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&no_annotations);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    if config.skips_namespace(namespace) || annotations::already_injected(annotations) {
        return Ok(None);
    }
    if !annotations::injection_requested(annotations)? {
        return Ok(None);
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(None);
    };
    let request = annotations::parse(annotations)?;
    let native = request.native_sidecar.unwrap_or(config.native_sidecar);
    if request.mode == AgentMode::Sidecar && !native {
        if let Some(job) = owning_job(pod) {
            return Err(Deny::SidecarInJob { job });
        }
    }
    let targets = targets(spec, &request)?;
    let agent_config = agent_config(config, &request)?;
    let config_json = agent_config.to_json();

    let volume_names: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let names = AgentNames {
        secrets_volume: unique("cairn-secrets", &volume_names),
        token_volume: unique("cairn-token", &volume_names),
        ca_volume: config
            .ca_configmap
            .as_ref()
            .map(|_| unique("cairn-ca", &volume_names)),
    };
    let container_names: BTreeSet<&str> = all_containers(spec)
        .map(|c| c.name.as_str())
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.as_str()),
        )
        .collect();
    let port = agent_port(spec, config.agent_port);
    let image = config.agent_image.as_str();

    let mut ops = Vec::new();
    ops.push(add(
        &["metadata", "annotations", STATUS_ANNOTATION],
        json!(STATUS_INJECTED),
    ));
    append_all(
        &mut ops,
        &["spec", "volumes"],
        spec.volumes.is_some(),
        agent::volumes(&names, config.ca_configmap.as_deref()),
    );
    // Mounts first: indices of init containers shift once ours is inserted.
    for (list, index, container) in &targets {
        let mount = agent::app_mount(&names, &request.app_mount_path);
        let idx = index.to_string();
        let base = ["spec", *list, idx.as_str(), "volumeMounts"];
        append_all(
            &mut ops,
            &base,
            container.volume_mounts.is_some(),
            vec![mount],
        );
    }
    let (first, sidecar) = match (request.mode, native) {
        (AgentMode::InitOnly, _) => (AgentRole::Init, None),
        (AgentMode::Sidecar, true) => (AgentRole::NativeSidecar, None),
        (AgentMode::Sidecar, false) => (AgentRole::Init, Some(AgentRole::ClassicSidecar)),
    };
    let first_name = match first {
        AgentRole::Init => unique(INIT_CONTAINER, &container_names),
        _ => unique(SIDECAR_CONTAINER, &container_names),
    };
    let first = agent::container(first, &first_name, image, port, &names, &config_json);
    match &spec.init_containers {
        Some(_) => ops.push(add(&["spec", "initContainers", "0"], first)),
        None => ops.push(add(&["spec", "initContainers"], json!([first]))),
    }
    if let Some(role) = sidecar {
        let name = unique(SIDECAR_CONTAINER, &container_names);
        let c = agent::container(role, &name, image, port, &names, &config_json);
        ops.push(add(&["spec", "containers", "-"], c));
    }
    Ok(Some(Patch(ops)))
}

fn add(path: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(path.iter().copied()),
        value,
    })
}

/// Add `values` to the array at `path`, creating it when absent.
fn append_all(ops: &mut Vec<PatchOperation>, path: &[&str], exists: bool, values: Vec<Value>) {
    if exists {
        for v in values {
            let mut p = path.to_vec();
            p.push("-");
            ops.push(add(&p, v));
        }
    } else {
        ops.push(add(path, Value::Array(values)));
    }
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// The app containers that get the secrets: `(list, index, container)`.
fn targets<'a>(
    spec: &'a PodSpec,
    request: &InjectRequest,
) -> Result<Vec<(&'static str, usize, &'a Container)>, Deny> {
    let indexed = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| ("initContainers", i, c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| ("containers", i, c)),
        );
    let targets: Vec<_> = match &request.containers {
        None => indexed.collect(),
        Some((annotation, wanted)) => {
            let all: Vec<_> = indexed.collect();
            if let Some(missing) = wanted.iter().find(|w| !all.iter().any(|t| t.2.name == **w)) {
                return Err(Deny::UnknownContainer {
                    annotation: annotation.clone(),
                    container: missing.clone(),
                });
            }
            all.into_iter()
                .filter(|t| wanted.contains(&t.2.name))
                .collect()
        }
    };
    for (_, _, c) in &targets {
        let taken = c.volume_mounts.iter().flatten().any(|m| {
            m.mount_path.trim_end_matches('/') == request.app_mount_path.trim_end_matches('/')
        });
        if taken {
            return Err(Deny::MountPathTaken {
                container: c.name.clone(),
                path: request.app_mount_path.clone(),
            });
        }
    }
    Ok(targets)
}

fn agent_config(config: &Config, request: &InjectRequest) -> Result<AgentConfig, Deny> {
    // No role annotation: the agent logs in without one and the core uses the
    // pod's identity role `<namespace>.<serviceAccount>`, which the operator
    // keeps from the SecretPolicies naming it.
    let role = request.role.clone().unwrap_or_default();
    let c = AgentConfig {
        version: SCHEMA_VERSION,
        cairn_addr: config.cairn_addr.clone(),
        ca_file: config
            .ca_configmap
            .as_ref()
            .map(|_| format!("{CA_DIR}/{CA_KEY}")),
        auth_mount: request
            .auth_mount
            .clone()
            .unwrap_or_else(|| config.auth_mount.clone()),
        role,
        token_file: TOKEN_FILE.to_owned(),
        output_dir: OUTPUT_DIR.to_owned(),
        mode: request.mode,
        revoke_on_shutdown: request.revoke_on_shutdown,
        files: request.files.clone(),
    };
    c.validate().map_err(Deny::AgentConfig)?;
    Ok(c)
}

/// `base`, or `base-2`, `base-3`, ... whichever is not taken.
fn unique(base: &str, taken: &BTreeSet<&str>) -> String {
    if !taken.contains(base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken.contains(name.as_str()))
        .unwrap_or_else(|| base.to_owned())
}

/// `preferred`, or the next port no container of the pod declares.
fn agent_port(spec: &PodSpec, preferred: u16) -> u16 {
    let declared: BTreeSet<i32> = all_containers(spec)
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| p.container_port)
        .collect();
    (preferred..=u16::MAX)
        .find(|p| !declared.contains(&i32::from(*p)))
        .unwrap_or(preferred)
}

/// The name of the Job controlling the pod, if one does.
fn owning_job(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Job" && o.api_version.starts_with("batch/"))
        .map(|o| o.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_skip_taken_ones() {
        let taken: BTreeSet<&str> = ["cairn-secrets", "cairn-secrets-2"].into_iter().collect();
        assert_eq!(unique("cairn-secrets", &taken), "cairn-secrets-3");
        assert_eq!(unique("cairn-token", &taken), "cairn-token");
    }

    #[test]
    fn annotation_key_is_escaped_in_the_pointer() {
        let op = add(&["metadata", "annotations", STATUS_ANNOTATION], json!("x"));
        let PatchOperation::Add(a) = op else { panic!() };
        assert_eq!(a.path.as_str(), "/metadata/annotations/cairn.dev~1status");
    }
}
