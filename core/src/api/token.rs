//! `auth/token/*`: create, lookup, renew and revoke tokens.

use serde_json::json;

use super::call::Call;
use super::pipeline::Ctx;
use super::reply::{ApiError, Reply};
use crate::auth::token::{CreateParams, DurationParam, TokenEntry, TokenError};
use crate::engines::Operation;
use crate::time;

pub async fn route(ctx: &Ctx<'_>, call: &Call, rest: &str) -> Result<Reply, ApiError> {
    let op = call.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    match rest {
        "create" if write => create(ctx, call, false).await,
        "create-orphan" if write => create(ctx, call, true).await,
        "lookup-self" if write || op == Operation::Read => Ok(Reply::data(
            ctx.caller.entry.lookup_data(&ctx.caller.token, time::now()),
        )),
        "lookup" if write || op == Operation::Read => {
            let token = required(call, "token")?;
            let entry = by_token(ctx, &token).await?;
            Ok(Reply::data(entry.lookup_data(&token, time::now())))
        }
        "lookup-accessor" if write => {
            let entry = by_accessor(ctx, &required(call, "accessor")?).await?;
            Ok(Reply::data(entry.lookup_data("", time::now())))
        }
        "renew-self" if write => {
            renew(ctx, call, ctx.caller.entry.clone(), &ctx.caller.token).await
        }
        "renew" if write => {
            let token = required(call, "token")?;
            let entry = by_token(ctx, &token).await?;
            renew(ctx, call, entry, &token).await
        }
        "renew-accessor" if write => {
            let entry = by_accessor(ctx, &required(call, "accessor")?).await?;
            renew(ctx, call, entry, "").await
        }
        "revoke-self" if write => {
            ctx.unsealed
                .tokens
                .revoke_tree(&ctx.caller.entry.hash)
                .await?;
            Ok(Reply::empty())
        }
        "revoke" if write => {
            let entry = by_token(ctx, &required(call, "token")?).await?;
            ctx.unsealed.tokens.revoke_tree(&entry.hash).await?;
            Ok(Reply::empty())
        }
        "revoke-accessor" if write => {
            let entry = by_accessor(ctx, &required(call, "accessor")?).await?;
            ctx.unsealed.tokens.revoke_tree(&entry.hash).await?;
            Ok(Reply::empty())
        }
        "revoke-orphan" if write => {
            let entry = by_token(ctx, &required(call, "token")?).await?;
            ctx.unsealed.tokens.revoke_orphan(&entry.hash).await?;
            Ok(Reply::empty())
        }
        "accessors" if op == Operation::List => Ok(Reply::data(
            json!({ "keys": ctx.unsealed.tokens.accessors().await? }),
        )),
        "tidy" if write => {
            let purged = ctx.unsealed.tokens.tidy(time::now()).await?;
            Ok(Reply {
                warnings: vec![format!("purged {purged} expired tokens")],
                ..Reply::data(json!({}))
            })
        }
        _ if rest.starts_with("create/") || rest.starts_with("roles") => {
            Err(ApiError::bad_request("token roles are not supported yet"))
        }
        _ => Err(ApiError::unsupported_path()),
    }
}

fn required(call: &Call, name: &str) -> Result<String, ApiError> {
    call.str_param(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing '{name}'")))
}

async fn by_token(ctx: &Ctx<'_>, token: &str) -> Result<TokenEntry, ApiError> {
    ctx.unsealed
        .tokens
        .lookup(token, time::now())
        .await?
        .ok_or_else(|| ApiError::new(axum::http::StatusCode::FORBIDDEN, "bad token"))
}

async fn by_accessor(ctx: &Ctx<'_>, accessor: &str) -> Result<TokenEntry, ApiError> {
    ctx.unsealed
        .tokens
        .lookup_accessor(accessor, time::now())
        .await?
        .ok_or_else(|| ApiError::bad_request("invalid accessor"))
}

async fn create(ctx: &Ctx<'_>, call: &Call, orphan_endpoint: bool) -> Result<Reply, ApiError> {
    // Read straight from the shared body, without copying it into a Value.
    let params = <CreateParams as serde::Deserialize>::deserialize(&*call.data)
        .map_err(|e| ApiError::bad_request(format!("invalid token parameters: {e}")))?;
    let parent = &ctx.caller.entry;
    let privileged = parent.is_root()
        || ctx
            .caller
            .acl
            .allows("auth/token/create", crate::policy::Capabilities::SUDO);
    if params.no_parent == Some(true) && !privileged {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to create orphan token",
        ));
    }
    if params.id.is_some() && !privileged {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to specify token id",
        ));
    }
    let orphan = orphan_endpoint || params.no_parent == Some(true);
    let path = if orphan_endpoint {
        "auth/token/create-orphan"
    } else {
        "auth/token/create"
    };
    let issued = ctx
        .unsealed
        .tokens
        .create(Some(parent), params, path, orphan, time::now())
        .await
        .map_err(|e| match e {
            TokenError::BadRequest(m) => ApiError::bad_request(m),
            other => other.into(),
        })?;
    Ok(Reply {
        auth: Some(issued.entry.auth_block(&issued.token, time::now())),
        ..Default::default()
    })
}

async fn renew(
    ctx: &Ctx<'_>,
    call: &Call,
    entry: TokenEntry,
    token: &str,
) -> Result<Reply, ApiError> {
    let increment = match call.param("increment") {
        None => 0,
        Some(v) => DurationParam::parse(&v).map_err(ApiError::bad_request)?.0,
    };
    let renewed = ctx
        .unsealed
        .tokens
        .renew(&entry, increment, time::now())
        .await?;
    Ok(Reply {
        auth: Some(renewed.auth_block(token, time::now())),
        ..Default::default()
    })
}
