//! The expiry queue: due times of every lease, in memory, rebuilt from storage
//! when the node unseals (or, with Raft, becomes leader).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;

/// `(due unix ms, lease id)` ordered by due time, with an index by id so a
/// renewal can move its lease.
#[derive(Default)]
pub struct ExpiryQueue {
    inner: Mutex<Inner>,
    /// Wakes the worker when an earlier due time arrives.
    pub changed: Notify,
}

#[derive(Default)]
struct Inner {
    by_due: BTreeSet<(i64, String)>,
    due_of: HashMap<String, i64>,
}

impl ExpiryQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedule (or reschedule) `id` at `due_ms`.
    pub fn schedule(&self, id: &str, due_ms: i64) {
        let earliest_before = {
            let mut q = self.lock();
            let before = q.by_due.first().map(|(d, _)| *d);
            if let Some(old) = q.due_of.insert(id.to_owned(), due_ms) {
                q.by_due.remove(&(old, id.to_owned()));
            }
            q.by_due.insert((due_ms, id.to_owned()));
            before
        };
        if earliest_before.map(|d| due_ms < d).unwrap_or(true) {
            self.changed.notify_one();
        }
    }

    /// Forget `id`.
    pub fn remove(&self, id: &str) {
        let mut q = self.lock();
        if let Some(old) = q.due_of.remove(id) {
            q.by_due.remove(&(old, id.to_owned()));
        }
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<i64> {
        self.lock().by_due.first().map(|(d, _)| *d)
    }

    /// Take every id due at or before `now_ms` (they leave the queue; a failed
    /// revocation schedules its lease again).
    pub fn take_due(&self, now_ms: i64, limit: usize) -> Vec<String> {
        let mut q = self.lock();
        let mut out = Vec::new();
        while out.len() < limit {
            match q.by_due.first() {
                Some((due, _)) if *due <= now_ms => {}
                _ => break,
            }
            if let Some((_, id)) = q.by_due.pop_first() {
                q.due_of.remove(&id);
                out.push(id);
            }
        }
        out
    }

    /// Number of scheduled leases.
    pub fn len(&self) -> usize {
        self.lock().due_of.len()
    }

    /// Drop everything (before a rebuild).
    pub fn clear(&self) {
        let mut q = self.lock();
        q.by_due.clear();
        q.due_of.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_order_reschedule_and_take() {
        let q = ExpiryQueue::default();
        q.schedule("b", 20);
        q.schedule("a", 10);
        q.schedule("c", 30);
        assert_eq!(q.next_due(), Some(10));
        q.schedule("a", 40);
        assert_eq!(q.next_due(), Some(20));
        assert_eq!(q.take_due(30, 10), vec!["b", "c"]);
        assert_eq!(q.len(), 1);
        q.remove("a");
        assert_eq!(q.len(), 0);
    }
}
