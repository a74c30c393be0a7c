//! Reading a pod's injection annotations — the `cairn.dev/` family and the
//! `vault.hashicorp.com/` aliases — into one [`InjectRequest`].
//!
//! `cairn.dev/` annotations: `inject`, `status`, `role`, `mode`
//! (`sidecar` | `init-only`), `native-sidecar`, `containers` (comma-separated
//! names to mount the secrets into; all by default), `auth-mount`,
//! `revoke-on-shutdown`, and per file `<f>`: `secret-<f>` (the secret path),
//! `key-<f>`, `template-<f>` (minijinja), `format-<f>` (`json` | `env` |
//! `raw` | `yaml`), `mode-<f>` (octal), `command-<f>`.
//!
//! Vault aliases with the same meaning: `agent-inject`, `agent-inject-status`,
//! `role`, `agent-pre-populate-only`, `agent-inject-containers`, `auth-path`,
//! `agent-revoke-on-shutdown`, `secret-volume-path`, and per file
//! `agent-inject-secret-<f>`, `agent-inject-template-<f>` (translated, see
//! [`crate::vault_template`]), `agent-inject-file-<f>`, `agent-inject-perms-<f>`,
//! `agent-inject-command-<f>`. A file without a template is written as JSON
//! (Vault's `agent-inject-default-template: json`). Pods that only use the
//! Vault family see their files at `/vault/secrets` (or `secret-volume-path`),
//! as under Vault. Vault annotations that change what is rendered in ways the
//! agent does not support are refused; those tuning Vault's own agent
//! (image, resources, ...) are ignored.

use std::collections::BTreeMap;

use cairn_client::agent_config::{
    check_template, is_valid_file_name, is_valid_secret_path, AgentMode, FileFormat, FileSpec,
    DEFAULT_FILE_MODE, OUTPUT_DIR,
};

use crate::deny::Deny;
use crate::vault_template;

/// Prefix of Cairn's annotations.
pub const CAIRN_PREFIX: &str = "cairn.dev/";
/// Prefix of the Vault agent injector's annotations.
pub const VAULT_PREFIX: &str = "vault.hashicorp.com/";
/// The marker annotation of an injected pod.
pub const STATUS_ANNOTATION: &str = "cairn.dev/status";
/// The marker's value.
pub const STATUS_INJECTED: &str = "injected";
/// Where pods using only the Vault annotations expect their files.
pub const VAULT_SECRETS_PATH: &str = "/vault/secrets";

/// Vault annotations that change what is rendered in ways the agent cannot follow.
const VAULT_UNSUPPORTED: [&str; 4] = [
    "agent-configmap",
    "agent-inject-token",
    "agent-inject-template-file-",
    "secret-volume-path-",
];

/// What the pod's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectRequest {
    /// The files, validated, templates checked.
    pub files: Vec<FileSpec>,
    /// The login role, if named.
    pub role: Option<String>,
    /// Init-only or sidecar.
    pub mode: AgentMode,
    /// Overrides the injector's default for native sidecars.
    pub native_sidecar: Option<bool>,
    /// The containers to mount the secrets into (all when `None`), with the
    /// annotation that named them.
    pub containers: Option<(String, Vec<String>)>,
    /// The auth mount, if named.
    pub auth_mount: Option<String>,
    /// Revoke token and leases when the agent stops.
    pub revoke_on_shutdown: bool,
    /// Where the app containers see the files.
    pub app_mount_path: String,
}

type Annotations = BTreeMap<String, String>;
/// An annotation's key and value.
type Slot = Option<(String, String)>;
/// Where a per-file annotation goes in its [`Draft`].
type Field = fn(&mut Draft) -> &mut Slot;

/// Whether the pod asks for injection (`cairn.dev/inject` or
/// `vault.hashicorp.com/agent-inject` is true).
pub fn injection_requested(annotations: &Annotations) -> Result<bool, Deny> {
    let cairn = optional_bool(annotations, "cairn.dev/inject")?.unwrap_or(false);
    let vault = optional_bool(annotations, "vault.hashicorp.com/agent-inject")?.unwrap_or(false);
    Ok(cairn || vault)
}

/// Whether the pod carries an injection marker (Cairn's or Vault's).
pub fn already_injected(annotations: &Annotations) -> bool {
    [STATUS_ANNOTATION, "vault.hashicorp.com/agent-inject-status"]
        .iter()
        .any(|k| annotations.get(*k).map(String::as_str) == Some(STATUS_INJECTED))
}

