//! The request router target: a sequence of fuzzed requests against the real
//! axum router of a fresh dev-like node, in process.
//!
//! Every input gets its own node, so whatever a crash needed (a sealed node,
//! a revoked root token, a rotated keyring) is in the input and replays.
//!
//! Invariants besides "never panics" are listed in [`checks`].

mod checks;
pub mod input;

use std::sync::{Arc, OnceLock, Weak};

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use cairn_core::api::{self, AppState, Metrics};
use cairn_core::engines::{Operation, Request as EngineRequest};
use cairn_core::node::{Node, Unsealed};
use cairn_core::storage::memory::MemoryStorage;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tokio::runtime::Runtime;
use tower::ServiceExt;

use input::Issued;
pub use input::{FuzzRequest, Sequence};

/// Requests per input; longer sequences only slow the fuzzer down.
const MAX_REQUESTS: usize = 8;

/// A small body limit, so that 413 is reachable with small inputs.
pub const MAX_REQUEST_SIZE: usize = 1024;

/// The root token of every node.
pub const ROOT_TOKEN: &str = "root";

/// Written at setup; read back after the sequence.
const CANARY_PATH: &str = "data/canary";
const CANARY_VALUE: &str = "canary-value";

/// One single-threaded runtime for the whole process: building one per input
/// would dominate the run time.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("cannot build the tokio runtime: {e}"),
        }
    })
}

/// `CAIRN_FUZZ_TRACE=1` prints every request and response (for reading
/// what a seed or a regression input does).
fn tracing_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CAIRN_FUZZ_TRACE").is_some_and(|v| v == "1"))
}

/// Decode `data` as libfuzzer-sys does for a typed target, then run it.
///
/// Inputs that start with [`input::TEXT_MAGIC`] are read as text instead.
pub fn check(data: &[u8]) {
    if let Some(text) = data.strip_prefix(input::TEXT_MAGIC) {
        run_sequence(input::parse_text(&String::from_utf8_lossy(text)));
        return;
    }
    let Ok(seq) = Sequence::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    run_sequence(seq);
}

/// Run one sequence against a fresh node; panics when an invariant breaks.
pub fn run_sequence(seq: Sequence) {
    runtime().block_on(run(seq));
}

/// A dev-like node, as `cairn server --dev` builds it.
pub struct DevNode {
    pub node: Arc<Node>,
    pub router: axum::Router,
    pub key_hex: String,
    pub key_b64: String,
}

/// Build a node like `run_dev` (core/src/server.rs) does, plus the canary.
pub async fn dev_node() -> DevNode {
    use base64::Engine as _;
    let node = Arc::new(Node::new(Arc::new(MemoryStorage::new()), "inmem", None));
    let init = match node.initialize(1, 1, Some(ROOT_TOKEN.into())).await {
        Ok(init) => init,
        Err(e) => panic!("initialize failed: {e}"),
    };
    let key = init.keys.first().map(|k| k.to_vec()).unwrap_or_default();
    let key_hex = hex::encode(&key);
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(&key);
    if let Err(e) = node.submit_share(&key_hex).await {
        panic!("unseal failed: {e}");
    }
    let unsealed = match node.unsealed() {
        Ok(u) => u,
        Err(e) => panic!("node sealed after unseal: {e}"),
    };
    if let Err(e) = unsealed
        .mounts
        .enable(
            "secret",
            "kv",
            "key/value secret storage".into(),
            Default::default(),
            Default::default(),
            false,
        )
        .await
    {
        panic!("mount of secret/ failed: {e}");
    }
    let mut write = EngineRequest::new(Operation::Create, CANARY_PATH);
    write.data = std::sync::Arc::new(json_map(json!({ "data": { "v": CANARY_VALUE } })));
    write.mount_point = "secret/".into();
    let Some((mount, _)) = unsealed.mounts.route("secret/data/canary") else {
        panic!("secret/ is not routed");
    };
    if let Err(e) = mount.engine.handle(write, &mount.view).await {
        panic!("canary write failed: {e}");
    }
    let state = Arc::new(AppState {
        node: node.clone(),
        metrics: Metrics::default(),
        max_request_size: MAX_REQUEST_SIZE,
    });
    DevNode {
        node,
        router: api::router(state),
        key_hex,
        key_b64,
    }
}

fn json_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// One request as sent, for the checks.
pub struct Sent {
    pub method: http::Method,
    pub uri: String,
    /// The path as the server decodes it, when it decodes.
    pub decoded: Option<String>,
    pub query: Option<String>,
    pub token: Option<String>,
    /// Whether `token` is one the server issued (not garbage from the input).
    pub token_issued: bool,
    pub body: Vec<u8>,
}

