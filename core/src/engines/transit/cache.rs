//! Parsed keys kept in memory, so an encryption costs a map lookup and an
//! `Arc` clone rather than a storage read, a barrier decryption and a JSON
//! parse. Entries are replaced whole by writers (who hold the key's write
//! lock) and removed on delete and by the apply hook of replicated writes.
//!
//! The apply hook does not take the key's lock, so a fill that read storage
//! before an applied change could put the older key back after the hook
//! removed it. `epoch` counts removals; a fill is kept only if none happened
//! since its read began.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::policy::KeyPolicy;

/// Keys by mount (the view's prefix) and name.
#[derive(Default)]
pub struct KeyCache {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, HashMap<String, Arc<KeyPolicy>>>,
    epoch: u64,
}

impl KeyCache {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written entry
        // (entries are swapped whole), so a poisoned lock is still usable.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached key `name` of `mount`.
    pub fn get(&self, mount: &str, name: &str) -> Option<Arc<KeyPolicy>> {
        self.read().keys.get(mount)?.get(name).cloned()
    }

    /// Taken before a fill reads storage; hand it to [`Self::fill`].
    pub fn epoch(&self) -> u64 {
        self.read().epoch
    }

    /// Publish `policy` as the current state of its key (its writer holds
    /// the key's lock and has just stored it).
    pub fn put(&self, mount: &str, policy: Arc<KeyPolicy>) {
        Self::insert(&mut self.write(), mount, policy);
    }

    /// Keep `policy`, read from storage after `epoch()` returned `since`,
    /// unless a removal came in between.
    pub fn fill(&self, since: u64, mount: &str, policy: Arc<KeyPolicy>) {
        let mut state = self.write();
        if state.epoch == since {
            Self::insert(&mut state, mount, policy);
        }
    }

    fn insert(state: &mut State, mount: &str, policy: Arc<KeyPolicy>) {
        let keys = match state.keys.get_mut(mount) {
            Some(keys) => keys,
            None => state.keys.entry(mount.to_owned()).or_default(),
        };
        keys.insert(policy.name.clone(), policy);
    }

    /// Forget everything.
    pub fn clear(&self) {
        let mut state = self.write();
        state.epoch += 1;
        state.keys.clear();
    }

    /// Forget the key `name` of `mount`.
    pub fn remove(&self, mount: &str, name: &str) {
        let mut state = self.write();
        state.epoch += 1;
        if let Some(keys) = state.keys.get_mut(mount) {
            keys.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::aead::KeyType;
    use super::*;

    fn key(name: &str) -> Arc<KeyPolicy> {
        Arc::new(KeyPolicy::new(name, KeyType::Aes256Gcm96, false, 0))
    }

    #[test]
    fn a_fill_that_raced_a_removal_is_not_kept() {
        let cache = KeyCache::default();
        let since = cache.epoch();
        cache.remove("transit/", "k");
        cache.fill(since, "transit/", key("k"));
        assert!(cache.get("transit/", "k").is_none());
        cache.fill(cache.epoch(), "transit/", key("k"));
        assert!(cache.get("transit/", "k").is_some());
        // A writer's publication does not depend on the epoch.
        cache.remove("transit/", "k");
        cache.put("transit/", key("k"));
        assert!(cache.get("transit/", "k").is_some());
    }
}
