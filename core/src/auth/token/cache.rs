//! Parsed token entries kept in memory, so the token check every request
//! makes is a map lookup instead of a storage read, a decryption and a JSON
//! parse (together ~8 % of a KV read's CPU).
//!
//! An entry leaves the cache whenever its `id/<hash>` key is written: by the
//! store itself after each of its writes, and by the storage's apply hook for
//! writes replicated from another node (see `cluster::follow_changes`), which
//! runs inside the apply, before a read waiting for that index goes on.
//!
//! A lookup that read storage just before a write must not put its older copy
//! back after the write's invalidation: `epoch` counts invalidations, and a
//! loaded entry is kept only if none happened since its load began. Only
//! entries are kept, never token values (the store has none).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::TokenEntry;

/// Entries kept at most; past it the cache starts over (a few MB at most).
const CAPACITY: usize = 4096;

#[derive(Default)]
pub(super) struct EntryCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Arc<TokenEntry>>,
    epoch: u64,
}

impl EntryCache {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached entry of a token hash.
    pub(super) fn get(&self, hash: &str) -> Option<Arc<TokenEntry>> {
        self.inner().entries.get(hash).cloned()
    }

    /// Taken before reading an entry from storage; hand it to [`Self::insert`].
    pub(super) fn epoch(&self) -> u64 {
        self.inner().epoch
    }

    /// Keep `entry`, read from storage after `epoch()` returned `since`,
    /// unless an invalidation came in between.
    pub(super) fn insert(&self, since: u64, entry: Arc<TokenEntry>) {
        let mut inner = self.inner();
        if inner.epoch != since {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(entry.hash.clone(), entry);
    }

    /// Forget one token's entry (its key was written).
    pub(super) fn invalidate(&self, hash: &str) {
        let mut inner = self.inner();
        inner.epoch += 1;
        inner.entries.remove(hash);
    }

    /// Forget every entry (a snapshot replaced the state).
    pub(super) fn clear(&self) {
        let mut inner = self.inner();
        inner.epoch += 1;
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hash: &str, policies: &[&str]) -> Arc<TokenEntry> {
        let mut e: TokenEntry = serde_json::from_value(serde_json::json!({
            "hash": hash, "accessor": "a", "parent": null, "policies": [],
            "meta": {}, "display_name": "t", "path": "auth/token/create",
            "creation_time": 0, "creation_ttl": 0, "expire_time": 0,
            "explicit_max_ttl": 0, "period": 0, "renewable": false, "num_uses": 0
        }))
        .unwrap();
        e.policies = policies.iter().map(|p| p.to_string()).collect();
        Arc::new(e)
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_kept() {
        let cache = EntryCache::default();
        let since = cache.epoch();
        cache.invalidate("h1");
        cache.insert(since, entry("h1", &["old"]));
        assert!(cache.get("h1").is_none());

        let since = cache.epoch();
        cache.insert(since, entry("h1", &["new"]));
        assert_eq!(cache.get("h1").unwrap().policies, vec!["new"]);
    }

    #[test]
    fn invalidation_and_clear_forget_entries() {
        let cache = EntryCache::default();
        cache.insert(cache.epoch(), entry("h1", &[]));
        cache.insert(cache.epoch(), entry("h2", &[]));
        cache.invalidate("h1");
        assert!(cache.get("h1").is_none());
        assert!(cache.get("h2").is_some());
        cache.clear();
        assert!(cache.get("h2").is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = EntryCache::default();
        for i in 0..CAPACITY + 10 {
            cache.insert(cache.epoch(), entry(&format!("h{i}"), &[]));
        }
        assert!(cache.inner().entries.len() <= CAPACITY);
    }
}