#[derive(Debug, Default)]
struct Draft {
    secret: Option<(String, String)>,
    key: Option<(String, String)>,
    template: Option<(String, String)>,
    format: Option<(String, String)>,
    mode: Option<(String, String)>,
    command: Option<(String, String)>,
    file: Option<(String, String)>,
}

/// Read and validate every injection annotation.
pub fn parse(annotations: &Annotations) -> Result<InjectRequest, Deny> {
    let cairn_requested = optional_bool(annotations, "cairn.dev/inject")?.unwrap_or(false);
    let mut cairn_files: BTreeMap<String, Draft> = BTreeMap::new();
    let mut vault_files: BTreeMap<String, Draft> = BTreeMap::new();
    for (key, value) in annotations {
        let entry = |files: &mut BTreeMap<String, Draft>, id: &str| -> Result<(), Deny> {
            if id.is_empty() {
                return Err(Deny::annotation(
                    key,
                    "the file name after the prefix is empty",
                ));
            }
            files.entry(id.to_owned()).or_default();
            Ok(())
        };
        let slot = (key.clone(), value.clone());
        if let Some(name) = key.strip_prefix(CAIRN_PREFIX) {
            let fields: [(&str, Field); 6] = [
                ("secret-", |d| &mut d.secret),
                ("key-", |d| &mut d.key),
                ("template-", |d| &mut d.template),
                ("format-", |d| &mut d.format),
                ("mode-", |d| &mut d.mode),
                ("command-", |d| &mut d.command),
            ];
            for (prefix, field) in fields {
                if let Some(id) = name.strip_prefix(prefix) {
                    entry(&mut cairn_files, id)?;
                    if let Some(d) = cairn_files.get_mut(id) {
                        *field(d) = Some(slot.clone());
                    }
                }
            }
        } else if let Some(name) = key.strip_prefix(VAULT_PREFIX) {
            if let Some(bad) = VAULT_UNSUPPORTED
                .iter()
                .find(|u| name == **u || (u.ends_with('-') && name.starts_with(**u)))
            {
                return Err(Deny::annotation(
                    key,
                    format!("{VAULT_PREFIX}{bad}* is not supported by the Cairn agent"),
                ));
            }
            let fields: [(&str, Field); 5] = [
                ("agent-inject-secret-", |d| &mut d.secret),
                ("agent-inject-template-", |d| &mut d.template),
                ("agent-inject-file-", |d| &mut d.file),
                ("agent-inject-perms-", |d| &mut d.mode),
                ("agent-inject-command-", |d| &mut d.command),
            ];
            for (prefix, field) in fields {
                if let Some(id) = name.strip_prefix(prefix) {
                    entry(&mut vault_files, id)?;
                    if let Some(d) = vault_files.get_mut(id) {
                        *field(d) = Some(slot.clone());
                    }
                }
            }
        }
    }

    let mut files = Vec::new();
    for (id, draft) in cairn_files {
        files.push(cairn_file(&id, draft)?);
    }
    for (id, draft) in vault_files {
        files.push(vault_file(&id, draft)?);
    }
    if files.is_empty() {
        return Err(Deny::NoFiles);
    }
    let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Deny::DuplicateFile(pair[0].to_owned()));
    }

    Ok(InjectRequest {
        files,
        role: non_empty(annotations, &["cairn.dev/role", "vault.hashicorp.com/role"])?,
        mode: mode(annotations)?,
        native_sidecar: optional_bool(annotations, "cairn.dev/native-sidecar")?,
        containers: containers(annotations)?,
        auth_mount: auth_mount(annotations)?,
        revoke_on_shutdown: optional_bool(annotations, "cairn.dev/revoke-on-shutdown")?
            .or(optional_bool(
                annotations,
                "vault.hashicorp.com/agent-revoke-on-shutdown",
            )?)
            .unwrap_or(false),
        app_mount_path: app_mount_path(annotations, cairn_requested)?,
    })
}

