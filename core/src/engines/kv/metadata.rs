//! Per-secret metadata: the version list with each version's state, the
//! secret's own `max_versions` / `cas_required` / `delete_version_after`, and
//! `custom_metadata`. Also the `metadata/<path>` endpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::config::{Config, DEFAULT_MAX_VERSIONS};
use super::input;
use super::store::{self, WriteSet, META_PREFIX};
use super::time::{self, Nanos};
use crate::barrier::View;
use crate::engines::{object, EngineError, Response};

/// The state of one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// When the version was written.
    pub created_time: Nanos,
    /// When it was (or will be, through `delete_version_after`) soft-deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<Nanos>,
    /// Whether its data was destroyed for good.
    #[serde(default)]
    pub destroyed: bool,
}

impl VersionMeta {
    /// Soft-deleted as of `now` (a deletion time in the future is not yet in effect).
    pub fn is_deleted(&self, now: Nanos) -> bool {
        matches!(self.deletion_time, Some(t) if t < now)
    }

    /// Neither deleted nor destroyed: its data may be read.
    pub fn is_live(&self, now: Nanos) -> bool {
        !self.destroyed && !self.is_deleted(now)
    }
}

/// Everything known about one secret except its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyMetadata {
    /// The newest version number; 0 before the first write.
    pub current_version: u64,
    /// The lower edge of the retention window; Vault leaves it 0 until the
    /// window first fills.
    pub oldest_version: u64,
    /// When the metadata was created.
    pub created_time: Nanos,
    /// When the last version was written.
    pub updated_time: Nanos,
    /// The secret's own version limit; 0 defers to the mount.
    pub max_versions: u32,
    /// Whether writes to this secret must carry `options.cas`.
    pub cas_required: bool,
    /// Seconds after which a new version reads as deleted; 0 unset.
    pub delete_version_after: u64,
    /// User key/value pairs; `None` until first set (answered as `null`).
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// Versions still kept, by number.
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMetadata {
    /// Metadata for a secret first touched at `now`.
    pub fn new(now: Nanos) -> Self {
        KeyMetadata {
            created_time: now,
            updated_time: now,
            ..Default::default()
        }
    }

    /// Record a new version and slide the retention window. Returns the new
    /// version number and the versions that fell out of the window, whose data
    /// must be deleted in the same batch.
    ///
    /// The limit is the larger of the secret's and the mount's non-zero
    /// `max_versions`, else [`DEFAULT_MAX_VERSIONS`]: that is what Vault's KV
    /// plugin does (`max(k.MaxVersions, configMaxVersions)` in `AddVersion`), so
    /// a secret can raise retention above the mount's but not lower it.
    pub fn add_version(
        &mut self,
        created: Nanos,
        deletion: Option<Nanos>,
        mount_max_versions: u32,
    ) -> (u64, Vec<u64>) {
        self.current_version += 1;
        let version = self.current_version;
        self.versions.insert(
            version,
            VersionMeta {
                created_time: created,
                deletion_time: deletion,
                destroyed: false,
            },
        );
        self.updated_time = created;
        if self.created_time == 0 {
            self.created_time = created;
        }
        let max = match self.max_versions.max(mount_max_versions) {
            0 => DEFAULT_MAX_VERSIONS,
            m => m,
        };
        let mut pruned = Vec::new();
        if self.current_version - self.oldest_version >= u64::from(max) {
            let last_pruned = self.current_version - u64::from(max);
            let kept = self.versions.split_off(&(last_pruned + 1));
            pruned = std::mem::replace(&mut self.versions, kept)
                .into_keys()
                .collect();
            self.oldest_version = last_pruned + 1;
        }
        (version, pruned)
    }

    /// The per-version metadata Vault answers beside data, after a write and
    /// in 404 bodies: `{created_time, custom_metadata, deletion_time, destroyed, version}`.
    pub fn version_json(&self, version: u64, vm: &VersionMeta) -> Value {
        json!({
            "created_time": time::format_rfc3339(vm.created_time),
            "custom_metadata": self.custom_metadata,
            "deletion_time": time::format_optional(vm.deletion_time),
            "destroyed": vm.destroyed,
            "version": version,
        })
    }

    /// The `data` of a metadata read.
    pub fn to_json(&self) -> Value {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, vm)| {
                let entry = json!({
                    "created_time": time::format_rfc3339(vm.created_time),
                    "deletion_time": time::format_optional(vm.deletion_time),
                    "destroyed": vm.destroyed,
                });
                (n.to_string(), entry)
            })
            .collect();
        json!({
            "cas_required": self.cas_required,
            "created_time": time::format_rfc3339(self.created_time),
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata,
            "delete_version_after": time::format_duration_secs(self.delete_version_after as i64),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": time::format_rfc3339(self.updated_time),
            "versions": versions,
        })
    }
}

