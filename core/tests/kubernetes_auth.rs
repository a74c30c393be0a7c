//! The Kubernetes auth method end to end: a real `cairn server` calls a
//! TokenReview endpoint served by the test, as it would call the API server.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/tokenreview.rs"]
mod tokenreview;

use common::Server;
use serde_json::{json, Value};
use tokenreview::{TokenReviewServer, API_AUDIENCE};

struct Env {
    server: Server,
    root: String,
    k8s: TokenReviewServer,
    _dir: tempfile::TempDir,
}

impl Env {
    /// A server with `auth/kubernetes` configured against the test reviewer,
    /// a policy reading `secret/data/team-a/*`, and the secret it reads.
    async fn start() -> Env {
        let k8s = TokenReviewServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), "", "storage \"inmem\" {}").await;
        let (keys, root) = server.init().await;
        server.unseal(&keys).await;
        server.mount_secret(&root).await;
        let env = Env {
            server,
            root,
            k8s,
            _dir: dir,
        };
        env.ok("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"}))
            .await;
        env.ok(
            "POST",
            "auth/kubernetes/config",
            json!({"kubernetes_host": env.k8s.url, "token_reviewer_jwt": env.k8s.reviewer_jwt}),
        )
        .await;
        env.ok(
            "PUT",
            "sys/policies/acl/team-a-read",
            json!({"policy": "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }"}),
        )
        .await;
        env.ok(
            "POST",
            "secret/data/team-a/db",
            json!({"data": {"password": "s3cret-db-pass"}}),
        )
        .await;
        env
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, reply) = self
            .server
            .call(method, path, Some(&self.root), Some(body))
            .await;
        assert!(
            status == 200 || status == 204,
            "{method} {path}: {status} {reply}"
        );
        reply
    }

    async fn role(&self, name: &str, body: Value) {
        self.ok("POST", &format!("auth/kubernetes/role/{name}"), body)
            .await;
    }

    async fn login(&self, body: Value) -> (u16, Value) {
        self.server
            .call("POST", "auth/kubernetes/login", None, Some(body))
            .await
    }
}

fn app_role(audience: &str) -> Value {
    json!({
        "bound_service_account_names": ["app"],
        "bound_service_account_namespaces": ["team-a"],
        "token_policies": ["team-a-read"],
        "token_ttl": "10m",
        "audience": audience,
    })
}

