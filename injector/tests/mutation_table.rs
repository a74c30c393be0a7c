//! Table tests of the pure mutation over real pod specs (as the API server
//! hands them to webhooks, defaults filled in). Every injected pod is
//! re-mutated (idempotency), compared with the original (nothing of the app
//! changed but its mounts) and validated against the Kubernetes schema.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use cairn_client::agent_config::{AgentConfig, AgentMode, FileFormat};
use cairn_injector::{mutate, Config, Deny};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use common::{apply, pod, validate_against_schema};

enum Expect {
    Inject(fn(&Value, &AgentConfig)),
    Skip,
    Deny(&'static str),
}

struct Case {
    name: &'static str,
    fixture: &'static str,
    tweak: fn(&mut Value),
    config: fn() -> Config,
    expect: Expect,
}

fn native() -> Config {
    Config::new(
        "ghcr.io/cairn-dev/cairn-agent:0.1.0",
        "https://cairn.cairn-system.svc:8200",
    )
    .with_own_namespace("cairn-system")
}

fn classic() -> Config {
    native().with_classic_sidecars()
}

fn with_ca() -> Config {
    native().with_ca_configmap("cairn-ca")
}

fn none(_: &mut Value) {}

fn annotate(pod: &mut Value, key: &str, value: &str) {
    pod["metadata"]["annotations"][key] = json!(value);
}

fn unannotate(pod: &mut Value, key: &str) {
    pod["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(key);
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|l| pod["spec"][l].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn mounts_at(c: &Value, path: &str) -> Vec<Value> {
    c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["mountPath"] == path)
        .cloned()
        .collect()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "deployment with an init container, native sidecar",
            fixture: "deployment-web.json",
            tweak: none,
            config: native,
            expect: Expect::Inject(|p, c| {
                assert_eq!(names(&p["spec"]["initContainers"]), ["cairn-agent", "migrate"]);
                assert_eq!(names(&p["spec"]["containers"]), ["web", "nginx"]);
                let agent = container(p, "cairn-agent");
                assert_eq!(agent["restartPolicy"], "Always");
                assert_eq!(agent["startupProbe"]["httpGet"]["path"], "/readyz");
                assert_eq!(agent["startupProbe"]["httpGet"]["port"], 8099);
                assert_eq!(agent["args"], json!(["--http-addr", "0.0.0.0:8099"]));
                for app in ["migrate", "web", "nginx"] {
                    let m = mounts_at(container(p, app), "/cairn/secrets");
                    assert_eq!(m, [json!({"name": "cairn-secrets", "mountPath": "/cairn/secrets", "readOnly": true})]);
                }
                assert_eq!(c.role, "web");
                assert_eq!(c.mode, AgentMode::Sidecar);
                assert_eq!(c.files.len(), 2);
                let config = c.files.iter().find(|f| f.name == "config.yaml").unwrap();
                assert!(config.template.as_deref().unwrap().contains("secret.data.password | json"));
                assert_eq!(config.command.as_deref(), Some("kill -HUP 1"));
                let db = c.files.iter().find(|f| f.name == "db.env").unwrap();
                assert_eq!((db.format, db.mode, db.path.as_str()), (FileFormat::Env, 0o440, "secret/data/shop/web/db"));
                let token = p["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "cairn-token").unwrap();
                assert_eq!(token["projected"]["sources"][0]["serviceAccountToken"]["audience"], "cairn");
                let secrets = p["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "cairn-secrets").unwrap();
                assert_eq!(secrets["emptyDir"]["medium"], "Memory");
            }),
        },
        Case {
            name: "deployment, classic sidecar by config",
            fixture: "deployment-web.json",
            tweak: none,
            config: classic,
            expect: Expect::Inject(|p, _| {
                assert_eq!(names(&p["spec"]["initContainers"]), ["cairn-agent-init", "migrate"]);
                assert_eq!(names(&p["spec"]["containers"]), ["web", "nginx", "cairn-agent"]);
                assert_eq!(container(p, "cairn-agent-init")["args"], json!(["--init"]));
                assert!(container(p, "cairn-agent-init").get("restartPolicy").is_none());
                let sidecar = container(p, "cairn-agent");
                assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"], "/readyz");
                assert!(sidecar.get("restartPolicy").is_none());
            }),
        },
        Case {
            name: "deployment, classic sidecar by annotation",
            fixture: "deployment-web.json",
            tweak: |p| annotate(p, "cairn.dev/native-sidecar", "false"),
            config: native,
            expect: Expect::Inject(|p, _| {
                assert_eq!(names(&p["spec"]["containers"]), ["web", "nginx", "cairn-agent"]);
            }),
        },
        Case {
            name: "deployment, secrets only in the named container",
            fixture: "deployment-web.json",
            tweak: |p| annotate(p, "cairn.dev/containers", "web"),
            config: native,
            expect: Expect::Inject(|p, _| {
                assert_eq!(mounts_at(container(p, "web"), "/cairn/secrets").len(), 1);
                assert!(mounts_at(container(p, "nginx"), "/cairn/secrets").is_empty());
                assert!(mounts_at(container(p, "migrate"), "/cairn/secrets").is_empty());
            }),
        },
        Case {
            name: "deployment, CA ConfigMap mounted into the agent",
            fixture: "deployment-web.json",
            tweak: none,
            config: with_ca,
            expect: Expect::Inject(|p, c| {
                assert_eq!(c.ca_file.as_deref(), Some("/etc/cairn/ca/ca.crt"));
                let agent = container(p, "cairn-agent");
                assert_eq!(mounts_at(agent, "/etc/cairn/ca")[0]["name"], "cairn-ca");
                let ca = p["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "cairn-ca").unwrap();
                assert_eq!(ca["configMap"]["name"], "cairn-ca");
            }),
        },
        Case {
            name: "deployment, a container already uses /cairn/secrets",
            fixture: "deployment-web.json",
            tweak: |p| {
                p["spec"]["containers"][1]["volumeMounts"] = json!([{"name": "cache", "mountPath": "/cairn/secrets/"}]);
            },
            config: native,
            expect: Expect::Deny("container \"nginx\" already mounts a volume at /cairn/secrets"),
        },
        Case {
            name: "deployment, containers annotation names a missing container",
            fixture: "deployment-web.json",
            tweak: |p| annotate(p, "cairn.dev/containers", "web, worker"),
            config: native,
            expect: Expect::Deny("annotation cairn.dev/containers: the pod has no container \"worker\""),
        },
        Case {
            name: "deployment, a template that does not parse",
            fixture: "deployment-web.json",
            tweak: |p| annotate(p, "cairn.dev/template-config.yaml", "{% for x in secret.data %}"),
            config: native,
            expect: Expect::Deny("annotation cairn.dev/template-config.yaml: template syntax error"),
        },
        Case {
            name: "job, init-only",
            fixture: "job-migrate.json",
            tweak: none,
            config: native,
            expect: Expect::Inject(|p, c| {
                assert_eq!(c.mode, AgentMode::InitOnly);
                assert_eq!(c.role, "", "no role annotation: the identity role");
                assert_eq!(names(&p["spec"]["initContainers"]), ["cairn-agent-init"]);
                assert_eq!(names(&p["spec"]["containers"]), ["migrate"]);
                assert_eq!(p["spec"]["restartPolicy"], "Never");
            }),
        },
        Case {
            name: "job, sidecar mode with native sidecars (the Job still completes)",
            fixture: "job-migrate.json",
            tweak: |p| unannotate(p, "cairn.dev/mode"),
            config: native,
            expect: Expect::Inject(|p, _| {
                assert_eq!(names(&p["spec"]["initContainers"]), ["cairn-agent"]);
                assert_eq!(container(p, "cairn-agent")["restartPolicy"], "Always");
            }),
        },
        Case {
            name: "job, sidecar mode with classic sidecars",
            fixture: "job-migrate.json",
            tweak: |p| unannotate(p, "cairn.dev/mode"),
            config: classic,
            expect: Expect::Deny("pod belongs to Job \"db-migrate-28871234\""),
        },
        Case {
            name: "volume, container and port names clash with ours",
            fixture: "clash.json",
            tweak: none,
            config: classic,
            expect: Expect::Inject(|p, c| {
                let volumes = names(&p["spec"]["volumes"]);
                assert_eq!(volumes, ["cairn-secrets", "cairn-token", "cairn-secrets-2", "cairn-secrets-3", "cairn-token-2"]);
                assert_eq!(names(&p["spec"]["containers"]), ["cairn-agent", "cairn-agent-2"]);
                assert_eq!(names(&p["spec"]["initContainers"]), ["cairn-agent-init"]);
                let sidecar = container(p, "cairn-agent-2");
                assert_eq!(sidecar["readinessProbe"]["httpGet"]["port"], 8101);
                assert_eq!(mounts_at(sidecar, "/cairn/secrets")[0]["name"], "cairn-secrets-3");
                let app = container(p, "cairn-agent");
                assert_eq!(mounts_at(app, "/data")[0]["name"], "cairn-secrets");
                assert_eq!(mounts_at(app, "/cairn/secrets")[0]["name"], "cairn-secrets-3");
                assert_eq!(c.files[0].key.as_deref(), Some("api_key"));
                assert_eq!(c.role, "", "no role annotation: the identity role");
            }),
        },
        Case {
            name: "vault annotations with templates",
            fixture: "vault-app.json",
            tweak: none,
            config: native,
            expect: Expect::Inject(|p, c| {
                assert_eq!(c.role, "internal-app");
                let m = mounts_at(container(p, "orgchart"), "/vault/secrets");
                assert_eq!(m.len(), 1, "Vault pods find their files where Vault puts them");
                let db = c.files.iter().find(|f| f.name == "database-config.txt").unwrap();
                assert_eq!(db.path, "internal/data/database/config");
                assert!(db.template.as_deref().unwrap().starts_with("postgresql://{{ secret[\"data\"][\"username\"] }}"));
                let api = c.files.iter().find(|f| f.name == "api.env").unwrap();
                assert_eq!(api.mode, 0o400);
                assert!(api.template.as_deref().unwrap().contains("{% for k, v in"));
            }),
        },
        Case {
            name: "vault template the agent cannot render",
            fixture: "vault-app.json",
            tweak: |p| {
                annotate(
                    p,
                    "vault.hashicorp.com/agent-inject-template-api.env",
                    "{{ with secret \"internal/data/api\" }}{{ .Data.data.key | sha256Hex }}{{ end }}",
                )
            },
            config: native,
            expect: Expect::Deny(
                "annotation vault.hashicorp.com/agent-inject-template-api.env: this Vault template cannot be rendered: the function 'sha256Hex' is not supported",
            ),
        },
        Case {
            name: "both annotation families in one pod",
            fixture: "deployment-web.json",
            tweak: |p| {
                annotate(p, "vault.hashicorp.com/agent-inject-secret-legacy.json", "secret/data/shop/legacy");
            },
            config: native,
            expect: Expect::Inject(|p, c| {
                assert_eq!(c.files.len(), 3);
                assert!(c.files.iter().any(|f| f.name == "legacy.json" && f.template.is_none()));
                assert_eq!(mounts_at(container(p, "web"), "/cairn/secrets").len(), 1);
            }),
        },
        Case {
            name: "vault-injected pod (agent-inject-status: injected)",
            fixture: "vault-app.json",
            tweak: |p| annotate(p, "vault.hashicorp.com/agent-inject-status", "injected"),
            config: native,
            expect: Expect::Skip,
        },
        Case {
            name: "pod already injected",
            fixture: "deployment-web.json",
            tweak: |p| annotate(p, "cairn.dev/status", "injected"),
            config: native,
            expect: Expect::Skip,
        },
        Case {
            name: "pod without the annotation",
            fixture: "deployment-web.json",
            tweak: |p| unannotate(p, "cairn.dev/inject"),
            config: native,
            expect: Expect::Skip,
        },
        Case {
            name: "pod asking not to be injected",
            fixture: "deployment-web.json",
            tweak: |p| annotate(p, "cairn.dev/inject", "false"),
            config: native,
            expect: Expect::Skip,
        },
        Case {
            name: "pod in kube-system",
            fixture: "deployment-web.json",
            tweak: |p| p["metadata"]["namespace"] = json!("kube-system"),
            config: native,
            expect: Expect::Skip,
        },
        Case {
            name: "pod in the injector's own namespace",
            fixture: "deployment-web.json",
            tweak: |p| p["metadata"]["namespace"] = json!("cairn-system"),
            config: native,
            expect: Expect::Skip,
        },
    ]
}

/// Every container of `original` is in `patched` unchanged but for mounts
/// appended at the end.
fn assert_app_untouched(original: &Value, patched: &Value) {
    for list in ["initContainers", "containers"] {
        for c in original["spec"][list].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap();
            let p = patched["spec"][list]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == name)
                .unwrap();
            let (mut c, mut p) = (c.clone(), p.clone());
            let before = c
                .as_object_mut()
                .unwrap()
                .remove("volumeMounts")
                .unwrap_or(json!([]));
            let after = p
                .as_object_mut()
                .unwrap()
                .remove("volumeMounts")
                .unwrap_or(json!([]));
            assert_eq!(c, p, "container {name} changed");
            let (before, after) = (before.as_array().unwrap(), after.as_array().unwrap());
            assert_eq!(
                &after[..before.len()],
                &before[..],
                "mounts of {name} changed"
            );
        }
    }
    for v in original["spec"]["volumes"].as_array().into_iter().flatten() {
        assert!(patched["spec"]["volumes"].as_array().unwrap().contains(v));
    }
    let mut annotations = original["metadata"]["annotations"].clone();
    annotations["cairn.dev/status"] = json!("injected");
    assert_eq!(patched["metadata"]["annotations"], annotations);
}

fn agent_configs(patched: &Value) -> Vec<AgentConfig> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|l| patched["spec"][l].as_array().into_iter().flatten())
        .filter_map(|c| {
            c["env"]
                .as_array()?
                .iter()
                .find(|e| e["name"] == "CAIRN_AGENT_CONFIG")
                .map(|e| AgentConfig::from_json(e["value"].as_str().unwrap()).unwrap())
        })
        .collect()
}

