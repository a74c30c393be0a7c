//! The verbs on resources: get, list, watch, create, update, patch, delete, deletecollection.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::handlers::{Answer, Query};
use super::managed::{self, Scope};
use super::meta::{meta_str, name_of};
use super::patch::{self, PatchKind};
use super::resources::{Behaviour, ResourceType};
use super::routes::Target;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{DeleteOptions, Deleted, Store};
use super::{authn, rollout, watch, Shared};

/// A resource request, decoded.
pub struct Request<'a> {
    /// What the path addresses.
    pub target: &'a Target,
    /// RBAC verb.
    pub verb: &'a str,
    /// Query parameters.
    pub query: &'a Query,
    /// `Content-Type`.
    pub content_type: &'a str,
    /// `User-Agent`, the default field manager.
    pub user_agent: &'a str,
    /// Body.
    pub body: &'a [u8],
}

impl Request<'_> {
    fn flag(&self, name: &str) -> bool {
        self.query
            .get(name)
            .is_some_and(|v| v == "true" || v == "1")
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }

    fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn scope(&self) -> Scope {
        if self.target.subresource.as_deref() == Some("status") {
            Scope::Status
        } else {
            Scope::Main
        }
    }

    /// `fieldManager`, else the user agent's program name, as the API server defaults it.
    fn manager(&self) -> String {
        match self.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.clone(),
            _ => self
                .user_agent
                .split('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string(),
        }
    }

    fn json_body(&self, kind: Option<PatchKind>) -> Result<Value, ApiError> {
        patch::parse_body(kind, self.body)
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Store> {
    match shared.store.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Checks a body's `apiVersion`/`kind` (when given) and namespace against the URL.
fn check_body(rt: &ResourceType, ns: Option<&str>, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body is not a JSON object"));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != rt.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != rt.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    if let (Some(body_ns), Some(url_ns)) = (meta_str(obj, "namespace"), ns) {
        if !body_ns.is_empty() && body_ns != url_ns {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
    }
    Ok(())
}

fn check_name(obj: &Value, url_name: &str) -> Result<(), ApiError> {
    let n = name_of(obj);
    if !n.is_empty() && n != url_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

/// Serve one resource request.
pub fn serve(shared: &Shared, req: Request<'_>) -> Result<Answer, ApiError> {
    let t = req.target;
    match (t.rt.behaviour, t.subresource.as_deref(), req.verb) {
        (Behaviour::TokenReview, None, "create") => {
            return authn::token_review(shared, &req.json_body(None)?)
        }
        (Behaviour::TokenReview, _, _) => {
            return Err(ApiError::method_not_supported("tokenreviews"))
        }
        (Behaviour::ServiceAccount, Some("token"), "create") => {
            let name = t.name.as_deref().unwrap_or_default();
            return authn::token_request(
                shared,
                req.ns().unwrap_or_default(),
                name,
                &req.json_body(None)?,
            );
        }
        (_, Some("token"), _) => {
            return Err(ApiError::method_not_supported("serviceaccounts/token"))
        }
        _ => {}
    }
    match (req.verb, t.name.as_deref()) {
        ("list", _) => list(shared, &req),
        ("watch", _) => watch(shared, &req),
        ("get", Some(name)) => Ok(Answer::Json(
            StatusCode::OK,
            lock(shared).get(t.rt, req.ns(), name)?,
        )),
        ("create", None) => create(shared, &req),
        ("update", Some(name)) => update(shared, &req, name),
        ("patch", Some(name)) => patch(shared, &req, name),
        ("delete", Some(name)) => delete(shared, &req, name),
        ("deletecollection", None) => delete_collection(shared, &req),
        (v, _) => Err(ApiError::method_not_supported(&format!(
            "{v} {}",
            t.rt.plural
        ))),
    }
}

fn selectors(req: &Request<'_>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(
        req.query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let fields = FieldSelector::parse(
        req.query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    Ok((labels, fields))
}

fn list(shared: &Shared, req: &Request<'_>) -> Result<Answer, ApiError> {
    let rt = req.target.rt;
    let (labels, fields) = selectors(req)?;
    let limit: usize = match req.query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let after: Option<(String, String)> = match req.query.get("continue").filter(|c| !c.is_empty())
    {
        Some(c) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::bad_request("invalid continue token"))?;
            let v: Value = serde_json::from_slice(&raw)
                .map_err(|_| ApiError::bad_request("invalid continue token"))?;
            Some((
                v["ns"].as_str().unwrap_or_default().to_string(),
                v["name"].as_str().unwrap_or_default().to_string(),
            ))
        }
        None => None,
    };
    let (items, rv) = {
        let store = lock(shared);
        (
            store.list(rt, req.ns(), &labels, &fields),
            store.resource_version(),
        )
    };
    let mut items: Vec<_> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if limit > 0 && items.len() > limit {
        let remaining = items.len() - limit;
        items.truncate(limit);
        if let Some(((ns, name), _)) = items.last() {
            let token = serde_json::to_vec(&json!({"ns": ns, "name": name})).unwrap_or_default();
            metadata["continue"] =
                json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let items: Vec<Value> = items.into_iter().map(|(_, o)| o).collect();
    Ok(Answer::Json(
        StatusCode::OK,
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": metadata, "items": items}),
    ))
}

fn watch(shared: &Shared, req: &Request<'_>) -> Result<Answer, ApiError> {
    let (labels, fields) = selectors(req)?;
    let from = match req.query.get("resourceVersion").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
        ),
        None => None,
    };
    let timeout = match req.query.get("timeoutSeconds") {
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {s:?}")))?,
        ),
        None => Duration::from_secs(1800),
    };
    let wr = watch::WatchRequest {
        rt: req.target.rt,
        namespace: req.target.namespace.clone(),
        labels,
        fields,
        from,
        send_initial_events: req.flag("sendInitialEvents"),
        bookmarks: req.flag("allowWatchBookmarks"),
        timeout,
    };
    Ok(Answer::Stream(watch::start(
        &shared.store,
        wr,
        shared.bookmark_every,
        shared.shutdown.subscribe(),
    )))
}

fn create(shared: &Shared, req: &Request<'_>) -> Result<Answer, ApiError> {
    let rt = req.target.rt;
    let mut obj = req.json_body(None)?;
    check_body(rt, req.ns(), &obj)?;
    managed::track_update(rt, Scope::Main, &json!({}), &mut obj, &req.manager());
    let created = lock(shared).create(rt, req.ns(), obj, req.dry_run())?;
    if !req.dry_run() && rollout::starts_rollout(rt, None, &created) {
        shared.schedule_rollout(rt, &created);
    }
    Ok(Answer::Json(StatusCode::CREATED, created))
}

fn update(shared: &Shared, req: &Request<'_>, name: &str) -> Result<Answer, ApiError> {
    let rt = req.target.rt;
    let mut obj = req.json_body(None)?;
    check_body(rt, req.ns(), &obj)?;
    check_name(&obj, name)?;
    let scope = req.scope();
    let (old, new) = {
        let mut store = lock(shared);
        let old = store.get(rt, req.ns(), name)?;
        managed::track_update(rt, scope, &old, &mut obj, &req.manager());
        let require_rv = scope == Scope::Main && !rt.unconditional_update;
        let new = store.update(rt, req.ns(), &old, obj, scope, require_rv, req.dry_run())?;
        (old, new)
    };
    if !req.dry_run() && rollout::starts_rollout(rt, Some(&old), &new) {
        shared.schedule_rollout(rt, &new);
    }
    Ok(Answer::Json(StatusCode::OK, new))
}

fn patch(shared: &Shared, req: &Request<'_>, name: &str) -> Result<Answer, ApiError> {
    let rt = req.target.rt;
    let kind = PatchKind::from_content_type(req.content_type)?;
    let body = req.json_body(Some(kind))?;
    let scope = req.scope();
    if req.query.contains_key("force") && kind != PatchKind::Apply {
        return Err(ApiError::bad_request(
            "force is only allowed for apply patches",
        ));
    }
    let (old, new, code) = {
        let mut store = lock(shared);
        let current = store.get(rt, req.ns(), name);
        if kind == PatchKind::Apply {
            let manager = req.query.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
                ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            })?;
            check_body(rt, req.ns(), &body)?;
            if body.get("apiVersion").is_none() || body.get("kind").is_none() {
                return Err(ApiError::bad_request(
                    "apiVersion and kind must be set in an apply patch",
                ));
            }
            check_name(&body, name)?;
            let force = req.flag("force");
            match current {
                Ok(old) => {
                    let candidate = managed::apply(rt, scope, &old, &body, manager, force)?;
                    let new =
                        store.update(rt, req.ns(), &old, candidate, scope, false, req.dry_run())?;
                    (Some(old), new, StatusCode::OK)
                }
                Err(e) if e.code == 404 && scope == Scope::Main => {
                    let mut candidate =
                        managed::apply(rt, scope, &json!({}), &body, manager, force)?;
                    candidate["metadata"]["name"] = json!(name);
                    let created = store.create(rt, req.ns(), candidate, req.dry_run())?;
                    (None, created, StatusCode::CREATED)
                }
                Err(e) => return Err(e),
            }
        } else {
            let old = current?;
            let mut candidate = old.clone();
            patch::apply_patch(kind, &mut candidate, &body)?;
            managed::track_update(rt, scope, &old, &mut candidate, &req.manager());
            let new = store.update(rt, req.ns(), &old, candidate, scope, false, req.dry_run())?;
            (Some(old), new, StatusCode::OK)
        }
    };
    if !req.dry_run() && rollout::starts_rollout(rt, old.as_ref(), &new) {
        shared.schedule_rollout(rt, &new);
    }
    Ok(Answer::Json(code, new))
}

