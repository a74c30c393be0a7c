//! The `data/<path>` endpoints: read a version, write a new version (with
//! check-and-set), patch the latest version, soft-delete the latest version.

use serde_json::{Map, Value};

use super::config::Config;
use super::metadata::KeyMetadata;
use super::store::{self, WriteSet};
use super::{input, time};
use crate::barrier::View;
use crate::engines::{object, EngineError, Response};

/// Vault's message for a `cas` that is not the current version.
pub const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
/// Vault's message for a write without `cas` where it is required.
pub const CAS_REQUIRED: &str = "check-and-set parameter required for this call";

/// How many times a read retries when a version vanishes between reading the
/// metadata and reading its data (a concurrent destroy or pruning). Each retry
/// re-reads the metadata, which then reflects the change.
const READ_ATTEMPTS: usize = 3;

/// `GET data/<path>[?version=N]`.
///
/// Reads take no lock: every write is one atomic batch, so the metadata seen is
/// always consistent; only the gap between the two reads needs the retry.
pub async fn read(view: &View, path: &str, version: Option<u64>) -> Result<Response, EngineError> {
    let mut number = 0;
    for _ in 0..READ_ATTEMPTS {
        let meta = store::read_meta(view, path)
            .await?
            .ok_or(EngineError::NotFound)?;
        number = version.filter(|v| *v > 0).unwrap_or(meta.current_version);
        let vm = meta.versions.get(&number).ok_or(EngineError::NotFound)?;
        let metadata = meta.version_json(number, vm);
        if !vm.is_live(time::now()) {
            return Ok(not_found_with(object([
                ("data", Value::Null),
                ("metadata", metadata),
            ])));
        }
        if let Some(data) = store::load_version(view, path, number).await? {
            return Ok(Response::data(object([
                ("data", Value::Object(data)),
                ("metadata", metadata),
            ])));
        }
    }
    Err(store::missing_version(view, path, number))
}

/// `POST/PUT data/<path>`: `{"data": {...}, "options": {"cas": N}}` writes a new
/// version. The caller holds the secret's write lock, which makes the
/// check-and-set and the version number allocation atomic.
pub async fn write(
    view: &View,
    path: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let data = data_field(body)?;
    let cas = cas_option(body)?;
    let config = Config::load(view).await?;
    let now = time::now();
    let mut meta = store::load_meta(view, path).await?.unwrap_or_default();
    check_cas(cas, &config, &meta)?;
    append_version(view, path, &config, &mut meta, data, now).await
}

/// `PATCH data/<path>`: a JSON merge patch (RFC 7386) of `data` onto the latest
/// version, stored as a new version. The latest version must be live. The
/// caller holds the secret's write lock.
pub async fn patch(
    view: &View,
    path: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let patch = data_field(body)?;
    let cas = cas_option(body)?;
    let mut meta = store::load_meta(view, path)
        .await?
        .ok_or(EngineError::NotFound)?;
    let config = Config::load(view).await?;
    check_cas(cas, &config, &meta)?;
    let current = meta.current_version;
    let vm = *meta.versions.get(&current).ok_or(EngineError::NotFound)?;
    let now = time::now();
    if !vm.is_live(now) {
        // Vault answers 404 with the flat version metadata here.
        return Ok(not_found_with(meta.version_json(current, &vm)));
    }
    let existing = store::load_version(view, path, current)
        .await?
        .ok_or_else(|| store::missing_version(view, path, current))?;
    let mut doc = Value::Object(existing);
    json_patch::merge(&mut doc, &Value::Object(patch.clone()));
    // Merging an object patch into an object always yields an object.
    let Value::Object(merged) = doc else {
        return Err(EngineError::BadRequest("no data provided".to_owned()));
    };
    append_version(view, path, &config, &mut meta, &merged, now).await
}

/// `DELETE data/<path>`: soft-delete the latest version. Missing, already
/// deleted or destroyed: nothing to do, still 204. The caller holds the lock.
pub async fn delete_latest(view: &View, path: &str) -> Result<Response, EngineError> {
    let Some(mut meta) = store::load_meta(view, path).await? else {
        return Ok(Response::empty());
    };
    let current = meta.current_version;
    let now = time::now();
    let Some(vm) = meta.versions.get_mut(&current) else {
        return Ok(Response::empty());
    };
    if vm.destroyed || vm.is_deleted(now) {
        return Ok(Response::empty());
    }
    vm.deletion_time = Some(now);
    let mut ws = WriteSet::new();
    ws.put_json(store::meta_key(path), &meta)?;
    ws.commit(view).await?;
    Ok(Response::empty())
}

/// Store `data` as the next version of `path` together with the updated
/// metadata and the removal of pruned versions, as one batch.
async fn append_version(
    view: &View,
    path: &str,
    config: &Config,
    meta: &mut KeyMetadata,
    data: &Map<String, Value>,
    now: time::Nanos,
) -> Result<Response, EngineError> {
    let deletion = config.deletion_time(now, meta.delete_version_after);
    let (version, pruned) = meta.add_version(now, deletion, config.max_versions);
    let mut ws = WriteSet::new();
    ws.put_json(store::version_key(path, version), data)?;
    ws.put_json(store::meta_key(path), &*meta)?;
    for old in pruned {
        ws.delete(store::version_key(path, old));
    }
    ws.commit(view).await?;
    let vm = meta.versions.get(&version).copied().unwrap_or_default();
    Ok(Response::data(meta.version_json(version, &vm)))
}

fn not_found_with(data: Value) -> Response {
    Response {
        data: Some(data),
        status: 404,
        ..Default::default()
    }
}

/// The `data` object of a write; anything else is refused.
fn data_field(body: &Map<String, Value>) -> Result<&Map<String, Value>, EngineError> {
    match body.get("data") {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(EngineError::BadRequest("no data provided".to_owned())),
        Some(_) => Err(EngineError::BadRequest(
            "invalid value for field \"data\": expected an object".to_owned(),
        )),
    }
}

/// `options.cas`, if given.
fn cas_option(body: &Map<String, Value>) -> Result<Option<u64>, EngineError> {
    let options = match body.get("options") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(EngineError::BadRequest(
                "invalid value for field \"options\": expected an object".to_owned(),
            ))
        }
    };
    let parse_error =
        || EngineError::BadRequest("error parsing check-and-set parameter".to_owned());
    match input::int_field(options, "cas").map_err(|_| parse_error())? {
        None => Ok(None),
        Some(c) => u64::try_from(c).map(Some).map_err(|_| parse_error()),
    }
}

/// Vault's check-and-set rule: a given `cas` must equal the current version
/// (0 for a secret that has none yet); without `cas`, the write is refused when
/// the mount or the secret requires it.
fn check_cas(cas: Option<u64>, config: &Config, meta: &KeyMetadata) -> Result<(), EngineError> {
    match cas {
        Some(c) if c != meta.current_version => {
            Err(EngineError::BadRequest(CAS_MISMATCH.to_owned()))
        }
        Some(_) => Ok(()),
        None if config.cas_required || meta.cas_required => {
            Err(EngineError::BadRequest(CAS_REQUIRED.to_owned()))
        }
        None => Ok(()),
    }
}
