//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A simplification of Kubernetes' structured-merge-diff that keeps its observable rules:
//! maps merge key by key, lists and scalars are atomic; an applier owns the leaves it applied;
//! applying a different value to a field another manager owns is a 409 conflict unless
//! `force=true` (which takes the field over); a field the applier owned and no longer applies is
//! removed unless another manager also owns it; plain updates (PUT, merge and JSON patches) take
//! ownership of the leaves they change, as `operation: Update` entries.
//!
//! As in Kubernetes, a Secret's applied `stringData` is folded into `data` while ownership is
//! recorded for the `stringData` keys, so dropping a key from an applied `stringData` does not
//! remove it from `data`: appliers that need removal apply `data`.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::meta::now_rfc3339;
use super::resources::ResourceType;

/// A field path: map keys from the object's root.
pub type FieldPath = Vec<String>;

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource: everything but `status` when the kind has a status subresource.
    Main,
    /// The `/status` subresource: only `status`.
    Status,
}

impl Scope {
    fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Main => None,
            Scope::Status => Some("status"),
        }
    }
}

/// Top-level keys and metadata fields that are identity or server-owned, never field-managed.
fn excluded(path: &[String]) -> bool {
    match path {
        [a] => a == "apiVersion" || a == "kind" || a == "metadata",
        [m, f, ..] if m == "metadata" => !matches!(
            f.as_str(),
            "labels" | "annotations" | "finalizers" | "ownerReferences"
        ),
        _ => false,
    }
}

fn in_scope(rt: &ResourceType, scope: Scope, path: &[String]) -> bool {
    let is_status = path.first().is_some_and(|f| f == "status");
    match scope {
        Scope::Status => is_status,
        Scope::Main => !(rt.status && is_status),
    }
}

/// The leaves of `v`: paths to scalars, lists and empty maps.
pub fn leaves(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

fn managed_leaves(rt: &ResourceType, scope: Scope, v: &Value) -> BTreeSet<FieldPath> {
    let mut all = BTreeSet::new();
    leaves(v, &mut Vec::new(), &mut all);
    all.into_iter()
        .filter(|p| !excluded(p) && in_scope(rt, scope, p))
        .collect()
}

/// The value at `path`.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// `fieldsV1` encoding of a set of paths.
pub fn encode(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            let entry = cur
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            cur = match entry {
                Value::Object(m) => m,
                _ => unreachable!("entry was just made a map"),
            };
        }
    }
    Value::Object(root)
}

/// Paths of a `fieldsV1` value (entries not of the `f:` form are skipped).
pub fn decode(fields: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Some(m) = v.as_object() else { return };
        let mut any = false;
        for (k, child) in m {
            if let Some(name) = k.strip_prefix("f:") {
                any = true;
                prefix.push(name.to_string());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        if !any && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
    }
    let mut out = BTreeSet::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    subresource: Option<String>,
    api_version: String,
    time: String,
    fields: BTreeSet<FieldPath>,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    subresource: e["subresource"].as_str().map(str::to_string),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    fields: decode(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&e.fields),
            });
            if let Some(s) = e.subresource {
                v["subresource"] = Value::from(s);
            }
            v
        })
        .collect();
    let meta = super::meta::meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Upsert the entry of (`manager`, `operation`, scope) to hold `fields`, keeping its time when unchanged.
fn set_entry(
    rt: &ResourceType,
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    scope: Scope,
    fields: BTreeSet<FieldPath>,
) {
    let sub = scope.subresource().map(str::to_string);
    if let Some(e) = entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == operation && e.subresource == sub)
    {
        if e.fields != fields {
            e.fields = fields;
            e.time = now_rfc3339();
        }
        return;
    }
    entries.push(Entry {
        manager: manager.to_string(),
        operation: operation.to_string(),
        subresource: sub,
        api_version: rt.api_version(),
        time: now_rfc3339(),
        fields,
    });
}

/// Deep merge of an apply configuration into the live object: maps key by key, the rest replaced.
fn merge_into(live: &mut Value, cfg: &Value) {
    match (live, cfg) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, v) in c {
                match l.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_into(existing, v)
                    }
                    _ => {
                        l.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (l, c) => *l = c.clone(),
    }
}

