//! Group commit for the default revocation: concurrent `DROP ROLE`s of one
//! connection go to PostgreSQL together.
//!
//! Leases fall due in bursts (they were created in bursts), and a revocation
//! on its own costs a transaction commit (a WAL fsync) and four round trips.
//! PostgreSQL's `REASSIGN OWNED BY`, `DROP OWNED BY` and `DROP ROLE` all take
//! a list of roles, so one transaction can drop many users. Callers queue
//! their user and wait; whoever finds no drain running starts one, which
//! takes everything queued (up to `MAX_BATCH`), drops it in one transaction
//! on one pooled connection, answers every caller and goes on while more is
//! queued. While a batch runs the next one gathers, so batches grow with the
//! load and one connection is used for drops, leaving the rest of the pool to
//! `creds`.
//!
//! A failed batch is retried one user at a time, so one user that cannot be
//! dropped (it owns objects in another database, say) fails only its own
//! revocation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::pool::{describe, Pool};
use super::sql::quote_ident;
use super::DbError;

/// Most users dropped in one transaction.
const MAX_BATCH: usize = 256;

type Waiter = (String, oneshot::Sender<Result<(), DbError>>);

/// Users waiting to be dropped, and whether a drain is running.
#[derive(Default)]
pub struct DropQueue {
    inner: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    draining: bool,
}

impl DropQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Drop `username` with the default revocation (end its sessions, hand its
/// objects to the connection's user, drop its privileges and the role),
/// together with whatever other drops of `pool` are queued. Idempotent: a
/// user that does not exist is revoked.
pub async fn drop_user(pool: &Arc<Pool>, username: &str) -> Result<(), DbError> {
    let (tx, rx) = oneshot::channel();
    let start = {
        let mut q = pool.drops.lock();
        q.waiting.push((username.to_owned(), tx));
        !std::mem::replace(&mut q.draining, true)
    };
    if start {
        tokio::spawn(drain(pool.clone()));
    }
    rx.await
        .unwrap_or_else(|_| Err(DbError::Database("the revocation was abandoned".into())))
}

/// Drop batches until the queue is empty.
async fn drain(pool: Arc<Pool>) {
    loop {
        let batch: Vec<Waiter> = {
            let mut q = pool.drops.lock();
            if q.waiting.is_empty() {
                q.draining = false;
                return;
            }
            let n = q.waiting.len().min(MAX_BATCH);
            q.waiting.drain(..n).collect()
        };
        let names: Vec<&str> = batch.iter().map(|(n, _)| n.as_str()).collect();
        let result = drop_together(&pool, &names).await;
        match result {
            Ok(()) => {
                for (_, tx) in batch {
                    let _ = tx.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some((_, tx)) = batch.into_iter().next() {
                    let _ = tx.send(Err(e));
                }
            }
            Err(_) => {
                for (name, tx) in batch {
                    let _ = tx.send(drop_together(&pool, &[name.as_str()]).await);
                }
            }
        }
    }
}

/// Drop `names` in one transaction; the ones that do not exist are skipped.
async fn drop_together(pool: &Arc<Pool>, names: &[&str]) -> Result<(), DbError> {
    let err = |e: tokio_postgres::Error| DbError::Database(describe(&e));
    let mut conn = pool.get().await?;
    let client = conn.client()?;
    let wanted: Vec<&str> = names.to_vec();
    let rows = client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
            &[&wanted],
        )
        .await
        .map_err(err)?;
    let mut found: HashSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    if found.is_empty() {
        return Ok(());
    }
    // In batch order, each user once (the same lease may be revoked twice at
    // once, by its expiry and by a client).
    let existing: Vec<&str> = names.iter().copied().filter(|n| found.remove(*n)).collect();
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1) AND pid <> pg_backend_pid()",
            &[&existing],
        )
        .await
        .map_err(err)?;
    let idents = existing
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");
    // One simple-query message with several statements runs as one
    // transaction: all of these users are gone, or none is.
    client
        .batch_execute(&format!(
            "REASSIGN OWNED BY {idents} TO CURRENT_USER; DROP OWNED BY {idents}; DROP ROLE IF EXISTS {idents}"
        ))
        .await
        .map_err(err)
}
