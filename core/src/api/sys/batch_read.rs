//! `POST sys/cairn/read {"paths": [...]}`: several reads in one request.
//!
//! The CSI provider mounts many secrets per pod; one request for all of them
//! saves a round trip, a token lookup and an HTTP exchange per secret. Each
//! path is served exactly as `GET /v1/<path>` would be: its own `read`
//! check, its own audit request and response (request id `<id>#<n>`), its
//! own lease when the engine issues one (owned as the batch's
//! `X-Cairn-Lease-Owner` says). So the batch grants nothing a read would not.
//!
//! The answer is `{"request_id", "responses": [{"path", "status", "body"}]}`
//! in the order asked, where `body` is what the single read's HTTP body would
//! be (the Vault envelope, `{"errors": [...]}`, or `null` for 204). Only
//! secrets-engine paths are allowed (not `sys/` or `auth/`), and a token with
//! limited uses is refused, since concurrent reads could outrun its count.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::api::call::{self, Call};
use crate::api::pipeline::{serve_as, Ctx};
use crate::api::reply::{ApiError, Reply};
use crate::engines::Operation;

/// The most paths one batch may name.
pub const MAX_PATHS: usize = 128;

/// Answer one batch.
pub async fn read_many(ctx: &Ctx<'_>, call: &Call, request_id: &str) -> Result<Reply, ApiError> {
    let paths = requested_paths(call)?;
    if ctx.caller.entry.num_uses > 0 {
        return Err(ApiError::bad_request(
            "a token with limited uses cannot read in batches; read each path on its own",
        ));
    }
    let reads = paths.iter().enumerate().map(|(n, path)| async move {
        let single = Call {
            method: Method::GET,
            operation: Operation::Read,
            path: path.clone(),
            data: Default::default(),
            query: Default::default(),
            token: None,
            list: false,
            lease_owner: call.lease_owner.clone(),
        };
        serve_as(ctx, single, &format!("{request_id}#{n}")).await
    });
    let results = futures::future::join_all(reads).await;

    let mut body = Vec::with_capacity(256 * paths.len());
    body.extend_from_slice(b"{\"request_id\":");
    push_json(&mut body, &Value::from(request_id));
    body.extend_from_slice(b",\"responses\":[");
    for (n, (path, result)) in paths.iter().zip(results).enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"path\":");
        push_json(&mut body, &Value::from(path.as_str()));
        match result {
            Ok(wire) => {
                // `serve_as` hands back the rendered reply: its body is the
                // envelope's JSON already, so it is copied, not re-encoded.
                let status = if wire.status == 0 { 200 } else { wire.status };
                body.extend_from_slice(format!(",\"status\":{status},\"body\":").as_bytes());
                match wire.raw {
                    Some((_, bytes)) if !bytes.is_empty() => body.extend_from_slice(&bytes),
                    _ => body.extend_from_slice(b"null"),
                }
            }
            Err(e) => {
                body.extend_from_slice(
                    format!(",\"status\":{},\"body\":", e.status.as_u16()).as_bytes(),
                );
                push_json(&mut body, &serde_json::json!({ "errors": e.errors }));
            }
        }
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    Ok(Reply {
        status: 200,
        raw: Some(("application/json", body)),
        ..Default::default()
    })
}

fn push_json(out: &mut Vec<u8>, value: &Value) {
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The `paths` field: 1 to [`MAX_PATHS`] secrets-engine paths, each checked
/// as a request path is (no empty, `.` or `..` segments, no NUL).
fn requested_paths(call: &Call) -> Result<Vec<String>, ApiError> {
    let Some(Value::Array(items)) = call.data.get("paths") else {
        return Err(ApiError::bad_request(
            "\"paths\" must be a list of paths to read",
        ));
    };
    if items.is_empty() || items.len() > MAX_PATHS {
        return Err(ApiError::bad_request(format!(
            "\"paths\" must name 1 to {MAX_PATHS} paths, not {}",
            items.len()
        )));
    }
    items
        .iter()
        .map(|item| {
            let Value::String(raw) = item else {
                return Err(ApiError::bad_request(
                    "every entry of \"paths\" must be a string",
                ));
            };
            let path = call::parse_path(&format!("/v1/{}", raw.trim_start_matches('/')))
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.errors.join("; ")))?;
            if path == "sys"
                || path.starts_with("sys/")
                || path == "auth"
                || path.starts_with("auth/")
            {
                return Err(ApiError::bad_request(format!(
                    "{path:?}: only secrets-engine paths can be read in a batch"
                )));
            }
            Ok(path)
        })
        .collect()
}