fn cairn_file(id: &str, mut d: Draft) -> Result<FileSpec, Deny> {
    let Some((secret_key, path)) = d.secret.take() else {
        return Err(orphan(&d, &format!("cairn.dev/secret-{id}")));
    };
    if !is_valid_file_name(id) {
        return Err(Deny::annotation(&secret_key, file_name_reason()));
    }
    let template = match d.template {
        Some((k, src)) => {
            check_template(&src).map_err(|e| Deny::annotation(&k, e.to_string()))?;
            Some(src)
        }
        None => None,
    };
    let format = match &d.format {
        Some((k, v)) => {
            if template.is_some() || d.key.is_some() {
                return Err(Deny::annotation(
                    k,
                    "a format applies only to files without key or template",
                ));
            }
            FileFormat::parse(v.trim())
                .ok_or_else(|| Deny::annotation(k, "expected json, env, raw or yaml"))?
        }
        None => FileFormat::Json,
    };
    if let (Some((k, _)), Some(_)) = (&d.key, &template) {
        return Err(Deny::annotation(
            k,
            "a file has either a key or a template, not both",
        ));
    }
    finish(
        id.to_owned(),
        secret_key,
        path,
        d.key.map(|k| k.1),
        template,
        format,
        d.mode,
        d.command,
    )
}

fn vault_file(id: &str, mut d: Draft) -> Result<FileSpec, Deny> {
    let Some((secret_key, mut path)) = d.secret.take() else {
        return Err(orphan(
            &d,
            &format!("vault.hashicorp.com/agent-inject-secret-{id}"),
        ));
    };
    let name = match &d.file {
        Some((k, v)) => {
            let v = v.trim().trim_start_matches('/');
            if !is_valid_file_name(v) {
                return Err(Deny::annotation(k, file_name_reason()));
            }
            v.to_owned()
        }
        None if is_valid_file_name(id) => id.to_owned(),
        None => return Err(Deny::annotation(&secret_key, file_name_reason())),
    };
    let template = match d.template {
        Some((k, src)) => {
            let t = vault_template::translate(&src).map_err(|e| {
                Deny::annotation(&k, format!("this Vault template cannot be rendered: {e}"))
            })?;
            check_template(&t.template).map_err(|e| {
                Deny::annotation(&k, format!("this Vault template cannot be rendered: {e}"))
            })?;
            // As in Vault, the template's own secret path is what is read.
            if let Some(p) = t.secret_path {
                path = p;
            }
            Some(t.template)
        }
        None => None,
    };
    finish(
        name,
        secret_key,
        path,
        None,
        template,
        FileFormat::Json,
        d.mode,
        d.command,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    name: String,
    secret_key: String,
    path: String,
    key: Option<String>,
    template: Option<String>,
    format: FileFormat,
    mode: Option<(String, String)>,
    command: Option<(String, String)>,
) -> Result<FileSpec, Deny> {
    let path = path.trim().trim_start_matches('/').to_owned();
    if !is_valid_secret_path(&path) {
        return Err(Deny::annotation(&secret_key, "not a valid secret path"));
    }
    let mode = match mode {
        Some((k, v)) => parse_mode(&v).ok_or_else(|| {
            Deny::annotation(
                k,
                "expected an octal file mode between 0000 and 0777, e.g. 0440",
            )
        })?,
        None => DEFAULT_FILE_MODE,
    };
    let command = match command {
        Some((k, v)) if v.trim().is_empty() => {
            return Err(Deny::annotation(k, "the command is empty"))
        }
        Some((_, v)) => Some(v),
        None => None,
    };
    if let Some(k) = &key {
        if k.is_empty() {
            return Err(Deny::annotation(secret_key, "the key is empty"));
        }
    }
    Ok(FileSpec {
        name,
        path,
        key,
        template,
        format,
        mode,
        command,
    })
}

fn orphan(d: &Draft, wanted: &str) -> Deny {
    let first = [&d.key, &d.template, &d.format, &d.mode, &d.command, &d.file]
        .into_iter()
        .flatten()
        .next()
        .map(|(k, _)| k.clone())
        .unwrap_or_default();
    Deny::annotation(first, format!("there is no {wanted} for it"))
}

fn file_name_reason() -> &'static str {
    "the file name must be letters, digits, '.', '_' and '-' (with '/' between directories)"
}

fn parse_mode(v: &str) -> Option<u32> {
    let v = v.trim();
    let digits = v.strip_prefix("0o").unwrap_or(v);
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
}

/// Go's `strconv.ParseBool`, which the Vault injector uses too.
fn optional_bool(annotations: &Annotations, key: &str) -> Result<Option<bool>, Deny> {
    match annotations.get(key).map(|v| v.trim()) {
        None => Ok(None),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True" | "y" | "yes") => Ok(Some(true)),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False" | "n" | "no") => Ok(Some(false)),
        Some(_) => Err(Deny::annotation(key, "expected true or false")),
    }
}

