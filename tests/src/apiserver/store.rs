//! The object store: objects by kind, a global resourceVersion, and the event history watches replay.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::errors::ApiError;
use super::managed::Scope;
use super::meta::{
    self, comparable, finalizers, meta_mut, meta_str, name_of, now_rfc3339, spec_part,
};
use super::resources::{ResourceType, RESOURCES};
use super::selectors::{FieldSelector, LabelSelector};

/// `(namespace or "", name)`.
pub type Key = (String, String);

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watchers.
#[derive(Debug)]
pub struct StoredEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Kind changed.
    pub rt: &'static ResourceType,
    /// Change type.
    pub etype: EventType,
    /// The object after the change (for DELETED: its last state).
    pub object: Value,
    /// The object before the change (MODIFIED only), to tell watchers with selectors it left them.
    pub prev: Option<Value>,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `Orphan` keeps dependents (removing their owner reference); anything else deletes them.
    pub orphan: bool,
    /// Precondition on the object's uid.
    pub uid: Option<String>,
    /// Precondition on the object's resourceVersion.
    pub resource_version: Option<String>,
    /// Compute the result without storing it.
    pub dry_run: bool,
}

/// Result of a delete.
#[derive(Debug)]
pub enum Deleted {
    /// Finalizers remain: the object now has a deletionTimestamp.
    Pending(Value),
    /// The object is gone.
    Gone(Value),
}

/// Everything the server stores.
pub struct Store {
    rv: u64,
    objects: HashMap<(&'static str, &'static str), BTreeMap<Key, Value>>,
    history: VecDeque<Arc<StoredEvent>>,
    history_limit: usize,
    /// Events with rv ≤ this were dropped from the history.
    compacted: u64,
    events: broadcast::Sender<Arc<StoredEvent>>,
}

fn type_key(rt: &ResourceType) -> (&'static str, &'static str) {
    (rt.group, rt.plural)
}

fn key_of(ns: Option<&str>, name: &str) -> Key {
    (ns.unwrap_or_default().to_string(), name.to_string())
}

impl Store {
    /// An empty store keeping `history_limit` events for watches.
    pub fn new(history_limit: usize) -> Store {
        let (events, _) = broadcast::channel(8192);
        Store {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted: 1,
            events,
        }
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Drop the whole event history: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    fn emit(
        &mut self,
        rt: &'static ResourceType,
        etype: EventType,
        object: Value,
        prev: Option<Value>,
    ) {
        let ev = Arc::new(StoredEvent {
            rv: self.rv,
            rt,
            etype,
            object,
            prev,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receiver is not an error: nobody watches.
        let _ = self.events.send(ev);
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn table(&mut self, rt: &ResourceType) -> &mut BTreeMap<Key, Value> {
        self.objects.entry(type_key(rt)).or_default()
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&type_key(rt))
            .and_then(|t| t.get(&key_of(ns, name)))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt.plural, name))
    }

    /// Objects of a kind, in one namespace or all, filtered by selectors, in key order.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<(Key, Value)> {
        let Some(table) = self.objects.get(&type_key(rt)) else {
            return Vec::new();
        };
        table
            .iter()
            .filter(|((ons, _), o)| {
                ns.is_none_or(|n| n == ons.as_str()) && labels.matches(o) && fields.matches(o)
            })
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect()
    }

    /// Every object of every kind (for tests' inspection).
    pub fn all(&self) -> Vec<(&'static ResourceType, Value)> {
        RESOURCES
            .iter()
            .flat_map(|rt| {
                self.objects
                    .get(&type_key(rt))
                    .into_iter()
                    .flat_map(move |t| t.values().map(move |o| (rt, o.clone())))
            })
            .collect()
    }

