//! The OpenAPI 3 document served at `sys/internal/specs/openapi`, built from
//! the table of endpoints the router answers.

use serde_json::{json, Map, Value};

/// (path, methods, summary). Engine paths are shown for the `secret/` kv mount.
const ENDPOINTS: &[(&str, &[&str], &str)] = &[
    (
        "/sys/init",
        &["get", "put"],
        "Read initialization status, or initialize the node.",
    ),
    ("/sys/seal-status", &["get"], "Read the seal status."),
    (
        "/sys/unseal",
        &["put"],
        "Submit an unseal key share, or reset progress.",
    ),
    ("/sys/seal", &["put"], "Seal the node."),
    (
        "/sys/health",
        &["get", "head"],
        "Health with Vault's status codes.",
    ),
    ("/sys/leader", &["get"], "HA leader information."),
    ("/sys/rotate", &["put"], "Add a new encryption key term."),
    ("/sys/key-status", &["get"], "Active encryption key term."),
    ("/sys/mounts", &["get"], "List mounted secrets engines."),
    (
        "/sys/mounts/{path}",
        &["get", "post", "delete"],
        "Enable or disable a secrets engine.",
    ),
    (
        "/sys/mounts/{path}/tune",
        &["get", "post"],
        "Read or tune a mount.",
    ),
    ("/sys/auth", &["get"], "List auth methods."),
    ("/sys/policies/acl", &["get"], "List ACL policies (LIST)."),
    (
        "/sys/policies/acl/{name}",
        &["get", "put", "delete"],
        "Read, write or delete an ACL policy.",
    ),
    ("/sys/policy", &["get"], "List policies (legacy)."),
    (
        "/sys/policy/{name}",
        &["get", "put", "delete"],
        "Policies (legacy).",
    ),
    (
        "/sys/capabilities-self",
        &["post"],
        "Capabilities of the calling token on paths.",
    ),
    (
        "/sys/capabilities",
        &["post"],
        "Capabilities of a token on paths.",
    ),
    (
        "/sys/capabilities-accessor",
        &["post"],
        "Capabilities of a token, by accessor, on paths.",
    ),
    ("/sys/audit", &["get"], "List audit devices."),
    (
        "/sys/audit/{path}",
        &["put", "delete"],
        "Enable or disable an audit device.",
    ),
    (
        "/sys/audit-hash/{path}",
        &["post"],
        "Hash a value with the audit salt.",
    ),
    ("/sys/metrics", &["get"], "Metrics (format=prometheus)."),
    ("/sys/internal/specs/openapi", &["get"], "This document."),
    ("/auth/token/create", &["post"], "Create a child token."),
    (
        "/auth/token/create-orphan",
        &["post"],
        "Create an orphan token.",
    ),
    ("/auth/token/lookup", &["post"], "Look up a token."),
    (
        "/auth/token/lookup-self",
        &["get"],
        "Look up the calling token.",
    ),
    (
        "/auth/token/lookup-accessor",
        &["post"],
        "Look up a token by accessor.",
    ),
    ("/auth/token/renew", &["post"], "Renew a token."),
    (
        "/auth/token/renew-self",
        &["post"],
        "Renew the calling token.",
    ),
    (
        "/auth/token/renew-accessor",
        &["post"],
        "Renew a token by accessor.",
    ),
    (
        "/auth/token/revoke",
        &["post"],
        "Revoke a token and its children.",
    ),
    (
        "/auth/token/revoke-self",
        &["post"],
        "Revoke the calling token.",
    ),
    (
        "/auth/token/revoke-accessor",
        &["post"],
        "Revoke a token by accessor.",
    ),
    (
        "/auth/token/revoke-orphan",
        &["post"],
        "Revoke a token, orphaning its children.",
    ),
    (
        "/auth/token/accessors",
        &["get"],
        "List token accessors (LIST).",
    ),
    ("/auth/token/tidy", &["post"], "Purge expired tokens."),
    (
        "/secret/config",
        &["get", "post"],
        "KV v2 mount configuration.",
    ),
    (
        "/secret/data/{path}",
        &["get", "post", "put", "patch", "delete"],
        "KV v2 secret data.",
    ),
    (
        "/secret/metadata/{path}",
        &["get", "post", "patch", "delete"],
        "KV v2 secret metadata (LIST for keys).",
    ),
    ("/secret/delete/{path}", &["post"], "Soft-delete versions."),
    ("/secret/undelete/{path}", &["post"], "Undelete versions."),
    ("/secret/destroy/{path}", &["put"], "Destroy versions."),
    (
        "/secret/subkeys/{path}",
        &["get"],
        "Key structure of a secret.",
    ),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (path, methods, summary) in ENDPOINTS {
        let mut item = Map::new();
        for m in *methods {
            item.insert(
                (*m).to_owned(),
                json!({
                    "summary": summary,
                    "responses": {
                        "200": {"description": "OK"},
                        "204": {"description": "empty body"},
                        "400": {"description": "invalid request"},
                        "403": {"description": "permission denied"},
                        "404": {"description": "not found"},
                        "503": {"description": "sealed"}
                    }
                }),
            );
        }
        if path.contains('{') {
            let names: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            let params: Vec<Value> = names
                .iter()
                .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect();
            item.insert("parameters".into(), json!(params));
        }
        paths.insert((*path).to_owned(), Value::Object(item));
    }
    json!({
        "openapi": "3.0.2",
        "info": {"title": "Cairn", "version": env!("CARGO_PKG_VERSION"), "description": "Vault-compatible HTTP API of the Cairn secrets core"},
        "servers": [{"url": "/v1"}],
        "paths": paths,
        "components": {"securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Vault-Token"}}},
        "security": [{"token": []}],
    })
}
