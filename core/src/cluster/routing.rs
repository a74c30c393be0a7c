//! Where a client request runs in a cluster: writes on the leader (a
//! follower forwards the whole request, so check-and-set and every other
//! read-modify-write runs where the log is appended), reads anywhere after a
//! read-index barrier, or at once when the client asks for stale reads.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use super::client::PeerError;
use super::peer_api::{ForwardedRequest, ForwardedResponse, API_PATH};
use super::Cluster;
use crate::api::reply::{ApiError, Reply};

/// Set on requests a follower forwarded, so the leader never forwards them on.
pub const FORWARDED_HEADER: &str = "x-cairn-forwarded";
/// The client's choice of read consistency; `stale` reads local state.
pub const CONSISTENCY_HEADER: &str = "x-cairn-consistency";

/// Headers worth carrying to the leader.
const FORWARD_HEADERS: [&str; 6] = [
    "x-vault-token",
    "authorization",
    "content-type",
    "x-vault-request",
    "x-cairn-lease-owner",
    CONSISTENCY_HEADER,
];

/// What to do with a request.
pub enum Routed {
    /// Serve it here.
    Local(Request<Body>),
    /// Serve it here as the leader of this term: its writes commit only in
    /// that term (run it inside [`LEADER_TERM`](crate::storage::raft::LEADER_TERM)).
    Leader(Request<Body>, u64),
    /// The leader served it; this is its answer.
    Forwarded(Reply),
}

/// After a request served as leader that committed nothing: confirm this
/// node still led when it read (a read-index round that starts now), so an
/// answer drawn from its reads — a failed check-and-set, a validation error —
/// was not stale. Without that confirmation the answer is withheld.
pub async fn confirm_leadership(cluster: &Cluster) -> Result<(), ApiError> {
    cluster
        .storage
        .read_barrier()
        .await
        .map_err(|e| unavailable(e.to_string()))
}

/// What a node answers a forwarded request when it is not the leader: the
/// request was not run, so the follower may send it to the new leader.
pub const NOT_LEADER: &str = "this node is not the raft leader; the request was not run";

/// Paths every node answers itself, sealed or not, leader or not.
fn is_node_local(path: &str) -> bool {
    let p = path.trim_start_matches("/v1/");
    matches!(
        p,
        "sys/init"
            | "sys/seal-status"
            | "sys/unseal"
            | "sys/health"
            | "sys/leader"
            | "sys/ha-status"
            | "sys/storage/raft/join"
            | "sys/internal/specs/openapi"
            | "sys/cairn/noop"
    ) || p == "sys/seal"
}

fn is_read(req: &Request<Body>) -> bool {
    let list_query = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "list=true"));
    matches!(req.method().as_str(), "GET" | "HEAD" | "LIST")
        || (req.method() == Method::GET && list_query)
        // A batch of reads, sent as POST for its body.
        || (req.method() == Method::POST && req.uri().path() == "/v1/sys/cairn/read")
}

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}

/// Decide where `req` runs; forward it to the leader when it must run there.
pub async fn route(
    cluster: &Cluster,
    sealed: bool,
    req: Request<Body>,
    max_body: usize,
) -> Result<Routed, ApiError> {
    if sealed || is_node_local(req.uri().path()) {
        return Ok(Routed::Local(req));
    }
    let sent_by_a_follower = req.headers().contains_key(FORWARDED_HEADER);
    if sent_by_a_follower || (!is_read(&req) && cluster.storage.is_leader()) {
        // Writes run on the leader, and all of one request in one term. Once
        // the leader has applied an entry of its own term, it has applied
        // everything earlier terms committed, and every write of its term
        // that was answered: the request reads current state as long as this
        // node still leads the term. A write it commits proves that (and one
        // made after leadership moved is refused by the term guard); a
        // request that commits nothing confirms it with a read-index round
        // before answering (see `confirm_leadership`). This saves the
        // quorum round a barrier before every write would cost.
        let term = cluster
            .storage
            .leader_term()
            .ok_or_else(|| unavailable(NOT_LEADER))?;
        if !cluster.leader_with_quorum() {
            return Err(unavailable(crate::storage::raft::no_leader().to_string()));
        }
        cluster
            .storage
            .leader_caught_up()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        return Ok(Routed::Leader(req, term));
    }
    let stale = req
        .headers()
        .get(CONSISTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("stale"));
    if is_read(&req) {
        if !stale {
            cluster
                .storage
                .read_barrier()
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
        return Ok(Routed::Local(req));
    }
    let forwarded = to_forwarded(req, max_body).await?;
    // The leader this node knows of may just have died: retry while the
    // request provably never left (connection refused) and a new leader may
    // be elected, up to the leader timeout.
    let deadline = std::time::Instant::now() + super::LEADER_TIMEOUT;
    loop {
        let (_, leader) = cluster
            .storage
            .leader()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if leader.cluster_addr == cluster.me().1.cluster_addr {
            return Err(unavailable(
                "leadership moved to this node while forwarding; retry the request",
            ));
        }
        let answer: Result<Result<ForwardedResponse, String>, PeerError> = cluster
            .client()
            .post(
                &leader.cluster_addr,
                API_PATH,
                &forwarded,
                Duration::from_secs(60),
            )
            .await;
        return match answer {
            Ok(Ok(resp)) => Ok(Routed::Forwarded(Reply {
                status: resp.status,
                raw: Some(("application/json", resp.body)),
                ..Default::default()
            })),
            // It reached a node that is no longer the leader, which ran nothing.
            Ok(Err(e)) if e == NOT_LEADER && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Ok(Err(e)) => Err(unavailable(format!(
                "the raft leader could not serve the request: {e}"
            ))),
            Err(PeerError::Connect { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(PeerError::Connect { .. }) => {
                Err(unavailable(crate::storage::raft::no_leader().to_string()))
            }
            Err(e) => Err(unavailable(format!(
                "failed to forward the request to the raft leader: {e}"
            ))),
        };
    }
}

async fn to_forwarded(req: Request<Body>, max_body: usize) -> Result<ForwardedRequest, ApiError> {
    let (parts, body) = req.into_parts();
    let headers = FORWARD_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    let body = axum::body::to_bytes(body, max_body).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {max_body} bytes"),
        )
    })?;
    Ok(ForwardedRequest {
        method: parts.method.as_str().to_owned(),
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned()),
        headers,
        body: body.to_vec(),
    })
}
