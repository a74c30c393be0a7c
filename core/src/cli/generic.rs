//! `cairn read|write|delete|list PATH`: raw logical operations on any path,
//! and the Vault-style rendering of a response envelope shared with `token`.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::input::{parse_data, RealStdin};
use super::output::{duration_text, emit, emit_json, keys_list, kv_table, quoted_list, value_text};
use super::{CliError, CommonArgs, Ctx, Outcome};

/// Arguments of `cairn read`.
#[derive(Args, Debug)]
pub struct ReadArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Print only this field's value.
    #[arg(long)]
    field: Option<String>,
    /// API path, e.g. `sys/mounts` or `secret/data/app/db`.
    path: String,
    /// Query parameters `K=V`.
    query: Vec<String>,
}

/// Arguments of `cairn write`.
#[derive(Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Print only this field of the answer.
    #[arg(long)]
    field: Option<String>,
    /// API path.
    path: String,
    /// Data: `K=V`, `K=@FILE`, `K=-` (stdin), or `-` / `@FILE` for a JSON object.
    data: Vec<String>,
}

/// Arguments of `cairn delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// API path.
    path: String,
}

/// Arguments of `cairn list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// API path of a folder.
    path: String,
}

/// `cairn read PATH [K=V ...]`.
pub(crate) async fn read(ctx: &Ctx, args: ReadArgs) -> Outcome {
    let client = ctx.client()?;
    let query: Vec<(String, String)> = args
        .query
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::Usage(format!(
                "invalid query parameter {arg:?}: expected K=V"
            ))),
        })
        .collect::<Result<_, _>>()?;
    let query: Vec<(&str, String)> = query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let envelope = client
        .read_with_query(&args.path, &query)
        .await
        .map_err(CliError::api(format!("reading {}", args.path)))?
        .ok_or_else(|| CliError::Failed(format!("No value found at {}", args.path)))?;
    print_envelope(ctx, &envelope, args.field.as_deref(), true)?;
    Ok(ExitCode::SUCCESS)
}

