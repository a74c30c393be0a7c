//! Audit: every request and response is written, with its secrets replaced by
//! salted HMACs, to each enabled audit device before the client sees an
//! answer.
//!
//! - `hmac.rs`: salted HMAC-SHA256 of strings and JSON values;
//! - `entry.rs`: Vault's audit entry shape, encoded once per entry;
//! - `options.rs`: the `file` device's options;
//! - `file.rs`: the `file` device and its group-commit writer;
//! - `chain.rs`: the hash chain over lines and [`verify`].
//!
//! Fail-closed: with at least one device enabled, [`AuditBroker::log_request`]
//! and [`AuditBroker::log_response`] fail unless some device wrote and synced
//! the line, and the caller must then refuse the request.

mod chain;
mod entry;
mod file;
mod group;
mod hmac;
mod options;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::ser::{Serialize, SerializeStruct, Serializer};

pub use chain::{verify, Broken, VerifyError, VerifyReport};
pub use file::OpenError;
pub use options::OptionError;

use entry::Format;
use file::FileDevice;
use hmac::Salt;
use options::{FileOptions, Target};

/// Failures of audit device management and logging.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The mount path is empty or malformed.
    #[error("invalid audit device path {0:?}")]
    InvalidPath(String),
    /// A device is already enabled at this path.
    #[error("path already in use at {0}")]
    PathInUse(String),
    /// Only the `file` type exists.
    #[error("unknown audit device type {0:?}: only \"file\" is supported")]
    UnknownType(String),
    /// A device option was rejected.
    #[error(transparent)]
    Options(#[from] OptionError),
    /// Another device already writes this file; two writers would break both chains.
    #[error("file_path {file_path} is already used by the audit device at {device}")]
    FileInUse {
        /// The file.
        file_path: String,
        /// The device writing it.
        device: String,
    },
    /// The device could not be opened. The reason is part of the message
    /// (not a `source`) because the API shows operators only the message.
    #[error("failed to enable audit device at {path}: {reason}")]
    Open {
        /// The device's mount path.
        path: String,
        /// Why.
        reason: OpenError,
    },
    /// No device is enabled at this path.
    #[error("no audit device enabled at {0}")]
    NotFound(String),
    /// The entry could not be encoded.
    #[error("failed to encode audit entry")]
    Encode(#[from] serde_json::Error),
    /// Devices are enabled but none recorded the entry; the request must fail.
    #[error("no audit device could record the request")]
    NotRecorded,
}

/// Who made a request, as the audit log shows it.
#[derive(Debug, Clone, Copy)]
pub struct AuditAuth<'a> {
    /// The token (hashed in the log).
    pub client_token: Option<&'a str>,
    /// The token's accessor (hashed unless `hmac_accessor=false`).
    pub accessor: Option<&'a str>,
    /// The token's display name.
    pub display_name: &'a str,
    /// The token's policies.
    pub policies: &'a [String],
    /// Remaining token lifetime in seconds.
    pub token_ttl: i64,
}

/// One request, as the audit log shows it.
#[derive(Debug, Clone, Copy)]
pub struct AuditRequest<'a> {
    /// The request id, which pairs a request entry with its response entry.
    pub id: &'a str,
    /// `read`, `update`, `create`, `delete`, `list` or `patch`.
    pub operation: &'a str,
    /// The API path without the `v1/` prefix.
    pub path: &'a str,
    /// The request body (every string hashed in the log).
    pub data: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The client's address.
    pub remote_address: &'a str,
    /// The caller, when the request carried a valid token.
    pub auth: Option<AuditAuth<'a>>,
}

/// One response, as the audit log shows it.
#[derive(Debug, Clone, Copy)]
pub struct AuditResponse<'a> {
    /// The request answered.
    pub request: AuditRequest<'a>,
    /// The HTTP status (logged as `response.status_code`, a Cairn addition).
    pub status: u16,
    /// The response envelope (`{request_id, lease_id, data, auth, ...}`); its
    /// `data`, `auth`, `wrap_info`, `warnings` and `lease_id` are logged
    /// hashed as Vault does. A value that is not an envelope is logged, hashed,
    /// as the response's `data`.
    pub data: Option<&'a serde_json::Value>,
    /// The error returned to the client, logged as is.
    pub error: Option<&'a str>,
}

