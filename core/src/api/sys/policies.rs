//! `sys/policies/acl[/<name>]` and the legacy `sys/policy[/<name>]`.

use serde_json::{json, Map, Value};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::engines::Operation;

fn policy_text(call: &Call) -> Result<String, ApiError> {
    // `policy` is the field; the legacy endpoint also takes `rules`.
    call.str_param("policy")
        .or_else(|| call.str_param("rules"))
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("'policy' parameter not supplied or empty"))
}

pub async fn acl(ctx: &Ctx<'_>, call: &Call, name: &str) -> Result<Reply, ApiError> {
    let store = &ctx.unsealed.policies;
    if name.is_empty() {
        return match call.operation {
            Operation::List | Operation::Read => {
                let keys = store.list().await?;
                let mut data = Map::new();
                data.insert("keys".into(), json!(keys));
                data.insert("policies".into(), json!(keys));
                Ok(Reply::data(Value::Object(data)))
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    match call.operation {
        Operation::Read => {
            let text = store.read(name).await?.ok_or_else(ApiError::not_found)?;
            Ok(Reply::data(
                json!({ "name": name.to_lowercase(), "policy": text }),
            ))
        }
        Operation::Create | Operation::Update => {
            store.write(name, &policy_text(call)?).await?;
            Ok(Reply::empty())
        }
        Operation::Delete => {
            store.delete(name).await?;
            Ok(Reply::empty())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

pub async fn legacy(ctx: &Ctx<'_>, call: &Call, name: &str) -> Result<Reply, ApiError> {
    let store = &ctx.unsealed.policies;
    if name.is_empty() {
        let keys = store.list().await?;
        let mut data = Map::new();
        data.insert("keys".into(), json!(keys));
        data.insert("policies".into(), json!(keys));
        return Ok(Reply::listing(data));
    }
    match call.operation {
        Operation::Read => {
            let text = store.read(name).await?.ok_or_else(ApiError::not_found)?;
            let mut data = Map::new();
            data.insert("name".into(), json!(name.to_lowercase()));
            data.insert("rules".into(), json!(text));
            Ok(Reply::listing(data))
        }
        _ => acl(ctx, call, name).await,
    }
}
