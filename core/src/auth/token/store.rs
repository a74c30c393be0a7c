//! Creating, finding, renewing and revoking tokens.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{CreateParams, TokenEntry, TokenType};
use crate::barrier::{BarrierError, BarrierOp, View};

/// Vault's system default and maximum token TTL: 32 days.
pub const DEFAULT_TTL: i64 = 768 * 3600;
const TOKEN_PREFIX: &str = "cairn.";

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token does not exist, expired or was revoked. Deliberately vague.
    #[error("permission denied")]
    PermissionDenied,
    /// A token or accessor named in the request does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// Bad parameters; the message says which.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// A freshly issued token: the value is shown to the caller once.
pub struct IssuedToken {
    pub token: Zeroizing<String>,
    pub entry: TokenEntry,
}

/// Told when a token is revoked, before it is deleted, so what it owns (its
/// leases) goes with it. Failures are the hook's to retry; revocation goes on.
#[async_trait::async_trait]
pub trait RevocationHook: Send + Sync {
    async fn token_revoked(&self, token_hash: &str);
}

/// The token store, over the `sys/token/` view.
pub struct TokenStore {
    view: View,
    salt: OnceCell<Zeroizing<[u8; 32]>>,
    hook: std::sync::OnceLock<std::sync::Arc<dyn RevocationHook>>,
}

impl TokenStore {
    /// A store over `view`; the salt is read or created on first use.
    pub fn new(view: View) -> Self {
        TokenStore {
            view,
            salt: OnceCell::new(),
            hook: std::sync::OnceLock::new(),
        }
    }

    async fn salt(&self) -> Result<&[u8; 32], BarrierError> {
        let salt = self
            .salt
            .get_or_try_init(|| async {
                if let Some(bytes) = self.view.get("salt").await? {
                    if bytes.len() == 32 {
                        let mut s = Zeroizing::new([0u8; 32]);
                        s.copy_from_slice(&bytes);
                        return Ok(s);
                    }
                    return Err(BarrierError::Corrupt {
                        key: format!("{}salt", self.view.prefix()),
                    });
                }
                let mut s = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(&mut *s);
                self.view.put("salt", &*s).await?;
                Ok(s)
            })
            .await?;
        Ok(salt)
    }

    /// Install the revocation hook (once, at unseal).
    pub fn set_revocation_hook(&self, hook: std::sync::Arc<dyn RevocationHook>) {
        let _ = self.hook.set(hook);
    }

