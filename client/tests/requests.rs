//! Request-shape tests against a tiny fake server on loopback: each test
//! queues canned answers, runs client calls, then checks what was sent.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};

use cairn_client::{Client, ClientError, HealthQuery, TokenCreateRequest};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A server answering each connection with the next canned `(status, body)`.
struct FakeServer {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    async fn start(answers: Vec<(u16, &'static str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_request(&mut stream).await;
                record.lock().unwrap().push(request);
                let reason = if status < 400 { "OK" } else { "Error" };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
        });
        Self { addr, seen }
    }

    fn client(&self) -> Client {
        Client::new(&self.addr, Some("test-token".into())).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Seen {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed before sending a full request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_string();
    let target = first.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8(buf[head_end..head_end + length].to_vec()).unwrap();
    Seen {
        method,
        target,
        headers,
        body,
    }
}

const WRITE_OK: &str = r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
"data":{"created_time":"2024-01-01T00:00:00Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":2},
"wrap_info":null,"warnings":null,"auth":null}"#;

#[tokio::test]
async fn kv_write_and_patch_send_vault_shapes() {
    let server = FakeServer::start(vec![(200, WRITE_OK), (200, WRITE_OK)]).await;
    let client = server.client();
    let mut data = Map::new();
    data.insert("password".into(), json!("x"));
    let written = client
        .kv2("secret")
        .write("app/db", &data, Some(1))
        .await
        .unwrap();
    assert_eq!(written.data.unwrap().version, 2);
    client
        .kv2("secret")
        .patch("app/db", &data, None)
        .await
        .unwrap();

    let seen = server.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/secret/data/app/db");
    assert_eq!(seen[0].header("x-vault-token"), Some("test-token"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        seen[0].json(),
        json!({"data": {"password": "x"}, "options": {"cas": 1}})
    );
    assert_eq!(seen[1].method, "PATCH");
    assert_eq!(
        seen[1].header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(seen[1].json(), json!({"data": {"password": "x"}}));
}

#[tokio::test]
async fn kv_read_sends_version_query() {
    let body = r#"{"data":{"data":{"a":"b"},"metadata":{"version":3}}}"#;
    let server = FakeServer::start(vec![(200, body)]).await;
    let secret = server
        .client()
        .kv2("secret")
        .read("app", Some(3))
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap().metadata.version, 3);
    let seen = server.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/secret/data/app?version=3");
}

#[tokio::test]
async fn list_uses_get_with_list_true_and_404_is_empty() {
    let server = FakeServer::start(vec![
        (200, r#"{"data":{"keys":["db","nested/"]}}"#),
        (404, r#"{"errors":[]}"#),
    ])
    .await;
    let client = server.client();
    let keys = client.kv2("secret").list("app/").await.unwrap();
    assert_eq!(keys, vec!["db", "nested/"]);
    assert!(client.list_policies().await.unwrap().is_empty());
    let seen = server.seen();
    assert_eq!(seen[0].target, "/v1/secret/metadata/app/?list=true");
    assert_eq!(seen[1].target, "/v1/sys/policies/acl?list=true");
}

#[tokio::test]
async fn error_status_becomes_api_error_with_server_errors() {
    let server = FakeServer::start(vec![(403, r#"{"errors":["permission denied"]}"#)]).await;
    let err = server
        .client()
        .kv2("secret")
        .read("app", None)
        .await
        .unwrap_err();
    match err {
        ClientError::Api { status, errors } => {
            assert_eq!(status, 403);
            assert_eq!(errors, vec!["permission denied"]);
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_success_body_is_a_decode_error() {
    let server = FakeServer::start(vec![(200, "not json")]).await;
    let err = server.client().seal_status().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Decode { status: 200, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn generic_read_404_is_none_and_write_204_is_none() {
    let server = FakeServer::start(vec![(404, r#"{"errors":[]}"#), (204, "")]).await;
    let client = server.client();
    assert!(client.read("secret/data/missing").await.unwrap().is_none());
    let mut data = Map::new();
    data.insert("k".into(), json!("v"));
    assert!(client.write("cubbyhole/x", &data).await.unwrap().is_none());
    assert_eq!(server.seen()[1].json(), json!({"k": "v"}));
}

#[tokio::test]
async fn health_returns_sealed_status_instead_of_error() {
    let body = r#"{"initialized":true,"sealed":true,"standby":true,"version":"0.1.0"}"#;
    let server = FakeServer::start(vec![(503, body), (500, r#"{"errors":["boom"]}"#)]).await;
    let client = server.client();
    let health = client.health(&HealthQuery::default()).await.unwrap();
    assert_eq!(health.status, 503);
    assert!(health.health.sealed);
    let err = client.health(&HealthQuery::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
}

#[tokio::test]
async fn token_lookup_puts_the_token_in_the_body_not_the_url() {
    let body = r#"{"data":{"id":"other-token","accessor":"acc","policies":["default"],"ttl":60}}"#;
    let server = FakeServer::start(vec![(200, body)]).await;
    let info = server.client().token_lookup("other-token").await.unwrap();
    assert_eq!(info.data.unwrap().accessor, "acc");
    let seen = &server.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/v1/auth/token/lookup");
    assert!(!seen.target.contains("other-token"));
    assert_eq!(seen.json(), json!({"token": "other-token"}));
}

#[tokio::test]
async fn token_create_returns_auth() {
    let body = r#"{"request_id":"r","auth":{"client_token":"cairn.new","accessor":"a1",
        "policies":["default","app"],"token_policies":["default","app"],"lease_duration":3600,
        "renewable":true,"orphan":false}}"#;
    let server = FakeServer::start(vec![(200, body)]).await;
    let request = TokenCreateRequest {
        policies: vec!["app".into()],
        ttl: Some("1h".into()),
        ..TokenCreateRequest::default()
    };
    let created = server.client().token_create(&request).await.unwrap();
    let auth = created.auth.unwrap();
    assert_eq!(auth.client_token, "cairn.new");
    assert_eq!(auth.lease_duration, 3600);
    assert_eq!(
        server.seen()[0].json(),
        json!({"policies": ["app"], "ttl": "1h"})
    );
}

#[tokio::test]
async fn mounts_list_reads_data_or_top_level() {
    let body = r#"{"request_id":"r","secret/":{"type":"kv","options":{"version":"2"}},
        "data":{"secret/":{"type":"kv","options":{"version":"2"},"config":{"default_lease_ttl":0,"max_lease_ttl":0}},
        "sys/":{"type":"system","options":null}}}"#;
    let server = FakeServer::start(vec![(200, body)]).await;
    let mounts = server.client().list_mounts().await.unwrap();
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts["secret/"].mount_type, "kv");
    assert_eq!(mounts["secret/"].options.as_ref().unwrap()["version"], "2");
}

#[tokio::test]
async fn unseal_and_init_use_put() {
    let status = r#"{"type":"shamir","initialized":true,"sealed":true,"t":3,"n":5,"progress":1}"#;
    let init = r#"{"keys":["aa"],"keys_base64":["qg=="],"root_token":"cairn.root"}"#;
    let server = FakeServer::start(vec![(200, status), (200, init)]).await;
    let client = server.client();
    let s = client.unseal("aa").await.unwrap();
    assert_eq!((s.t, s.n, s.progress), (3, 5, 1));
    let r = client
        .init(&cairn_client::InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
        })
        .await
        .unwrap();
    assert_eq!(r.root_token, "cairn.root");
    let seen = server.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("PUT", "/v1/sys/unseal")
    );
    assert_eq!(seen[0].json(), json!({"key": "aa"}));
    assert_eq!(
        seen[1].json(),
        json!({"secret_shares": 1, "secret_threshold": 1})
    );
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    // Bind then drop a listener so the port is (very likely) closed.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(&addr, None).unwrap();
    let err = client.seal_status().await.unwrap_err();
    assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
}