fn delete_options(req: &Request<'_>) -> Result<DeleteOptions, ApiError> {
    let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        req.json_body(None)?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .or(req.query.get("propagationPolicy").map(String::as_str))
        .unwrap_or("Background");
    let dry = req.dry_run()
        || body["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        orphan: policy == "Orphan",
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run: dry,
    })
}

fn delete(shared: &Shared, req: &Request<'_>, name: &str) -> Result<Answer, ApiError> {
    let rt = req.target.rt;
    let opts = delete_options(req)?;
    match lock(shared).delete(rt, req.ns(), name, &opts)? {
        Deleted::Pending(obj) => Ok(Answer::Json(StatusCode::OK, obj)),
        Deleted::Gone(obj) => Ok(Answer::Json(
            StatusCode::OK,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": meta_str(&obj, "uid").unwrap_or_default()},
            }),
        )),
    }
}

fn delete_collection(shared: &Shared, req: &Request<'_>) -> Result<Answer, ApiError> {
    let rt = req.target.rt;
    let (labels, fields) = selectors(req)?;
    let opts = delete_options(req)?;
    let mut store = lock(shared);
    let mut items = Vec::new();
    for ((ns, name), _) in store.list(rt, req.ns(), &labels, &fields) {
        let ns = (!ns.is_empty()).then_some(ns);
        match store.delete(rt, ns.as_deref(), &name, &opts) {
            Ok(Deleted::Pending(o)) | Ok(Deleted::Gone(o)) => items.push(o),
            // Removed meanwhile by the garbage collection of an earlier item.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = store.resource_version().to_string();
    Ok(Answer::Json(
        StatusCode::OK,
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv}, "items": items}),
    ))
}
