//! What every response of the router target must satisfy.

use serde_json::Value;

use super::{DevNode, Received, Sent};

/// The status codes Vault's API answers with (besides `sys/health`'s
/// caller-chosen ones). 500 is left out on purpose: with audit off, nothing
/// a client sends may make the server fail.
const VAULT_CODES: [u16; 8] = [200, 204, 400, 403, 404, 405, 413, 503];

/// Whether `sent` may legitimately change or hide the canary secret.
pub fn may_change_canary(sent: &Sent) -> bool {
    let writes = matches!(sent.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
    let Some(path) = sent.decoded.as_deref() else {
        return false;
    };
    writes
        && (path.contains("canary")
            || path.starts_with("sys/mounts")
            || path.starts_with("sys/remount")
            || path.starts_with("secret/config"))
}

fn describe(sent: &Sent, received: &Received) -> String {
    format!(
        "{} {} (token {:?}, body {:?}) -> {} {:?}",
        sent.method,
        sent.uri,
        sent.token.as_deref().map(|t| t.len()),
        String::from_utf8_lossy(&sent.body),
        received.status,
        String::from_utf8_lossy(&received.body)
    )
}

/// Check one response; panics with the request and response when a rule breaks.
pub fn response(sent: &Sent, received: &Received, dev: &DevNode) {
    let what = || describe(sent, received);
    let status = received.status;
    let is_health = sent.decoded.as_deref() == Some("sys/health");

    assert_ne!(status, 500, "internal error: {}", what());
    let chosen_by_caller = is_health && sent.query.is_some() && (100..600).contains(&status);
    assert!(
        VAULT_CODES.contains(&status) || chosen_by_caller,
        "unexpected status: {}",
        what()
    );

    if status == 204 {
        assert!(received.body.is_empty(), "204 with a body: {}", what());
    }
    if sent.method == http::Method::HEAD {
        // axum drops the body of a HEAD response; only the status counts.
        assert!(
            received.body.is_empty(),
            "HEAD response with a body: {}",
            what()
        );
        no_leaks(sent, received, dev, &what);
        return;
    }
    let json = if received.content_type.starts_with("application/json") {
        if received.body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&received.body) {
                Ok(v) => Some(v),
                Err(e) => panic!("body is not JSON ({e}): {}", what()),
            }
        }
    } else if received.content_type.starts_with("text/plain") {
        assert!(
            std::str::from_utf8(&received.body).is_ok(),
            "text body is not UTF-8: {}",
            what()
        );
        None
    } else {
        panic!(
            "unexpected content type {:?}: {}",
            received.content_type,
            what()
        );
    };

    if status >= 400 && !is_health {
        error_shape(json.as_ref(), status, &what);
    }
    no_leaks(sent, received, dev, &what);
}

/// Errors are `{"errors": ["..."]}`; KV v2 alone answers 404 with the
/// envelope's `data` for a deleted or destroyed version, as Vault does.
fn error_shape(json: Option<&Value>, status: u16, what: &dyn Fn() -> String) {
    let Some(Value::Object(body)) = json else {
        panic!("error without a JSON object body: {}", what());
    };
    if status == 404 && body.contains_key("data") {
        return;
    }
    let Some(Value::Array(errors)) = body.get("errors") else {
        panic!("error body has no \"errors\" array: {}", what());
    };
    assert!(
        errors.iter().all(Value::is_string),
        "non-string error message: {}",
        what()
    );
}

/// Secrets the caller did not send never come back.
fn no_leaks(sent: &Sent, received: &Received, dev: &DevNode, what: &dyn Fn() -> String) {
    let mut request_text = sent.uri.clone();
    request_text.push_str(&String::from_utf8_lossy(&sent.body));
    if let Some(t) = &sent.token {
        request_text.push_str(t);
    }
    let body = String::from_utf8_lossy(&received.body);

    // The unseal key is shown once, at init, and never again.
    if !request_text.contains(&dev.key_hex) {
        assert!(
            !body.contains(&dev.key_hex),
            "response carries the unseal key (hex): {}",
            what()
        );
        assert!(
            !body.contains(&dev.key_b64),
            "response carries the unseal key (base64): {}",
            what()
        );
    }

    // A server-issued token (random, long) must not be echoed by an error,
    // unless the caller also put it in the path or body.
    if let Some(token) = sent
        .token
        .as_deref()
        .filter(|t| sent.token_issued && t.len() >= 8)
    {
        let elsewhere =
            sent.uri.contains(token) || String::from_utf8_lossy(&sent.body).contains(token);
        if received.status >= 400 && !elsewhere {
            assert!(
                !body.contains(token),
                "error echoes the caller's token: {}",
                what()
            );
        }
    }
}
