//! A small connection pool for one configured database.
//!
//! Hand-rolled rather than `deadpool-postgres`: Cairn needs only "at most N
//! connections, reuse idle ones, drop broken ones", and the pool must be
//! closeable on `reset`/`rotate-root` — a `Vec` of idle clients behind a lock
//! plus a semaphore for the open-connection limit does exactly that with no
//! extra dependency.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config, NoTls};

use super::drops::DropQueue;

/// How long a connection attempt may take before `creds` etc. fail.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection could not be had. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The connection URL does not parse.
    #[error("invalid connection_url")]
    BadUrl,
    /// `sslmode` other than `disable`/`prefer`: Cairn connects without TLS.
    #[error("sslmode {0:?} is not supported: Cairn connects to PostgreSQL without TLS")]
    Tls(String),
    /// The server refused or could not be reached.
    #[error("failed to connect to the database: {0}")]
    Connect(String),
}

/// Connections to one database as its root user.
pub struct Pool {
    config: Config,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
    /// Users waiting for the default revocation (see `drops.rs`).
    pub drops: DropQueue,
}

/// A connection taken from a [`Pool`]; goes back to it on drop if still usable.
pub struct Conn {
    client: Option<Client>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// A pool for `url` (already holding the root username and password);
    /// `max_open` connections at most (at least 1).
    pub fn new(url: &str, max_open: usize) -> Result<Arc<Pool>, PoolError> {
        let (url, sslmode) = strip_sslmode(url);
        if let Some(mode) = sslmode {
            if mode != "disable" && mode != "prefer" && mode != "allow" {
                return Err(PoolError::Tls(mode.chars().take(16).collect()));
            }
        }
        let mut config: Config = url.parse().map_err(|_| PoolError::BadUrl)?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("cairn");
        Ok(Arc::new(Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max_open.max(1))),
            drops: DropQueue::default(),
        }))
    }

    /// An idle connection, or a new one if none is idle and the limit allows.
    pub async fn get(self: &Arc<Self>) -> Result<Conn, PoolError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Connect("pool closed".into()))?;
        loop {
            let candidate = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            match candidate {
                Some(c) if !c.is_closed() => {
                    return Ok(Conn {
                        client: Some(c),
                        pool: self.clone(),
                        _permit: permit,
                    });
                }
                Some(_) => continue,
                None => break,
            }
        }
        let (client, connection) =
            tokio::time::timeout(CONNECT_TIMEOUT, self.config.connect(NoTls))
                .await
                .map_err(|_| PoolError::Connect("timed out".into()))?
                .map_err(|e| PoolError::Connect(describe(&e)))?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away.
            let _ = connection.await;
        });
        Ok(Conn {
            client: Some(client),
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// Drop every idle connection (in-use ones are dropped when returned,
    /// because the engine stops handing this pool out).
    pub fn close(&self) {
        self.permits.close();
        if let Ok(mut v) = self.idle.lock() {
            v.clear();
        }
    }
}

impl Conn {
    /// The client. Only `None` once dropped, so the error is never seen in practice.
    pub fn client(&mut self) -> Result<&mut Client, PoolError> {
        self.client
            .as_mut()
            .ok_or_else(|| PoolError::Connect("connection released".into()))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() && !self.pool.permits.is_closed() {
                if let Ok(mut v) = self.pool.idle.lock() {
                    v.push(c);
                }
            }
        }
    }
}

/// A driver error as text without anything from the connection string: the
/// server's message for database errors, the error kind otherwise.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let s = e.to_string();
            // tokio-postgres' own messages do not echo the URL, but cap them.
            s.chars().take(200).collect()
        }
    }
}

/// Remove `sslmode=...` from a URL's query (tokio-postgres would refuse
/// `disable` combined with nothing, and Cairn checks the mode itself).
fn strip_sslmode(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut mode = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslmode=") {
            Some(m) => {
                mode = Some(m.to_owned());
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), mode)
    } else {
        (format!("{base}?{}", kept.join("&")), mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_checked_and_stripped() {
        let (u, m) = strip_sslmode("postgresql://a:b@h:1/db?sslmode=disable&x=y");
        assert_eq!(u, "postgresql://a:b@h:1/db?x=y");
        assert_eq!(m.as_deref(), Some("disable"));
        assert!(Pool::new("postgresql://a:b@127.0.0.1:1/db?sslmode=disable", 2).is_ok());
        assert!(matches!(
            Pool::new("postgresql://a:b@127.0.0.1:1/db?sslmode=require", 2),
            Err(PoolError::Tls(_))
        ));
        assert!(matches!(
            Pool::new("not a url at all ::: '", 2),
            Err(PoolError::BadUrl)
        ));
    }
}
