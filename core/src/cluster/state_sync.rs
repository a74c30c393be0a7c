//! Keeping a node's unsealed state in step with the replicated log.
//!
//! A node holds in memory what it derives from a few replicated keys: the
//! keyring, the mount table (with each engine and its locks), the policies
//! and the audit table. A leader changes them in memory before it proposes
//! the entries of its term. Every other change — any entry applied on a
//! follower, and entries of earlier terms applied by a leader (a node
//! restarted before its committed index was saved applies those only once it
//! commits again, possibly as the new leader) — makes the memory stale until
//! the node rebuilds it from storage ([`crate::node::Node::reload`]).
//!
//! The apply hook counts such changes as they are applied, before any reader
//! waiting for their index goes on; [`StateSync::ensure_current`] rebuilds
//! the state when the count moved, and every request served on this node
//! passes it first. A reload replaces the engines and their per-key locks,
//! which is safe only while no write runs on them: on a leader the count
//! moves only before the first request of its term (the entries of earlier
//! terms are applied before [`crate::storage::raft::RaftStorage::leader_caught_up`]
//! lets a request through), and requests of that term wait for the reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Cluster;
use crate::node::{Node, NodeError};
use crate::storage::raft::Applied;

/// Changes counted against what the unsealed state has loaded.
#[derive(Default)]
pub struct StateSync {
    /// Changes applied that the unsealed state does not hold.
    applied: AtomicU64,
    /// The value of `applied` the last reload started from.
    loaded: AtomicU64,
    /// One reload at a time; requests wait on it while one runs.
    reloading: tokio::sync::Mutex<()>,
}

impl StateSync {
    /// Count an apply that changed state this node did not change in memory
    /// itself (see [`must_reload`]).
    fn count(&self, applied: &Applied, leader_term: Option<u64>) {
        if must_reload(applied, leader_term) {
            self.applied.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Rebuild the unsealed state if a counted change is not in it yet.
    /// Cheap when nothing changed: two atomic loads.
    pub async fn ensure_current(&self, node: &Node) -> Result<(), NodeError> {
        if self.loaded.load(Ordering::Acquire) >= self.applied.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.reloading.lock().await;
        let target = self.applied.load(Ordering::Acquire);
        if self.loaded.load(Ordering::Acquire) >= target {
            // Another request reloaded while this one waited.
            return Ok(());
        }
        // Changes counted from here on are not promised by this reload: they
        // leave `applied` above `loaded`, and the next request reloads again.
        node.reload().await?;
        self.loaded.store(target, Ordering::Release);
        Ok(())
    }
}

/// Whether a replicated change touches state a node caches in memory.
fn invalidates_cache(key: &str) -> bool {
    key.is_empty()
        || key == crate::barrier::KEYRING_PATH
        || key == crate::node::mounts::MOUNTS_PATH
        || key.starts_with("sys/policy/")
        || key.starts_with("core/audit")
}

/// Whether an apply changed cached state other than what this node itself
/// changed in memory as the leader of `leader_term`.
fn must_reload(applied: &Applied, leader_term: Option<u64>) -> bool {
    applied
        .keys
        .iter()
        .zip(&applied.terms)
        .any(|(key, term)| invalidates_cache(key) && leader_term != Some(*term))
}

/// Tell the barrier and each engine which of their keys a replicated write
/// changed (engine keys are `logical/<mount uuid>/<key>`; an empty key means
/// everything may have).
fn invalidate_caches(node: &Node, keys: &[String]) {
    node.barrier().forget(keys);
    let Ok(unsealed) = node.unsealed() else {
        return;
    };
    let mounts = unsealed.mounts.snapshot();
    for key in keys {
        if key.is_empty() {
            for m in mounts.iter() {
                m.engine.invalidate(&m.view, "");
            }
            continue;
        }
        let Some((uuid, rest)) = key.strip_prefix("logical/").and_then(|k| k.split_once('/'))
        else {
            continue;
        };
        if let Some(m) = mounts.iter().find(|m| m.entry.uuid == uuid) {
            m.engine.invalidate(&m.view, rest);
        }
    }
}

/// Follow the replicated log: drop the caches an apply made stale inside the
/// apply, count the changes the unsealed state must reload, and on a
/// follower reload them eagerly (a leader reloads only in front of requests,
/// see the module documentation).
pub fn follow_changes(cluster: Arc<Cluster>, node: Arc<Node>) {
    // Barrier and engine caches are dropped inside the apply, on every node, so a read
    // that waited for an index never meets a cache older than it. (The leader
    // updated its own in memory; dropping an entry there only costs a reload.)
    let weak_node = Arc::downgrade(&node);
    let weak_cluster = Arc::downgrade(&cluster);
    cluster.storage.set_apply_hook(Box::new(move |applied| {
        if let Some(node) = weak_node.upgrade() {
            invalidate_caches(&node, &applied.keys);
        }
        if let Some(cluster) = weak_cluster.upgrade() {
            cluster.state.count(applied, cluster.storage.leader_term());
        }
    }));
    let mut changes = cluster.storage.subscribe();
    tokio::spawn(async move {
        // Wakes coalesce: the hook has counted every change already.
        while changes.changed().await.is_ok() {
            // Secrets may have changed under a watcher (`sys/cairn/watch`).
            node.barrier().notify_changed();
            if cluster.storage.is_leader() {
                continue;
            }
            if let Err(e) = cluster.state.ensure_current(&node).await {
                tracing::error!(error = %e, "failed to reload replicated state; the node is sealed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(keys: &[&str], term: u64) -> Applied {
        Applied {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            terms: vec![term; keys.len()],
        }
    }

    #[test]
    fn a_leader_reloads_only_for_changes_it_did_not_make() {
        let policy = applied(&["sys/policy/app"], 7);
        // A follower always reloads.
        assert!(must_reload(&policy, None));
        // The leader of term 7 changed its memory before proposing.
        assert!(!must_reload(&policy, Some(7)));
        // Entries of an earlier term, applied once this node leads term 8.
        assert!(must_reload(&policy, Some(8)));
        // A snapshot replaces everything.
        assert!(must_reload(&applied(&[""], 0), Some(8)));
        // Secret data keeps no unsealed state.
        assert!(!must_reload(&applied(&["logical/u/data/x"], 7), None));
        // What counts is the term of the entry that changed the cached key.
        let mixed = Applied {
            keys: vec!["logical/u/data/x".into(), "sys/policy/app".into()],
            terms: vec![7, 8],
        };
        assert!(!must_reload(&mixed, Some(8)));
        assert!(must_reload(&mixed, Some(7)));
    }

    #[test]
    fn only_counted_changes_leave_the_state_behind() {
        let sync = StateSync::default();
        sync.count(&applied(&["sys/policy/app"], 3), Some(3));
        assert_eq!(sync.applied.load(Ordering::Acquire), 0);
        sync.count(&applied(&["sys/policy/app"], 3), None);
        assert_eq!(sync.applied.load(Ordering::Acquire), 1);
    }
}
