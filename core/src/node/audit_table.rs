//! Which audit devices are enabled, persisted (sealed) at `core/audit` so they
//! are reopened at every unseal, and the audit salt at `core/audit-salt`.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{AuditBroker, AuditError};
use crate::barrier::{BarrierError, View};

const TABLE: &str = "core/audit";
const SALT: &str = "core/audit-salt";

/// Audit table failures.
#[derive(Debug, thiserror::Error)]
pub enum AuditTableError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// One persisted device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub path: String,
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
}

/// The broker plus its persisted table.
pub struct AuditTable {
    view: View,
    pub broker: Arc<AuditBroker>,
}

impl AuditTable {
    /// Read the salt (creating it once) and reopen every persisted device.
    /// Fails if any device cannot be opened: unsealing without the audit log
    /// the operator asked for would silently stop auditing.
    pub async fn load(view: View) -> Result<Self, AuditTableError> {
        let salt = match view.get(SALT).await? {
            Some(bytes) if bytes.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&bytes);
                s
            }
            Some(_) => return Err(BarrierError::Corrupt { key: SALT.into() }.into()),
            None => {
                let mut s = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(&mut *s);
                view.put(SALT, &*s).await?;
                *s
            }
        };
        let broker = Arc::new(AuditBroker::new(salt));
        let entries: Vec<DeviceEntry> = view.get_json(TABLE).await?.unwrap_or_default();
        for e in entries {
            broker
                .enable(&e.path, &e.kind, &e.description, e.options.clone())
                .await?;
        }
        Ok(AuditTable { view, broker })
    }

    async fn entries(&self) -> Result<Vec<DeviceEntry>, AuditTableError> {
        Ok(self.view.get_json(TABLE).await?.unwrap_or_default())
    }

    /// Open a device and remember it.
    pub async fn enable(&self, entry: DeviceEntry) -> Result<(), AuditTableError> {
        self.broker
            .enable(
                &entry.path,
                &entry.kind,
                &entry.description,
                entry.options.clone(),
            )
            .await?;
        let mut entries = self.entries().await?;
        entries.retain(|e| e.path != entry.path);
        entries.push(entry.clone());
        if let Err(e) = self.view.put_json(TABLE, &entries).await {
            // Keep memory and storage in agreement.
            let _ = self.broker.disable(&entry.path).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Close a device and forget it.
    pub async fn disable(&self, path: &str) -> Result<(), AuditTableError> {
        let mut entries = self.entries().await?;
        entries.retain(|e| e.path != path);
        self.view.put_json(TABLE, &entries).await?;
        self.broker.disable(path).await?;
        Ok(())
    }
}
