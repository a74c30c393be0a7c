//! The Helm chart `charts/cairn` rendered with the real `helm template`, and the RBAC it
//! grants each component's service account: what the programs' recorded API calls are
//! checked against.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::apiserver::RequestRecord;
use crate::rbac::{RbacError, Rules};

/// Release name of the test render (the chart then names the core's service account `cairn`
/// and the others `cairn-<component>`).
pub const RELEASE: &str = "cairn";
/// Namespace of the test render.
pub const NAMESPACE: &str = "cairn";

/// Failure to render the chart.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// helm could not be started.
    #[error("cannot run {helm} (set HELM, put helm on PATH, or run scripts/test --install-only): {source}")]
    Spawn {
        /// The binary tried.
        helm: String,
        /// Why.
        source: std::io::Error,
    },
    /// helm template failed.
    #[error("helm template failed: {0}")]
    Template(String),
    /// The rendered RBAC does not read.
    #[error("rendered RBAC: {0}")]
    Rbac(#[from] RbacError),
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The helm binary: `$HELM`, else `helm` on PATH, else this checkout's `.tools/bin/helm`
/// (where scripts/test installs it).
pub fn helm_binary() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM") {
        return h.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("helm"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| workspace().join(".tools/bin/helm"))
}

/// `helm template` of the chart with its default values and `sets` (`--set k=v`).
pub fn render(sets: &[&str]) -> Result<String, ChartError> {
    let helm = helm_binary();
    let mut cmd = Command::new(&helm);
    cmd.args(["template", RELEASE])
        .arg(workspace().join("charts/cairn"))
        .args(["--namespace", NAMESPACE])
        // helm wants writable cache and config directories, not the user's.
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("cairn-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("cairn-helm-config"),
        );
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().map_err(|source| ChartError::Spawn {
        helm: helm.display().to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(ChartError::Template(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The default render, once per test process. Panics (failing the test) when helm is
/// missing or fails: a coverage check without the chart would prove nothing.
pub fn default_render() -> &'static str {
    static RENDER: OnceLock<String> = OnceLock::new();
    RENDER.get_or_init(|| render(&[]).unwrap_or_else(|e| panic!("{e}")))
}

/// The ServiceAccount the chart gives `component` (`core`, `operator`, `csi-provider`,
/// `injector`) in the default render.
pub fn service_account(component: &str) -> String {
    match component {
        "core" => RELEASE.to_string(),
        other => format!("{RELEASE}-{other}"),
    }
}

/// `system:serviceaccount:<ns>:<sa>` of `component`: the user its recorded requests carry.
pub fn user(component: &str) -> String {
    format!(
        "system:serviceaccount:{NAMESPACE}:{}",
        service_account(component)
    )
}

/// Panic unless the chart binds no RBAC rules at all to `component`'s
/// ServiceAccount (for components that never call the Kubernetes API).
#[track_caller]
pub fn assert_binds_no_rules(component: &str) {
    let rules = rbac_of(component);
    assert!(
        rules.is_empty(),
        "the chart grants {component} rules it never uses: {:#?}",
        rules.0
    );
}

/// The rules the default render binds to `component`'s service account. Panics unless the
/// render holds that ServiceAccount and the component's workload runs as it, so the rules
/// are the ones its pods get.
#[track_caller]
pub fn rbac_of(component: &str) -> Rules {
    let sa = service_account(component);
    let render = default_render();
    let docs: Vec<Value> = serde_saphyr::from_multiple(render)
        .unwrap_or_else(|e| panic!("the rendered chart is not YAML: {e}"));
    let field = |d: &Value, p: &str| d.pointer(p).and_then(Value::as_str).map(str::to_string);
    assert!(
        docs.iter().any(|d| {
            field(d, "/kind").as_deref() == Some("ServiceAccount")
                && field(d, "/metadata/name") == Some(sa.clone())
                && field(d, "/metadata/namespace").as_deref() == Some(NAMESPACE)
        }),
        "the chart renders no ServiceAccount {NAMESPACE}/{sa}"
    );
    let workloads: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            matches!(
                field(d, "/kind").as_deref(),
                Some("Deployment" | "StatefulSet" | "DaemonSet")
            ) && field(d, "/metadata/labels/app.kubernetes.io~1component").as_deref()
                == Some(component)
        })
        .collect();
    assert!(
        !workloads.is_empty(),
        "the chart renders no {component} workload"
    );
    for w in workloads {
        assert_eq!(
            field(w, "/spec/template/spec/serviceAccountName"),
            Some(sa.clone()),
            "the {component} workload does not run as {sa}"
        );
    }
    Rules::bound_to(render, NAMESPACE, &sa).unwrap_or_else(|e| panic!("{e}"))
}

/// Panics unless every resource request of `component` among `requests` is allowed by the
/// rules the rendered chart binds to its service account, and there was at least one.
#[track_caller]
pub fn assert_rbac_covers(component: &str, requests: &[RequestRecord]) {
    let user = user(component);
    let mine: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.is_resource() && r.user.as_deref() == Some(user.as_str()))
        .collect();
    assert!(!mine.is_empty(), "no call of {user} recorded");
    let uncovered = rbac_of(component).uncovered_requests(mine);
    assert!(
        uncovered.is_empty(),
        "calls of {user} outside the RBAC the chart renders for it: {uncovered:#?}"
    );
}