/// An enabled device, as `sys/audit` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Mount path, with a trailing slash (`file/`).
    pub path: String,
    /// Device type (`file`).
    pub kind: String,
    /// Free text given at enable time.
    pub description: String,
    /// Options as given at enable time.
    pub options: BTreeMap<String, String>,
}

impl Serialize for DeviceInfo {
    /// Vault's `sys/audit` entry: `{type, description, options, path, local}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("DeviceInfo", 5)?;
        s.serialize_field("type", &self.kind)?;
        s.serialize_field("description", &self.description)?;
        s.serialize_field("options", &self.options)?;
        s.serialize_field("path", &self.path)?;
        s.serialize_field("local", &false)?;
        s.end()
    }
}

/// The `sys/audit` list body: devices keyed by mount path
/// (`{"file/": {"type": "file", ...}}`).
pub fn devices_by_path(devices: &[DeviceInfo]) -> BTreeMap<&str, &DeviceInfo> {
    devices.iter().map(|d| (d.path.as_str(), d)).collect()
}

struct Device {
    info: DeviceInfo,
    format: Format,
    /// Canonical file path, to refuse a second device on the same file.
    file: Option<PathBuf>,
    writer: FileDevice,
}

/// Routes entries to every enabled audit device. Shared as `Arc<AuditBroker>`.
pub struct AuditBroker {
    salt: Salt,
    /// Copy-on-write list: logging clones the `Arc` and never waits on
    /// enable or disable.
    devices: RwLock<Arc<Vec<Arc<Device>>>>,
    /// Serializes enable and disable so a path check and its insert are one step.
    admin: tokio::sync::Mutex<()>,
}

impl fmt::Debug for AuditBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<String> = self
            .snapshot()
            .iter()
            .map(|d| d.info.path.clone())
            .collect();
        f.debug_struct("AuditBroker")
            .field("salt", &self.salt)
            .field("devices", &paths)
            .finish()
    }
}

/// `file`, `/file/` and `file/` all name the mount `file/`.
fn normalize(path: &str) -> Result<String, AuditError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || trimmed.contains('\0')
    {
        return Err(AuditError::InvalidPath(path.into()));
    }
    Ok(format!("{trimmed}/"))
}