/// `cairn write PATH [DATA ...]`.
pub(crate) async fn write(ctx: &Ctx, args: WriteArgs) -> Outcome {
    let client = ctx.client()?;
    let data = parse_data(&args.data, &mut RealStdin)?;
    let answer = client
        .write(&args.path, &data)
        .await
        .map_err(CliError::api(format!("writing data to {}", args.path)))?;
    match answer {
        Some(envelope) => print_envelope(ctx, &envelope, args.field.as_deref(), true)?,
        None if !ctx.json() => emit(&format!("Success! Data written to: {}", args.path))?,
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `cairn delete PATH`.
pub(crate) async fn delete(ctx: &Ctx, args: DeleteArgs) -> Outcome {
    let client = ctx.client()?;
    let answer = client
        .delete(&args.path)
        .await
        .map_err(CliError::api(format!("deleting {}", args.path)))?;
    match answer {
        Some(envelope) if ctx.json() => emit_json(&envelope)?,
        _ if !ctx.json() => emit(&format!(
            "Success! Data deleted (if it existed) at: {}",
            args.path
        ))?,
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `cairn list PATH`.
pub(crate) async fn list(ctx: &Ctx, args: ListArgs) -> Outcome {
    let client = ctx.client()?;
    let envelope = client
        .list(&args.path)
        .await
        .map_err(CliError::api(format!("listing {}", args.path)))?;
    let keys: Vec<String> = envelope
        .as_ref()
        .and_then(|e| e.pointer("/data/keys"))
        .and_then(Value::as_array)
        .map(|keys| keys.iter().map(value_text).collect())
        .unwrap_or_default();
    if keys.is_empty() {
        return Err(CliError::Failed(format!("No value found at {}", args.path)));
    }
    if ctx.json() {
        emit_json(&keys)?;
    } else {
        emit(&keys_list(&keys))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints an envelope: JSON as is, or Vault's table of lease, auth and data
/// rows; with `field`, only that value. `show_token` is false where the
/// token was an input (renew), so it is not echoed back.
pub(crate) fn print_envelope(
    ctx: &Ctx,
    envelope: &Value,
    field: Option<&str>,
    show_token: bool,
) -> Result<(), CliError> {
    if let Some(field) = field {
        let rows = envelope_fields(envelope, show_token);
        let value = rows
            .into_iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v)
            .ok_or_else(|| CliError::Failed(format!("Field {field:?} not present in secret")))?;
        return if ctx.json() {
            emit_json(&value)
        } else {
            emit(&value_text(&value))
        };
    }
    if ctx.json() {
        let mut shown = envelope.clone();
        if !show_token {
            if let Some(auth) = shown.get_mut("auth").and_then(Value::as_object_mut) {
                auth.remove("client_token");
            }
        }
        return emit_json(&shown);
    }
    let rows: Vec<(String, String)> = envelope_fields(envelope, show_token)
        .into_iter()
        .map(|(k, v)| {
            let text = match (k.as_str(), &v) {
                ("token_policies" | "identity_policies" | "policies", Value::Array(items)) => {
                    quoted_list(&items.iter().map(value_text).collect::<Vec<_>>())
                }
                _ => value_text(&v),
            };
            (k, text)
        })
        .collect();
    if rows.is_empty() {
        return emit("Success! The server answered with no data.");
    }
    emit(&kv_table(&rows))
}

/// The named fields Vault's CLI shows for an envelope, in its order:
/// lease, then auth (`token`, `token_accessor`, ...), then data, sorted.
pub(crate) fn envelope_fields(envelope: &Value, show_token: bool) -> Vec<(String, Value)> {
    let mut rows = Vec::new();
    let lease_duration = envelope
        .get("lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if lease_duration > 0 {
        rows.push(("lease_id".to_string(), field(envelope, "lease_id")));
        rows.push((
            "lease_duration".to_string(),
            Value::String(duration_text(lease_duration)),
        ));
        rows.push(("lease_renewable".to_string(), field(envelope, "renewable")));
    }
    if let Some(auth) = envelope.get("auth").filter(|a| a.is_object()) {
        if show_token {
            rows.push(("token".to_string(), field(auth, "client_token")));
        }
        rows.push(("token_accessor".to_string(), field(auth, "accessor")));
        let ttl = auth
            .get("lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        // A token without TTL (root) never expires; Vault shows it as ∞.
        let ttl_text = if ttl == 0 {
            "∞".to_string()
        } else {
            duration_text(ttl)
        };
        rows.push(("token_duration".to_string(), Value::String(ttl_text)));
        rows.push(("token_renewable".to_string(), field(auth, "renewable")));
        rows.push((
            "token_policies".to_string(),
            list_field(auth, "token_policies"),
        ));
        rows.push((
            "identity_policies".to_string(),
            list_field(auth, "identity_policies"),
        ));
        rows.push(("policies".to_string(), list_field(auth, "policies")));
        if let Some(meta) = auth.get("metadata").and_then(Value::as_object) {
            for (k, v) in meta {
                rows.push((format!("token_meta_{k}"), v.clone()));
            }
        }
    }
    if let Some(data) = envelope.get("data").and_then(Value::as_object) {
        let sorted: std::collections::BTreeMap<&String, &Value> = data.iter().collect();
        rows.extend(sorted.into_iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    rows
}

fn field(object: &Value, name: &str) -> Value {
    object.get(name).cloned().unwrap_or(Value::Null)
}

fn list_field(object: &Value, name: &str) -> Value {
    match object.get(name) {
        Some(Value::Array(items)) => Value::Array(items.clone()),
        _ => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_rows_hide_the_token_when_asked() {
        let envelope = json!({
            "lease_duration": 0,
            "auth": {"client_token": "cairn.secret", "accessor": "acc", "lease_duration": 3600,
                     "renewable": true, "policies": ["default"], "token_policies": ["default"]},
            "data": null
        });
        let shown = envelope_fields(&envelope, false);
        assert!(shown
            .iter()
            .all(|(k, v)| k != "token" && v != "cairn.secret"));
        let with = envelope_fields(&envelope, true);
        assert_eq!(with[0], ("token".to_string(), json!("cairn.secret")));
        assert!(with.contains(&("token_duration".to_string(), json!("1h"))));
    }

    #[test]
    fn data_rows_are_sorted_after_lease_rows() {
        let envelope = json!({"lease_id": "l1", "lease_duration": 60, "renewable": true,
                              "data": {"b": 1, "a": "x"}});
        let keys: Vec<String> = envelope_fields(&envelope, true)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            ["lease_id", "lease_duration", "lease_renewable", "a", "b"]
        );
    }
}
