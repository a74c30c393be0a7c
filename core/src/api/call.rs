//! Turning an HTTP request into a logical call: operation, validated path,
//! JSON body, query.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::reply::ApiError;
use crate::engines::Operation;

/// A request as the handlers see it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// The operation before the create/update existence check.
    pub operation: Operation,
    /// Path after `/v1/`, decoded and validated, without a trailing `/`
    /// except for LIST where Vault keeps it.
    pub path: String,
    /// The JSON body; shared (not copied) with the engine's request and the
    /// audit entries, which a 1,000-item batch would make costly.
    pub data: std::sync::Arc<Map<String, Value>>,
    pub query: HashMap<String, String>,
    pub token: Option<String>,
    /// `true` when the request used LIST (or `?list=true`).
    pub list: bool,
    /// Cairn extension: `X-Cairn-Lease-Owner: namespace/kind/name/uid` binds a
    /// lease issued by this request to a Kubernetes object instead of the token.
    pub lease_owner: Option<String>,
}

impl Call {
    /// The query parameter `name` as a string.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A body field, falling back to the query string (Vault merges them for GET).
    pub fn param(&self, name: &str) -> Option<Value> {
        self.data
            .get(name)
            .cloned()
            .or_else(|| self.query.get(name).map(|v| Value::String(v.clone())))
    }

    /// A string field of the body.
    pub fn str_param(&self, name: &str) -> Option<String> {
        match self.param(name)? {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Decode and validate the part of the URL after `/v1/`.
pub fn parse_path(raw: &str) -> Result<String, ApiError> {
    let Some(rest) = raw.strip_prefix("/v1/") else {
        return Err(ApiError::not_found());
    };
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("request path is not valid UTF-8"))?;
    if decoded.contains('\0') {
        return Err(ApiError::bad_request("request path contains a NUL byte"));
    }
    let trimmed = decoded.strip_suffix('/').unwrap_or(&decoded);
    if trimmed.is_empty() {
        return Err(ApiError::not_found());
    }
    if trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == ".." || seg == ".")
    {
        return Err(ApiError::bad_request(format!(
            "invalid request path {:?}: empty, \".\" or \"..\" segments are not allowed",
            trimmed
        )));
    }
    Ok(trimmed.to_owned())
}

/// Parse the query string; repeated keys keep the last value.
pub fn parse_query(query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let Some(q) = query else {
        return Ok(HashMap::new());
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
        .map_err(|_| ApiError::bad_request("malformed query string"))?;
    Ok(pairs.into_iter().collect())
}

/// Parse a JSON object body; an empty body is an empty object.
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to parse JSON input: {e}"
        ))),
    }
}

/// The client token from `X-Vault-Token` or `Authorization: Bearer`.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        if !v.is_empty() {
            return Some(v.to_owned());
        }
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    auth.strip_prefix("Bearer ")
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Map an HTTP method to an operation (POST/PUT start as `Update`).
pub fn operation_of(
    method: &Method,
    query: &HashMap<String, String>,
) -> Result<(Operation, bool), ApiError> {
    let list_param = query
        .get("list")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false);
    Ok(match method.as_str() {
        "GET" | "HEAD" if list_param => (Operation::List, true),
        "GET" | "HEAD" => (Operation::Read, false),
        "LIST" => (Operation::List, true),
        "POST" | "PUT" => (Operation::Update, false),
        "PATCH" => (Operation::Patch, false),
        "DELETE" => (Operation::Delete, false),
        _ => return Err(ApiError::method_not_allowed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_and_checked() {
        assert_eq!(parse_path("/v1/secret/data/a").unwrap(), "secret/data/a");
        assert_eq!(
            parse_path("/v1/secret/metadata/").unwrap(),
            "secret/metadata"
        );
        assert_eq!(
            parse_path("/v1/secret/data/a%20b").unwrap(),
            "secret/data/a b"
        );
        for bad in [
            "/v1/secret/data/../sys",
            "/v1/secret//data",
            "/v1/secret/data/%00x",
            "/v1/secret/data/%2e%2e/x",
            "/v1/secret/./x",
        ] {
            assert_eq!(parse_path(bad).unwrap_err().status, 400, "{bad} accepted");
        }
        assert_eq!(parse_path("/v2/x").unwrap_err().status, 404);
    }

    #[test]
    fn bodies() {
        assert!(parse_body(b"").unwrap().is_empty());
        assert!(parse_body(b"{\"a\":1}").unwrap().contains_key("a"));
        assert_eq!(parse_body(b"{\"a\":").unwrap_err().status, 400);
        assert_eq!(parse_body(b"[1]").unwrap_err().status, 400);
    }

    #[test]
    fn operations() {
        let mut q = HashMap::new();
        assert_eq!(operation_of(&Method::GET, &q).unwrap().0, Operation::Read);
        q.insert("list".into(), "true".into());
        assert_eq!(operation_of(&Method::GET, &q).unwrap().0, Operation::List);
        let list = Method::from_bytes(b"LIST").unwrap();
        assert_eq!(
            operation_of(&list, &HashMap::new()).unwrap().0,
            Operation::List
        );
        assert_eq!(operation_of(&Method::OPTIONS, &q).unwrap_err().status, 405);
    }
}
