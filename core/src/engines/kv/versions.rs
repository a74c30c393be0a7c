//! `delete/<path>`, `undelete/<path>` and `destroy/<path>`: change the state of
//! chosen versions. Versions that do not exist are skipped, and a secret that
//! does not exist is not an error, as in Vault. Callers hold the secret's lock.

use serde_json::{Map, Value};

use super::config::Config;
use super::store::{self, WriteSet};
use super::{input, time};
use crate::barrier::View;
use crate::engines::{EngineError, Response};

/// Soft-delete `versions`: they read as 404 until undeleted.
pub async fn delete(
    view: &View,
    path: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let versions = input::versions_field(body)?;
    let Some(mut meta) = store::load_meta(view, path).await? else {
        return Ok(Response::empty());
    };
    let now = time::now();
    for v in versions {
        if let Some(vm) = meta.versions.get_mut(&v) {
            if !vm.destroyed && !vm.is_deleted(now) {
                vm.deletion_time = Some(now);
            }
        }
    }
    let mut ws = WriteSet::new();
    ws.put_json(store::meta_key(path), &meta)?;
    ws.commit(view).await?;
    Ok(Response::empty())
}

/// Undo a soft delete. As Vault does, an undeleted version gets a fresh
/// `deletion_time` from `delete_version_after` when one applies.
pub async fn undelete(
    view: &View,
    path: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let versions = input::versions_field(body)?;
    let config = Config::load(view).await?;
    let Some(mut meta) = store::load_meta(view, path).await? else {
        return Ok(Response::empty());
    };
    let now = time::now();
    let deletion = config.deletion_time(now, meta.delete_version_after);
    for v in versions {
        if let Some(vm) = meta.versions.get_mut(&v) {
            if !vm.destroyed {
                vm.deletion_time = deletion;
            }
        }
    }
    let mut ws = WriteSet::new();
    ws.put_json(store::meta_key(path), &meta)?;
    ws.commit(view).await?;
    Ok(Response::empty())
}

/// Destroy `versions`: their data is removed for good, their metadata stays
/// with `destroyed: true`. Metadata and data removal are one batch.
pub async fn destroy(
    view: &View,
    path: &str,
    body: &Map<String, Value>,
) -> Result<Response, EngineError> {
    let versions = input::versions_field(body)?;
    let Some(mut meta) = store::load_meta(view, path).await? else {
        return Ok(Response::empty());
    };
    let mut ws = WriteSet::new();
    for v in versions {
        if let Some(vm) = meta.versions.get_mut(&v) {
            if !vm.destroyed {
                vm.destroyed = true;
                ws.delete(store::version_key(path, v));
            }
        }
    }
    ws.put_json(store::meta_key(path), &meta)?;
    ws.commit(view).await?;
    Ok(Response::empty())
}