    /// Create an object; `obj` has passed kind checks, its namespace is `ns`.
    pub fn create(
        &mut self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let m = meta_mut(&mut obj);
        let name = match (
            m.get("name").and_then(Value::as_str),
            m.get("generateName").and_then(Value::as_str),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(g)) if !g.is_empty() => meta::generated_name(g),
            _ => {
                return Err(ApiError::invalid(
                    rt.kind,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ))
            }
        };
        meta::validate_name(rt.kind, &name)?;
        m.insert("name".into(), Value::from(name.clone()));
        match ns {
            Some(n) => m.insert("namespace".into(), Value::from(n)),
            None => m.remove("namespace"),
        };
        for server_owned in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            m.remove(server_owned);
        }
        m.insert("uid".into(), Value::from(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), Value::from(now_rfc3339()));
        if rt.generation {
            m.insert("generation".into(), Value::from(1));
        }
        obj["apiVersion"] = Value::from(rt.api_version());
        obj["kind"] = Value::from(rt.kind);
        if rt.status {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        meta::normalise(rt, None, &mut obj)?;
        let key = key_of(ns, &name);
        if self.table(rt).contains_key(&key) {
            return Err(ApiError::already_exists(rt.plural, &name));
        }
        if dry_run {
            return Ok(obj);
        }
        let rv = self.bump();
        meta_mut(&mut obj).insert("resourceVersion".into(), Value::from(rv.to_string()));
        self.table(rt).insert(key, obj.clone());
        self.emit(rt, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Store `candidate` as the new state of `old`, with Kubernetes' update rules: the scope
    /// decides whether status or the rest changes; identity fields are kept; resourceVersion is
    /// checked when given (or required); generation bumps when the spec part changes; finalizers
    /// cannot be added once deleting; a write that changes nothing is skipped; an object being
    /// deleted whose last finalizer went is removed.
    pub fn update(
        &mut self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        old: &Value,
        candidate: Value,
        scope: Scope,
        require_rv: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = name_of(old).to_string();
        let given_rv = meta_str(&candidate, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        match &given_rv {
            Some(rv) if Some(rv.as_str()) != meta_str(old, "resourceVersion") => {
                return Err(ApiError::conflict(rt.plural, &name, "the object has been modified; please apply your changes to the latest version and try again"));
            }
            None if require_rv => {
                return Err(ApiError::invalid(
                    rt.kind,
                    &name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            _ => {}
        }
        if let Some(uid) = meta_str(&candidate, "uid").filter(|s| !s.is_empty()) {
            if Some(uid) != meta_str(old, "uid") {
                return Err(ApiError::conflict(
                    rt.plural,
                    &name,
                    "Precondition failed: UID in object meta does not match the stored object",
                ));
            }
        }
        let mut new = match scope {
            Scope::Main => {
                let mut n = candidate;
                if rt.status {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(o) = n.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                n
            }
            Scope::Status => {
                let mut n = old.clone();
                match candidate.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(o) = n.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                match candidate.pointer("/metadata/managedFields") {
                    Some(mf) => meta_mut(&mut n).insert("managedFields".into(), mf.clone()),
                    None => meta_mut(&mut n).remove("managedFields"),
                };
                n
            }
        };
        new["apiVersion"] = Value::from(rt.api_version());
        new["kind"] = Value::from(rt.kind);
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let m = meta_mut(&mut new);
        for keep in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
            "generateName",
        ] {
            match old_meta.get(keep) {
                Some(v) => m.insert(keep.into(), v.clone()),
                None => m.remove(keep),
            };
        }
        meta::normalise(rt, Some(old), &mut new)?;
        let deleting = meta_str(old, "deletionTimestamp").is_some();
        let old_fin = finalizers(old);
        let new_fin = finalizers(&new);
        if deleting && new_fin.iter().any(|f| !old_fin.contains(f)) {
            return Err(ApiError::invalid(rt.kind, &name, "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"));
        }
        if rt.generation && spec_part(old) != spec_part(&new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), Value::from(g + 1));
        }
        if comparable(old) == comparable(&new) {
            return Ok(old.clone());
        }
        if dry_run {
            return Ok(new);
        }
        let rv = self.bump();
        meta_mut(&mut new).insert("resourceVersion".into(), Value::from(rv.to_string()));
        let key = key_of(ns, &name);
        if deleting && new_fin.is_empty() {
            self.table(rt).remove(&key);
            self.emit(rt, EventType::Deleted, new.clone(), None);
            self.collect_garbage(old, false);
        } else {
            self.table(rt).insert(key, new.clone());
            self.emit(rt, EventType::Modified, new.clone(), Some(old.clone()));
        }
        Ok(new)
    }

    /// Delete one object: marked with a deletionTimestamp while finalizers remain, else removed
    /// (its dependents are garbage-collected, or orphaned).
    pub fn delete(
        &mut self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let old = self.get(rt, ns, name)?;
        if let Some(uid) = &opts.uid {
            if Some(uid.as_str()) != meta_str(&old, "uid") {
                return Err(ApiError::conflict(
                    rt.plural,
                    name,
                    "Precondition failed: UID in precondition does not match the stored object",
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            if Some(rv.as_str()) != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(rt.plural, name, "the object has been modified; please apply your changes to the latest version and try again"));
            }
        }
        let key = key_of(ns, name);
        if !finalizers(&old).is_empty() {
            if meta_str(&old, "deletionTimestamp").is_some() || opts.dry_run {
                return Ok(Deleted::Pending(old));
            }
            let mut new = old.clone();
            let rv = self.bump();
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), Value::from(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), Value::from(0));
            m.insert("resourceVersion".into(), Value::from(rv.to_string()));
            if rt.generation {
                let g = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                m.insert("generation".into(), Value::from(g + 1));
            }
            self.table(rt).insert(key, new.clone());
            self.emit(rt, EventType::Modified, new.clone(), Some(old));
            return Ok(Deleted::Pending(new));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(old));
        }
        let rv = self.bump();
        let mut gone = old.clone();
        meta_mut(&mut gone).insert("resourceVersion".into(), Value::from(rv.to_string()));
        self.table(rt).remove(&key);
        self.emit(rt, EventType::Deleted, gone.clone(), None);
        self.collect_garbage(&old, opts.orphan);
        Ok(Deleted::Gone(gone))
    }

    /// Delete or orphan the dependents of a removed owner (background propagation).
    fn collect_garbage(&mut self, owner: &Value, orphan: bool) {
        let Some(uid) = meta_str(owner, "uid").map(str::to_string) else {
            return;
        };
        let owned_by = |o: &Value| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid.as_str())))
        };
        let dependents: Vec<(&'static ResourceType, Value)> = self
            .all()
            .into_iter()
            .filter(|(_, o)| owned_by(o))
            .collect();
        for (rt, dep) in dependents {
            let ns = meta_str(&dep, "namespace").map(str::to_string);
            let name = name_of(&dep).to_string();
            if orphan {
                let mut new = dep.clone();
                if let Some(refs) = new
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r["uid"].as_str() != Some(uid.as_str()));
                }
                // The dependent is stored and unchanged but for the reference: this cannot fail.
                let _ = self.update(rt, ns.as_deref(), &dep, new, Scope::Main, false, false);
            } else {
                let _ = self.delete(rt, ns.as_deref(), &name, &DeleteOptions::default());
            }
        }
    }

    /// Replace a stored object's status directly (the simulated controllers' writes).
    pub fn set_status(
        &mut self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        let old = self.get(rt, ns, name)?;
        let mut candidate = old.clone();
        candidate["status"] = status;
        self.update(rt, ns, &old, candidate, Scope::Status, false, false)
    }

    /// Subscribe to changes after `from`: the backlog of history events with rv > `from`, and
    /// the live receiver. `Err` (410) when `from` is older than the kept history.
    pub fn watch_from(
        &self,
        from: u64,
    ) -> Result<(Vec<Arc<StoredEvent>>, broadcast::Receiver<Arc<StoredEvent>>), ApiError> {
        if from < self.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {from} ({})",
                self.compacted
            )));
        }
        let rx = self.events.subscribe();
        let backlog = self
            .history
            .iter()
            .filter(|e| e.rv > from)
            .cloned()
            .collect();
        Ok((backlog, rx))
    }

    /// A live receiver only (for watches that start from the current state).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.events.subscribe()
    }
}
