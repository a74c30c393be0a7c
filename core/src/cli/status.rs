//! `cairn status`: the server's seal status.

use std::process::ExitCode;

use cairn_client::SealStatus;
use clap::Args;

use super::output::{emit, emit_json, kv_table};
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// Prints the seal status; exits 2 when sealed, as Vault does, so scripts
/// can tell "sealed" from "unreachable" (1).
pub(crate) async fn run(ctx: &Ctx, _args: StatusArgs) -> Outcome {
    let client = ctx.client()?;
    let status = client
        .seal_status()
        .await
        .map_err(CliError::api("checking seal status"))?;
    if ctx.json() {
        emit_json(&status)?;
    } else {
        emit(&kv_table(&seal_status_rows(&status)))?;
    }
    Ok(if status.sealed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The rows Vault shows for a seal status (also after each unseal step).
pub(crate) fn seal_status_rows(status: &SealStatus) -> Vec<(String, String)> {
    let mut rows = vec![
        ("Seal Type".to_string(), status.seal_type.clone()),
        ("Initialized".to_string(), status.initialized.to_string()),
        ("Sealed".to_string(), status.sealed.to_string()),
        ("Total Shares".to_string(), status.n.to_string()),
        ("Threshold".to_string(), status.t.to_string()),
    ];
    if status.sealed {
        rows.push((
            "Unseal Progress".to_string(),
            format!("{}/{}", status.progress, status.t),
        ));
        rows.push(("Unseal Nonce".to_string(), status.nonce.clone()));
    }
    rows.push(("Version".to_string(), status.version.clone()));
    if !status.build_date.is_empty() {
        rows.push(("Build Date".to_string(), status.build_date.clone()));
    }
    if !status.storage_type.is_empty() {
        rows.push(("Storage Type".to_string(), status.storage_type.clone()));
    }
    if !status.cluster_name.is_empty() {
        rows.push(("Cluster Name".to_string(), status.cluster_name.clone()));
    }
    if !status.cluster_id.is_empty() {
        rows.push(("Cluster ID".to_string(), status.cluster_id.clone()));
    }
    if let Some(ha) = status.ha_enabled {
        rows.push(("HA Enabled".to_string(), ha.to_string()));
    }
    rows
}
