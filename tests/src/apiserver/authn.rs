//! `serviceaccounts/token` (TokenRequest) and `tokenreviews` (TokenReview).

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::handlers::Answer;
use super::meta::{meta_str, now_rfc3339};
use super::resources::find;
use super::store::Store;
use super::tokens::{review_status, BoundRef, API_AUDIENCES};
use super::Shared;

fn exists(store: &Store, plural: &str, ns: &str, obj: &BoundRef) -> bool {
    let Some(rt) = find("", "v1", plural) else {
        return false;
    };
    store
        .get(rt, Some(ns), &obj.name)
        .is_ok_and(|o| meta_str(&o, "uid") == Some(obj.uid.as_str()))
}

/// POST `tokenreviews`: verify `spec.token` for `spec.audiences`.
pub fn token_review(shared: &Shared, body: &Value) -> Result<Answer, ApiError> {
    if body
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "TokenReview")
    {
        return Err(ApiError::bad_request(
            "the kind in the data does not match TokenReview",
        ));
    }
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "TokenReview",
            "",
            "spec.token: Required value",
        ));
    }
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let outcome = {
        let store = match shared.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        shared.tokens.review(token, &audiences, |plural, ns, obj| {
            exists(&store, plural, ns, obj)
        })
    };
    let mut spec = json!({"token": token});
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    Ok(Answer::Json(
        StatusCode::CREATED,
        json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": review_status(&outcome),
        }),
    ))
}

/// POST `serviceaccounts/<name>/token`: issue a token for the service account.
pub fn token_request(
    shared: &Shared,
    ns: &str,
    name: &str,
    body: &Value,
) -> Result<Answer, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| API_AUDIENCES.iter().map(|s| s.to_string()).collect());
    let ttl = spec["expirationSeconds"].as_u64().unwrap_or(3600);
    let min = shared.min_token_ttl.as_secs();
    if ttl < min {
        return Err(ApiError::invalid(
            "TokenRequest",
            name,
            format!("spec.expirationSeconds: Invalid value: {ttl}: may not specify a duration less than {min} seconds"),
        ));
    }
    let (sa, pod, secret) = {
        let store = match shared.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let sa_rt = find("", "v1", "serviceaccounts")
            .ok_or_else(|| ApiError::internal("no serviceaccounts kind"))?;
        let sa = store.get(sa_rt, Some(ns), name)?;
        let sa = BoundRef {
            name: name.to_string(),
            uid: meta_str(&sa, "uid").unwrap_or_default().to_string(),
        };
        let mut pod = None;
        let mut secret = None;
        if let Some(bound) = spec.get("boundObjectRef").filter(|b| b.is_object()) {
            let kind = bound["kind"].as_str().unwrap_or_default();
            let bname = bound["name"].as_str().unwrap_or_default();
            let plural = match kind {
                "Pod" => "pods",
                "Secret" => "secrets",
                other => {
                    return Err(ApiError::invalid("TokenRequest", name, format!("spec.boundObjectRef.kind: Unsupported value: {other:?}: supported values: \"Pod\", \"Secret\"")));
                }
            };
            let rt =
                find("", "v1", plural).ok_or_else(|| ApiError::internal("missing core kind"))?;
            let obj = store.get(rt, Some(ns), bname)?;
            let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
            if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty()) {
                if want != uid {
                    return Err(ApiError::conflict(
                        plural,
                        bname,
                        "the UID in the bound object reference does not match",
                    ));
                }
            }
            let r = Some(BoundRef {
                name: bname.to_string(),
                uid,
            });
            if kind == "Pod" {
                pod = r;
            } else {
                secret = r;
            }
        }
        (sa, pod, secret)
    };
    let (token, exp) =
        shared
            .tokens
            .issue(ns, &sa, &audiences, Duration::from_secs(ttl), pod, secret)?;
    let expires =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(exp))
            .to_string();
    let mut spec_out = spec.clone();
    spec_out["audiences"] = json!(audiences);
    spec_out["expirationSeconds"] = json!(ttl);
    Ok(Answer::Json(
        StatusCode::CREATED,
        json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_rfc3339()},
            "spec": spec_out,
            "status": {"token": token, "expirationTimestamp": expires},
        }),
    ))
}
