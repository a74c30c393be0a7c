//! HTTP entry point: routes a request, records it, and answers JSON or a watch stream.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::errors::ApiError;
use super::recorder::RequestRecord;
use super::routes::{self, Route, Target};
use super::{discovery, verbs, Shared};

/// The decoded query string.
pub type Query = HashMap<String, String>;

/// A handler's answer.
pub enum Answer {
    /// JSON with a status code.
    Json(StatusCode, Value),
    /// A watch stream.
    Stream(Body),
}

fn rbac_verb(method: &Method, target: &Target, query: &Query) -> String {
    let collection = target.name.is_none();
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if collection => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
    .to_string()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The one handler behind every path.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Query = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let user = bearer(&headers)
        .and_then(|t| shared.tokens.verify(t).ok())
        .map(|id| id.username());
    let mut record = RequestRecord {
        verb: method.as_str().to_lowercase(),
        api_group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        path: uri.path().to_string(),
        user,
        status: 0,
    };
    let route = routes::parse(uri.path());
    let result: Result<Answer, ApiError> = match (&route, &method) {
        (Route::CoreVersions, &Method::GET) => Ok(Answer::Json(
            StatusCode::OK,
            discovery::core_versions(&shared.address),
        )),
        (Route::Groups, &Method::GET) => Ok(Answer::Json(StatusCode::OK, discovery::groups())),
        (Route::Version, &Method::GET) => Ok(Answer::Json(StatusCode::OK, discovery::version())),
        (Route::Resources(g, v), &Method::GET) => discovery::resources(g, v)
            .map(|d| Answer::Json(StatusCode::OK, d))
            .ok_or_else(|| ApiError::no_route(uri.path())),
        (Route::Resource(t), _) => {
            record.verb = rbac_verb(&method, t, &query);
            record.api_group = t.rt.group.to_string();
            record.resource = t.rt.plural.to_string();
            record.subresource = t.subresource.clone().unwrap_or_default();
            record.namespace = t.namespace.clone().unwrap_or_default();
            record.name = t.name.clone().unwrap_or_default();
            record.path = String::new();
            match shared.injected_failure(&record) {
                Some(e) => Err(e),
                None => {
                    let content_type = headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let ctx = verbs::Request {
                        target: t,
                        verb: &record.verb,
                        query: &query,
                        content_type: &content_type,
                        user_agent: headers
                            .get(header::USER_AGENT)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default(),
                        body: &body,
                    };
                    verbs::serve(&shared, ctx)
                }
            }
        }
        (Route::Unknown, _) => Err(ApiError::no_route(uri.path())),
        _ => Err(ApiError::method_not_supported(uri.path())),
    };
    let response = match result {
        Ok(Answer::Json(code, v)) => (code, axum::Json(v)).into_response(),
        Ok(Answer::Stream(body)) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(e) => {
            tracing::debug!(code = e.code, reason = e.reason, message = %e.message, "test API server request failed");
            e.into_response()
        }
    };
    record.status = response.status().as_u16();
    shared.recorder.record(record);
    response
}