#[test]
fn mutation_table() {
    let mut to_validate = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let mut original = pod(case.fixture);
        (case.tweak)(&mut original);
        let typed: Pod = serde_json::from_value(original.clone()).unwrap();
        let config = (case.config)();
        let result = mutate(&typed, &config);
        match (case.expect, result) {
            (Expect::Inject(check), Ok(Some(patch))) => {
                let patched = apply(&original, &patch);
                assert_app_untouched(&original, &patched);
                let configs = agent_configs(&patched);
                assert!(!configs.is_empty(), "{}: no agent config", case.name);
                assert!(
                    configs.windows(2).all(|w| w[0] == w[1]),
                    "{}: agents disagree",
                    case.name
                );
                let mut all = names(&patched["spec"]["initContainers"]);
                all.extend(names(&patched["spec"]["containers"]));
                let mut unique = all.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(
                    unique.len(),
                    all.len(),
                    "{}: container names clash",
                    case.name
                );
                check(&patched, &configs[0]);
                let again: Pod = serde_json::from_value(patched.clone()).unwrap();
                assert_eq!(
                    mutate(&again, &config),
                    Ok(None),
                    "{}: not idempotent",
                    case.name
                );
                to_validate.push((format!("case-{i}"), patched));
            }
            (Expect::Skip, Ok(None)) => {}
            (Expect::Deny(needle), Err(deny)) => {
                let message = deny.to_string();
                assert!(
                    message.contains(needle),
                    "{}: {message:?} lacks {needle:?}",
                    case.name
                );
            }
            (_, other) => panic!("{}: unexpected result {other:?}", case.name),
        }
    }
    assert!(to_validate.len() >= 10);
    validate_against_schema(&to_validate);
}

#[test]
fn deny_messages_are_what_kubectl_shows() {
    let mut p = pod("deployment-web.json");
    annotate(&mut p, "cairn.dev/mode-db.env", "rwx");
    let typed: Pod = serde_json::from_value(p).unwrap();
    let deny = mutate(&typed, &native()).unwrap_err();
    assert!(
        matches!(deny, Deny::Annotation { ref annotation, .. } if annotation == "cairn.dev/mode-db.env")
    );
}
