//! kube-rs typed calls against the test API server: create / get / list / patch / replace / delete.

use std::collections::BTreeMap;

use cairn_e2e::TestApiServer;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn api_code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn secret_create_get_list_replace_delete() {
    let server = TestApiServer::start().await;
    let api: Api<Secret> = Api::namespaced(server.client(), "team-a");

    let created = api
        .create(&PostParams::default(), &secret("db", &[("user", "alice")]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("team-a"));
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let rv1: u64 = meta.resource_version.as_ref().unwrap().parse().unwrap();

    assert_eq!(
        api_code(
            api.create(&PostParams::default(), &secret("db", &[]))
                .await
                .unwrap_err()
        ),
        409
    );

    let mut generated = secret("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("tmp-".into());
    generated.metadata.labels = Some(BTreeMap::from([("app".into(), "batch".into())]));
    let generated = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let gname = generated.metadata.name.clone().unwrap();
    assert!(gname.starts_with("tmp-") && gname.len() == 9, "{gname}");

    let got = api.get("db").await.unwrap();
    assert_eq!(got.data.unwrap()["user"].0, b"alice");
    assert_eq!(api_code(api.get("nope").await.unwrap_err()), 404);

    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    let web = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(
        web.items
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["db"]
    );
    let set = api
        .list(&ListParams::default().labels("app in (batch,other)"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 1);
    let by_name = api
        .list(&ListParams::default().fields(&format!("metadata.name={gname}")))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let paged = api.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(paged.items.len(), 1);
    let token = paged.metadata.continue_.clone().unwrap();
    let rest = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_ne!(rest.items[0].metadata.name, paged.items[0].metadata.name);
    assert!(rest
        .metadata
        .continue_
        .as_deref()
        .unwrap_or_default()
        .is_empty());
    let other_ns: Api<Secret> = Api::namespaced(server.client(), "team-b");
    assert!(other_ns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let everywhere: Api<Secret> = Api::all(server.client());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // Replace with the current resourceVersion works; with a stale one it is a 409 conflict.
    let mut replaced = got_again(&api).await;
    replaced.data = Some(BTreeMap::from([(
        "user".into(),
        ByteString(b"bob".to_vec()),
    )]));
    let replaced = api
        .replace("db", &PostParams::default(), &replaced)
        .await
        .unwrap();
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    let mut stale = replaced.clone();
    stale.metadata.resource_version = Some(rv1.to_string());
    assert_eq!(
        api_code(
            api.replace("db", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        409
    );
    // A replace that changes nothing is not a write: the resourceVersion stays.
    let same = api
        .replace("db", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        replaced.metadata.resource_version
    );

    let deleted = api.delete("db", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "deleted at once, a Status answers");
    assert_eq!(api_code(api.get("db").await.unwrap_err()), 404);
    assert_eq!(
        api_code(
            api.delete("db", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        404
    );
}

async fn got_again(api: &Api<Secret>) -> Secret {
    api.get("db").await.unwrap()
}

#[tokio::test]
async fn merge_json_and_apply_patches() {
    let server = TestApiServer::start().await;
    let api: Api<Secret> = Api::namespaced(server.client(), "ns");

    // Server-side apply creates, then owns exactly what it applied.
    let ssa = PatchParams::apply("cairn-operator");
    let first = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"username": "dTE=", "password": "cDE="}});
    let s = api
        .patch("creds", &ssa, &Patch::Apply(&first))
        .await
        .unwrap();
    let data = s.data.clone().unwrap();
    assert_eq!(data["username"].0, b"u1");
    assert_eq!(data["password"].0, b"p1");
    let mf = s.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("cairn-operator"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // A merge patch by someone else adds a label and a key.
    let merge = json!({"metadata": {"labels": {"team": "a"}}, "data": {"extra": "eA=="}});
    let s = api
        .patch("creds", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(s.metadata.labels.unwrap()["team"], "a");

    // Re-applying without `password` removes it (owned only by the applier); `extra` stays.
    let second = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"username": "dTI="}});
    let s = api
        .patch("creds", &ssa, &Patch::Apply(&second))
        .await
        .unwrap();
    let data = s.data.clone().unwrap();
    assert_eq!(data["username"].0, b"u2");
    assert!(!data.contains_key("password"));
    assert_eq!(data["extra"].0, b"x");

    // The same apply again changes nothing: no new resourceVersion.
    let again = api
        .patch("creds", &ssa, &Patch::Apply(&second))
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, s.metadata.resource_version);

    // Another manager applying a different value for an owned field conflicts unless forced.
    let rival = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"username": "cml2YWw="}});
    let err = api
        .patch("creds", &PatchParams::apply("rival"), &Patch::Apply(&rival))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 409);
    let forced = api
        .patch(
            "creds",
            &PatchParams::apply("rival").force(),
            &Patch::Apply(&rival),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["username"].0, b"rival");

    // JSON patch, including a failing test operation.
    let jp: json_patch::Patch = serde_json::from_value(
        json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}}]),
    )
    .unwrap();
    let s = api
        .patch("creds", &PatchParams::default(), &Patch::Json::<()>(jp))
        .await
        .unwrap();
    assert_eq!(s.metadata.annotations.unwrap()["a"], "1");
    let bad: json_patch::Patch = serde_json::from_value(
        json!([{"op": "test", "path": "/metadata/annotations/a", "value": "2"}]),
    )
    .unwrap();
    assert_eq!(
        api_code(
            api.patch("creds", &PatchParams::default(), &Patch::Json::<()>(bad))
                .await
                .unwrap_err()
        ),
        422
    );

    // Strategic merge patches act as merge patches on maps.
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".into(), "v".into())])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let cm = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"k2": "v2"}})),
        )
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap().len(), 2);

    // Merge patches on a missing object are 404; apply without a field manager is refused.
    assert_eq!(
        api_code(
            api.patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
                .await
                .unwrap_err()
        ),
        404
    );
    let no_manager = PatchParams {
        field_manager: None,
        ..PatchParams::default()
    };
    assert_eq!(
        api_code(
            api.patch("creds", &no_manager, &Patch::Apply(&second))
                .await
                .unwrap_err()
        ),
        400
    );
}

#[tokio::test]
async fn secret_validation_and_immutability() {
    let server = TestApiServer::start().await;
    let api: Api<Secret> = Api::namespaced(server.client(), "ns");
    let bad_name = secret("Not_Valid", &[]);
    assert_eq!(
        api_code(
            api.create(&PostParams::default(), &bad_name)
                .await
                .unwrap_err()
        ),
        422
    );
    let mut frozen = secret("frozen", &[("k", "v")]);
    frozen.immutable = Some(true);
    api.create(&PostParams::default(), &frozen).await.unwrap();
    let change = json!({"data": {"k": "dzI="}});
    assert_eq!(
        api_code(
            api.patch("frozen", &PatchParams::default(), &Patch::Merge(&change))
                .await
                .unwrap_err()
        ),
        422
    );
    // Labels may still change.
    api.patch(
        "frozen",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
}
