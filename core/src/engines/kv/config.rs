//! The mount-wide settings at `<mount>/config`: `max_versions`, `cas_required`,
//! `delete_version_after`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::input;
use super::store::CONFIG_KEY;
use super::time::{self, Nanos};
use crate::barrier::View;
use crate::engines::{EngineError, Response};

/// Versions kept per secret when neither the mount nor the secret says.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// The mount configuration as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Versions kept per secret; 0 means [`DEFAULT_MAX_VERSIONS`].
    pub max_versions: u32,
    /// Whether every write must carry `options.cas`.
    pub cas_required: bool,
    /// Seconds after which a new version reads as deleted: 0 unset, negative
    /// disables the per-secret setting too (Vault's "-1s").
    pub delete_version_after: i64,
}

impl Config {
    /// The stored configuration, or the defaults when none was written.
    pub async fn load(view: &View) -> Result<Config, EngineError> {
        Ok(view.get_json(CONFIG_KEY).await?.unwrap_or_default())
    }

    /// When a version created at `created` is to read as deleted, given the
    /// secret's own `delete_version_after` (seconds, 0 unset): the smaller of the
    /// non-zero settings, none when both are unset or the mount disables it.
    pub fn deletion_time(&self, created: Nanos, secret_dva: u64) -> Option<Nanos> {
        if self.delete_version_after < 0 {
            return None;
        }
        let mount = self.delete_version_after.unsigned_abs();
        let after = match (mount, secret_dva) {
            (0, 0) => return None,
            (0, s) => s,
            (m, 0) => m,
            (m, s) => m.min(s),
        };
        Some(time::add_secs(created, after))
    }

    /// The `data` of a config read.
    pub fn to_json(&self) -> Value {
        json!({
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": time::format_duration_secs(self.delete_version_after),
        })
    }
}

/// `GET config`.
pub async fn read(view: &View) -> Result<Response, EngineError> {
    Ok(Response::data(Config::load(view).await?.to_json()))
}

/// `POST config`: update the fields present, leave the others. The caller holds
/// the engine's config lock so concurrent partial updates do not lose fields.
pub async fn write(view: &View, body: &Map<String, Value>) -> Result<Response, EngineError> {
    let max_versions = input::u32_field(body, "max_versions")?;
    let cas_required = input::bool_field(body, "cas_required")?;
    let dva = match body.get("delete_version_after") {
        None | Some(Value::Null) => None,
        Some(v) => Some(time::parse_duration_secs(v).map_err(|e| {
            EngineError::BadRequest(format!(
                "invalid value for field \"delete_version_after\": {e}"
            ))
        })?),
    };
    if max_versions.is_none() && cas_required.is_none() && dva.is_none() {
        return Ok(Response::empty());
    }
    let mut config = Config::load(view).await?;
    if let Some(m) = max_versions {
        config.max_versions = m;
    }
    if let Some(c) = cas_required {
        config.cas_required = c;
    }
    if let Some(d) = dva {
        // Any negative duration means "disabled", stored as Vault's -1s.
        config.delete_version_after = if d < 0 { -1 } else { d };
    }
    view.put_json(CONFIG_KEY, &config).await?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_time_takes_the_smaller_nonzero_setting() {
        let c = |d| Config {
            delete_version_after: d,
            ..Default::default()
        };
        let t0 = 1_000_000_000;
        assert_eq!(c(0).deletion_time(t0, 0), None);
        assert_eq!(c(10).deletion_time(t0, 0), Some(t0 + 10_000_000_000));
        assert_eq!(c(0).deletion_time(t0, 5), Some(t0 + 5_000_000_000));
        assert_eq!(c(10).deletion_time(t0, 5), Some(t0 + 5_000_000_000));
        assert_eq!(c(3).deletion_time(t0, 5), Some(t0 + 3_000_000_000));
        assert_eq!(c(-1).deletion_time(t0, 5), None);
    }

    #[test]
    fn json_shape_matches_vault() {
        let c = Config {
            max_versions: 5,
            cas_required: true,
            delete_version_after: 12_319,
        };
        assert_eq!(
            c.to_json(),
            json!({"max_versions": 5, "cas_required": true, "delete_version_after": "3h25m19s"})
        );
        assert_eq!(Config::default().to_json()["delete_version_after"], "0s");
    }
}
