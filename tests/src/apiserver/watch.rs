//! Watch streams: newline-delimited JSON events, bookmarks, timeouts, 410 for compacted history.

use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

use super::errors::ApiError;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{EventType, Store, StoredEvent};

/// What a watch request asked for.
pub struct WatchRequest {
    /// Kind watched.
    pub rt: &'static ResourceType,
    /// Namespace, or all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `resourceVersion`: `None` or `Some(0)` start with the current objects as ADDED events.
    pub from: Option<u64>,
    /// `sendInitialEvents=true`: current objects first, then a bookmark marking their end.
    pub send_initial_events: bool,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut obj = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
    if initial_end {
        obj["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line("BOOKMARK", &obj)
}

impl WatchRequest {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = match &self.namespace {
            Some(n) => {
                obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n.as_str())
            }
            None => true,
        };
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The line to send for a stored event, if this watch sees it.
    fn render(&self, ev: &StoredEvent) -> Option<Bytes> {
        if !std::ptr::eq(ev.rt, self.rt) {
            return None;
        }
        let now = self.matches(&ev.object);
        let kind = match (ev.etype, ev.prev.as_ref().map(|p| self.matches(p))) {
            (EventType::Modified, Some(true)) if !now => EventType::Deleted,
            (EventType::Modified, Some(false)) if now => EventType::Added,
            (EventType::Modified, Some(false)) => return None,
            (t, _) if now => t,
            _ => return None,
        };
        Some(line(kind.as_str(), &ev.object))
    }
}

/// Start a watch: the response body streams until the timeout, the client leaves, or the server stops.
pub fn start(
    store: &Mutex<Store>,
    req: WatchRequest,
    bookmark_every: Duration,
    mut shutdown: watch::Receiver<u64>,
) -> Body {
    let (tx, mut rx_lines) = mpsc::channel::<Bytes>(64);
    let mut initial: Vec<Bytes> = Vec::new();
    let setup = {
        let guard = match store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let from_now = req.send_initial_events || matches!(req.from, None | Some(0));
        if from_now {
            for (_, obj) in guard.list(req.rt, req.namespace.as_deref(), &req.labels, &req.fields) {
                initial.push(line("ADDED", &obj));
            }
            let rv = guard.resource_version();
            if req.send_initial_events && req.bookmarks {
                initial.push(bookmark(req.rt, rv, true));
            }
            Ok((Vec::new(), guard.subscribe(), rv))
        } else {
            let from = req.from.unwrap_or_default();
            guard
                .watch_from(from)
                .map(|(backlog, rx)| (backlog, rx, from))
        }
    };
    tokio::spawn(async move {
        let (backlog, mut events, mut last) = match setup {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(line("ERROR", &e.status())).await;
                return;
            }
        };
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        for ev in backlog {
            last = ev.rv;
            if let Some(l) = req.render(&ev) {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
        }
        let deadline = tokio::time::sleep(req.timeout);
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval(bookmark_every);
        ticks.tick().await;
        loop {
            let out = tokio::select! {
                r = events.recv() => match r {
                    Ok(ev) if ev.rv > last => {
                        last = ev.rv;
                        req.render(&ev)
                    }
                    Ok(_) => None,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let e = ApiError::gone("the watch fell too far behind; start again from a fresh list");
                        let _ = tx.send(line("ERROR", &e.status())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticks.tick(), if req.bookmarks => Some(bookmark(req.rt, last, false)),
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
            };
            if let Some(l) = out {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx_lines
            .poll_recv(cx)
            .map(|o| o.map(Ok::<Bytes, std::convert::Infallible>))
    });
    Body::from_stream(stream)
}