/// The file a path names once symlinks and `..` are resolved, as far as the
/// file or its directory exists, so two spellings of one file compare equal.
fn canonical(path: &std::path::Path) -> PathBuf {
    if let Ok(full) = std::fs::canonicalize(path) {
        return full;
    }
    match (
        path.parent()
            .and_then(|dir| std::fs::canonicalize(dir).ok()),
        path.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

impl AuditBroker {
    /// A broker with no device, hashing with `salt` (zeroized on drop).
    pub fn new(salt: [u8; 32]) -> Self {
        AuditBroker {
            salt: Salt::new(salt),
            devices: RwLock::new(Arc::new(Vec::new())),
            admin: tokio::sync::Mutex::new(()),
        }
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Device>>> {
        // A poisoned lock only means a panic elsewhere while swapping the
        // `Arc`; the list itself is always whole.
        self.devices
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, devices: Vec<Arc<Device>>) {
        *self
            .devices
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(devices);
    }

    /// Enables a device of type `kind` at `path`, opening its file now.
    pub async fn enable(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: BTreeMap<String, String>,
    ) -> Result<(), AuditError> {
        let path = normalize(path)?;
        if kind != "file" {
            return Err(AuditError::UnknownType(kind.into()));
        }
        let parsed = FileOptions::parse(&options)?;
        let _admin = self.admin.lock().await;
        let current = self.snapshot();
        if current.iter().any(|d| d.info.path == path) {
            return Err(AuditError::PathInUse(path));
        }
        let file = match &parsed.target {
            Target::File(file_path) => Some(canonical(file_path)),
            Target::Stdout | Target::Discard => None,
        };
        // Checked before opening: opening reads and may trim the file's tail,
        // which must never happen under another device's writer.
        if let Some(other) = current.iter().find(|d| file.is_some() && d.file == file) {
            return Err(AuditError::FileInUse {
                file_path: options
                    .get("file_path")
                    .or(options.get("path"))
                    .cloned()
                    .unwrap_or_default(),
                device: other.info.path.clone(),
            });
        }
        let name = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let writer = FileDevice::open(&parsed, &name);
            (parsed, writer)
        })
        .await;
        let (parsed, writer) = match opened {
            Ok((parsed, Ok(writer))) => (parsed, writer),
            Ok((_, Err(reason))) => return Err(AuditError::Open { path, reason }),
            Err(join) => {
                let reason = OpenError::Io(std::io::Error::other(join.to_string()));
                return Err(AuditError::Open { path, reason });
            }
        };
        let device = Device {
            info: DeviceInfo {
                path,
                kind: kind.into(),
                description: description.into(),
                options,
            },
            format: parsed.format,
            file,
            writer,
        };
        let mut devices = current.as_ref().clone();
        devices.push(Arc::new(device));
        self.replace(devices);
        Ok(())
    }

    /// Disables the device at `path`: new entries stop going to it, and
    /// every entry already handed to it is written and synced before its
    /// file is closed.
    pub async fn disable(&self, path: &str) -> Result<(), AuditError> {
        let path = normalize(path)?;
        let _admin = self.admin.lock().await;
        let mut devices = self.snapshot().as_ref().clone();
        let at = devices
            .iter()
            .position(|d| d.info.path == path)
            .ok_or(AuditError::NotFound(path))?;
        let device = devices.remove(at);
        self.replace(devices);
        device.writer.close().await;
        Ok(())
    }

    /// The enabled devices, in the order they were enabled.
    pub fn list(&self) -> Vec<DeviceInfo> {
        self.snapshot().iter().map(|d| d.info.clone()).collect()
    }

    /// True when no device is enabled (logging is then a no-op).
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// `hmac-sha256:<hex>` of `value` with the audit salt, for `sys/audit-hash`.
    pub fn hash(&self, value: &str) -> String {
        self.salt.hash(value)
    }

    /// `sync_data` calls made so far by the enabled devices (metrics, tests).
    pub fn fsyncs(&self) -> u64 {
        self.snapshot().iter().map(|d| d.writer.fsyncs()).sum()
    }

    /// Lines written and acknowledged so far by the enabled devices.
    pub fn lines_written(&self) -> u64 {
        self.snapshot().iter().map(|d| d.writer.lines()).sum()
    }

    /// Records a request. With a device enabled, `Err` means no device
    /// recorded it and the request must be refused.
    pub async fn log_request(&self, entry: &AuditRequest<'_>) -> Result<(), AuditError> {
        let time = now();
        self.dispatch(|format, out| entry::request_body(&self.salt, format, &time, entry, out))
            .await
    }

    /// Records a response before it is sent. With a device enabled, `Err`
    /// means no device recorded it and the response must not be sent.
    pub async fn log_response(&self, entry: &AuditResponse<'_>) -> Result<(), AuditError> {
        let time = now();
        self.dispatch(|format, out| entry::response_body(&self.salt, format, &time, entry, out))
            .await
    }

    /// Encodes the entry once per format in use, hands it to every device,
    /// then waits for them all.
    async fn dispatch<F>(&self, encode: F) -> Result<(), AuditError>
    where
        F: Fn(Format, &mut Vec<u8>) -> Result<(), serde_json::Error>,
    {
        let devices = self.snapshot();
        if devices.is_empty() {
            return Ok(());
        }
        let mut bodies: Vec<(Format, Arc<Vec<u8>>)> = Vec::with_capacity(1);
        let mut pending = Vec::with_capacity(devices.len());
        for device in devices.iter() {
            let body = match bodies.iter().find(|(format, _)| *format == device.format) {
                Some((_, body)) => body.clone(),
                None => {
                    let mut out = Vec::with_capacity(1024);
                    encode(device.format, &mut out)?;
                    let body = Arc::new(out);
                    bodies.push((device.format, body.clone()));
                    body
                }
            };
            pending.push((device, device.writer.submit(body).await));
        }
        let mut recorded = 0;
        for (device, queued) in pending {
            let result = queued.done().await;
            match result {
                Ok(()) => recorded += 1,
                Err(err) => {
                    tracing::warn!(device = %device.info.path, error = %err, "audit device failed to record an entry")
                }
            }
        }
        if recorded == 0 {
            return Err(AuditError::NotRecorded);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
