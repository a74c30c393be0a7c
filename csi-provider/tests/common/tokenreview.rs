//! A stand-in for the Kubernetes API server's TokenReview endpoint, as the
//! core's Kubernetes auth method calls it. Tokens are registered with the
//! service account and audiences they were issued for; the reviewer's own
//! bearer token must match, like RBAC on a real API server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The audience a real API server assumes when a review names none.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc";

#[derive(Clone)]
struct Issued {
    namespace: String,
    name: String,
    uid: String,
    audiences: Vec<String>,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Issued>,
    reviews: Vec<Value>,
}

/// A running review server; stops with the test's runtime.
pub struct TokenReviewServer {
    pub url: String,
    pub reviewer_jwt: String,
    inner: Arc<Mutex<Inner>>,
}

impl TokenReviewServer {
    pub async fn start() -> TokenReviewServer {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let reviewer_jwt = format!("reviewer-{}", uuid_like());
        let app = Router::new()
            .route("/apis/authentication.k8s.io/v1/tokenreviews", post(review))
            .with_state((inner.clone(), reviewer_jwt.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TokenReviewServer {
            url,
            reviewer_jwt,
            inner,
        }
    }

    /// Issue a token for `namespace/name` valid for `audiences`.
    pub fn mint(&self, namespace: &str, name: &str, audiences: &[&str]) -> String {
        let token = format!("sa-token-{}", uuid_like());
        self.inner.lock().unwrap().tokens.insert(
            token.clone(),
            Issued {
                namespace: namespace.into(),
                name: name.into(),
                uid: format!("uid-{namespace}-{name}"),
                audiences: audiences.iter().map(|a| a.to_string()).collect(),
            },
        );
        token
    }

    /// Forget a token, as the API server does when its pod is deleted.
    pub fn invalidate(&self, token: &str) {
        self.inner.lock().unwrap().tokens.remove(token);
    }

    /// The review requests received so far.
    pub fn reviews(&self) -> Vec<Value> {
        self.inner.lock().unwrap().reviews.clone()
    }
}

fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn review(
    State((inner, reviewer)): State<(Arc<Mutex<Inner>>, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bearer != reviewer {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"kind": "Status", "status": "Failure", "code": 401, "reason": "Unauthorized"}),
            ),
        );
    }
    let mut inner = inner.lock().unwrap();
    inner.reviews.push(body.clone());
    let token = body["spec"]["token"].as_str().unwrap_or("");
    let asked: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_else(|| vec![API_AUDIENCE.to_owned()]);
    let status = match inner.tokens.get(token) {
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
        Some(issued) => {
            let valid: Vec<&String> = issued
                .audiences
                .iter()
                .filter(|a| asked.contains(a))
                .collect();
            if valid.is_empty() {
                json!({"authenticated": false, "error": "token audiences are invalid for the target audiences"})
            } else {
                json!({
                    "authenticated": true,
                    "user": {
                        "username": format!("system:serviceaccount:{}:{}", issued.namespace, issued.name),
                        "uid": issued.uid,
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", issued.namespace)],
                    },
                    "audiences": valid,
                })
            }
        }
    };
    (
        StatusCode::CREATED,
        Json(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": body["spec"],
            "status": status,
        })),
    )
}