/// `GET metadata/<path>`.
pub async fn read(view: &View, path: &str) -> Result<Response, EngineError> {
    let meta = store::read_meta(view, path)
        .await?
        .ok_or(EngineError::NotFound)?;
    Ok(Response::data(meta.to_json()))
}

/// `LIST metadata/<prefix>`: the secrets and folders directly below `prefix`
/// (already validated, empty or ending with `/`).
pub async fn list(view: &View, prefix: &str) -> Result<Response, EngineError> {
    let keys = view.list(&format!("{META_PREFIX}{prefix}")).await?;
    if keys.is_empty() {
        return Err(EngineError::NotFound);
    }
    Ok(Response::data(object([("keys", Value::from(keys))])))
}

/// `POST metadata/<path>`: set the fields present, creating the metadata (with
/// no versions) if needed. The caller holds the secret's write lock.
pub async fn write(
    view: &View,
    path: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let max_versions = input::u32_field(body, "max_versions")?;
    let cas_required = input::bool_field(body, "cas_required")?;
    let dva = secret_delete_version_after(body)?;
    let custom = match body.get("custom_metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(custom_metadata_from(m)?),
        Some(_) => return Err(custom_error("custom_metadata must be an object")),
    };
    if max_versions.is_none() && cas_required.is_none() && dva.is_none() && custom.is_none() {
        return Ok(Response::empty());
    }
    let config = Config::load(view).await?;
    let now = time::now();
    let mut meta = store::load_meta(view, path)
        .await?
        .unwrap_or_else(|| KeyMetadata::new(now));
    if let Some(m) = max_versions {
        meta.max_versions = m;
    }
    if let Some(c) = cas_required {
        meta.cas_required = c;
    }
    if let Some(d) = dva {
        meta.delete_version_after = d;
    }
    if let Some(c) = custom {
        meta.custom_metadata = Some(c);
    }
    save(view, path, &meta).await?;
    Ok(cas_warning(&config, cas_required))
}

/// `PATCH metadata/<path>`: a JSON merge patch of the settable fields onto
/// existing metadata; `null` resets a field, and inside `custom_metadata`
/// removes a key. The caller holds the secret's write lock.
pub async fn patch(
    view: &View,
    path: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let mut meta = store::load_meta(view, path)
        .await?
        .ok_or(EngineError::NotFound)?;
    let config = Config::load(view).await?;
    let mut cas_required = None;
    if body.contains_key("max_versions") {
        meta.max_versions = input::u32_field(body, "max_versions")?.unwrap_or(0);
    }
    if body.contains_key("cas_required") {
        cas_required = input::bool_field(body, "cas_required")?;
        meta.cas_required = cas_required.unwrap_or(false);
    }
    if body.contains_key("delete_version_after") {
        meta.delete_version_after = secret_delete_version_after(body)?.unwrap_or(0);
    }
    if let Some(patch) = body.get("custom_metadata") {
        if !patch.is_object() && !patch.is_null() {
            return Err(custom_error("custom_metadata must be an object"));
        }
        let mut doc = match meta.custom_metadata.take() {
            Some(m) => Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()),
            None => Value::Null,
        };
        json_patch::merge(&mut doc, patch);
        meta.custom_metadata = match doc {
            Value::Object(m) => Some(custom_metadata_from(&m)?),
            _ => None,
        };
    }
    save(view, path, &meta).await?;
    Ok(cas_warning(&config, cas_required))
}

/// `DELETE metadata/<path>`: the metadata and every version, in one batch.
/// The caller holds the secret's write lock.
pub async fn delete(view: &View, path: &str) -> Result<Response, EngineError> {
    let Some(meta) = store::load_meta(view, path).await? else {
        return Ok(Response::empty());
    };
    let mut ws = WriteSet::new();
    for version in meta.versions.keys() {
        ws.delete(store::version_key(path, *version));
    }
    ws.delete(store::meta_key(path));
    ws.commit(view).await?;
    Ok(Response::empty())
}

async fn save(view: &View, path: &str, meta: &KeyMetadata) -> Result<(), EngineError> {
    let mut ws = WriteSet::new();
    ws.put_json(store::meta_key(path), meta)?;
    ws.commit(view).await
}

fn secret_delete_version_after(body: &Map<String, Value>) -> Result<Option<u64>, EngineError> {
    let Some(v) = body.get("delete_version_after").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let secs = time::parse_duration_secs(v).map_err(|e| {
        EngineError::BadRequest(format!(
            "invalid value for field \"delete_version_after\": {e}"
        ))
    })?;
    u64::try_from(secs)
        .map(Some)
        .map_err(|_| EngineError::BadRequest("delete_version_after cannot be negative".to_owned()))
}

