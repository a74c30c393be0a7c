//! `sys/rotate` and `sys/key-status`.

use serde_json::json;

use crate::api::pipeline::Ctx;
use crate::api::reply::{ApiError, Reply};

pub async fn rotate(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    ctx.state.node.rotate().await?;
    let (term, _) = ctx.state.node.key_status()?;
    tracing::info!(term, "keyring rotated");
    Ok(Reply::empty())
}

pub fn key_status(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let (term, installed) = ctx.state.node.key_status()?;
    Ok(Reply::data(json!({
        "term": term,
        "install_time": crate::time::rfc3339(installed),
        "encryptions": 0,
    })))
}
