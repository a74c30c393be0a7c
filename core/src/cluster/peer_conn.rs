//! One HTTP/1.1 connection to one peer, driven by the task that uses it.
//!
//! openraft gives each follower's replication task a network client of its
//! own and sends one append-entries RPC at a time through it: the hot path
//! of every write and of every read-index round. A pooled client (reqwest)
//! hands each request to a connection task and the answer back, a wake of
//! another task (often another thread) each way. [`PeerConn`] owns its
//! connection instead and polls it inside the caller's own future while the
//! answer is awaited. The wire is the same as the pooled client's (a POST
//! over mutually authenticated TLS, a JSON answer), so a peer cannot tell
//! the two apart and nodes of earlier versions serve it unchanged.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::client::{answer, error_chain, PeerError, CONNECT_TIMEOUT};

/// Largest answer read from a peer (append and vote answers are tiny).
const MAX_ANSWER: usize = 1 << 20;

/// The connection's own future: it moves bytes for the request in flight.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// An open connection: where requests go, and the future that serves them.
struct Live {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: Driver,
}

/// A connection to the peer at `addr` (`host:port`), opened on first use and
/// again after any failure.
pub struct PeerConn {
    addr: String,
    /// Peer TLS, or `None` under `--insecure-cluster`.
    tls: Option<TlsConnector>,
    /// Only ever reached through `&mut self` (`get_mut`, no locking): the
    /// mutex makes the connection `Sync`, as openraft's network must be.
    live: Mutex<Option<Live>>,
}

impl PeerConn {
    pub(super) fn new(addr: String, tls: Option<TlsConnector>) -> Self {
        PeerConn {
            addr,
            tls,
            live: Mutex::new(None),
        }
    }

    /// Whether a connection is open (it may still have been closed by the
    /// peer since; the next request finds out).
    pub fn is_open(&mut self) -> bool {
        lock(&mut self.live).is_some()
    }

    /// POST `body` of `content_type` to `path` and read the JSON answer,
    /// all within `timeout`. A connection that failed or timed out is
    /// dropped (its state is unknown); the next call opens a new one.
    ///
    /// Only for requests that may be sent twice (appends, read-index): a
    /// reused connection that ends before the answer is retried once on a
    /// fresh one, and the peer may have served the first.
    pub async fn post<Resp: DeserializeOwned>(
        &mut self,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let body = Bytes::from(body);
        let exchanged = tokio::time::timeout(timeout, async {
            // An idle connection the peer has closed since (its listener
            // closes idle ones) is found here and replaced before use.
            let reused = self.take_open();
            let first = match reused {
                Some(live) => self.exchange(live, path, content_type, body.clone()).await,
                None => Err(None),
            };
            match first {
                Ok(done) => Ok(done),
                // A fresh connection, once: a reused one can meet the peer's
                // close between the check and the request.
                Err(None) => {
                    let live = self.connect().await?;
                    self.exchange(live, path, content_type, body)
                        .await
                        .map_err(|e| e.unwrap_or_else(|| self.unreachable("connection closed")))
                }
                Err(Some(e)) => Err(e),
            }
        })
        .await;
        let (status, bytes) = match exchanged {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(self.unreachable("no answer in time")),
        };
        answer(&self.addr, status, &bytes)
    }

    /// The open connection, unless there is none or it has ended.
    fn take_open(&mut self) -> Option<Live> {
        let mut live = lock(&mut self.live).take()?;
        // Poll the idle connection once: a peer's close shows as its end.
        let mut cx = Context::from_waker(Waker::noop());
        match live.driver.as_mut().poll(&mut cx) {
            Poll::Pending if live.sender.is_ready() => Some(live),
            _ => None,
        }
    }

