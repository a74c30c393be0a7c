//! Parsed keys kept in memory, so an encryption costs a map lookup and an
//! `Arc` clone rather than a storage read, a barrier decryption and a JSON
//! parse. Entries are replaced whole by writers (who hold the key's write
//! lock) and removed on delete.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::policy::KeyPolicy;

/// Keys by mount (the view's prefix) and name.
#[derive(Default)]
pub struct KeyCache {
    map: RwLock<HashMap<String, HashMap<String, Arc<KeyPolicy>>>>,
}

impl KeyCache {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, HashMap<String, Arc<KeyPolicy>>>> {
        // A panic while holding the lock cannot leave a half-written entry
        // (entries are swapped whole), so a poisoned lock is still usable.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, HashMap<String, Arc<KeyPolicy>>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached key `name` of `mount`.
    pub fn get(&self, mount: &str, name: &str) -> Option<Arc<KeyPolicy>> {
        self.read().get(mount)?.get(name).cloned()
    }

    /// Publish `policy` as the current state of its key.
    pub fn put(&self, mount: &str, policy: Arc<KeyPolicy>) {
        let mut map = self.write();
        let keys = match map.get_mut(mount) {
            Some(keys) => keys,
            None => map.entry(mount.to_owned()).or_default(),
        };
        keys.insert(policy.name.clone(), policy);
    }

    /// Forget everything.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Forget the key `name` of `mount`.
    pub fn remove(&self, mount: &str, name: &str) {
        if let Some(keys) = self.write().get_mut(mount) {
            keys.remove(name);
        }
    }
}
