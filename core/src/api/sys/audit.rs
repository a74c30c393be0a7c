//! `sys/audit[/<path>]` and `sys/audit-hash/<path>`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::audit::AuditError;
use crate::engines::Operation;
use crate::node::audit_table::{AuditTableError, DeviceEntry};

fn table_error(e: AuditTableError) -> ApiError {
    match e {
        AuditTableError::Audit(AuditError::NotRecorded) => ApiError::internal(e.to_string()),
        AuditTableError::Audit(a) => ApiError::bad_request(a.to_string()),
        AuditTableError::Barrier(b) => b.into(),
    }
}

pub async fn route(ctx: &Ctx<'_>, call: &Call, tail: &str) -> Result<Reply, ApiError> {
    let table = &ctx.unsealed.audit;
    if tail.is_empty() {
        let mut data = Map::new();
        for d in table.broker.list() {
            let v = serde_json::to_value(&d).map_err(|e| ApiError::internal(e.to_string()))?;
            let path = v
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            data.insert(path, v);
        }
        return Ok(Reply::listing(data));
    }
    let path = format!("{}/", tail.trim_end_matches('/'));
    match call.operation {
        Operation::Create | Operation::Update => {
            let kind = call
                .str_param("type")
                .ok_or_else(|| ApiError::bad_request("missing 'type'"))?;
            let mut options = BTreeMap::new();
            match call.param("options") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let v = match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        options.insert(k, v);
                    }
                }
                Some(_) => return Err(ApiError::bad_request("options must be an object")),
            }
            let entry = DeviceEntry {
                path: path.clone(),
                kind: kind.clone(),
                description: call.str_param("description").unwrap_or_default(),
                options,
            };
            table.enable(entry).await.map_err(table_error)?;
            tracing::info!(path = %path, kind = %kind, "audit device enabled");
            Ok(Reply::empty())
        }
        Operation::Delete => {
            match table.disable(&path).await {
                Ok(()) | Err(AuditTableError::Audit(AuditError::NotFound(_))) => {}
                Err(e) => return Err(table_error(e)),
            }
            tracing::info!(path = %path, "audit device disabled");
            Ok(Reply::empty())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

pub fn hash(ctx: &Ctx<'_>, call: &Call, _path: &str) -> Result<Reply, ApiError> {
    let input = call
        .str_param("input")
        .ok_or_else(|| ApiError::bad_request("missing 'input'"))?;
    Ok(Reply::data(
        json!({ "hash": ctx.unsealed.audit.broker.hash(&input) }),
    ))
}
