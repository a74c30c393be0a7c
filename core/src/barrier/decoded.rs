//! Parsed values of chosen keys kept in memory: token entries and KV
//! metadata, which every request reads. A hit is a map lookup instead of a
//! storage read, a decryption and a JSON parse (together ~15 % of a KV read's
//! CPU). Secret values are never kept: callers opt in per read
//! ([`super::View::get_json_shared`]) and only for records without secrets.
//!
//! A key leaves the cache whenever it is written: by the barrier after each
//! of its own writes, and by the storage's apply hook for writes replicated
//! from another node (see `cluster::follow_changes`), which runs inside the
//! apply, before a read waiting for that index goes on. Sealing clears it.
//!
//! A read that loaded a key just before a write must not put its older copy
//! back after the write's invalidation: `epoch` counts invalidations, and a
//! loaded value is kept only if none happened since its load began.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Values kept at most; past it the cache starts over (a few MB at most).
const CAPACITY: usize = 8192;

type Value = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
pub(super) struct DecodedCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    values: HashMap<String, Value>,
    epoch: u64,
}

impl DecodedCache {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value of `key`, if it was cached as a `T`.
    pub(super) fn get<T: Send + Sync + 'static>(&self, key: &str) -> Option<Arc<T>> {
        let value = self.inner().values.get(key).cloned()?;
        value.downcast().ok()
    }

    /// Taken before reading a key from storage; hand it to [`Self::insert`].
    pub(super) fn epoch(&self) -> u64 {
        self.inner().epoch
    }

    /// Keep `value` of `key`, read from storage after `epoch()` returned
    /// `since`, unless an invalidation came in between.
    pub(super) fn insert<T: Send + Sync + 'static>(&self, since: u64, key: &str, value: Arc<T>) {
        let mut inner = self.inner();
        if inner.epoch != since {
            return;
        }
        if inner.values.len() >= CAPACITY {
            inner.values.clear();
        }
        inner.values.insert(key.to_owned(), value);
    }

    /// Forget the values of `keys` (they were written); an empty key stands
    /// for every key.
    pub(super) fn invalidate<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner();
        inner.epoch += 1;
        for key in keys {
            if key.is_empty() {
                inner.values.clear();
            } else {
                inner.values.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_kept() {
        let cache = DecodedCache::default();
        let since = cache.epoch();
        cache.invalidate(["k"]);
        cache.insert(since, "k", Arc::new("old".to_string()));
        assert!(cache.get::<String>("k").is_none());

        let since = cache.epoch();
        cache.insert(since, "k", Arc::new("new".to_string()));
        assert_eq!(cache.get::<String>("k").unwrap().as_str(), "new");
    }

    #[test]
    fn invalidation_forgets_keys_and_an_empty_key_forgets_all() {
        let cache = DecodedCache::default();
        cache.insert(cache.epoch(), "a", Arc::new(1u32));
        cache.insert(cache.epoch(), "b", Arc::new(2u32));
        cache.invalidate(["a"]);
        assert!(cache.get::<u32>("a").is_none());
        assert_eq!(cache.get::<u32>("b").as_deref(), Some(&2));
        cache.invalidate([""]);
        assert!(cache.get::<u32>("b").is_none());
    }

    #[test]
    fn a_value_of_another_type_is_a_miss() {
        let cache = DecodedCache::default();
        cache.insert(cache.epoch(), "a", Arc::new(1u32));
        assert!(cache.get::<String>("a").is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = DecodedCache::default();
        for i in 0..CAPACITY + 10 {
            cache.insert(cache.epoch(), &format!("k{i}"), Arc::new(i));
        }
        assert!(cache.inner().values.len() <= CAPACITY);
    }
}
