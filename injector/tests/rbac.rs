//! RBAC coverage of the injector: it calls no Kubernetes API (the API server
//! sends it AdmissionReviews and it answers with a patch), so the chart binds
//! no rules to its service account, and real reviews over HTTPS, with every
//! way of finding a cluster pointed at a recording test API server, reach
//! that server not once.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use cairn_e2e::{chart, TestApiServer};
use serde_json::json;

use common::{admission_review, client, pod, post_review, Injector, TestCa};

#[test]
fn the_chart_binds_no_rules_to_the_injector() {
    chart::assert_binds_no_rules("injector");
}

#[tokio::test]
async fn admission_reviews_call_no_kubernetes_api() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key, _) = ca.issue("cairn-injector");
    std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();

    // The cluster the injector would find, as its own service account.
    let api = TestApiServer::start().await;
    let token = api.mint_token(
        chart::NAMESPACE,
        &chart::service_account("injector"),
        &[],
        Duration::from_secs(3600),
    );
    let vars = api
        .cluster_env(&dir.path().join("kubeconfig"), Some(&token))
        .unwrap();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let injector = Injector::start_with_env(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        &[],
        &env,
    );
    let client = client(&ca);

    // Injected: the namespace and service account come from the review, not
    // from a lookup.
    let web = pod("deployment-web.json");
    let injected = post_review(&client, &injector, &admission_review("uid-1", &web)).await;
    assert_eq!(injected["allowed"], true);
    assert_eq!(injected["patchType"], "JSONPatch");
    // Skipped: kube-system, and a pod without the annotation.
    let mut system = web.clone();
    system["metadata"]["namespace"] = json!("kube-system");
    let skipped = post_review(&client, &injector, &admission_review("uid-2", &system)).await;
    assert_eq!(skipped.get("patch"), None);
    let mut plain = web.clone();
    plain["metadata"]["annotations"] = json!({});
    let plain = post_review(&client, &injector, &admission_review("uid-3", &plain)).await;
    assert_eq!(plain.get("patch"), None);
    // Denied: a Vault template the injector cannot translate.
    let mut vault = pod("vault-app.json");
    vault["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-template-api.env"] =
        json!("{{ with secret \"internal/data/api\" }}{{ .Data.data | toYAML }}{{ end }}");
    let denied = post_review(&client, &injector, &admission_review("uid-4", &vault)).await;
    assert_eq!(denied["allowed"], false);

    api.assert_untouched("the injector");
}