    /// The salted HMAC of a token, hex: its storage identity.
    pub async fn hash(&self, token: &str) -> Result<String, BarrierError> {
        let salt = self.salt().await?;
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(salt).map_err(|_| BarrierError::Corrupt {
                key: "token salt".into(),
            })?;
        mac.update(token.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Find a live token. Expired tokens are revoked on sight and refused.
    pub async fn lookup(&self, token: &str, now: i64) -> Result<Option<TokenEntry>, TokenError> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        let hash = self.hash(token).await?;
        // Shared: the entry stays in memory until it is written, so most
        // requests' token check reads no storage.
        let Some(entry) = self
            .view
            .get_json_shared::<TokenEntry>(&format!("id/{hash}"))
            .await?
        else {
            return Ok(None);
        };
        // The storage key already matched; compare the recorded hash in constant
        // time too, so a corrupted index cannot map one token to another's entry.
        if !bool::from(entry.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        if entry.expired(now) {
            self.revoke_tree(&entry.hash).await?;
            return Ok(None);
        }
        Ok(Some(TokenEntry::clone(&entry)))
    }

    /// Find a live token by its accessor.
    pub async fn lookup_accessor(
        &self,
        accessor: &str,
        now: i64,
    ) -> Result<Option<TokenEntry>, TokenError> {
        if Uuid::parse_str(accessor).is_err() {
            return Ok(None);
        }
        let Some(hash) = self.view.get(&format!("accessor/{accessor}")).await? else {
            return Ok(None);
        };
        let hash = String::from_utf8_lossy(&hash).into_owned();
        let Some(entry) = self
            .view
            .get_json::<TokenEntry>(&format!("id/{hash}"))
            .await?
        else {
            return Ok(None);
        };
        if entry.expired(now) {
            self.revoke_tree(&entry.hash).await?;
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Issue a token. `parent` is the caller's token (`None` only at init);
    /// `orphan` is set by the `create-orphan` endpoint and by `no_parent`.
    pub async fn create(
        &self,
        parent: Option<&TokenEntry>,
        params: CreateParams,
        path: &str,
        orphan: bool,
        now: i64,
    ) -> Result<IssuedToken, TokenError> {
        let parent_is_root = parent.map(TokenEntry::is_root).unwrap_or(true);
        if params.id.is_some() && !parent_is_root {
            return Err(TokenError::BadRequest(
                "root or sudo privileges required to specify token id".into(),
            ));
        }
        if params.num_uses < 0 {
            return Err(TokenError::BadRequest(
                "number of uses cannot be negative".into(),
            ));
        }
        if let Some(t) = params.token_type.as_deref() {
            if t != "service" && t != "default" {
                return Err(TokenError::BadRequest(format!(
                    "token type {t:?} is not supported; use \"service\""
                )));
            }
        }

        let mut policies: Vec<String> = params.policies.iter().map(|p| p.to_lowercase()).collect();
        if policies.is_empty() {
            if let Some(p) = parent {
                policies = p
                    .policies
                    .iter()
                    .filter(|p| *p != "default")
                    .cloned()
                    .collect();
            }
        }
        if let Some(p) = parent {
            if !p.is_root() {
                if let Some(extra) = policies
                    .iter()
                    .find(|name| *name != "default" && !p.policies.contains(name))
                {
                    return Err(TokenError::BadRequest(format!(
                        "child policies must be subset of parent's policies: {extra:?} is not held by the caller"
                    )));
                }
            }
        }
        if !params.no_default_policy.unwrap_or(false)
            && !policies.iter().any(|p| p == "root" || p == "default")
        {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();
        let is_root = policies.iter().any(|p| p == "root");

        let period = params.period.0;
        let explicit_max = params.explicit_max_ttl.0;
        let mut ttl = if period > 0 {
            period
        } else if params.ttl.0 > 0 {
            params.ttl.0
        } else if is_root {
            0
        } else {
            DEFAULT_TTL
        };
        if explicit_max > 0 && (ttl == 0 || ttl > explicit_max) {
            ttl = explicit_max;
        }
        let mut expire_time = if ttl > 0 { now + ttl } else { 0 };
        // A child never outlives its parent: revoking or expiring the parent ends it.
        if let Some(p) = parent.filter(|_| !orphan) {
            if p.expire_time != 0 && (expire_time == 0 || expire_time > p.expire_time) {
                expire_time = p.expire_time;
                ttl = (expire_time - now).max(0);
            }
        }

        let token = Zeroizing::new(match &params.id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => new_token_value(),
        });
        let hash = self.hash(&token).await?;
        if self.view.get(&format!("id/{hash}")).await?.is_some() {
            return Err(TokenError::BadRequest(
                "cannot create a token with a duplicate id".into(),
            ));
        }
        let parent_hash = if orphan {
            None
        } else {
            parent.map(|p| p.hash.clone())
        };
        let entry = TokenEntry {
            hash: hash.clone(),
            accessor: Uuid::new_v4().to_string(),
            parent: parent_hash.clone(),
            policies,
            meta: params.meta,
            display_name: match params.display_name {
                // Auth methods name their tokens themselves (`kubernetes-ns-sa`).
                Some(n) if !n.is_empty() && path.starts_with("auth/token/") => format!("token-{n}"),
                Some(n) if !n.is_empty() => n,
                _ if is_root && parent.is_none() => "root".into(),
                _ => "token".into(),
            },
            path: path.to_owned(),
            creation_time: now,
            creation_ttl: ttl,
            expire_time,
            explicit_max_ttl: explicit_max,
            period,
            renewable: params.renewable.unwrap_or(true) && ttl > 0,
            num_uses: params.num_uses,
            token_type: TokenType::Service,
        };
        self.save(&entry, parent_hash.as_deref()).await?;
        Ok(IssuedToken { token, entry })
    }

    async fn save(&self, entry: &TokenEntry, new_parent: Option<&str>) -> Result<(), TokenError> {
        let body = Zeroizing::new(
            serde_json::to_vec(entry).map_err(|e| TokenError::BadRequest(e.to_string()))?,
        );
        let mut ops = vec![
            BarrierOp::Put {
                key: format!("id/{}", entry.hash),
                value: &body,
            },
            BarrierOp::Put {
                key: format!("accessor/{}", entry.accessor),
                value: entry.hash.as_bytes(),
            },
        ];
        if let Some(parent) = new_parent {
            ops.push(BarrierOp::Put {
                key: format!("parent/{parent}/{}", entry.hash),
                value: b"",
            });
        }
        self.view.batch(ops).await?;
        Ok(())
    }

    /// Record one use of a limited-use token; the last use revokes it.
    pub async fn use_once(&self, entry: &TokenEntry) -> Result<(), TokenError> {
        if entry.num_uses <= 0 {
            return Ok(());
        }
        if entry.num_uses == 1 {
            return self.revoke_tree(&entry.hash).await;
        }
        let mut updated = entry.clone();
        updated.num_uses -= 1;
        self.save(&updated, None).await
    }

    /// Extend a token's life. `increment` 0 means "its original TTL".
    pub async fn renew(
        &self,
        entry: &TokenEntry,
        increment: i64,
        now: i64,
    ) -> Result<TokenEntry, TokenError> {
        if entry.expire_time == 0 {
            return Ok(entry.clone());
        }
        if !entry.renewable {
            return Err(TokenError::BadRequest("lease is not renewable".into()));
        }
        let mut ttl = if entry.period > 0 {
            entry.period
        } else if increment > 0 {
            increment
        } else {
            entry.creation_ttl
        };
        let max_life = if entry.explicit_max_ttl > 0 {
            entry.explicit_max_ttl
        } else {
            DEFAULT_TTL
        };
        if entry.period == 0 || entry.explicit_max_ttl > 0 {
            let cap = entry.creation_time + max_life;
            ttl = ttl.min((cap - now).max(0));
        }
        let mut updated = entry.clone();
        updated.expire_time = now + ttl;
        if let Some(parent_hash) = &entry.parent {
            if let Some(p) = self
                .view
                .get_json::<TokenEntry>(&format!("id/{parent_hash}"))
                .await?
            {
                if p.expire_time != 0 {
                    updated.expire_time = updated.expire_time.min(p.expire_time);
                }
            }
        }
        self.save(&updated, None).await?;
        Ok(updated)
    }

    /// Revoke a token and every token created under it.
    pub async fn revoke_tree(&self, hash: &str) -> Result<(), TokenError> {
        let mut pending = vec![hash.to_owned()];
        let mut order = Vec::new();
        while let Some(h) = pending.pop() {
            for child in self.view.list(&format!("parent/{h}/")).await? {
                pending.push(child.trim_end_matches('/').to_owned());
            }
            order.push(h);
        }
        // Children first, so a crash midway never leaves a child without its
        // parent's revocation still pending on the next attempt.
        for h in order.iter().rev() {
            self.remove(h).await?;
        }
        Ok(())
    }

    /// Revoke only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<(), TokenError> {
        for child in self.view.list(&format!("parent/{hash}/")).await? {
            let child = child.trim_end_matches('/');
            if let Some(mut e) = self
                .view
                .get_json::<TokenEntry>(&format!("id/{child}"))
                .await?
            {
                e.parent = None;
                self.save(&e, None).await?;
            }
        }
        self.remove(hash).await
    }

    async fn remove(&self, hash: &str) -> Result<(), TokenError> {
        let Some(entry) = self
            .view
            .get_json::<TokenEntry>(&format!("id/{hash}"))
            .await?
        else {
            return Ok(());
        };
        if let Some(hook) = self.hook.get() {
            hook.token_revoked(hash).await;
        }
        let mut ops = vec![
            BarrierOp::Delete {
                key: format!("id/{hash}"),
            },
            BarrierOp::Delete {
                key: format!("accessor/{}", entry.accessor),
            },
        ];
        if let Some(parent) = &entry.parent {
            ops.push(BarrierOp::Delete {
                key: format!("parent/{parent}/{hash}"),
            });
        }
        for child in self.view.list(&format!("parent/{hash}/")).await? {
            ops.push(BarrierOp::Delete {
                key: format!("parent/{hash}/{}", child.trim_end_matches('/')),
            });
        }
        self.view.batch(ops).await?;
        Ok(())
    }

    /// Every accessor (for `auth/token/accessors`).
    pub async fn accessors(&self) -> Result<Vec<String>, TokenError> {
        Ok(self.view.list("accessor/").await?)
    }

    /// Revoke every expired token; returns how many were purged.
    pub async fn tidy(&self, now: i64) -> Result<usize, TokenError> {
        self.revoke_where(|e| e.expired(now)).await
    }

    /// Revoke every token an auth method issued (its login path starts with
    /// `mount`, e.g. `auth/kubernetes/`), when the method is disabled.
    pub async fn revoke_issued_by(&self, mount: &str) -> Result<usize, TokenError> {
        self.revoke_where(|e| e.path.starts_with(mount)).await
    }

    async fn revoke_where(
        &self,
        doomed: impl Fn(&TokenEntry) -> bool,
    ) -> Result<usize, TokenError> {
        let mut revoked = 0;
        for key in self.view.keys_with_prefix("id/").await? {
            if let Some(e) = self.view.get_json::<TokenEntry>(&key).await? {
                if doomed(&e) {
                    self.revoke_tree(&e.hash).await?;
                    revoked += 1;
                }
            }
        }
        Ok(revoked)
    }
}

/// 32 random bytes, base64url, with the `cairn.` prefix.
fn new_token_value() -> String {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *bytes);
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + 43);
    out.push_str(TOKEN_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(*bytes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::{Barrier, Keyring};
    use crate::storage::memory::MemoryStorage;
    use crate::storage::Storage;
    use std::sync::Arc;

    fn store() -> (TokenStore, Arc<MemoryStorage>) {
        let storage = Arc::new(MemoryStorage::new());
        let barrier = Arc::new(Barrier::new(storage.clone()));
        barrier.set_keyring(Some(Keyring::generate(0)));
        (TokenStore::new(View::new(barrier, "sys/token/")), storage)
    }

    fn params(v: serde_json::Value) -> CreateParams {
        serde_json::from_value(v).unwrap()
    }

    #[tokio::test]
    async fn only_a_salted_hash_is_stored() {
        let (s, storage) = store();
        let root = s
            .create(
                None,
                params(serde_json::json!({"policies": ["root"]})),
                "auth/token/root",
                true,
                0,
            )
            .await
            .unwrap();
        assert!(root.token.starts_with("cairn."));
        let keys = storage.keys_with_prefix("").await.unwrap();
        assert!(keys.iter().all(|k| !k.contains(root.token.as_str())));
        let found = s.lookup(&root.token, 1).await.unwrap().unwrap();
        assert!(found.is_root());
        assert_eq!(found.expire_time, 0);
        assert!(s.lookup("cairn.forged", 1).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn children_die_with_parents_and_orphans_survive() {
        let (s, _) = store();
        let root = s
            .create(
                None,
                params(serde_json::json!({"policies": ["root"]})),
                "auth/token/root",
                true,
                0,
            )
            .await
            .unwrap();
        let child = s
            .create(
                Some(&root.entry),
                params(serde_json::json!({"policies": ["a"]})),
                "auth/token/create",
                false,
                0,
            )
            .await
            .unwrap();
        let grandchild = s
            .create(
                Some(&child.entry),
                params(serde_json::json!({})),
                "auth/token/create",
                false,
                0,
            )
            .await
            .unwrap();
        assert_eq!(grandchild.entry.policies, vec!["a", "default"]);
        let orphan = s
            .create(
                Some(&child.entry),
                params(serde_json::json!({})),
                "auth/token/create-orphan",
                true,
                0,
            )
            .await
            .unwrap();
        s.revoke_tree(&child.entry.hash).await.unwrap();
        assert!(s.lookup(&child.token, 1).await.unwrap().is_none());
        assert!(s.lookup(&grandchild.token, 1).await.unwrap().is_none());
        assert!(s.lookup(&orphan.token, 1).await.unwrap().is_some());
        assert!(s
            .lookup_accessor(&grandchild.entry.accessor, 1)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn policies_cannot_escalate() {
        let (s, _) = store();
        let root = s
            .create(
                None,
                params(serde_json::json!({"policies": ["root"]})),
                "r",
                true,
                0,
            )
            .await
            .unwrap();
        let child = s
            .create(
                Some(&root.entry),
                params(serde_json::json!({"policies": ["a"]})),
                "c",
                false,
                0,
            )
            .await
            .unwrap();
        let err = s
            .create(
                Some(&child.entry),
                params(serde_json::json!({"policies": ["b"]})),
                "c",
                false,
                0,
            )
            .await;
        assert!(matches!(err, Err(TokenError::BadRequest(_))));
        let err = s
            .create(
                Some(&child.entry),
                params(serde_json::json!({"id": "mine"})),
                "c",
                false,
                0,
            )
            .await;
        assert!(matches!(err, Err(TokenError::BadRequest(_))));
    }

    #[tokio::test]
    async fn expiry_renewal_and_uses() {
        let (s, _) = store();
        let root = s
            .create(
                None,
                params(serde_json::json!({"policies": ["root"]})),
                "r",
                true,
                0,
            )
            .await
            .unwrap();
        let t = s
            .create(
                Some(&root.entry),
                params(serde_json::json!({"ttl": "10s", "explicit_max_ttl": 25})),
                "c",
                false,
                100,
            )
            .await
            .unwrap();
        assert_eq!(t.entry.expire_time, 110);
        let renewed = s.renew(&t.entry, 60, 105).await.unwrap();
        assert_eq!(renewed.expire_time, 125, "capped by explicit_max_ttl");
        assert!(
            s.lookup(&t.token, 125).await.unwrap().is_some(),
            "alive through its last second"
        );
        assert!(
            s.lookup(&t.token, 126).await.unwrap().is_none(),
            "expired tokens are refused"
        );
        assert!(
            s.lookup_accessor(&t.entry.accessor, 1)
                .await
                .unwrap()
                .is_none(),
            "and purged"
        );

        let limited = s
            .create(
                Some(&root.entry),
                params(serde_json::json!({"num_uses": 2})),
                "c",
                false,
                0,
            )
            .await
            .unwrap();
        let e = s.lookup(&limited.token, 1).await.unwrap().unwrap();
        s.use_once(&e).await.unwrap();
        let e = s.lookup(&limited.token, 1).await.unwrap().unwrap();
        assert_eq!(e.num_uses, 1);
        s.use_once(&e).await.unwrap();
        assert!(s.lookup(&limited.token, 1).await.unwrap().is_none());

        let fixed = s
            .create(
                Some(&root.entry),
                params(serde_json::json!({"renewable": false, "ttl": 10})),
                "c",
                false,
                0,
            )
            .await
            .unwrap();
        assert!(matches!(
            s.renew(&fixed.entry, 0, 1).await,
            Err(TokenError::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn tidy_purges_expired() {
        let (s, _) = store();
        let root = s
            .create(
                None,
                params(serde_json::json!({"policies": ["root"]})),
                "r",
                true,
                0,
            )
            .await
            .unwrap();
        s.create(
            Some(&root.entry),
            params(serde_json::json!({"ttl": 5})),
            "c",
            false,
            0,
        )
        .await
        .unwrap();
        assert_eq!(s.tidy(6).await.unwrap(), 1);
        assert_eq!(s.accessors().await.unwrap().len(), 1);
    }
}