#[tokio::test]
async fn login_with_a_role_gives_a_token_with_the_roles_policies() {
    let env = Env::start().await;
    env.role("app", app_role("cairn")).await;
    let jwt = env.k8s.mint("team-a", "app", &["cairn"]);
    let (status, body) = env.login(json!({"role": "app", "jwt": jwt})).await;
    assert_eq!(status, 200, "{body}");
    let auth = &body["auth"];
    let token = auth["client_token"].as_str().unwrap();
    assert_eq!(auth["policies"], json!(["default", "team-a-read"]));
    assert_eq!(auth["metadata"]["service_account_namespace"], "team-a");
    assert_eq!(auth["metadata"]["role"], "app");
    assert_eq!(auth["orphan"], json!(true));
    let ttl = auth["lease_duration"].as_i64().unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");

    // The review asked for the role's audience, with the reviewer's token.
    assert_eq!(env.k8s.reviews()[0]["spec"]["audiences"], json!(["cairn"]));

    let (status, body) = env
        .server
        .call("GET", "secret/data/team-a/db", Some(token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["password"], "s3cret-db-pass");
    let (status, _) = env
        .server
        .call("GET", "secret/data/team-b/db", Some(token), None)
        .await;
    assert_eq!(status, 403);
    let (_, me) = env
        .server
        .call("GET", "auth/token/lookup-self", Some(token), None)
        .await;
    assert_eq!(me["data"]["display_name"], "kubernetes-team-a-app");
    assert_eq!(me["data"]["path"], "auth/kubernetes/login");
}

#[tokio::test]
async fn login_without_a_role_uses_the_namespace_dot_service_account_role() {
    let env = Env::start().await;
    env.role("team-a.app", app_role("cairn")).await;
    let jwt = env.k8s.mint("team-a", "app", &["cairn"]);
    let (status, body) = env.login(json!({"jwt": jwt})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["metadata"]["role"], "team-a.app");

    // A service account that no role names is refused.
    let stranger = env.k8s.mint("team-a", "stranger", &["cairn"]);
    let (status, body) = env.login(json!({"jwt": stranger})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("team-a.stranger"));
}

#[tokio::test]
async fn bad_logins_get_clear_errors_and_no_token() {
    let env = Env::start().await;
    env.role("app", app_role("cairn")).await;
    let good = env.k8s.mint("team-a", "app", &["cairn"]);
    let api_only = env.k8s.mint("team-a", "app", &[API_AUDIENCE]);
    let other_ns = env.k8s.mint("team-b", "app", &["cairn"]);
    let other_sa = env.k8s.mint("team-a", "worker", &["cairn"]);
    let gone = env.k8s.mint("team-a", "app", &["cairn"]);
    env.k8s.invalidate(&gone);

    let cases = [
        (json!({"role": "app"}), 400, "missing jwt"),
        (json!({"role": "app", "jwt": 7}), 400, "jwt"),
        (
            json!({"role": "nope", "jwt": good}),
            400,
            "invalid role name",
        ),
        (
            json!({"role": "../../sys/seal", "jwt": good}),
            400,
            "invalid role name",
        ),
        (
            json!({"role": "app", "jwt": api_only}),
            403,
            "permission denied",
        ),
        (
            json!({"role": "app", "jwt": other_ns}),
            403,
            "namespace not authorized",
        ),
        (
            json!({"role": "app", "jwt": other_sa}),
            403,
            "service account name not authorized",
        ),
        (json!({"role": "app", "jwt": gone}), 403, "did not accept"),
        (
            json!({"role": "app", "jwt": "not-a-token"}),
            403,
            "did not accept",
        ),
    ];
    for (body, want, why) in cases {
        let (status, reply) = env.login(body.clone()).await;
        assert_eq!(status, want, "{body}: {reply}");
        let msg = reply["errors"][0].as_str().unwrap_or("");
        assert!(msg.contains(why), "{body}: {msg}");
        assert!(reply["auth"].is_null());
        for secret in [&good, &api_only, &gone] {
            assert!(
                !msg.contains(secret.as_str()),
                "error echoes the token: {msg}"
            );
        }
    }
    // GET is not a login.
    let (status, _) = env
        .server
        .call("GET", "auth/kubernetes/login", None, None)
        .await;
    assert_eq!(status, 405);
    // No token, no secret in the server's logs.
    let logs = env.server.logs();
    for secret in [
        good.as_str(),
        api_only.as_str(),
        &env.k8s.reviewer_jwt,
        "s3cret-db-pass",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn an_unreachable_or_refusing_api_server_is_a_502() {
    let env = Env::start().await;
    env.role("app", app_role("")).await;
    let jwt = env.k8s.mint("team-a", "app", &[API_AUDIENCE]);
    // A role without an audience asks for the API server's own (Vault's behaviour).
    let (status, body) = env.login(json!({"role": "app", "jwt": jwt})).await;
    assert_eq!(status, 200, "{body}");
    assert!(env.k8s.reviews()[0]["spec"]["audiences"].is_null());

    // A reviewer token the API server rejects.
    env.ok(
        "POST",
        "auth/kubernetes/config",
        json!({"kubernetes_host": env.k8s.url, "token_reviewer_jwt": "wrong"}),
    )
    .await;
    let (status, body) = env.login(json!({"role": "app", "jwt": jwt})).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("token_reviewer_jwt"));

    // Nothing listening.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    env.ok(
        "POST",
        "auth/kubernetes/config",
        json!({"kubernetes_host": dead, "token_reviewer_jwt": "x"}),
    )
    .await;
    let (status, body) = env.login(json!({"role": "app", "jwt": jwt})).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("failed to reach"));
}