fn non_empty(annotations: &Annotations, keys: &[&str]) -> Result<Option<String>, Deny> {
    for key in keys {
        if let Some(v) = annotations.get(*key) {
            let v = v.trim();
            if v.is_empty() {
                return Err(Deny::annotation(*key, "the value is empty"));
            }
            return Ok(Some(v.to_owned()));
        }
    }
    Ok(None)
}

fn mode(annotations: &Annotations) -> Result<AgentMode, Deny> {
    match annotations.get("cairn.dev/mode").map(|v| v.trim()) {
        Some("sidecar") => Ok(AgentMode::Sidecar),
        Some("init-only") => Ok(AgentMode::InitOnly),
        Some(_) => Err(Deny::annotation(
            "cairn.dev/mode",
            "expected sidecar or init-only",
        )),
        None => match optional_bool(annotations, "vault.hashicorp.com/agent-pre-populate-only")? {
            Some(true) => Ok(AgentMode::InitOnly),
            _ => Ok(AgentMode::Sidecar),
        },
    }
}

fn containers(annotations: &Annotations) -> Result<Option<(String, Vec<String>)>, Deny> {
    for key in [
        "cairn.dev/containers",
        "vault.hashicorp.com/agent-inject-containers",
    ] {
        if let Some(v) = annotations.get(key) {
            let names: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            if names.is_empty() {
                return Err(Deny::annotation(key, "name at least one container"));
            }
            return Ok(Some((key.to_owned(), names)));
        }
    }
    Ok(None)
}

fn auth_mount(annotations: &Annotations) -> Result<Option<String>, Deny> {
    let (key, raw) = match (
        annotations.get("cairn.dev/auth-mount"),
        annotations.get("vault.hashicorp.com/auth-path"),
    ) {
        (Some(v), _) => ("cairn.dev/auth-mount", v.trim()),
        (None, Some(v)) => {
            let v = v.trim().trim_matches('/');
            (
                "vault.hashicorp.com/auth-path",
                v.strip_prefix("auth/").unwrap_or(v),
            )
        }
        (None, None) => return Ok(None),
    };
    let mount = raw.trim_matches('/');
    if mount.is_empty() || !is_valid_secret_path(mount) {
        return Err(Deny::annotation(key, "not a valid auth mount path"));
    }
    Ok(Some(mount.to_owned()))
}

