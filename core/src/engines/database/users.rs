//! Dynamic users: creation in one transaction, renewal and idempotent
//! revocation, and root password rotation.

use std::time::{Duration, SystemTime};

use rand::rngs::OsRng;
use rand::RngCore;

use super::config::Role;
use super::pool::{describe, Pool};
use super::sql::{redact, render, split_statements, TemplateValues};
use super::DbError;
use std::sync::Arc;

/// Characters of generated passwords.
const PASSWORD_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";
/// Characters of the random part of user names (PostgreSQL folds unquoted
/// names to lower case, so lower case keeps them easy to type).
const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters drawn uniformly from `chars` (at most 256) with the OS
/// CSPRNG: one `getrandom` call for a buffer of bytes, rejection-sampled so
/// that every character is equally likely (a call per character would cost
/// a system call each).
fn random_string(chars: &[u8], len: usize) -> String {
    // The largest multiple of chars.len() that fits in a byte.
    let limit = 256 - 256 % chars.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        OsRng.fill_bytes(&mut buf);
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            out.push(chars[usize::from(b) % chars.len()] as char);
        }
    }
    out
}

/// A new password: 32 characters, alphanumeric plus `-`.
pub fn new_password() -> String {
    random_string(PASSWORD_CHARS, 32)
}

/// `v-<role>-<random>`, lower case, at most 63 bytes (PostgreSQL's limit).
pub fn new_username(role: &str) -> String {
    let role: String = role.to_ascii_lowercase().chars().take(30).collect();
    format!("v-{role}-{}", random_string(NAME_CHARS, 20))
}

/// `unix` seconds as an RFC 3339 UTC timestamp PostgreSQL accepts.
pub fn timestamp(unix: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn db_err(e: &tokio_postgres::Error, secrets: &[&str]) -> DbError {
    DbError::Database(redact(&describe(e), secrets))
}

/// Run `statements` (already split) rendered with `values`, in one
/// transaction: either all take effect or none does. They go as one
/// simple-query message, which PostgreSQL runs as one implicit transaction
/// (an error rolls all of it back), so a credential costs one round trip
/// instead of BEGIN, one per statement and COMMIT.
async fn run_in_tx(
    pool: &Arc<Pool>,
    statements: &[String],
    values: &TemplateValues<'_>,
) -> Result<(), DbError> {
    let secrets: Vec<&str> = values.password.into_iter().collect();
    let rendered = statements
        .iter()
        .map(|s| render(s, values).map_err(|e| DbError::BadRequest(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut conn = pool.get().await?;
    let client = conn.client()?;
    client
        .batch_execute(&rendered.join(";\n"))
        .await
        .map_err(|e| db_err(&e, &secrets))
}

/// Create `username` with `password` (what `{{password}}` becomes: the
/// plaintext, or its SCRAM verifier) valid until `expire_unix` by the role's
/// creation statements. On failure nothing is left behind: the transaction
/// rolls back, and a best-effort drop covers a failure at commit.
pub async fn create(
    pool: &Arc<Pool>,
    role: &Role,
    username: &str,
    password: &str,
    expire_unix: i64,
) -> Result<(), DbError> {
    let expiration = timestamp(expire_unix);
    let values = TemplateValues {
        username,
        password: Some(password),
        expiration: Some(&expiration),
    };
    let stmts = split_statements(&role.creation_statements);
    match run_in_tx(pool, &stmts, &values).await {
        Ok(()) => Ok(()),
        Err(e) => {
            if !matches!(e, DbError::BadRequest(_)) {
                let rollback = split_statements(&role.rollback_statements);
                let _ = if rollback.is_empty() {
                    revoke(pool, None, username).await
                } else {
                    run_in_tx(
                        pool,
                        &rollback,
                        &TemplateValues {
                            username,
                            password: None,
                            expiration: None,
                        },
                    )
                    .await
                };
            }
            Err(e)
        }
    }
}

/// Extend `username` to `expire_unix` (`ALTER ROLE ... VALID UNTIL` unless the
/// role has renew statements).
pub async fn renew(
    pool: &Arc<Pool>,
    role: Option<&Role>,
    username: &str,
    expire_unix: i64,
) -> Result<(), DbError> {
    let expiration = timestamp(expire_unix);
    let values = TemplateValues {
        username,
        password: None,
        expiration: Some(&expiration),
    };
    let custom = role
        .map(|r| split_statements(&r.renew_statements))
        .unwrap_or_default();
    let stmts = if custom.is_empty() {
        vec!["ALTER ROLE {{name}} VALID UNTIL {{expiration}}".to_owned()]
    } else {
        custom
    };
    run_in_tx(pool, &stmts, &values).await
}

/// Drop `username`. Idempotent: a user that no longer exists is revoked. The
/// default statements end the user's sessions, hand its objects to the root
/// user, drop its privileges and then the role, batched with other drops
/// (`drops.rs`).
pub async fn revoke(pool: &Arc<Pool>, role: Option<&Role>, username: &str) -> Result<(), DbError> {
    let values = TemplateValues {
        username,
        password: None,
        expiration: None,
    };
    let custom = role
        .map(|r| split_statements(&r.revocation_statements))
        .unwrap_or_default();
    if !custom.is_empty() {
        return run_in_tx(pool, &custom, &values).await;
    }
    super::drops::drop_user(pool, username).await
}

/// Set `root_user`'s password on the server to `new_password` (the
/// plaintext, or its SCRAM verifier).
pub async fn set_root_password(
    pool: &Arc<Pool>,
    root_user: &str,
    new_password: &str,
) -> Result<(), DbError> {
    let values = TemplateValues {
        username: root_user,
        password: Some(new_password),
        expiration: None,
    };
    run_in_tx(
        pool,
        &["ALTER ROLE {{name}} WITH PASSWORD {{password}}".to_owned()],
        &values,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_and_passwords() {
        let u = new_username(&"R".repeat(64));
        assert!(u.len() <= 63 && u.starts_with("v-rrr") && u == u.to_ascii_lowercase());
        let p = new_password();
        assert!(p.len() >= 24 && p.bytes().all(|b| PASSWORD_CHARS.contains(&b)));
        assert_ne!(new_password(), p);
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
    }
}
