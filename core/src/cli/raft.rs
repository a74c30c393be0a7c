//! `cairn operator raft join|list-peers|remove-peer|snapshot save|restore`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::output::{columns, emit, emit_json};
use super::{CliError, Ctx, Outcome};

/// Raft cluster commands.
#[derive(Subcommand, Debug)]
pub enum RaftCommand {
    /// Join the node at CAIRN_ADDR to the cluster of the node at LEADER_API_ADDR.
    Join {
        /// API address of a node of the cluster, e.g. https://cairn-0:8200.
        leader_api_addr: String,
        /// PEM file of the CA that signed that node's API certificate.
        #[arg(long = "leader-ca-cert")]
        leader_ca_cert: Option<PathBuf>,
    },
    /// List the cluster's nodes, their addresses and roles.
    #[command(name = "list-peers")]
    ListPeers,
    /// Remove a node (by its node_id) from the cluster.
    #[command(name = "remove-peer")]
    RemovePeer {
        /// The node_id of the node to remove.
        server_id: String,
    },
    /// Save or restore a backup of the whole store (ciphertext only).
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

/// `cairn operator raft snapshot ...`.
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Write a backup of every stored key to FILE.
    Save { file: PathBuf },
    /// Replace the whole store with the backup in FILE; the cluster seals and
    /// must be unsealed with the shares of the cluster the backup came from.
    Restore { file: PathBuf },
}

const SNAPSHOT_PATH: &str = "sys/storage/raft/snapshot";

/// Runs a raft command.
pub(crate) async fn run(ctx: &Ctx, command: RaftCommand) -> Outcome {
    let client = ctx.client()?;
    match command {
        RaftCommand::Join {
            leader_api_addr,
            leader_ca_cert,
        } => {
            let mut data = Map::new();
            data.insert("leader_api_addr".into(), json!(leader_api_addr));
            if let Some(file) = leader_ca_cert {
                let pem = std::fs::read_to_string(&file).map_err(|e| {
                    CliError::Failed(format!("Error reading {}: {e}", file.display()))
                })?;
                data.insert("leader_ca_cert".into(), json!(pem));
            }
            client
                .write("sys/storage/raft/join", &data)
                .await
                .map_err(CliError::api("joining the cluster"))?;
            if !ctx.json() {
                emit("Key       Value\n---       -----\nJoined    true")?;
            } else {
                emit_json(&json!({ "joined": true }))?;
            }
        }
        RaftCommand::ListPeers => {
            let body = client
                .read("sys/storage/raft/configuration")
                .await
                .map_err(CliError::api("listing raft peers"))?
                .unwrap_or(Value::Null);
            let servers = body["data"]["config"]["servers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if ctx.json() {
                emit_json(&body)?;
            } else {
                let rows: Vec<Vec<String>> = servers
                    .iter()
                    .map(|s| {
                        let state = if s["leader"] == true {
                            "leader"
                        } else {
                            "follower"
                        };
                        let voter = if s["voter"] == true { "true" } else { "false" };
                        vec![
                            s["node_id"].as_str().unwrap_or_default().to_owned(),
                            s["address"].as_str().unwrap_or_default().to_owned(),
                            state.to_owned(),
                            voter.to_owned(),
                        ]
                    })
                    .collect();
                emit(&columns(&["Node", "Address", "State", "Voter"], &rows))?;
            }
        }
        RaftCommand::RemovePeer { server_id } => {
            let mut data = Map::new();
            data.insert("server_id".into(), json!(server_id));
            client
                .write("sys/storage/raft/remove-peer", &data)
                .await
                .map_err(CliError::api("removing the peer"))?;
            if !ctx.json() {
                emit(&format!("Peer removed successfully!\n\n{server_id}"))?;
            }
        }
        RaftCommand::Snapshot {
            command: SnapshotCommand::Save { file },
        } => {
            let body = client
                .read(SNAPSHOT_PATH)
                .await
                .map_err(CliError::api("taking a snapshot"))?
                .ok_or_else(|| {
                    CliError::Failed("Error taking a snapshot: the server returned nothing".into())
                })?;
            let bytes = serde_json::to_vec(&body)
                .map_err(|e| CliError::Failed(format!("Error encoding the snapshot: {e}")))?;
            std::fs::write(&file, bytes)
                .map_err(|e| CliError::Failed(format!("Error writing {}: {e}", file.display())))?;
        }
        RaftCommand::Snapshot {
            command: SnapshotCommand::Restore { file },
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Failed(format!("Error reading {}: {e}", file.display())))?;
            let data: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| {
                CliError::Failed(format!(
                    "Error reading {}: not a Cairn snapshot",
                    file.display()
                ))
            })?;
            client
                .write(SNAPSHOT_PATH, &data)
                .await
                .map_err(CliError::api("restoring the snapshot"))?;
            if !ctx.json() {
                emit("Success! The snapshot is restored and the node sealed: unseal it with the shares of the snapshot's cluster.")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
