//! Status writes: a merge patch of the status subresource, sent only when the
//! status changed (an unchanged object costs no write).

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ReconcileError;

/// Field manager of every write of the operator.
pub const MANAGER: &str = "cairn-operator";

/// Writes `status` unless `current` equals it.
pub async fn patch_status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    status: &S,
) -> Result<(), ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(());
    }
    let name = object
        .meta()
        .name
        .clone()
        .ok_or(ReconcileError::Metadata("name"))?;
    // A merge patch leaves out fields the new status no longer has: name
    // them with null so they are removed.
    let mut new = serde_json::to_value(status)
        .map_err(|e| ReconcileError::CoreAnswer(format!("status does not serialize: {e}")))?;
    if let (Some(old), Some(map)) = (
        current.and_then(|c| serde_json::to_value(c).ok()),
        new.as_object_mut(),
    ) {
        if let Some(old) = old.as_object() {
            for key in old.keys() {
                map.entry(key.clone()).or_insert(serde_json::Value::Null);
            }
        }
    }
    let body = serde_json::json!({ "status": new });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    tracing::debug!(object = %object.name_any(), "status updated");
    Ok(())
}
