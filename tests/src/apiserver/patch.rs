//! The PATCH content types and how each changes an object.

use serde_json::Value;

use super::errors::ApiError;

/// A PATCH request's kind, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, served as a merge patch: the kinds served here
    /// are patched by their users through maps (annotations, data, status), where the two agree.
    Strategic,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchKind {
    /// The kind named by a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Result<PatchKind, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Parse a request body: JSON, or YAML for apply patches (JSON is valid YAML, so both work there).
pub fn parse_body(kind: Option<PatchKind>, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == Some(PatchKind::Apply) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("apply patch is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error decoding request body: {e}"
        ))),
    }
}

/// Apply a merge or JSON patch to `doc`.
pub fn apply_patch(kind: PatchKind, doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge | PatchKind::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(doc, patch);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            // Kubernetes (evanphx/json-patch) lets `test` with a null value pass on a
            // missing member of an existing object: kube-rs' finalizer helper adds the
            // first finalizer with `test /metadata/finalizers null` + `add`. The
            // `json-patch` crate fails such a test, so apply op by op on a copy.
            let mut work = doc.clone();
            for op in ops.0 {
                if let json_patch::PatchOperation::Test(t) = &op {
                    if t.value.is_null() && absent_in_existing_parent(&work, t.path.as_str()) {
                        continue;
                    }
                }
                // Kubernetes answers 422 for every JSON patch that cannot be applied, failed `test`s included.
                json_patch::patch(&mut work, &[op]).map_err(|e| {
                    ApiError::invalid(
                        "patch",
                        "",
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })?;
            }
            *doc = work;
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::internal("server-side apply is not a plain patch")),
    }
}

/// Whether `pointer` names a missing member of an object that exists in `doc`.
fn absent_in_existing_parent(doc: &Value, pointer: &str) -> bool {
    let Some((parent, _)) = pointer.rsplit_once('/') else {
        return false;
    };
    doc.pointer(pointer).is_none() && doc.pointer(parent).is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchKind::Merge
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml").unwrap(),
            PatchKind::Apply
        );
        assert_eq!(
            PatchKind::from_content_type("text/plain").unwrap_err().code,
            415
        );
    }

    #[test]
    fn merge_and_json_patches() {
        let mut doc = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}});
        apply_patch(
            PatchKind::Merge,
            &mut doc,
            &json!({"metadata": {"annotations": {"a": null, "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"annotations": {"b": "2", "c": "3"}}})
        );
        apply_patch(
            PatchKind::Json,
            &mut doc,
            &json!([{"op": "replace", "path": "/metadata/annotations/b", "value": "x"}]),
        )
        .unwrap();
        assert_eq!(doc["metadata"]["annotations"]["b"], "x");
        let failed = apply_patch(
            PatchKind::Json,
            &mut doc,
            &json!([{"op": "test", "path": "/metadata/annotations/b", "value": "y"}]),
        );
        assert_eq!(failed.unwrap_err().code, 422);
        let missing = apply_patch(
            PatchKind::Json,
            &mut doc,
            &json!([{"op": "remove", "path": "/nope"}]),
        );
        assert_eq!(missing.unwrap_err().code, 422);
    }

    #[test]
    fn json_patch_test_of_null_passes_on_a_missing_member() {
        // What kube-rs' finalizer helper sends to add the first finalizer.
        let first = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["cairn.dev/cleanup"]},
        ]);
        let mut doc = json!({"metadata": {"name": "x"}});
        apply_patch(PatchKind::Json, &mut doc, &first).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["cairn.dev/cleanup"]));
        // Once the member exists, the same test fails, and nothing changes.
        let before = doc.clone();
        let err = apply_patch(PatchKind::Json, &mut doc, &first).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(doc, before);
        // A null test under a missing parent still fails.
        let mut doc = json!({"spec": {}});
        let orphan = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]);
        assert_eq!(
            apply_patch(PatchKind::Json, &mut doc, &orphan)
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn yaml_apply_bodies() {
        let v = parse_body(
            Some(PatchKind::Apply),
            b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
        );
        assert!(parse_body(Some(PatchKind::Merge), b"a: 1").is_err());
    }
}