/// Server-side apply of `cfg` by `manager` onto `live` (an empty object when creating).
/// Returns the new object with its `managedFields`.
pub fn apply(
    rt: &ResourceType,
    scope: Scope,
    live: &Value,
    cfg: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let applied = managed_leaves(rt, scope, cfg);
    let mut entries = read_entries(live);
    let sub = scope.subresource().map(str::to_string);
    let is_mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == sub;

    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_mine(e)) {
        for p in e.fields.intersection(&applied) {
            if get_path(live, p) != get_path(cfg, p) {
                conflicts.push((e.manager.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let list: Vec<String> = conflicts
                .iter()
                .map(|(m, p)| format!("conflict with \"{m}\": .{}", p.join(".")))
                .collect();
            return Err(ApiError::apply_conflict(format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                list.join("; ")
            )));
        }
        for (m, p) in &conflicts {
            for e in entries.iter_mut().filter(|e| {
                &e.manager == m
                    && !(e.manager == manager && e.operation == "Apply" && e.subresource == sub)
            }) {
                e.fields.remove(p);
            }
        }
    }

    let previously: BTreeSet<FieldPath> = entries
        .iter()
        .filter(|e| is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut next = live.clone();
    for p in previously.difference(&applied) {
        let shared = entries.iter().any(|e| !is_mine(e) && e.fields.contains(p));
        if !shared {
            remove_path(&mut next, p);
        }
    }
    let mut scoped_cfg = cfg.clone();
    if let Some(m) = scoped_cfg.as_object_mut() {
        match scope {
            Scope::Status => m.retain(|k, _| k == "status"),
            Scope::Main if rt.status => {
                m.remove("status");
            }
            Scope::Main => {}
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            meta.remove("resourceVersion");
        }
    }
    merge_into(&mut next, &scoped_cfg);
    set_entry(rt, &mut entries, manager, "Apply", scope, applied);
    write_entries(&mut next, entries);
    Ok(next)
}

/// Record that `manager` changed `old` into `new` by a non-apply write: it takes ownership of
/// the leaves that changed, other managers lose them.
pub fn track_update(rt: &ResourceType, scope: Scope, old: &Value, new: &mut Value, manager: &str) {
    let before = managed_leaves(rt, scope, old);
    let after = managed_leaves(rt, scope, new);
    let changed: BTreeSet<FieldPath> = after
        .iter()
        .filter(|p| get_path(old, p) != get_path(new, p))
        .cloned()
        .collect();
    let removed: BTreeSet<FieldPath> = before.difference(&after).cloned().collect();
    let mut entries = read_entries(old);
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, entries);
        return;
    }
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let sub = scope.subresource().map(str::to_string);
    let mut mine: BTreeSet<FieldPath> = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    mine.extend(changed);
    set_entry(rt, &mut entries, manager, "Update", scope, mine);
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::find;

    fn secrets() -> &'static ResourceType {
        find("", "v1", "secrets").unwrap()
    }

    #[test]
    fn encode_decode_round_trip() {
        let v = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "dg==", "l": "dg=="}, "type": "Opaque"});
        let paths = managed_leaves(secrets(), Scope::Main, &v);
        assert_eq!(
            encode(&paths),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:data": {"f:k": {}, "f:l": {}}, "f:type": {}})
        );
        assert_eq!(decode(&encode(&paths)), paths);
    }

    #[test]
    fn apply_removes_fields_it_stopped_applying_and_conflicts_with_others() {
        let rt = secrets();
        let cfg1 = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Yg=="}});
        let live = apply(rt, Scope::Main, &json!({}), &cfg1, "op", false).unwrap();
        assert_eq!(live["data"], json!({"a": "YQ==", "b": "Yg=="}));
        let cfg2 = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "YQ=="}});
        let live = apply(rt, Scope::Main, &live, &cfg2, "op", false).unwrap();
        assert_eq!(live["data"], json!({"a": "YQ=="}));
        let other = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "eA=="}});
        let err = apply(rt, Scope::Main, &live, &other, "other", false).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"op\": .data.a"),
            "{}",
            err.message
        );
        let forced = apply(rt, Scope::Main, &live, &other, "other", true).unwrap();
        assert_eq!(forced["data"]["a"], "eA==");
        // The original applier lost the field, so dropping it from its config keeps it.
        let mine = apply(
            rt,
            Scope::Main,
            &forced,
            &json!({"metadata": {"name": "s"}, "data": {}}),
            "op",
            false,
        )
        .unwrap();
        assert_eq!(mine["data"]["a"], "eA==");
    }

    #[test]
    fn update_takes_ownership_of_changed_leaves() {
        let rt = secrets();
        let live = apply(
            rt,
            Scope::Main,
            &json!({}),
            &json!({"metadata": {"name": "s"}, "data": {"a": "YQ=="}}),
            "op",
            false,
        )
        .unwrap();
        let mut new = live.clone();
        new["data"]["a"] = json!("Yg==");
        track_update(rt, Scope::Main, &live, &mut new, "kubectl");
        let entries = read_entries(&new);
        let kubectl = entries.iter().find(|e| e.manager == "kubectl").unwrap();
        assert!(kubectl
            .fields
            .contains(&vec!["data".to_string(), "a".to_string()]));
        assert!(
            entries.iter().all(|e| e.manager != "op"),
            "op owned nothing else"
        );
    }
}
