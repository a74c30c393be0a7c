//! Finalizers and deletionTimestamp, the status subresource and generation, custom resources,
//! simulated rollouts, and garbage collection on the test API server.
// Helpers outside #[tokio::test] fns are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_e2e::TestApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::ResourceExt;
use serde_json::json;

fn dc_api(server: &TestApiServer, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("cairn.dev", "v1alpha1", "DynamicCredential");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "dynamiccredentials");
    Api::namespaced_with(server.client(), ns, &ar)
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = TestApiServer::start().await;
    let api = dc_api(&server, "app");
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cairn.dev/v1alpha1", "kind": "DynamicCredential",
        "metadata": {"name": "db", "finalizers": ["cairn.dev/revoke"]},
        "spec": {"role": "readonly"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();

    let pending = api.delete("db", &DeleteParams::default()).await.unwrap();
    let pending = pending
        .left()
        .expect("held by its finalizer, the object answers");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still = api.get("db").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // Deleting again changes nothing; adding a finalizer while deleting is refused.
    api.delete("db", &DeleteParams::default()).await.unwrap();
    let add = json!({"metadata": {"finalizers": ["cairn.dev/revoke", "other"]}});
    assert_eq!(
        code(
            api.patch("db", &PatchParams::default(), &Patch::Merge(&add))
                .await
                .unwrap_err()
        ),
        422
    );
    // Removing the last finalizer removes the object.
    let clear = json!({"metadata": {"finalizers": null}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    assert_eq!(code(api.get("db").await.unwrap_err()), 404);
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let server = TestApiServer::start().await;
    let api = dc_api(&server, "app");
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cairn.dev/v1alpha1", "kind": "DynamicCredential",
        "metadata": {"name": "db"},
        "spec": {"role": "readonly"},
        "status": {"ignored": "on create"},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );

    // Status through /status: only status changes, generation stays.
    let status = json!({"status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}, "spec": {"role": "admin"}});
    let s = api
        .patch_status("db", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(s.data["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(
        s.data["spec"]["role"], "readonly",
        "spec is not changed through /status"
    );
    assert_eq!(s.metadata.generation, Some(1));

    // Status apply through /status with a field manager.
    let apply = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "DynamicCredential", "metadata": {"name": "db"}, "status": {"leaseId": "x"}});
    let s = api
        .patch_status(
            "db",
            &PatchParams::apply("cairn-operator"),
            &Patch::Apply(&apply),
        )
        .await
        .unwrap();
    assert_eq!(s.data["status"]["leaseId"], "x");
    assert!(s
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .any(|m| m.manager.as_deref() == Some("cairn-operator")
            && m.subresource.as_deref() == Some("status")));

    // Main-resource writes ignore status; a spec change bumps generation, a label change does not.
    let main = json!({"spec": {"role": "admin"}, "status": {"leaseId": "overwritten?"}});
    let s = api
        .patch("db", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(s.data["status"]["leaseId"], "x");
    assert_eq!(s.metadata.generation, Some(2));
    let s = api
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(2));

    // Custom resources refuse a PUT without resourceVersion, and a stale one conflicts.
    let mut current = api.get("db").await.unwrap();
    let rv = current.metadata.resource_version.take();
    assert_eq!(
        code(
            api.replace("db", &PostParams::default(), &current)
                .await
                .unwrap_err()
        ),
        422
    );
    current.metadata.resource_version = rv.clone();
    let mut with_status = current.clone();
    with_status.data["status"] = json!({"leaseId": "y"});
    let replaced = api
        .replace_status("db", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(replaced.data["status"]["leaseId"], "y");
    assert_eq!(
        code(
            api.replace("db", &PostParams::default(), &current)
                .await
                .unwrap_err()
        ),
        409,
        "rv is stale after the status write"
    );
}

#[tokio::test]
async fn deployment_rollout_is_simulated() {
    let server = TestApiServer::builder()
        .rollout_delay(Duration::from_millis(100))
        .start()
        .await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "app");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let done = wait_rolled_out(&api, 1).await;
    assert_eq!(done.status.unwrap().available_replicas, Some(2));

    // `kubectl rollout restart` style: a pod-template annotation starts a new rollout.
    server.pause_rollouts();
    let restart = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-22T10:00:00Z"}}}}});
    let d = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&restart))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = api.get("web").await.unwrap();
    assert_eq!(
        held.status.unwrap().observed_generation,
        Some(1),
        "paused: rollout still in progress"
    );
    server.resume_rollouts();
    wait_rolled_out(&api, 2).await;
}

async fn wait_rolled_out(api: &Api<Deployment>, generation: i64) -> Deployment {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d = api.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        if s.observed_generation == Some(generation)
            && s.updated_replicas == Some(replicas)
            && s.ready_replicas == Some(replicas)
        {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout of generation {generation} not done: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn owner_deletion_collects_or_orphans_dependents() {
    let server = TestApiServer::start().await;
    let dcs = dc_api(&server, "app");
    let secrets: Api<Secret> = Api::namespaced(server.client(), "app");
    for name in ["one", "two"] {
        let owner: DynamicObject = serde_json::from_value(json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "DynamicCredential", "metadata": {"name": name}, "spec": {}})).unwrap();
        let owner = dcs.create(&PostParams::default(), &owner).await.unwrap();
        let uid = owner.uid().unwrap();
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-creds"), "ownerReferences": [
            {"apiVersion": "cairn.dev/v1alpha1", "kind": "DynamicCredential", "name": name, "uid": uid, "controller": true}]}});
        secrets
            .patch(
                &format!("{name}-creds"),
                &PatchParams::apply("t"),
                &Patch::Apply(&s),
            )
            .await
            .unwrap();
    }
    dcs.delete("one", &DeleteParams::background())
        .await
        .unwrap();
    assert!(secrets.get_opt("one-creds").await.unwrap().is_none());
    dcs.delete("two", &DeleteParams::orphan()).await.unwrap();
    let orphan = secrets.get("two-creds").await.unwrap();
    assert!(orphan
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());
}