#[tokio::test]
async fn config_roles_and_mounts_are_managed_like_vaults() {
    let env = Env::start().await;
    let (_, cfg) = env
        .server
        .call("GET", "auth/kubernetes/config", Some(&env.root), None)
        .await;
    assert_eq!(cfg["data"]["kubernetes_host"], env.k8s.url);
    assert_eq!(cfg["data"]["token_reviewer_jwt_set"], json!(true));
    assert!(!cfg.to_string().contains(&env.k8s.reviewer_jwt));

    env.role("app", app_role("cairn")).await;
    env.role("team-a.app", app_role("cairn")).await;
    let (status, list) = env
        .server
        .call("LIST", "auth/kubernetes/role", Some(&env.root), None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"]["keys"], json!(["app", "team-a.app"]));
    let (_, role) = env
        .server
        .call("GET", "auth/kubernetes/role/app", Some(&env.root), None)
        .await;
    assert_eq!(role["data"]["token_policies"], json!(["team-a-read"]));
    assert_eq!(role["data"]["token_ttl"], json!(600));

    for (body, why) in [
        (
            json!({"bound_service_account_names": ["a"]}),
            "bound_service_account_namespaces",
        ),
        (
            json!({"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["b"], "policies": ["root"]}),
            "root",
        ),
    ] {
        let (status, reply) = env
            .server
            .call(
                "POST",
                "auth/kubernetes/role/bad",
                Some(&env.root),
                Some(body),
            )
            .await;
        assert_eq!(status, 400, "{reply}");
        assert!(
            reply["errors"][0].as_str().unwrap().contains(why),
            "{reply}"
        );
    }

    let (_, auths) = env
        .server
        .call("GET", "sys/auth", Some(&env.root), None)
        .await;
    assert_eq!(auths["data"]["kubernetes/"]["type"], "kubernetes");
    assert_eq!(auths["data"]["token/"]["type"], "token");
    let (_, mounts) = env
        .server
        .call("GET", "sys/mounts", Some(&env.root), None)
        .await;
    assert!(mounts["data"].get("auth/kubernetes/").is_none());

    // A non-root token cannot enable auth methods (sudo), nor mount over auth/.
    let jwt = env.k8s.mint("team-a", "app", &["cairn"]);
    let (_, login) = env.login(json!({"role": "app", "jwt": jwt})).await;
    let token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, _) = env
        .server
        .call(
            "POST",
            "sys/auth/other",
            Some(&token),
            Some(json!({"type": "kubernetes"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = env
        .server
        .call(
            "POST",
            "sys/mounts/auth/x",
            Some(&env.root),
            Some(json!({"type": "kv"})),
        )
        .await;
    assert_eq!(status, 400);

    // Disabling the method revokes the tokens it issued.
    env.ok("DELETE", "sys/auth/kubernetes", json!({})).await;
    let (status, _) = env
        .server
        .call("GET", "auth/token/lookup-self", Some(&token), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = env.login(json!({"role": "app", "jwt": jwt})).await;
    assert!(status == 400 || status == 404 || status == 405, "{status}");
}

#[tokio::test]
async fn a_namespace_bound_token_sees_only_its_namespaces_lease_owners() {
    let env = Env::start().await;
    env.ok(
        "PUT",
        "sys/policies/acl/owners",
        json!({"policy": "path \"sys/cairn/leases/*\" { capabilities = [\"read\", \"update\"] }"}),
    )
    .await;
    let mut role = app_role("cairn");
    role["token_policies"] = json!(["owners"]);
    env.role("app", role).await;
    let jwt = env.k8s.mint("team-a", "app", &["cairn"]);
    let (_, login) = env.login(json!({"role": "app", "jwt": jwt})).await;
    let token = login["auth"]["client_token"].as_str().unwrap().to_owned();

    let call = |path: &'static str, owner: &'static str| {
        let server = &env.server;
        let token = token.clone();
        async move {
            server
                .call("PUT", path, Some(&token), Some(json!({ "owner": owner })))
                .await
        }
    };
    let (status, body) = call("sys/cairn/leases/owner", "team-a/Pod/web-0/uid-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["leases"], json!([]));
    for path in ["sys/cairn/leases/owner", "sys/cairn/leases/revoke-owner"] {
        let (status, body) = call(path, "team-b/Pod/web-0/uid-1").await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = call("sys/cairn/leases/owner", "team-a/Pod/../x").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = env
        .server
        .call(
            "GET",
            "sys/cairn/leases/owners?kind=Pod",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["owners"], json!([]));
}
