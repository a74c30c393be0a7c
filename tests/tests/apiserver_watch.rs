//! Watches, kube-runtime watchers / reflectors / controllers, and 410 Gone against the test API server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_e2e::TestApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn cm(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("v".to_string(), value.to_string())].into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn raw_watch_sees_added_modified_deleted_from_a_resource_version() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let before = api
        .create(&PostParams::default(), &cm("early", "0"))
        .await
        .unwrap();
    let rv = before.metadata.resource_version.clone().unwrap();

    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(o) => seen.push(("ADDED", o.data.unwrap()["v"].clone())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.data.unwrap()["v"].clone())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.data.unwrap()["v"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", "1".to_string()),
            ("MODIFIED", "2".to_string()),
            ("DELETED", "2".to_string())
        ]
    );

    // From a compacted resourceVersion the watch ends with a 410 Gone error event.
    server.compact();
    let mut old = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    match old.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn label_selected_watch_sees_objects_enter_and_leave() {
    let server = TestApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let mut stream = api
        .watch(&WatchParams::default().labels("pick=yes").timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("x", "1"))
        .await
        .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"pick": "yes"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"pick": "no"}}})),
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            _ => {}
        }
    }
    assert_eq!(kinds, vec!["ADDED", "DELETED"]);
}

#[tokio::test]
async fn runtime_watcher_and_reflector_follow_changes_and_survive_closed_watches() {
    let server = TestApiServer::builder()
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("pre", "0"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .applied_objects();
    let collected = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let sink = collected.clone();
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(Ok(o)) = stream.next().await {
            sink.lock().await.push(format!(
                "{}={}",
                o.name_any(),
                o.data
                    .unwrap_or_default()
                    .get("v")
                    .cloned()
                    .unwrap_or_default()
            ));
        }
    });
    reader.wait_until_ready().await.unwrap();
    api.create(&PostParams::default(), &cm("b", "1"))
        .await
        .unwrap();
    wait_for(|| async {
        reader
            .get(&reflector::ObjectRef::new("b").within("ns"))
            .is_some()
    })
    .await;
    // Every watch is cut, as when an API server restarts: the watcher reconnects and goes on.
    server.close_watches();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    wait_for(|| async {
        reader
            .get(&reflector::ObjectRef::new("b").within("ns"))
            .is_some_and(|o| o.data.as_ref().is_some_and(|d| d["v"] == "2"))
    })
    .await;
    api.delete("pre", &DeleteParams::default()).await.unwrap();
    wait_for(|| async { reader.state().len() == 1 }).await;
    let seen = collected.lock().await.clone();
    assert!(
        seen.contains(&"pre=0".to_string())
            && seen.contains(&"b=1".to_string())
            && seen.contains(&"b=2".to_string()),
        "{seen:?}"
    );
    task.abort();
}

async fn wait_for<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real kube-runtime controller: each ConfigMap gets a Secret applied with an owner
/// reference. Once converged, reconciles write nothing (no hot loop), and deleting the owner
/// garbage-collects the Secret.
#[tokio::test]
async fn controller_converges_without_writes_and_owned_objects_are_collected() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ns");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "ns");
    let reconciles = Arc::new(AtomicUsize::new(0));
    let ctx = Arc::new((secrets.clone(), reconciles.clone()));
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .owns(secrets.clone(), watcher::Config::default())
        .run(
            |cm: Arc<ConfigMap>, ctx: Arc<(Api<Secret>, Arc<AtomicUsize>)>| async move {
                ctx.1.fetch_add(1, Ordering::SeqCst);
                let owner = cm.controller_owner_ref(&()).unwrap();
                let desired = json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": format!("{}-copy", cm.name_any()), "ownerReferences": [owner]},
                    "stringData": cm.data.clone().unwrap_or_default(),
                });
                ctx.0.patch(&format!("{}-copy", cm.name_any()), &PatchParams::apply("test-controller").force(), &Patch::Apply(&desired)).await?;
                Ok::<_, kube::Error>(Action::await_change())
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    cms.create(&PostParams::default(), &cm("src", "hello"))
        .await
        .unwrap();
    wait_for(|| async { secrets.get_opt("src-copy").await.unwrap().is_some() }).await;
    let copy = secrets.get("src-copy").await.unwrap();
    assert_eq!(copy.data.unwrap()["v"].0, b"hello");

    // Converged: let the controller see its own write, then no further writes happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mark = server.recorder().len();
    let count = reconciles.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        server.recorder().writes_since(mark).is_empty(),
        "{:?}",
        server.recorder().writes_since(mark)
    );
    assert!(
        reconciles.load(Ordering::SeqCst) <= count + 1,
        "hot loop: {} reconciles",
        reconciles.load(Ordering::SeqCst)
    );

    cms.patch(
        "src",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "again"}})),
    )
    .await
    .unwrap();
    wait_for(|| async { secrets.get("src-copy").await.unwrap().data.unwrap()["v"].0 == b"again" })
        .await;

    cms.delete("src", &DeleteParams::default()).await.unwrap();
    wait_for(|| async { secrets.get_opt("src-copy").await.unwrap().is_none() }).await;
    task.abort();
}
