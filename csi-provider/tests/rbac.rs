//! RBAC coverage of the CSI provider: it calls no Kubernetes API (the driver
//! hands it each pod's token in the Mount request), so the chart binds no
//! rules to its service account, and a real Mount, with every way of finding
//! a cluster pointed at a recording test API server, reaches that server not
//! once.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::time::Duration;

use cairn_e2e::{chart, TestApiServer};
use common::{files, versions, Core, Pod, Provider, TokenReviewServer, POLICY};
use serde_json::json;

const PRESENT: &str = "- {fileName: db/password, path: secret/data/team-a/db, key: password}\n";
const MISSING: &str = "- {fileName: gone, path: secret/data/team-a/nothing-here}\n";

#[test]
fn the_chart_binds_no_rules_to_the_csi_provider() {
    chart::assert_binds_no_rules("csi-provider");
}

#[tokio::test]
async fn mounts_call_no_kubernetes_api() {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::start(dir.path()).await;
    let reviewer = TokenReviewServer::start().await;
    core.kubernetes_auth(&reviewer, POLICY).await;
    core.put("team-a/db", json!({"password": "csi-rbac-pw-5e21"}))
        .await;

    // The cluster the provider would find, as its own service account.
    let api = TestApiServer::start().await;
    let token = api.mint_token(
        chart::NAMESPACE,
        &chart::service_account("csi-provider"),
        &[],
        Duration::from_secs(3600),
    );
    let vars = api
        .cluster_env(&dir.path().join("kubeconfig"), Some(&token))
        .unwrap();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let provider = Provider::start_with_env(dir.path(), &core.addr, &[], &env).await;
    let mut client = provider.client().await;
    let pod = Pod::new(&reviewer, "web-0");

    // A mount that writes a file.
    let parameters = json!({ "objects": PRESENT });
    let first = client
        .mount(pod.request(parameters.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(files(&first)["db/password"].1, b"csi-rbac-pw-5e21".to_vec());
    // The driver's rotation poll of the same volume.
    let mut poll = pod.request(parameters);
    poll.current_object_version = first.object_version.clone();
    let second = client.mount(poll).await.unwrap().into_inner();
    assert_eq!(versions(&second), versions(&first));
    // A mount that fails (an object that does not exist): the error path
    // looks nothing up in the cluster either.
    let failed = client
        .mount(pod.request(json!({ "objects": MISSING })))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::NotFound, "{failed:?}");

    api.assert_untouched("the CSI provider");
}
