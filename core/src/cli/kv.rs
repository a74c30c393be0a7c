//! `cairn kv ...`: the KV version 2 engine, with the mount taken from the
//! path's first segment (`secret/app/db` -> mount `secret`, data path
//! `secret/data/app/db`) unless `--mount` names it.

use std::process::ExitCode;

use cairn_client::{Client, Kv2, KvMetadata, KvMetadataUpdate, KvVersionMetadata, Secret};
use clap::{Args, Subcommand};

use super::input::{parse_data, parse_pairs, RealStdin};
use super::output::{emit, emit_json, keys_list, kv_table, section, table_width, value_text};
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn kv`.
#[derive(Args, Debug)]
pub struct KvArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: KvCommand,
}

/// Where the KV engine is mounted.
#[derive(Args, Debug, Clone)]
pub struct MountArg {
    /// Mount path of the engine; PATH is then relative to it.
    #[arg(long)]
    pub mount: Option<String>,
}

/// KV commands.
#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Write a new version of a secret: `kv put secret/app/db password=x`.
    Put(WriteArgs),
    /// Read a secret (latest version, or `--version`).
    #[command(disable_version_flag = true)]
    Get {
        #[command(flatten)]
        mount: MountArg,
        /// Version to read (default: latest).
        #[arg(long)]
        version: Option<u64>,
        /// Print only this field's value.
        #[arg(long)]
        field: Option<String>,
        /// Secret path, e.g. `secret/app/db`.
        path: String,
    },
    /// Merge new fields into the latest version (JSON merge patch).
    Patch(WriteArgs),
    /// Soft-delete the latest version, or `--versions`.
    Delete(VersionsArgs),
    /// Restore soft-deleted `--versions`.
    Undelete(VersionsArgs),
    /// Permanently remove the data of `--versions`.
    Destroy(VersionsArgs),
    /// List keys under a path.
    List {
        #[command(flatten)]
        mount: MountArg,
        /// Folder path, e.g. `secret/app/`.
        path: String,
    },
    /// Write an old version's data as the new latest version.
    #[command(disable_version_flag = true)]
    Rollback {
        #[command(flatten)]
        mount: MountArg,
        /// Version to restore.
        #[arg(long)]
        version: u64,
        /// Secret path.
        path: String,
    },
    /// Read, write and delete a key's metadata.
    #[command(subcommand)]
    Metadata(MetadataCommand),
}

/// Arguments of `kv put` and `kv patch`.
#[derive(Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    mount: MountArg,
    /// Check-and-set: write only if the current version is this (0: only if absent).
    #[arg(long)]
    cas: Option<u64>,
    /// Secret path.
    path: String,
    /// Data: `K=V`, `K=@FILE`, `K=-` (stdin), or `-` / `@FILE` for a JSON object.
    #[arg(required = true)]
    data: Vec<String>,
}

/// Arguments of `kv delete|undelete|destroy`.
#[derive(Args, Debug)]
pub struct VersionsArgs {
    #[command(flatten)]
    mount: MountArg,
    /// Versions, comma-separated (`--versions=1,2`).
    #[arg(long, value_delimiter = ',')]
    versions: Vec<u64>,
    /// Secret path.
    path: String,
}

/// `kv metadata` commands.
#[derive(Subcommand, Debug)]
pub enum MetadataCommand {
    /// Show a key's settings and version history.
    Get {
        #[command(flatten)]
        mount: MountArg,
        /// Secret path.
        path: String,
    },
    /// Change a key's settings.
    Put {
        #[command(flatten)]
        mount: MountArg,
        /// Versions to keep.
        #[arg(long = "max-versions")]
        max_versions: Option<u64>,
        /// Require `--cas` on writes.
        #[arg(long = "cas-required", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        cas_required: Option<bool>,
        /// Soft-delete versions this long after they are written (`"0s"`: never).
        #[arg(long = "delete-version-after")]
        delete_version_after: Option<String>,
        /// Custom metadata `KEY=VALUE`, repeatable; replaces the whole map.
        #[arg(long = "custom-metadata")]
        custom_metadata: Vec<String>,
        /// Secret path.
        path: String,
    },
    /// Delete a key: its metadata and every version.
    Delete {
        #[command(flatten)]
        mount: MountArg,
        /// Secret path.
        path: String,
    },
}

/// A secret path split into its mount and the part below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KvPath {
    mount: String,
    rel: String,
}

impl KvPath {
    /// Splits `path`; with `mount` the whole path is relative to it.
    pub(crate) fn resolve(mount: Option<&str>, path: &str) -> Result<Self, CliError> {
        let path = path.trim_start_matches('/');
        let (mount, rel) = match mount {
            Some(mount) => (mount.trim_matches('/').to_string(), path.to_string()),
            None => match path.split_once('/') {
                Some((mount, rel)) => (mount.to_string(), rel.to_string()),
                None => (path.to_string(), String::new()),
            },
        };
        if mount.is_empty() {
            return Err(CliError::Usage(
                "missing mount: give PATH as MOUNT/KEY or use --mount".into(),
            ));
        }
        Ok(Self { mount, rel })
    }

    /// As [`KvPath::resolve`], refusing a path that names only the mount.
    fn secret(mount: &MountArg, path: &str) -> Result<Self, CliError> {
        let kv_path = Self::resolve(mount.mount.as_deref(), path)?;
        if kv_path.rel.trim_matches('/').is_empty() {
            return Err(CliError::Usage(format!(
                "missing secret name in {path:?}: expected MOUNT/KEY"
            )));
        }
        Ok(kv_path)
    }

    /// The API path under `section`, for messages (`secret/data/app/db`).
    pub(crate) fn shown(&self, section: &str) -> String {
        format!("{}/{section}/{}", self.mount, self.rel)
    }

    fn kv<'a>(&self, client: &'a Client) -> Kv2<'a> {
        client.kv2(&self.mount)
    }
}

/// Runs a kv command.
pub(crate) async fn run(ctx: &Ctx, command: KvCommand) -> Outcome {
    let client = ctx.client()?;
    match command {
        KvCommand::Put(args) => put(ctx, &client, args, false).await?,
        KvCommand::Patch(args) => put(ctx, &client, args, true).await?,
        KvCommand::Get {
            mount,
            version,
            field,
            path,
        } => {
            get(
                ctx,
                &client,
                &KvPath::secret(&mount, &path)?,
                version,
                field,
            )
            .await?
        }
        KvCommand::Delete(args) => {
            let p = KvPath::secret(&args.mount, &args.path)?;
            let kv = p.kv(&client);
            let result = if args.versions.is_empty() {
                kv.delete_latest(&p.rel).await
            } else {
                kv.delete_versions(&p.rel, &args.versions).await
            };
            result.map_err(CliError::api(format!("deleting {}", p.shown("data"))))?;
            success(
                ctx,
                &format!(
                    "Success! Data deleted (if it existed) at: {}",
                    p.shown("data")
                ),
            )?;
        }
        KvCommand::Undelete(args) => {
            let p = KvPath::secret(&args.mount, &args.path)?;
            require_versions(&args.versions, "undelete")?;
            p.kv(&client)
                .undelete(&p.rel, &args.versions)
                .await
                .map_err(CliError::api(format!("writing {}", p.shown("undelete"))))?;
            success(
                ctx,
                &format!("Success! Data written to: {}", p.shown("undelete")),
            )?;
        }
        KvCommand::Destroy(args) => {
            let p = KvPath::secret(&args.mount, &args.path)?;
            require_versions(&args.versions, "destroy")?;
            p.kv(&client)
                .destroy(&p.rel, &args.versions)
                .await
                .map_err(CliError::api(format!("writing {}", p.shown("destroy"))))?;
            success(
                ctx,
                &format!("Success! Data written to: {}", p.shown("destroy")),
            )?;
        }
        KvCommand::List { mount, path } => {
            let p = KvPath::resolve(mount.mount.as_deref(), &path)?;
            let keys = p
                .kv(&client)
                .list(&p.rel)
                .await
                .map_err(CliError::api(format!("listing {}", p.shown("metadata"))))?;
            if keys.is_empty() {
                return Err(CliError::Failed(format!(
                    "No value found at {}",
                    p.shown("metadata")
                )));
            }
            if ctx.json() {
                emit_json(&keys)?;
            } else {
                emit(&keys_list(&keys))?;
            }
        }
        KvCommand::Rollback {
            mount,
            version,
            path,
        } => rollback(ctx, &client, &KvPath::secret(&mount, &path)?, version).await?,
        KvCommand::Metadata(command) => metadata(ctx, &client, command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn require_versions(versions: &[u64], verb: &str) -> Result<(), CliError> {
    if versions.is_empty() {
        return Err(CliError::Usage(format!(
            "no versions given: use --versions to name the versions to {verb}"
        )));
    }
    Ok(())
}

/// Prints a success line in table mode; JSON mode prints nothing, as Vault.
fn success(ctx: &Ctx, text: &str) -> Result<(), CliError> {
    if ctx.json() {
        Ok(())
    } else {
        emit(text)
    }
}

async fn put(ctx: &Ctx, client: &Client, args: WriteArgs, patch: bool) -> Result<(), CliError> {
    let p = KvPath::secret(&args.mount, &args.path)?;
    let data = parse_data(&args.data, &mut RealStdin)?;
    let kv = p.kv(client);
    let written = if patch {
        kv.patch(&p.rel, &data, args.cas).await
    } else {
        kv.write(&p.rel, &data, args.cas).await
    }
    .map_err(CliError::api(format!(
        "writing data to {}",
        p.shown("data")
    )))?;
    print_written(ctx, &p, &written)
}

/// Prints the answer of a data write: the path and the new version's metadata.
fn print_written(
    ctx: &Ctx,
    p: &KvPath,
    written: &Secret<KvVersionMetadata>,
) -> Result<(), CliError> {
    if ctx.json() {
        return emit_json(written);
    }
    let meta = written.data.clone().unwrap_or_default();
    emit(&path_and_metadata("Secret Path", &p.shown("data"), &meta))
}

fn path_and_metadata(title: &str, path: &str, meta: &KvVersionMetadata) -> String {
    let table = kv_table(&version_metadata_rows(meta));
    format!(
        "{}\n{path}\n\n{}\n{table}",
        section(title, path.chars().count()),
        section("Metadata", table_width(&table))
    )
}

fn version_metadata_rows(meta: &KvVersionMetadata) -> Vec<(String, String)> {
    vec![
        ("created_time".into(), meta.created_time.clone()),
        (
            "custom_metadata".into(),
            custom_metadata_text(meta.custom_metadata.as_ref()),
        ),
        ("deletion_time".into(), or_na(&meta.deletion_time)),
        ("destroyed".into(), meta.destroyed.to_string()),
        ("version".into(), meta.version.to_string()),
    ]
}

fn custom_metadata_text(custom: Option<&std::collections::BTreeMap<String, String>>) -> String {
    match custom {
        Some(map) if !map.is_empty() => value_text(&serde_json::json!(map)),
        _ => "<nil>".to_string(),
    }
}

fn or_na(text: &str) -> String {
    if text.is_empty() {
        "n/a".to_string()
    } else {
        text.to_string()
    }
}

async fn get(
    ctx: &Ctx,
    client: &Client,
    p: &KvPath,
    version: Option<u64>,
    field: Option<String>,
) -> Result<(), CliError> {
    let shown = p.shown("data");
    let secret = match p.kv(client).read(&p.rel, version).await {
        Ok(secret) => secret,
        Err(err) if err.is_not_found() => {
            return Err(CliError::Failed(format!("No value found at {shown}")))
        }
        Err(err) => return Err(CliError::api(format!("reading {shown}"))(err)),
    };
    let kv_data = secret.data.clone().unwrap_or_default();
    let Some(data) = kv_data.data.clone() else {
        return Err(CliError::Failed(format!(
            "No value found at {shown} (version {} is deleted or destroyed)",
            kv_data.metadata.version
        )));
    };
    if let Some(field) = field {
        let value = data
            .get(&field)
            .ok_or_else(|| CliError::Failed(format!("Field {field:?} not present in secret")))?;
        return if ctx.json() {
            emit_json(value)
        } else {
            emit(&value_text(value))
        };
    }
    if ctx.json() {
        return emit_json(&secret);
    }
    let rows: Vec<(String, String)> = data
        .iter()
        .map(|(k, v)| (k.clone(), value_text(v)))
        .collect();
    let table = kv_table(&rows);
    emit(&format!(
        "{}\n\n{}\n{table}",
        path_and_metadata("Secret Path", &shown, &kv_data.metadata),
        section("Data", table_width(&table))
    ))
}

/// Writes version `version`'s data as a new version, with check-and-set on
/// the current version so a concurrent write is not silently overwritten.
async fn rollback(ctx: &Ctx, client: &Client, p: &KvPath, version: u64) -> Result<(), CliError> {
    let kv = p.kv(client);
    let meta = kv
        .read_metadata(&p.rel)
        .await
        .map_err(CliError::api(format!("reading {}", p.shown("metadata"))))?
        .data
        .unwrap_or_default();
    let state = meta.versions.get(&version.to_string()).ok_or_else(|| {
        CliError::Failed(format!(
            "version {version} of {} does not exist",
            p.shown("data")
        ))
    })?;
    if state.destroyed {
        return Err(CliError::Failed(format!(
            "cannot roll back to version {version}: it is destroyed"
        )));
    }
    if !state.deletion_time.is_empty() {
        return Err(CliError::Failed(format!(
            "cannot roll back to version {version}: it is deleted (undelete it first)"
        )));
    }
    let old = kv
        .read(&p.rel, Some(version))
        .await
        .map_err(CliError::api(format!("reading {}", p.shown("data"))))?;
    let data = old.data.and_then(|d| d.data).ok_or_else(|| {
        CliError::Failed(format!(
            "version {version} of {} holds no data",
            p.shown("data")
        ))
    })?;
    let written = kv
        .write(&p.rel, &data, Some(meta.current_version))
        .await
        .map_err(CliError::api(format!(
            "writing data to {}",
            p.shown("data")
        )))?;
    print_written(ctx, p, &written)
}

async fn metadata(ctx: &Ctx, client: &Client, command: MetadataCommand) -> Result<(), CliError> {
    match command {
        MetadataCommand::Get { mount, path } => {
            let p = KvPath::secret(&mount, &path)?;
            let shown = p.shown("metadata");
            let secret = match p.kv(client).read_metadata(&p.rel).await {
                Ok(secret) => secret,
                Err(err) if err.is_not_found() => {
                    return Err(CliError::Failed(format!("No value found at {shown}")))
                }
                Err(err) => return Err(CliError::api(format!("reading {shown}"))(err)),
            };
            if ctx.json() {
                return emit_json(&secret);
            }
            emit(&metadata_text(&shown, &secret.data.unwrap_or_default()))
        }
        MetadataCommand::Put {
            mount,
            max_versions,
            cas_required,
            delete_version_after,
            custom_metadata,
            path,
        } => {
            let p = KvPath::secret(&mount, &path)?;
            let custom = if custom_metadata.is_empty() {
                None
            } else {
                Some(parse_pairs(&custom_metadata, "custom metadata")?)
            };
            let update = KvMetadataUpdate {
                max_versions,
                cas_required,
                delete_version_after,
                custom_metadata: custom,
            };
            p.kv(client)
                .write_metadata(&p.rel, &update)
                .await
                .map_err(CliError::api(format!("writing {}", p.shown("metadata"))))?;
            success(
                ctx,
                &format!("Success! Data written to: {}", p.shown("metadata")),
            )
        }
        MetadataCommand::Delete { mount, path } => {
            let p = KvPath::secret(&mount, &path)?;
            p.kv(client)
                .delete_metadata(&p.rel)
                .await
                .map_err(CliError::api(format!("deleting {}", p.shown("metadata"))))?;
            success(
                ctx,
                &format!(
                    "Success! Data deleted (if it existed) at: {}",
                    p.shown("metadata")
                ),
            )
        }
    }
}

fn metadata_text(shown: &str, meta: &KvMetadata) -> String {
    let rows = vec![
        ("cas_required".to_string(), meta.cas_required.to_string()),
        ("created_time".to_string(), meta.created_time.clone()),
        (
            "current_version".to_string(),
            meta.current_version.to_string(),
        ),
        (
            "custom_metadata".to_string(),
            custom_metadata_text(meta.custom_metadata.as_ref()),
        ),
        (
            "delete_version_after".to_string(),
            meta.delete_version_after.clone(),
        ),
        ("max_versions".to_string(), meta.max_versions.to_string()),
        (
            "oldest_version".to_string(),
            meta.oldest_version.to_string(),
        ),
        ("updated_time".to_string(), meta.updated_time.clone()),
    ];
    let table = kv_table(&rows);
    let mut text = format!(
        "{}\n{shown}\n\n{}\n{table}",
        section("Metadata Path", shown.chars().count()),
        section("Metadata", table_width(&table))
    );
    // Version keys are numbers as strings; sort them as numbers.
    let mut versions: Vec<(u64, &cairn_client::KvVersionState)> = meta
        .versions
        .iter()
        .filter_map(|(k, v)| k.parse().ok().map(|n| (n, v)))
        .collect();
    versions.sort_by_key(|(n, _)| *n);
    for (number, state) in versions {
        let table = kv_table(&[
            ("created_time".into(), state.created_time.clone()),
            ("deletion_time".into(), or_na(&state.deletion_time)),
            ("destroyed".into(), state.destroyed.to_string()),
        ]);
        text.push_str(&format!(
            "\n\n{}\n{table}",
            section(&format!("Version {number}"), table_width(&table))
        ));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mount_is_the_first_segment() {
        let p = KvPath::resolve(None, "secret/app/db").unwrap();
        assert_eq!(p.mount, "secret");
        assert_eq!(p.rel, "app/db");
        assert_eq!(p.shown("data"), "secret/data/app/db");
        let p = KvPath::resolve(None, "/secret/").unwrap();
        assert_eq!((p.mount.as_str(), p.rel.as_str()), ("secret", ""));
    }

    #[test]
    fn explicit_mount_keeps_the_whole_path() {
        let p = KvPath::resolve(Some("team/kv/"), "app/db").unwrap();
        assert_eq!(p.shown("metadata"), "team/kv/metadata/app/db");
    }

    #[test]
    fn secret_paths_need_a_key() {
        let no_mount = MountArg { mount: None };
        assert!(matches!(
            KvPath::secret(&no_mount, "secret"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            KvPath::secret(&no_mount, "secret/"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(KvPath::resolve(None, ""), Err(CliError::Usage(_))));
    }

    #[test]
    fn metadata_text_sorts_versions_numerically() {
        let mut meta = KvMetadata::default();
        for n in ["10", "2", "1"] {
            meta.versions.insert(n.into(), Default::default());
        }
        let text = metadata_text("secret/metadata/a", &meta);
        let v2 = text.find("Version 2").unwrap();
        let v10 = text.find("Version 10").unwrap();
        assert!(text.find("Version 1 ").unwrap() < v2 && v2 < v10, "{text}");
    }
}
