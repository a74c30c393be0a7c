//! TokenRequest and TokenReview on the test API server, over kube-rs and over plain HTTP as the
//! core's Kubernetes auth method calls it; and the request recorder checked against RBAC rules.
// Helpers outside #[tokio::test] fns are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_e2e::rbac::Rules;
use cairn_e2e::TestApiServer;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

fn token_request(audiences: &[&str], seconds: i64) -> TokenRequest {
    serde_json::from_value(json!({"spec": {"audiences": audiences, "expirationSeconds": seconds}}))
        .unwrap()
}

async fn review(server: &TestApiServer, token: &str, audiences: &[&str]) -> Value {
    // As the core does it: POST with its own reviewer JWT as the bearer token.
    let reviewer = server.mint_token("cairn", "cairn-core", &[], Duration::from_secs(600));
    let resp = reqwest::Client::new()
        .post(format!("{}/apis/authentication.k8s.io/v1/tokenreviews", server.url()))
        .bearer_auth(&reviewer)
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token, "audiences": audiences}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn token_request_then_review_checks_audience_expiry_and_service_account() {
    let server = TestApiServer::start().await;
    let sas: Api<ServiceAccount> = Api::namespaced(server.client(), "app");
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let req = token_request(&["cairn"], 600);
    let issued: TokenRequest = sas
        .create_subresource("token", "web", &PostParams::default(), &req)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    assert_eq!(token.split('.').count(), 3, "a JWT");

    // Right audience.
    let ok = review(&server, &token, &["cairn"]).await;
    assert_eq!(ok["status"]["authenticated"], true, "{ok}");
    assert_eq!(
        ok["status"]["user"]["username"],
        "system:serviceaccount:app:web"
    );
    assert_eq!(ok["status"]["audiences"], json!(["cairn"]));
    assert!(ok["status"]["user"]["groups"]
        .as_array()
        .unwrap()
        .contains(&json!("system:serviceaccounts:app")));

    // Wrong audience, and no audience (the API server's own) are refused.
    for aud in [&["vault"][..], &[][..]] {
        let bad = review(&server, &token, aud).await;
        assert_ne!(bad["status"]["authenticated"], true, "{bad}");
        assert!(
            bad["status"]["error"]
                .as_str()
                .unwrap()
                .contains("audience"),
            "{bad}"
        );
    }

    // Typed TokenReview through kube-rs.
    let reviews: Api<TokenReview> = Api::all(server.client());
    let tr: TokenReview =
        serde_json::from_value(json!({"spec": {"token": token, "audiences": ["cairn"]}})).unwrap();
    let answered = reviews.create(&PostParams::default(), &tr).await.unwrap();
    assert_eq!(answered.status.unwrap().authenticated, Some(true));

    // Expired and unknown tokens.
    let expired = server.mint_token("app", "web", &["cairn"], Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = review(&server, &expired, &["cairn"]).await;
    assert!(
        e["status"]["error"].as_str().unwrap().contains("expired"),
        "{e}"
    );
    let u = review(&server, "eyJhbGciOiJub25lIn0.e30.", &["cairn"]).await;
    assert_ne!(u["status"]["authenticated"], true);

    // Short TokenRequests are refused as Kubernetes does; a missing service account is 404.
    let short = token_request(&["cairn"], 60);
    assert!(sas
        .create_subresource::<_, TokenRequest>("token", "web", &PostParams::default(), &short)
        .await
        .is_err());
    assert!(sas
        .create_subresource::<_, TokenRequest>("token", "nobody", &PostParams::default(), &req)
        .await
        .is_err());

    // Deleting the service account revokes its tokens.
    sas.delete("web", &DeleteParams::default()).await.unwrap();
    let gone = review(&server, &token, &["cairn"]).await;
    assert_ne!(gone["status"]["authenticated"], true, "{gone}");
}

#[tokio::test]
async fn pod_bound_tokens_die_with_the_pod() {
    let server = TestApiServer::builder()
        .min_token_ttl(Duration::from_secs(60))
        .start()
        .await;
    server.ensure_service_account("app", "web");
    let pods: Api<Pod> = Api::namespaced(server.client(), "app");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-0"}, "spec": {"serviceAccountName": "web", "containers": [{"name": "c", "image": "x"}]}})).unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(server.client(), "app");
    let req: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": ["cairn"], "expirationSeconds": 60,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": pod.metadata.uid.clone().unwrap()}}})).unwrap();
    let issued: TokenRequest = sas
        .create_subresource("token", "web", &PostParams::default(), &req)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    let ok = review(&server, &token, &["cairn"]).await;
    assert_eq!(
        ok["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["web-0"])
    );
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    let gone = review(&server, &token, &["cairn"]).await;
    assert_ne!(gone["status"]["authenticated"], true, "{gone}");
}

const OPERATOR_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: example}
rules:
  - apiGroups: [""]
    resources: ["serviceaccounts/token"]
    verbs: ["create"]
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "update", "patch"]
"#;

#[tokio::test]
async fn recorder_lists_every_call_and_rbac_rules_are_checked_against_it() {
    let server = TestApiServer::start().await;
    let token = server.mint_token("cairn", "operator", &[], Duration::from_secs(600));
    let client = server.client_with_token(&token);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "cairn");
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "cairn-operator"}, "spec": {"holderIdentity": "a"}});
    leases
        .patch(
            "cairn-operator",
            &PatchParams::apply("op"),
            &Patch::Apply(&lease),
        )
        .await
        .unwrap();
    leases.get("cairn-operator").await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "cairn");
    let req = token_request(&["cairn"], 3600);
    let _: TokenRequest = sas
        .create_subresource("token", "operator", &PostParams::default(), &req)
        .await
        .unwrap();
    // An extra call the rules below do not allow.
    leases.list(&ListParams::default()).await.unwrap();

    let recorder = server.recorder();
    let calls = recorder.calls(Some("system:serviceaccount:cairn:operator"));
    let described: Vec<String> = calls.iter().map(ToString::to_string).collect();
    assert_eq!(
        described,
        vec![
            "create core/serviceaccounts/token in cairn",
            "get coordination.k8s.io/leases in cairn",
            "list coordination.k8s.io/leases in cairn",
            "patch coordination.k8s.io/leases in cairn",
        ]
    );
    let records = recorder.requests();
    assert!(records
        .iter()
        .all(|r| r.user.as_deref() == Some("system:serviceaccount:cairn:operator")));
    assert!(records
        .iter()
        .any(|r| r.verb == "patch" && r.name == "cairn-operator" && r.status == 201));

    let rules = Rules::from_yaml(OPERATOR_RBAC).unwrap();
    let missing = rules.uncovered(&calls);
    assert_eq!(
        missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["list coordination.k8s.io/leases in cairn"]
    );
}
