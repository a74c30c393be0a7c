//! `sys/capabilities-self`, `sys/capabilities`, `sys/capabilities-accessor`.

use serde_json::{json, Map, Value};

use crate::api::call::Call;
use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};
use crate::policy::Acl;

fn paths(call: &Call) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for field in ["paths", "path"] {
        match call.param(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => out.extend(s.split(',').map(|p| p.trim().to_owned())),
            Some(Value::Array(items)) => {
                for i in items {
                    match i {
                        Value::String(s) => out.push(s),
                        _ => return Err(ApiError::bad_request("paths must be strings")),
                    }
                }
            }
            Some(_) => return Err(ApiError::bad_request("paths must be a list of strings")),
        }
    }
    out.retain(|p| !p.is_empty());
    if out.is_empty() {
        return Err(ApiError::bad_request("missing paths"));
    }
    Ok(out)
}

fn answer(acl: &Acl, paths: &[String]) -> Reply {
    let mut data = Map::new();
    let mut all: Vec<&'static str> = Vec::new();
    for p in paths {
        let names: Vec<&'static str> = if acl.is_root() {
            vec!["root"]
        } else {
            let caps = acl.capabilities(p.trim_start_matches('/'));
            if caps.is_empty() {
                vec!["deny"]
            } else {
                caps.names()
            }
        };
        // Vault answers in alphabetical order.
        let mut names = names;
        names.sort_unstable();
        all.extend(&names);
        data.insert(p.clone(), json!(names));
    }
    all.sort();
    all.dedup();
    // Vault's single-path shape: `capabilities` lists that path's answer.
    data.insert("capabilities".into(), json!(all));
    Reply::listing(data)
}

pub async fn self_(ctx: &Ctx<'_>, call: &Call) -> Result<Reply, ApiError> {
    Ok(answer(&ctx.caller.acl, &paths(call)?))
}

pub async fn for_token(ctx: &Ctx<'_>, call: &Call) -> Result<Reply, ApiError> {
    let token = call
        .str_param("token")
        .ok_or_else(|| ApiError::bad_request("missing token"))?;
    let entry = ctx
        .unsealed
        .tokens
        .lookup(&token, crate::time::now())
        .await?
        .ok_or_else(|| ApiError::bad_request("invalid token"))?;
    let acl = ctx.unsealed.policies.acl(&entry.policies).await?;
    Ok(answer(&acl, &paths(call)?))
}

pub async fn for_accessor(ctx: &Ctx<'_>, call: &Call) -> Result<Reply, ApiError> {
    let accessor = call
        .str_param("accessor")
        .ok_or_else(|| ApiError::bad_request("missing accessor"))?;
    let entry = ctx
        .unsealed
        .tokens
        .lookup_accessor(&accessor, crate::time::now())
        .await?
        .ok_or_else(|| ApiError::bad_request("invalid accessor"))?;
    let acl = ctx.unsealed.policies.acl(&entry.policies).await?;
    Ok(answer(&acl, &paths(call)?))
}