/// A response, collected.
pub struct Received {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

async fn run(seq: Sequence) {
    let dev = dev_node().await;
    let first_unsealed = dev.node.unsealed().ok().map(|u| Arc::downgrade(&u));
    let mut issued = Issued {
        unseal_key: dev.key_hex.clone(),
        ..Default::default()
    };
    let mut may_touch_canary = false;
    for req in seq.requests.iter().take(MAX_REQUESTS) {
        let Some((http_req, sent)) = build(req, &issued) else {
            continue;
        };
        may_touch_canary |= checks::may_change_canary(&sent);
        let received = send(&dev.router, http_req).await;
        if tracing_enabled() {
            eprintln!(
                "{} {} -> {} {}",
                sent.method,
                sent.uri,
                received.status,
                String::from_utf8_lossy(&received.body)
            );
        }
        checks::response(&sent, &received, &dev);
        harvest(&received, &mut issued);
    }
    after(&dev, may_touch_canary).await;
    released(dev, first_unsealed).await;
}

/// Dropping a node must free it and its unsealed state: a reference cycle
/// there would keep keys in memory after `sys/seal` and leak every node.
async fn released(dev: DevNode, first_unsealed: Option<Weak<Unsealed>>) {
    let node = Arc::downgrade(&dev.node);
    let unsealed = dev.node.unsealed().ok().map(|u| Arc::downgrade(&u));
    drop(dev);
    // Aborted background tasks release what they hold once the runtime polls them.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        node.strong_count(),
        0,
        "the node outlives every handle to it"
    );
    for u in [unsealed, first_unsealed].into_iter().flatten() {
        assert_eq!(u.strong_count(), 0, "an unsealed state outlives its node");
    }
}

/// Turn the fuzzed request into HTTP; `None` when it cannot be expressed
/// (invalid method, URI or header) or when it would enable an audit device,
/// which writes files wherever its options say.
fn build(req: &FuzzRequest, issued: &Issued) -> Option<(http::Request<Body>, Sent)> {
    let method = req.method.to_http()?;
    let path = req.path.render();
    let query = req.query.render(issued);
    let uri = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let parsed: http::Uri = uri.parse().ok()?;
    let decoded = api::call::parse_path(parsed.path()).ok();
    let enables_audit = decoded
        .as_deref()
        .is_some_and(|p| p.starts_with("sys/audit/"))
        && (method == http::Method::POST || method == http::Method::PUT);
    if enables_audit {
        return None;
    }
    let body = req.body.render(issued);
    let mut builder = http::Request::builder().method(method.clone()).uri(parsed);
    let token = match req.token.render(issued) {
        Some((name, header, value)) => {
            let header = http::HeaderValue::from_str(&header).ok()?;
            builder = builder.header(name, header);
            Some(value)
        }
        None => None,
    };
    let http_req = builder.body(Body::from(body.clone())).ok()?;
    let token_issued = token.as_ref().is_some_and(|t| issued.tokens.contains(t));
    let sent = Sent {
        method,
        uri,
        decoded,
        query,
        token,
        token_issued,
        body,
    };
    Some((http_req, sent))
}

async fn send(router: &axum::Router, req: http::Request<Body>) -> Received {
    let resp = match router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => panic!("response body failed: {e}"),
    };
    Received {
        status,
        content_type,
        body,
    }
}

/// Keep tokens and accessors handed out, so later requests can use them.
fn harvest(received: &Received, issued: &mut Issued) {
    let Ok(v) = serde_json::from_slice::<Value>(&received.body) else {
        return;
    };
    let auth = v.get("auth");
    let data = v.get("data");
    for (holder, token_key) in [(auth, "client_token"), (data, "id")] {
        if let Some(t) = holder
            .and_then(|h| h.get(token_key))
            .and_then(Value::as_str)
        {
            if !t.is_empty() && !issued.tokens.iter().any(|x| x == t) {
                issued.tokens.push(t.to_string());
            }
        }
        if let Some(a) = holder
            .and_then(|h| h.get("accessor"))
            .and_then(Value::as_str)
        {
            if !a.is_empty() && !issued.accessors.iter().any(|x| x == a) {
                issued.accessors.push(a.to_string());
            }
        }
    }
}

/// After the sequence: the node unseals with its key, answers health, and
/// still holds the canary.
async fn after(dev: &DevNode, may_touch_canary: bool) {
    if dev.node.is_sealed() {
        if let Err(e) = dev.node.submit_share(&dev.key_hex).await {
            panic!("the node no longer unseals with its own key: {e}");
        }
        assert!(
            !dev.node.is_sealed(),
            "a valid share with threshold 1 left the node sealed"
        );
    }
    let health = http::Request::builder()
        .uri("/v1/sys/health")
        .body(Body::empty())
        .ok();
    if let Some(req) = health {
        let r = send(&dev.router, req).await;
        assert_eq!(
            r.status,
            200,
            "sys/health after the sequence: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    if may_touch_canary {
        return;
    }
    let unsealed = match dev.node.unsealed() {
        Ok(u) => u,
        Err(e) => panic!("sealed right after unseal: {e}"),
    };
    let Some((mount, _)) = unsealed.mounts.route("secret/data/canary") else {
        panic!("secret/ vanished although no request changed mounts");
    };
    let mut read = EngineRequest::new(Operation::Read, CANARY_PATH);
    read.mount_point = "secret/".into();
    let resp = match mount.engine.handle(read, &mount.view).await {
        Ok(r) => r,
        Err(e) => panic!("canary read failed: {e}"),
    };
    let value = resp
        .data
        .as_ref()
        .and_then(|d| d.pointer("/data/v"))
        .and_then(Value::as_str);
    assert_eq!(value, Some(CANARY_VALUE), "canary changed: {:?}", resp.data);
}
