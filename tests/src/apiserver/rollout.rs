//! The workload controllers, simulated: a Deployment, StatefulSet or DaemonSet whose generation
//! moved reports its rollout complete after a delay (or when a test releases paused rollouts).

use serde_json::{json, Value};

use super::meta::now_rfc3339;
use super::resources::{Behaviour, ResourceType};

/// How rollouts are simulated.
#[derive(Debug, Clone)]
pub struct RolloutConfig {
    /// Time from a generation change to the completed status.
    pub delay: std::time::Duration,
    /// While paused, rollouts stay in progress until released.
    pub paused: bool,
    /// Nodes a DaemonSet runs on.
    pub daemonset_nodes: i64,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            delay: std::time::Duration::from_millis(200),
            paused: false,
            daemonset_nodes: 1,
        }
    }
}

/// Whether a write from `old` to `new` starts a rollout.
pub fn starts_rollout(rt: &ResourceType, old: Option<&Value>, new: &Value) -> bool {
    let generation = |o: &Value| o.pointer("/metadata/generation").and_then(Value::as_i64);
    rt.is_workload()
        && new.pointer("/metadata/deletionTimestamp").is_none()
        && old.is_none_or(|o| generation(o) != generation(new))
}

/// The status of `obj` once its current generation rolled out.
pub fn completed_status(rt: &ResourceType, obj: &Value, cfg: &RolloutConfig) -> Value {
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let revision = format!(
        "{}-{generation}",
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("x")
    );
    let now = now_rfc3339();
    match rt.behaviour {
        Behaviour::Deployment => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": format!("ReplicaSet \"{revision}\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now},
            ],
        }),
        Behaviour::StatefulSet => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "currentRevision": revision,
            "updateRevision": revision,
        }),
        Behaviour::DaemonSet => {
            let n = cfg.daemonset_nodes;
            json!({
                "observedGeneration": generation,
                "desiredNumberScheduled": n,
                "currentNumberScheduled": n,
                "updatedNumberScheduled": n,
                "numberReady": n,
                "numberAvailable": n,
                "numberMisscheduled": 0,
            })
        }
        _ => obj.get("status").cloned().unwrap_or(Value::Null),
    }
}

/// Whether `obj`'s status says its current generation rolled out completely.
pub fn is_complete(rt: &ResourceType, obj: &Value) -> bool {
    let g = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let s = |f: &str| obj.pointer(&format!("/status/{f}")).and_then(Value::as_i64);
    let observed = s("observedGeneration") == g && g.is_some();
    match rt.behaviour {
        Behaviour::Deployment | Behaviour::StatefulSet => {
            let r = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            observed && s("updatedReplicas") == Some(r) && s("readyReplicas") == Some(r)
        }
        Behaviour::DaemonSet => {
            observed && s("updatedNumberScheduled") == s("desiredNumberScheduled")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find;

    #[test]
    fn rollout_status() {
        let rt = find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3}});
        assert!(starts_rollout(rt, None, &d));
        assert!(!starts_rollout(rt, Some(&d), &d));
        assert!(!is_complete(rt, &d));
        d["status"] = completed_status(rt, &d, &RolloutConfig::default());
        assert!(is_complete(rt, &d));
        assert_eq!(d["status"]["availableReplicas"], 3);
        d["metadata"]["generation"] = json!(3);
        assert!(!is_complete(rt, &d));
        let ds = find("apps", "v1", "daemonsets").unwrap();
        let mut o = json!({"metadata": {"name": "agent", "generation": 1}});
        o["status"] = completed_status(
            ds,
            &o,
            &RolloutConfig {
                daemonset_nodes: 2,
                ..Default::default()
            },
        );
        assert!(is_complete(ds, &o));
        assert!(!starts_rollout(
            find("", "v1", "secrets").unwrap(),
            None,
            &o
        ));
    }
}
