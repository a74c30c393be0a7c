//! Engine-level tests: requests in, responses and stored keys out, over a real
//! barrier on memory storage. This file holds the harness; the tests are
//! grouped by concept in the submodules.

mod concurrency;
mod data;
mod metadata;
mod requests;
mod versions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::metadata::KeyMetadata;
use super::store::{self, WriteSet};
use super::*;
use crate::barrier::{Barrier, Keyring, View};
use crate::storage::memory::MemoryStorage;
use crate::storage::{Op, Storage, StorageError};

/// Memory storage that counts batches, to check one write is one commit, and
/// yields to the scheduler on every read and write, as a real backend does, so
/// concurrent writers interleave between reading metadata and committing.
#[derive(Default)]
struct CountingStorage {
    inner: MemoryStorage,
    batches: AtomicUsize,
}

#[async_trait]
impl Storage for CountingStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        tokio::task::yield_now().await;
        self.inner.get(key).await
    }
    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.inner.batch(ops).await
    }
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.keys_with_prefix(prefix).await
    }
}

struct Kv {
    engine: Arc<KvEngine>,
    view: View,
    storage: Arc<CountingStorage>,
}

impl Kv {
    fn new() -> Kv {
        let storage = Arc::new(CountingStorage::default());
        let barrier = Arc::new(Barrier::new(storage.clone()));
        barrier.set_keyring(Some(Keyring::generate(0)));
        Kv {
            engine: Arc::new(KvEngine::new()),
            view: View::new(barrier, "logical/kv/"),
            storage,
        }
    }

    async fn call(
        &self,
        op: Operation,
        path: &str,
        body: Value,
        query: &[(&str, &str)],
    ) -> Result<Response, EngineError> {
        let mut req = Request::new(op, path);
        req.data = match body {
            Value::Object(m) => m.into(),
            _ => Default::default(),
        };
        req.query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>();
        req.mount_point = "secret/".to_owned();
        self.engine.handle(req, &self.view).await
    }

    async fn ok(&self, op: Operation, path: &str, body: Value) -> Response {
        match self.call(op, path, body, &[]).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} failed: {e:?}"),
        }
    }

    async fn put(&self, path: &str, data: Value) -> Response {
        self.ok(
            Operation::Update,
            &format!("data/{path}"),
            json!({ "data": data }),
        )
        .await
    }

    async fn get(&self, path: &str) -> Response {
        self.ok(Operation::Read, &format!("data/{path}"), json!({}))
            .await
    }

    async fn get_version(&self, path: &str, version: u64) -> Result<Response, EngineError> {
        self.call(
            Operation::Read,
            &format!("data/{path}"),
            json!({}),
            &[("version", &version.to_string())],
        )
        .await
    }

    async fn meta(&self, path: &str) -> Value {
        body(
            self.ok(Operation::Read, &format!("metadata/{path}"), json!({}))
                .await,
        )
    }

    async fn stored_keys(&self, prefix: &str) -> Vec<String> {
        self.view.keys_with_prefix(prefix).await.unwrap_or_default()
    }
}

fn body(resp: Response) -> Value {
    resp.data.unwrap_or(Value::Null)
}

fn bad_request(result: Result<Response, EngineError>) -> String {
    match result {
        Err(EngineError::BadRequest(msg)) => msg,
        other => panic!("expected 400, got {other:?}"),
    }
}

fn is_rfc3339(s: &Value) -> bool {
    let s = s.as_str().unwrap_or("");
    s.len() >= 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}