    /// Send one request on `live` and read its answer, polling the
    /// connection meanwhile; keeps `live` for the next call on success.
    /// `Err(None)`: the connection ended before an answer came.
    async fn exchange(
        &mut self,
        mut live: Live,
        path: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Option<PeerError>> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.addr.as_str())
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| Some(self.unreachable(&format!("cannot build the request: {e}"))))?;
        let sender = &mut live.sender;
        let round_trip = async {
            // Ready once the connection has settled the previous exchange.
            sender.ready().await?;
            let resp = sender.send_request(request).await?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, bytes))
        };
        let (outcome, ended) = {
            let mut round_trip = std::pin::pin!(round_trip);
            tokio::select! {
                biased;
                done = &mut round_trip => (done, false),
                // The connection ended (a peer that closes after answering,
                // or a reset): the answer may have come before the end. The
                // connection is dropped first, so a request it never took
                // fails at once as canceled instead of waiting for the timeout.
                _ = live.driver.as_mut() => {
                    live.driver = Box::pin(std::future::pending());
                    (round_trip.await, true)
                }
            }
        };
        match outcome {
            Ok(done) => {
                if !ended {
                    *lock(&mut self.live) = Some(live);
                }
                Ok(done)
            }
            Err(e) if is_closed(&*e) => Err(None),
            Err(e) => Err(Some(self.unreachable(&error_chain(&*e)))),
        }
    }

    /// Open a connection: TCP, then peer TLS unless insecure, then HTTP/1.1.
    async fn connect(&self) -> Result<Live, PeerError> {
        let connect_err = |message: String| PeerError::Connect {
            addr: self.addr.clone(),
            message,
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| connect_err("connect timed out".to_owned()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (sender, driver): (_, Driver) = match &self.tls {
            Some(connector) => {
                let name = server_name(&self.addr).map_err(connect_err)?;
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| connect_err("TLS handshake timed out".to_owned()))?
                    .map_err(|e| {
                        connect_err(format!("TLS handshake failed: {}", error_chain(&e)))
                    })?;
                let (sender, conn) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                (sender, Box::pin(conn))
            }
            None => {
                let (sender, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                (sender, Box::pin(conn))
            }
        };
        Ok(Live { sender, driver })
    }

    fn unreachable(&self, message: &str) -> PeerError {
        PeerError::Unreachable {
            addr: self.addr.clone(),
            message: message.to_owned(),
        }
    }
}

/// Most idle connections kept per peer.
const MAX_IDLE_PER_PEER: usize = 4;
/// Idle connections older than this are closed rather than reused: below
/// the listener's 30 s idle close (`listener::serve_connection`), so a kept
/// connection is seldom one the peer is closing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Open connections not in use, by peer address. openraft 0.9 makes a new
/// network client for every read-index heartbeat (`RaftCore::
/// handle_check_is_leader_request`); each would otherwise open, and
/// TLS-handshake, a connection of its own.
#[derive(Clone, Default)]
pub struct IdleConns(Arc<Mutex<IdleMap>>);

/// Per peer address: idle connections with the time each was put back.
type IdleMap = HashMap<String, Vec<(Instant, PeerConn)>>;

impl IdleConns {
    /// A recently used idle connection to `addr`, if one is kept.
    pub fn take(&self, addr: &str) -> Option<PeerConn> {
        let mut idle = self.lock();
        let kept = idle.get_mut(addr)?;
        let conn = kept.pop().map(|(_, conn)| conn);
        if kept.is_empty() {
            idle.remove(addr);
        }
        conn
    }

    /// Keep `conn` for the next client of its peer, if it is open and
    /// there is room; close those idle for longer than [`IDLE_TIMEOUT`]
    /// (peers that left, leaders that stepped down).
    pub fn put(&self, mut conn: PeerConn) {
        let now = Instant::now();
        let mut idle = self.lock();
        idle.retain(|_, kept| {
            kept.retain(|(since, _)| now.duration_since(*since) < IDLE_TIMEOUT);
            !kept.is_empty()
        });
        if !conn.is_open() {
            return;
        }
        let kept = idle.entry(conn.addr.clone()).or_default();
        if kept.len() < MAX_IDLE_PER_PEER {
            kept.push((now, conn));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdleMap> {
        match self.0.lock() {
            Ok(g) => g,
            // A map of idle connections stays usable after a panic.
            Err(p) => p.into_inner(),
        }
    }
}

/// The connection slot; a panic elsewhere cannot leave it half-updated.
fn lock(live: &mut Mutex<Option<Live>>) -> &mut Option<Live> {
    match live.get_mut() {
        Ok(slot) => slot,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The name the peer's certificate must carry: the host of `host:port`
/// (an IP address or a DNS name; IPv6 in brackets).
fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| format!("bad peer address {addr:?}: {e}"))
}

/// Whether the connection closed under the request, rather than the peer
/// answering badly: the peer closed an idle keep-alive connection as the
/// request went out (a FIN, or a reset when the request was already in its
/// buffer, or a broken pipe while a large body was still being written).
fn is_closed(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_canceled() || h.is_incomplete_message() || h.is_closed() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// The connector for peer TLS from this node's client configuration.
pub(super) fn connector(config: rustls::ClientConfig) -> TlsConnector {
    TlsConnector::from(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::body::Incoming;
    use hyper::Response;

    /// A peer that answers `{"n": <body length>}`, or 503 to `/fail`, and
    /// never to `/hang`; it counts the connections it accepted and, unless
    /// `keep_alive`, closes each after one answer.
    async fn peer(keep_alive: bool) -> (String, Arc<AtomicUsize>) {
        peer_closing_idle(keep_alive, None).await
    }

    /// As [`peer`]; with `idle_close`, a connection idle that long is closed
    /// (as the cluster listener's header-read timeout does).
    async fn peer_closing_idle(
        keep_alive: bool,
        idle_close: Option<Duration>,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        if path == "/hang" {
                            std::future::pending::<()>().await;
                        }
                        let n = req.into_body().collect().await?.to_bytes().len();
                        let (status, body) = if path == "/fail" {
                            (StatusCode::SERVICE_UNAVAILABLE, "leader gone".to_owned())
                        } else {
                            (StatusCode::OK, format!("{{\"n\":{n}}}"))
                        };
                        let mut resp = Response::new(Full::new(Bytes::from(body)));
                        *resp.status_mut() = status;
                        Ok::<_, hyper::Error>(resp)
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.keep_alive(keep_alive);
                    if let Some(idle) = idle_close {
                        builder
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(idle);
                    }
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        (addr, accepted)
    }

    #[derive(Debug, serde::Deserialize)]
    struct Count {
        n: usize,
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// POST `n` bytes; the count the peer answers.
    async fn post_count(conn: &mut PeerConn, n: usize) -> usize {
        let got: Count = conn
            .post("/a", "application/json", vec![7; n], SECOND)
            .await
            .unwrap();
        got.n
    }

    #[tokio::test]
    async fn requests_share_one_connection_and_get_their_answers() {
        let (addr, accepted) = peer(true).await;
        let mut conn = PeerConn::new(addr, None);
        for n in [0, 3, 70_000] {
            assert_eq!(post_count(&mut conn, n).await, n);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_is_replaced() {
        let (addr, accepted) = peer(false).await;
        let mut conn = PeerConn::new(addr, None);
        for n in 1..=3 {
            assert_eq!(post_count(&mut conn, n).await, n);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_while_idle_is_replaced_at_once() {
        let (addr, accepted) = peer_closing_idle(true, Some(Duration::from_millis(50))).await;
        let mut conn = PeerConn::new(addr, None);
        for n in 1..=3 {
            let started = std::time::Instant::now();
            assert_eq!(post_count(&mut conn, n).await, n);
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "waited for the timeout"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn idle_connections_are_kept_for_the_next_client() {
        let (addr, accepted) = peer(true).await;
        let idle = IdleConns::default();
        // Never opened: nothing to keep.
        idle.put(PeerConn::new(addr.clone(), None));
        assert!(idle.take(&addr).is_none());
        for _ in 0..5 {
            let mut conn = idle
                .take(&addr)
                .unwrap_or_else(|| PeerConn::new(addr.clone(), None));
            assert_eq!(post_count(&mut conn, 1).await, 1);
            idle.put(conn);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_timeouts_and_absent_peers_are_told_apart() {
        let (addr, accepted) = peer(true).await;
        let mut conn = PeerConn::new(addr.clone(), None);
        let failed = conn
            .post::<Count>("/fail", "application/json", Vec::new(), SECOND)
            .await;
        assert!(
            matches!(&failed, Err(PeerError::Status { status: 503, message, .. }) if message == "leader gone"),
            "{failed:?}"
        );
        let hung = conn
            .post::<Count>(
                "/hang",
                "application/json",
                Vec::new(),
                Duration::from_millis(100),
            )
            .await;
        assert!(
            matches!(hung, Err(PeerError::Unreachable { .. })),
            "{hung:?}"
        );
        // The connection left in an unknown state is not used again.
        assert_eq!(post_count(&mut conn, 1).await, 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap().to_string();
        drop(closed);
        let mut conn = PeerConn::new(gone, None);
        let refused = conn
            .post::<Count>("/a", "application/json", Vec::new(), SECOND)
            .await;
        assert!(
            matches!(refused, Err(PeerError::Connect { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn server_names_come_from_the_host_part() {
        assert!(matches!(
            server_name("127.0.0.2:8201").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:8201").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("cairn-1.cairn-internal:8201").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("bad name:1").is_err());
    }
}