fn app_mount_path(annotations: &Annotations, cairn_requested: bool) -> Result<String, Deny> {
    if cairn_requested {
        return Ok(OUTPUT_DIR.to_owned());
    }
    let key = "vault.hashicorp.com/secret-volume-path";
    match annotations.get(key).map(|v| v.trim().trim_end_matches('/')) {
        None => Ok(VAULT_SECRETS_PATH.to_owned()),
        Some(p)
            if p.starts_with('/')
                && p.len() > 1
                && !p.contains(':')
                && p.split('/')
                    .skip(1)
                    .all(|s| !s.is_empty() && s != "." && s != "..") =>
        {
            Ok(p.to_owned())
        }
        Some(_) => Err(Deny::annotation(key, "expected an absolute directory path")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_cairn_family() {
        let r = parse(&ann(&[
            ("cairn.dev/inject", "true"),
            ("cairn.dev/role", "web"),
            ("cairn.dev/secret-db.env", "secret/data/web/db"),
            ("cairn.dev/format-db.env", "env"),
            ("cairn.dev/mode-db.env", "0440"),
            ("cairn.dev/secret-token", "secret/data/web/api"),
            ("cairn.dev/key-token", "token"),
            ("cairn.dev/command-token", "kill -HUP 1"),
        ]))
        .unwrap();
        assert_eq!(r.role.as_deref(), Some("web"));
        assert_eq!(r.app_mount_path, OUTPUT_DIR);
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.files[0].name, "db.env");
        assert_eq!(
            (r.files[0].format, r.files[0].mode),
            (FileFormat::Env, 0o440)
        );
        assert_eq!(r.files[1].key.as_deref(), Some("token"));
        assert_eq!(r.files[1].command.as_deref(), Some("kill -HUP 1"));
    }

    #[test]
    fn reads_the_vault_family() {
        let r = parse(&ann(&[
            ("vault.hashicorp.com/agent-inject", "true"),
            ("vault.hashicorp.com/role", "web"),
            ("vault.hashicorp.com/agent-pre-populate-only", "true"),
            ("vault.hashicorp.com/auth-path", "auth/k8s-east"),
            (
                "vault.hashicorp.com/agent-inject-secret-db",
                "secret/data/web/db",
            ),
            (
                "vault.hashicorp.com/agent-inject-template-db",
                r#"{{ with secret "secret/data/web/db2" }}{{ .Data.data.pw }}{{ end }}"#,
            ),
            ("vault.hashicorp.com/agent-inject-file-db", "conf/db.txt"),
            ("vault.hashicorp.com/agent-inject-perms-db", "0400"),
            ("vault.hashicorp.com/agent-limits-cpu", "250m"),
        ]))
        .unwrap();
        assert_eq!(r.mode, AgentMode::InitOnly);
        assert_eq!(r.auth_mount.as_deref(), Some("k8s-east"));
        assert_eq!(r.app_mount_path, VAULT_SECRETS_PATH);
        let f = &r.files[0];
        assert_eq!(
            (f.name.as_str(), f.path.as_str(), f.mode),
            ("conf/db.txt", "secret/data/web/db2", 0o400)
        );
        assert_eq!(f.template.as_deref(), Some(r#"{{ secret["data"]["pw"] }}"#));
    }

    #[test]
    fn denies_naming_the_annotation() {
        for (pairs, needle) in [
            (vec![("cairn.dev/inject", "maybe")], "cairn.dev/inject: expected true or false"),
            (vec![("cairn.dev/key-db", "pw")], "cairn.dev/key-db: there is no cairn.dev/secret-db"),
            (vec![("cairn.dev/secret-../x", "kv/a")], "cairn.dev/secret-../x: the file name"),
            (vec![("cairn.dev/secret-a", "kv/../sys")], "not a valid secret path"),
            (
                vec![("cairn.dev/secret-a", "kv/a"), ("cairn.dev/template-a", "{{ secret.x ")],
                "cairn.dev/template-a: template syntax error",
            ),
            (
                vec![("cairn.dev/secret-a", "kv/a"), ("cairn.dev/format-a", "toml")],
                "cairn.dev/format-a: expected json",
            ),
            (
                vec![("cairn.dev/secret-a", "kv/a"), ("cairn.dev/mode-a", "0999")],
                "cairn.dev/mode-a: expected an octal",
            ),
            (
                vec![
                    ("vault.hashicorp.com/agent-inject-secret-a", "kv/a"),
                    ("vault.hashicorp.com/agent-inject-template-a", "{{ with secret \"kv/a\" }}{{ .Data.x | sprig }}{{ end }}"),
                ],
                "vault.hashicorp.com/agent-inject-template-a: this Vault template cannot be rendered: the function 'sprig'",
            ),
            (vec![("vault.hashicorp.com/agent-configmap", "cm")], "is not supported by the Cairn agent"),
            (
                vec![("cairn.dev/secret-a", "kv/a"), ("vault.hashicorp.com/agent-inject-secret-a", "kv/b")],
                "two annotations write the file \"a\"",
            ),
            (vec![("cairn.dev/inject", "true")], "no secret named"),
            (vec![("cairn.dev/secret-a", "kv/a"), ("cairn.dev/mode", "daemon")], "cairn.dev/mode: expected"),
        ] {
            let err = parse(&ann(&pairs)).expect_err(needle).to_string();
            assert!(err.contains(needle), "{err} does not contain {needle}");
        }
    }

    #[test]
    fn requested_and_injected_markers() {
        assert!(injection_requested(&ann(&[("vault.hashicorp.com/agent-inject", "yes")])).unwrap());
        assert!(!injection_requested(&ann(&[("cairn.dev/inject", "false")])).unwrap());
        assert!(!injection_requested(&ann(&[])).unwrap());
        assert!(already_injected(&ann(&[(
            STATUS_ANNOTATION,
            STATUS_INJECTED
        )])));
        assert!(!already_injected(&ann(&[(STATUS_ANNOTATION, "pending")])));
    }

    #[test]
    fn file_modes() {
        assert_eq!(parse_mode("0400"), Some(0o400));
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("1777"), None);
        assert_eq!(parse_mode("rw"), None);
    }
}