fn cas_warning(config: &Config, cas_required: Option<bool>) -> Response {
    let mut resp = Response::empty();
    if config.cas_required && cas_required == Some(false) {
        resp.warnings.push(
            "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."
                .to_owned(),
        );
    }
    resp
}

const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;

fn custom_error(msg: impl std::fmt::Display) -> EngineError {
    EngineError::BadRequest(format!("custom_metadata validation failed: {msg}"))
}

/// Turn a JSON object into custom metadata, weak-decoding scalar values to
/// strings as Vault does, and apply Vault's limits. Messages name keys, never
/// values.
fn custom_metadata_from(raw: &Map<String, Value>) -> Result<BTreeMap<String, String>, EngineError> {
    if raw.len() > MAX_CUSTOM_KEYS {
        return Err(custom_error(format_args!(
            "payload must contain at most {MAX_CUSTOM_KEYS} keys, provided {}",
            raw.len()
        )));
    }
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, value) in raw {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            _ => {
                problems.push(format!("value for key {key:?} must be a string"));
                continue;
            }
        };
        if key.is_empty() || key.len() > MAX_CUSTOM_KEY_LEN {
            problems.push(format!(
                "length of key {key:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_LEN}",
                key.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_CUSTOM_VALUE_LEN {
            problems.push(format!(
                "length of value for key {key:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_VALUE_LEN}",
                value.len()
            ));
        }
        if key.chars().any(char::is_control) {
            problems.push(format!("key {key:?} contains unprintable characters"));
        }
        if value.chars().any(char::is_control) {
            problems.push(format!(
                "value for key {key:?} contains unprintable characters"
            ));
        }
        out.insert(key.clone(), value);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(custom_error(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_max_versions_and_reports_pruned() {
        let mut m = KeyMetadata::new(1);
        for i in 1..=2 {
            assert_eq!(m.add_version(i, None, 3), (i, vec![]));
        }
        assert_eq!(m.oldest_version, 0);
        // As in Vault, oldest_version moves to 1 once the window is full.
        assert_eq!(m.add_version(3, None, 3), (3, vec![]));
        assert_eq!(m.oldest_version, 1);
        assert_eq!(m.add_version(4, None, 3), (4, vec![1]));
        assert_eq!(m.oldest_version, 2);
        assert_eq!(
            m.versions.keys().copied().collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
    }

    #[test]
    fn lowering_the_limit_prunes_several_on_next_write() {
        let mut m = KeyMetadata::new(1);
        for i in 1..=5 {
            m.add_version(i, None, 0);
        }
        assert_eq!(m.add_version(6, None, 2), (6, vec![1, 2, 3, 4]));
        assert_eq!(m.oldest_version, 5);
        assert_eq!(m.versions.keys().copied().collect::<Vec<_>>(), vec![5, 6]);
    }

    #[test]
    fn limit_is_larger_nonzero_of_secret_and_mount_else_ten() {
        let count_after = |secret: u32, mount: u32| {
            let mut m = KeyMetadata {
                max_versions: secret,
                ..KeyMetadata::new(1)
            };
            for i in 1..=30 {
                m.add_version(i, None, mount);
            }
            m.versions.len()
        };
        assert_eq!(count_after(0, 0), 10);
        assert_eq!(count_after(3, 0), 3);
        assert_eq!(count_after(0, 4), 4);
        assert_eq!(count_after(3, 5), 5);
        assert_eq!(count_after(6, 2), 6);
    }

    #[test]
    fn custom_metadata_limits() {
        let ok: Map<String, Value> =
            serde_json::from_value(json!({"owner": "jdoe", "n": 5, "b": true})).unwrap();
        let m = custom_metadata_from(&ok).unwrap();
        assert_eq!(m["n"], "5");
        assert_eq!(m["b"], "true");

        let too_long: Map<String, Value> =
            serde_json::from_value(json!({"k": "v".repeat(513)})).unwrap();
        let err = custom_metadata_from(&too_long).unwrap_err().to_string();
        assert!(err.contains("len(value) <= 512"), "{err}");
        assert!(
            !err.contains("vvvv"),
            "a value leaked into the error: {err}"
        );

        let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(custom_metadata_from(&many).is_err());

        let nested: Map<String, Value> = serde_json::from_value(json!({"k": {"a": 1}})).unwrap();
        assert!(custom_metadata_from(&nested).is_err());

        let control: Map<String, Value> = serde_json::from_value(json!({"k": "a\u{7}b"})).unwrap();
        assert!(custom_metadata_from(&control).is_err());
    }
}
