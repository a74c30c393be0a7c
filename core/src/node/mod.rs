//! The running node: seal state, and once unsealed, the subsystems that need
//! the keyring (tokens, policies, mounts, audit).

pub mod audit_table;
pub mod mounts;
pub mod policies;

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::auth::token::{CreateParams, TokenError, TokenStore};
use crate::barrier::{Barrier, BarrierError, Key, Keyring, View, KEYRING_PATH};
use crate::lease::{LeaseError, LeaseManager};
use crate::seal::config::{SealConfigError, SEAL_CONFIG_PATH};
use crate::seal::static_key::SEALED_ROOT_KEY_PATH;
use crate::seal::unseal::decode_share;
use crate::seal::{shamir, SealConfig, SealKind, UnsealError, UnsealProgress};
use crate::storage::{Op, Storage, StorageError};
use crate::time;
use audit_table::{AuditTable, AuditTableError};
use mounts::{MountError, MountTable};
use policies::{PolicyStore, PolicyStoreError};

/// Node-level failures (init, unseal, seal, rotate).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is sealed")]
    Sealed,
    #[error(transparent)]
    Unseal(#[from] UnsealError),
    #[error(transparent)]
    SealConfig(#[from] SealConfigError),
    #[error("failed to open the keyring: {0}")]
    Keyring(&'static str),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("failed to set up audit devices: {0}")]
    Audit(#[from] AuditTableError),
    #[error("failed to load the mount table: {0}")]
    Mounts(#[from] MountError),
    #[error("failed to load policies: {0}")]
    Policies(#[from] PolicyStoreError),
    #[error("failed to create the root token: {0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Cluster(String),
    #[error("failed to load leases: {0}")]
    Leases(#[from] LeaseError),
}

/// What `sys/init` hands out, once.
pub struct InitResult {
    /// Shamir shares (empty for the static seal).
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub root_token: Zeroizing<String>,
}

/// The seal status as `sys/seal-status` reports it.
#[derive(Debug, Clone)]
pub struct SealStatus {
    pub initialized: bool,
    pub sealed: bool,
    pub kind: &'static str,
    pub threshold: u8,
    pub shares: u8,
    pub progress: usize,
    pub nonce: String,
}

/// Everything that exists only while the node is unsealed.
pub struct Unsealed {
    pub tokens: Arc<TokenStore>,
    pub policies: PolicyStore,
    pub mounts: Arc<MountTable>,
    pub audit: AuditTable,
    pub leases: Arc<LeaseManager>,
    root_key: Key,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Unsealed {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// One Cairn node.
pub struct Node {
    barrier: Arc<Barrier>,
    progress: Mutex<UnsealProgress>,
    static_key: Option<Key>,
    unsealed: RwLock<Option<Arc<Unsealed>>>,
    storage_type: &'static str,
    /// The Raft cluster this node belongs to (raft storage only).
    cluster: OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Node {
    /// A sealed node over `storage`. With `static_key`, init uses the static
    /// seal and [`Node::auto_unseal`] opens the node without shares.
    pub fn new(
        storage: Arc<dyn Storage>,
        storage_type: &'static str,
        static_key: Option<Key>,
    ) -> Self {
        Node {
            barrier: Arc::new(Barrier::new(storage)),
            progress: Mutex::new(UnsealProgress::default()),
            static_key,
            unsealed: RwLock::new(None),
            storage_type,
            cluster: OnceLock::new(),
        }
    }

    /// Attach the Raft cluster whose storage this node runs on.
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The Raft cluster, if storage is raft.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Whether this node is the active one (the Raft leader; a node without a
    /// cluster always is), as a watch that follows leadership changes.
    pub fn active_watch(&self) -> tokio::sync::watch::Receiver<bool> {
        let Some(cluster) = self.cluster() else {
            // The sender goes away at once: the value stays true forever.
            return tokio::sync::watch::channel(true).1;
        };
        let mut metrics = cluster.raft().metrics();
        let leads = |m: &openraft::RaftMetrics<u64, crate::storage::raft::NodeInfo>| {
            m.current_leader == Some(m.id)
        };
        let (tx, rx) = tokio::sync::watch::channel(leads(&metrics.borrow()));
        tokio::spawn(async move {
            while metrics.changed().await.is_ok() && !tx.is_closed() {
                let now = leads(&metrics.borrow_and_update());
                tx.send_if_modified(|was| std::mem::replace(was, now) != now);
            }
        });
        rx
    }

    /// The barrier every subsystem stores through.
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// The storage backend's name, for seal-status.
    pub fn storage_type(&self) -> &'static str {
        self.storage_type
    }

    /// The unsealed subsystems, or `Sealed`.
    pub fn unsealed(&self) -> Result<Arc<Unsealed>, NodeError> {
        let guard = match self.unsealed.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.clone().ok_or(NodeError::Sealed)
    }

    fn set_unsealed(&self, value: Option<Arc<Unsealed>>) {
        match self.unsealed.write() {
            Ok(mut g) => *g = value,
            Err(p) => *p.into_inner() = value,
        }
    }

    /// Whether the node is sealed.
    pub fn is_sealed(&self) -> bool {
        self.unsealed().is_err()
    }

    /// The persisted seal configuration; `None` before init.
    pub async fn seal_config(&self) -> Result<Option<SealConfig>, NodeError> {
        let Some(bytes) = self.barrier.storage().get(SEAL_CONFIG_PATH).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|_| {
            NodeError::Barrier(BarrierError::Corrupt {
                key: SEAL_CONFIG_PATH.into(),
            })
        })
    }

    /// The seal status.
    pub async fn status(&self) -> Result<SealStatus, NodeError> {
        let config = self.seal_config().await?;
        let progress = self.progress.lock().await;
        Ok(SealStatus {
            initialized: config.is_some(),
            sealed: self.is_sealed(),
            kind: config.as_ref().map(|c| c.kind.as_str()).unwrap_or("shamir"),
            threshold: config.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
            shares: config.as_ref().map(|c| c.secret_shares).unwrap_or(0),
            progress: progress.progress(),
            nonce: progress.nonce().to_owned(),
        })
    }

    /// `sys/init`: create the root key, keyring and root token. With the Shamir
    /// seal the node stays sealed afterwards; with the static seal it is unsealed.
    pub async fn initialize(
        &self,
        shares: u64,
        threshold: u64,
        root_token_id: Option<String>,
    ) -> Result<InitResult, NodeError> {
        if self.seal_config().await?.is_some() {
            return Err(NodeError::AlreadyInitialized);
        }
        // The first node of a cluster starts the cluster when it is initialised.
        if let Some(cluster) = self.cluster() {
            cluster
                .bootstrap()
                .await
                .map_err(|e| NodeError::Cluster(e.to_string()))?;
            if self.seal_config().await?.is_some() {
                return Err(NodeError::AlreadyInitialized);
            }
        }
        let mut config = SealConfig::shamir(shares, threshold)?;
        if self.static_key.is_some() {
            config = SealConfig {
                kind: SealKind::Static,
                secret_shares: 0,
                secret_threshold: 0,
            };
        }
        let root_key = Key::generate();
        let keyring = Keyring::generate(time::now());
        let sealed_ring = root_key
            .seal(0, KEYRING_PATH.as_bytes(), &keyring.to_bytes())
            .map_err(|_| NodeError::Keyring("cannot seal keyring"))?;
        let mut ops = vec![Op::Put {
            key: KEYRING_PATH.into(),
            value: sealed_ring,
        }];
        if let Some(static_key) = &self.static_key {
            let sealed_root = static_key
                .seal(0, SEALED_ROOT_KEY_PATH.as_bytes(), &root_key.0)
                .map_err(|_| NodeError::Keyring("cannot seal root key"))?;
            ops.push(Op::Put {
                key: SEALED_ROOT_KEY_PATH.into(),
                value: sealed_root,
            });
        }
        let config_bytes = serde_json::to_vec(&config)
            .map_err(|_| NodeError::Keyring("cannot encode seal config"))?;
        // The seal config goes last: it is what marks the node initialized.
        ops.push(Op::Put {
            key: SEAL_CONFIG_PATH.into(),
            value: config_bytes,
        });
        self.barrier.storage().batch(ops).await?;

        self.unseal_with_key(root_key.clone()).await?;
        let unsealed = self.unsealed()?;
        let params = CreateParams {
            id: root_token_id,
            policies: vec!["root".into()],
            ..Default::default()
        };
        let root = unsealed
            .tokens
            .create(None, params, "auth/token/root", true, time::now())
            .await?;
        let keys = match config.kind {
            SealKind::Shamir => {
                shamir::split(&root_key, config.secret_shares, config.secret_threshold)
            }
            SealKind::Static => Vec::new(),
        };
        if config.kind == SealKind::Shamir {
            self.seal().await;
        }
        Ok(InitResult {
            keys,
            root_token: root.token,
        })
    }

    /// `sys/unseal`: add one share; unseals when the threshold is reached.
    pub async fn submit_share(&self, share: &str) -> Result<(), NodeError> {
        let config = self.seal_config().await?.ok_or(NodeError::NotInitialized)?;
        if !self.is_sealed() {
            return Ok(());
        }
        if config.kind != SealKind::Shamir {
            return Err(NodeError::Unseal(UnsealError::Malformed));
        }
        let share = decode_share(share)?;
        let candidate = self
            .progress
            .lock()
            .await
            .submit(share, config.secret_threshold)?;
        if let Some(root_key) = candidate {
            self.unseal_with_key(root_key).await?;
        }
        Ok(())
    }

    /// Forget shares submitted so far.
    pub async fn reset_progress(&self) {
        self.progress.lock().await.reset();
    }

    /// Unseal with the static key, if this node has one.
    pub async fn auto_unseal(&self) -> Result<bool, NodeError> {
        let Some(static_key) = &self.static_key else {
            return Ok(false);
        };
        let Some(sealed_root) = self.barrier.storage().get(SEALED_ROOT_KEY_PATH).await? else {
            return Ok(false);
        };
        let bytes = static_key
            .open(SEALED_ROOT_KEY_PATH.as_bytes(), &sealed_root)
            .map_err(|_| NodeError::Keyring("the static seal key does not open the root key"))?;
        if bytes.len() != 32 {
            return Err(NodeError::Keyring("sealed root key has the wrong length"));
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        self.unseal_with_key(Key(k)).await?;
        Ok(true)
    }

    async fn unseal_with_key(&self, root_key: Key) -> Result<(), NodeError> {
        let sealed_ring = self
            .barrier
            .storage()
            .get(KEYRING_PATH)
            .await?
            .ok_or(NodeError::NotInitialized)?;
        let ring_bytes = root_key
            .open(KEYRING_PATH.as_bytes(), &sealed_ring)
            .map_err(|_| UnsealError::WrongShares)?;
        let keyring = Keyring::from_bytes(&ring_bytes)
            .map_err(|_| NodeError::Keyring("keyring is malformed"))?;
        self.barrier.set_keyring(Some(keyring));
        match self.load_subsystems(root_key).await {
            Ok(u) => {
                self.set_unsealed(Some(Arc::new(u)));
                Ok(())
            }
            Err(e) => {
                self.barrier.set_keyring(None);
                Err(e)
            }
        }
    }

    async fn load_subsystems(&self, root_key: Key) -> Result<Unsealed, NodeError> {
        let b = &self.barrier;
        let tokens = Arc::new(TokenStore::new(View::new(b.clone(), "sys/token/")));
        let policies = PolicyStore::load(View::new(b.clone(), "sys/policy/")).await?;
        let mounts = Arc::new(MountTable::load(b.clone()).await?);
        let audit = AuditTable::load(View::new(b.clone(), "")).await?;
        let leases = LeaseManager::new(View::new(b.clone(), "sys/expire/"), mounts.clone());
        tokens.set_revocation_hook(leases.clone());
        // Background upkeep that writes (lease expiry, token tidy) runs on the
        // leader only; followers would only forward the same writes to it.
        let active = self.active_watch();
        let expiry = leases.spawn_expiry(active.clone());
        // Purge expired tokens in the background; lookups refuse them regardless.
        let tidy_store = tokens.clone();
        let tidy = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if !*active.borrow() {
                    continue;
                }
                if let Err(e) = tidy_store.tidy(time::now()).await {
                    tracing::warn!(error = %e, "token tidy failed");
                }
            }
        });
        Ok(Unsealed {
            tokens,
            policies,
            mounts,
            audit,
            leases,
            root_key,
            background: vec![tidy, expiry],
        })
    }

    /// Re-read the keyring and rebuild the unsealed subsystems from storage. A
    /// Raft follower calls this when the replicated log changed state they
    /// cache (mount table, policies, keyring). Does nothing while sealed.
    pub async fn reload(&self) -> Result<(), NodeError> {
        let Ok(current) = self.unsealed() else {
            return Ok(());
        };
        self.unseal_with_key(current.root_key.clone()).await
    }

    /// `sys/seal`: drop every key from memory.
    pub async fn seal(&self) {
        self.set_unsealed(None);
        self.barrier.set_keyring(None);
        self.progress.lock().await.reset();
    }

    /// `sys/rotate`: add a keyring term; new writes use it.
    pub async fn rotate(&self) -> Result<(), NodeError> {
        let unsealed = self.unsealed()?;
        let next = self.barrier.keyring()?.rotated(time::now());
        let sealed_ring = unsealed
            .root_key
            .seal(0, KEYRING_PATH.as_bytes(), &next.to_bytes())
            .map_err(|_| NodeError::Keyring("cannot seal keyring"))?;
        self.barrier
            .storage()
            .put(KEYRING_PATH, sealed_ring)
            .await?;
        self.barrier.set_keyring(Some(next));
        Ok(())
    }

    /// `sys/key-status`: active term and when it was installed.
    pub fn key_status(&self) -> Result<(u32, i64), NodeError> {
        let ring = self.barrier.keyring()?;
        Ok((ring.active_term(), ring.active_installed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    #[tokio::test]
    async fn init_unseal_seal_rotate() {
        let node = Node::new(Arc::new(MemoryStorage::new()), "inmem", None);
        assert!(!node.status().await.unwrap().initialized);
        let init = node.initialize(5, 3, None).await.unwrap();
        assert_eq!(init.keys.len(), 5);
        assert!(node.is_sealed());
        assert!(matches!(
            node.initialize(5, 3, None).await,
            Err(NodeError::AlreadyInitialized)
        ));

        // Shares of another node rebuild a wrong key: refused, progress reset.
        let other = Node::new(Arc::new(MemoryStorage::new()), "inmem", None);
        let foreign = other.initialize(5, 3, None).await.unwrap();
        for k in &foreign.keys[..2] {
            node.submit_share(&hex::encode(k.as_slice())).await.unwrap();
        }
        let err = node
            .submit_share(&hex::encode(foreign.keys[2].as_slice()))
            .await;
        assert!(matches!(
            err,
            Err(NodeError::Unseal(UnsealError::WrongShares))
        ));
        assert_eq!(node.status().await.unwrap().progress, 0);

        for k in &init.keys[1..4] {
            node.submit_share(&hex::encode(k.as_slice())).await.unwrap();
        }
        assert!(!node.is_sealed());
        let u = node.unsealed().unwrap();
        assert!(u
            .tokens
            .lookup(&init.root_token, time::now())
            .await
            .unwrap()
            .unwrap()
            .is_root());

        node.rotate().await.unwrap();
        assert_eq!(node.key_status().unwrap().0, 2);
        node.seal().await;
        assert!(node.is_sealed());
        for k in &init.keys[..3] {
            node.submit_share(&hex::encode(k.as_slice())).await.unwrap();
        }
        assert_eq!(
            node.key_status().unwrap().0,
            2,
            "rotation survives seal/unseal"
        );
    }

    #[tokio::test]
    async fn static_seal_unseals_itself() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let key = Key::generate();
        let node = Node::new(storage.clone(), "inmem", Some(key.clone()));
        let init = node
            .initialize(1, 1, Some("dev-root".into()))
            .await
            .unwrap();
        assert!(init.keys.is_empty());
        assert_eq!(init.root_token.as_str(), "dev-root");
        assert!(!node.is_sealed());
        let restarted = Node::new(storage.clone(), "inmem", Some(key));
        assert!(restarted.auto_unseal().await.unwrap());
        let wrong = Node::new(storage, "inmem", Some(Key::generate()));
        assert!(wrong.auto_unseal().await.is_err());
    }
}
