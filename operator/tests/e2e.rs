//! End to end: the `cairn-operator` binary against the test API server of
//! `cairn-e2e`, a real `cairn server` and a real PostgreSQL.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_e2e::{CoreServer, Postgres, TestApiServer};
use serde_json::{json, Value};

// The identities are the chart's: its release namespace and the service
// accounts it gives the core and the operator, whose rendered RBAC their
// recorded calls are checked against.
use cairn_e2e::chart::{service_account, NAMESPACE};

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

struct Env {
    api: TestApiServer,
    core: CoreServer,
    pg: Postgres,
    dir: tempfile::TempDir,
    operator: Option<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut child) = self.operator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failed test shows what the operator did (it never logs secrets).
        if std::thread::panicking() {
            eprintln!(
                "---- operator log ----\n{}\n---- end of operator log ----",
                operator_log(self)
            );
        }
    }
}

fn operator_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_cairn-operator"))
}

async fn core_call(
    core: &CoreServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = core
        .request(method, path)
        .header("X-Vault-Token", core.root_token());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn until<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn setup(db_ttl: &str, db_max_ttl: &str) -> Env {
    let api = TestApiServer::builder()
        .rollout_delay(Duration::from_millis(300))
        .start()
        .await;
    let core = CoreServer::start().await;
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();

    // The database engine, as an administrator sets it up.
    let (st, body) = core_call(
        &core,
        "POST",
        "sys/mounts/database",
        Some(json!({"type": "database"})),
    )
    .await;
    assert!(st < 300, "{body}");
    let (st, body) = core_call(
        &core,
        "POST",
        "database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.template_url(),
            "username": pg.superuser, "password": pg.password,
            "allowed_roles": "team-a_ro",
        })),
    )
    .await;
    assert!(st < 300, "{body}");
    let (st, body) = core_call(
        &core,
        "POST",
        "database/roles/team-a_ro",
        Some(json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": db_ttl, "max_ttl": db_max_ttl})),
    )
    .await;
    assert!(st < 300, "{body}");

    // bootstrap: Kubernetes auth pointing at the test API server, the
    // operator's role and policy. In a cluster the core sends TokenReviews
    // with its own service account's token (the chart's core RBAC); outside
    // one it would send the token under review, and the operator would seem
    // to call TokenReview itself. Give the core its identity here too.
    let reviewer = api.mint_token(
        NAMESPACE,
        &service_account("core"),
        &[],
        Duration::from_secs(3600),
    );
    let reviewer_file = dir.path().join("reviewer-token");
    std::fs::write(&reviewer_file, &reviewer).expect("write the reviewer token");
    // The root token on standard input, as the chart's NOTES pass it.
    let mut child = Command::new(operator_bin())
        .args([
            "bootstrap",
            "--token-stdin",
            "--kubernetes-host",
            &api.url(),
            "--operator-namespace",
            NAMESPACE,
        ])
        .arg("--token-reviewer-jwt-file")
        .arg(&reviewer_file)
        .env("CAIRN_ADDR", core.addr())
        .env_remove("CAIRN_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", core.root_token()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bootstrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    api.ensure_service_account("team-a", "web");
    let mut env = Env {
        api,
        core,
        pg,
        dir,
        operator: None,
    };
    start_operator(&mut env);
    env
}

fn start_operator(env: &mut Env) {
    let token = env.api.mint_token(
        NAMESPACE,
        &service_account("operator"),
        &["cairn"],
        Duration::from_secs(3600),
    );
    let token_file = env.dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let kube_token = env.api.mint_token(
        NAMESPACE,
        &service_account("operator"),
        &[],
        Duration::from_secs(3600),
    );
    let kubeconfig = env.dir.path().join("kubeconfig");
    env.api
        .write_kubeconfig(&kubeconfig, Some(&kube_token))
        .unwrap();
    // Appended to, so a restarted operator's log follows the first one's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.dir.path().join("operator.log"))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(operator_bin())
        .args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("CAIRN_ADDR", env.core.addr())
        .env("CAIRN_TOKEN_FILE", &token_file)
        .env("POD_NAMESPACE", NAMESPACE)
        .env("POD_NAME", format!("op-{port}"))
        .env("CAIRN_LEASE_DURATION", "3")
        .env("CAIRN_POD_GC_INTERVAL", "1")
        .env("CAIRN_LOG_LEVEL", "cairn_operator=debug,info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    env.operator = Some(child);
}

fn operator_log(env: &Env) -> String {
    std::fs::read_to_string(env.dir.path().join("operator.log")).unwrap_or_default()
}

async fn create(env: &Env, plural: &str, ns: &str, body: Value) {
    let client = reqwest::Client::new();
    let (group, version) = if plural == "deployments" {
        ("apis/apps", "v1")
    } else {
        ("apis/cairn.dev", "v1alpha1")
    };
    let url = format!(
        "{}/{group}/{version}/namespaces/{ns}/{plural}",
        env.api.url()
    );
    let resp = client.post(url).json(&body).send().await.unwrap();
    assert!(
        resp.status().is_success(),
        "create {plural}: {}",
        resp.text().await.unwrap()
    );
}

async fn delete(env: &Env, plural: &str, ns: &str, name: &str) {
    let prefix = match plural {
        "secrets" => "api/v1".to_owned(),
        _ => "apis/cairn.dev/v1alpha1".to_owned(),
    };
    let url = format!("{}/{prefix}/namespaces/{ns}/{plural}/{name}", env.api.url());
    let resp = reqwest::Client::new().delete(url).send().await.unwrap();
    assert!(
        resp.status().is_success(),
        "delete: {}",
        resp.text().await.unwrap()
    );
}

fn ready(obj: &Value) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            format!(
                "{}/{}",
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or("")
            )
        })
}

fn policy(name: &str, sas: &[&str], path: &str) -> Value {
    json!({
        "apiVersion": "cairn.dev/v1alpha1", "kind": "SecretPolicy",
        "metadata": {"name": name},
        "spec": {"serviceAccounts": sas, "rules": [{"path": path, "capabilities": ["read"]}], "tokenTTL": "10m"}
    })
}

fn credential(name: &str, targets: Value) -> Value {
    json!({
        "apiVersion": "cairn.dev/v1alpha1", "kind": "DynamicCredential",
        "metadata": {"name": name},
        "spec": {"path": "database/creds/team-a_ro", "serviceAccountName": "web", "secretName": format!("{name}-secret"),
                 "renewalPercent": 50, "rolloutRestartTargets": targets, "revokeGracePeriodSeconds": 1}
    })
}

fn secret_creds(env: &Env, ns: &str, name: &str) -> Option<(String, String, String)> {
    use base64::Engine;
    let s = env.api.object("", "secrets", Some(ns), name)?;
    let get = |k: &str| -> Option<String> {
        let b = s.pointer(&format!("/data/{k}"))?.as_str()?;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).ok()?).ok()
    };
    let lease = s
        .pointer("/metadata/annotations/cairn.dev~1lease-id")?
        .as_str()?
        .to_owned();
    Some((get("username")?, get("password")?, lease))
}

/// The ids of the leases the core holds for DynamicCredential `name` (uid `uid`).
async fn owned_leases(env: &Env, name: &str, uid: &str) -> Vec<String> {
    let (st, owned) = core_call(
        &env.core,
        "PUT",
        "sys/cairn/leases/owner",
        Some(json!({"owner": format!("team-a/DynamicCredential/{name}/{uid}")})),
    )
    .await;
    assert_eq!(st, 200, "{owned}");
    owned["data"]["leases"]
        .as_array()
        .expect("a list of leases")
        .iter()
        .map(|l| l["id"].as_str().expect("a lease id").to_owned())
        .collect()
}

async fn pg_user_exists(env: &Env, user: &str) -> bool {
    let admin = env.pg.admin().await;
    let rows = admin
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap();
    !rows.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_credentials_and_cleanup_end_to_end() {
    let env = setup("1h", "24h").await;

    // A SecretPolicy within the namespace's paths is accepted and its role
    // is written to the core.
    create(
        &env,
        "secretpolicies",
        "team-a",
        policy("db", &["web"], "database/creds/team-a_ro"),
    )
    .await;
    until("SecretPolicy Ready", Duration::from_secs(20), async || {
        let o = env
            .api
            .object("cairn.dev", "secretpolicies", Some("team-a"), "db")?;
        (ready(&o)? == "True/Reconciled").then_some(())
    })
    .await;
    let (st, role) = core_call(&env.core, "GET", "auth/kubernetes/role/team-a.web", None).await;
    assert_eq!(st, 200, "{role}");
    assert_eq!(role["data"]["token_policies"], json!(["k8s.team-a.db"]));
    let (st, pol) = core_call(&env.core, "GET", "sys/policies/acl/k8s.team-a.db", None).await;
    assert_eq!(st, 200);
    assert!(pol["data"]["policy"]
        .as_str()
        .unwrap()
        .contains("database/creds/team-a_ro"));

    // One reaching another namespace is refused with a condition, and
    // grants nothing.
    create(
        &env,
        "secretpolicies",
        "team-a",
        policy("evil", &["web"], "secret/data/team-b/*"),
    )
    .await;
    until(
        "SecretPolicy refused",
        Duration::from_secs(20),
        async || {
            let o = env
                .api
                .object("cairn.dev", "secretpolicies", Some("team-a"), "evil")?;
            (ready(&o)? == "False/PathNotAllowed").then_some(())
        },
    )
    .await;
    let (st, _) = core_call(&env.core, "GET", "sys/policies/acl/k8s.team-a.evil", None).await;
    assert_eq!(st, 404);
    let (_, role) = core_call(&env.core, "GET", "auth/kubernetes/role/team-a.web", None).await;
    assert_eq!(role["data"]["token_policies"], json!(["k8s.team-a.db"]));

    // A DynamicCredential: the Secret's login works in PostgreSQL.
    create(
        &env,
        "dynamiccredentials",
        "team-a",
        credential("web-db", json!([])),
    )
    .await;
    let (user, password, lease) = until("Secret", Duration::from_secs(30), async || {
        secret_creds(&env, "team-a", "web-db-secret")
    })
    .await;
    env.pg
        .connect(&user, &password)
        .await
        .expect("the issued credential logs in");
    let dc = until(
        "DynamicCredential Ready",
        Duration::from_secs(20),
        async || {
            let o = env
                .api
                .object("cairn.dev", "dynamiccredentials", Some("team-a"), "web-db")?;
            (ready(&o)? == "True/Reconciled").then_some(o)
        },
    )
    .await;
    assert_eq!(dc["status"]["leaseId"], lease);
    // Issued once: the Secret's is the only credential (a reconcile on a
    // cache without the last status write once issued a second one).
    let uid = dc["metadata"]["uid"].as_str().unwrap();
    assert_eq!(owned_leases(&env, "web-db", uid).await, vec![lease.clone()]);
    let version = dc["status"]["secretVersion"].as_str().unwrap();
    assert!(!version.contains(&password) && !dc.to_string().contains(&password));
    // The Secret is owned by the DynamicCredential.
    let secret = env
        .api
        .object("", "secrets", Some("team-a"), "web-db-secret")
        .unwrap();
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        dc["metadata"]["uid"]
    );

    // A deleted Secret comes back: the operator watches Secrets as metadata
    // only and keeps no copy of the credential, so it rotates: a new
    // credential in a new Secret, the old one revoked after the grace period.
    delete(&env, "secrets", "team-a", "web-db-secret").await;
    let (user2, password2, lease2) =
        until("Secret re-created", Duration::from_secs(30), async || {
            secret_creds(&env, "team-a", "web-db-secret").filter(|(_, _, l)| *l != lease)
        })
        .await;
    env.pg
        .connect(&user2, &password2)
        .await
        .expect("the re-issued credential logs in");
    until("old user dropped", Duration::from_secs(30), async || {
        (!pg_user_exists(&env, &user).await).then_some(())
    })
    .await;
    until(
        "one live credential, recorded",
        Duration::from_secs(20),
        async || {
            let o = env
                .api
                .object("cairn.dev", "dynamiccredentials", Some("team-a"), "web-db")?;
            let one = owned_leases(&env, "web-db", uid).await == vec![lease2.clone()];
            (one && o["status"]["leaseId"] == lease2 && ready(&o)? == "True/Reconciled")
                .then_some(())
        },
    )
    .await;
    let (user, password) = (user2, password2);

    // Deleting it revokes the credential: the user is dropped.
    delete(&env, "dynamiccredentials", "team-a", "web-db").await;
    until("user dropped", Duration::from_secs(20), async || {
        (!pg_user_exists(&env, &user).await).then_some(())
    })
    .await;
    until("finalizer released", Duration::from_secs(10), async || {
        env.api
            .object("cairn.dev", "dynamiccredentials", Some("team-a"), "web-db")
            .is_none()
            .then_some(())
    })
    .await;

    // Deleting the SecretPolicy removes its policy and the role.
    delete(&env, "secretpolicies", "team-a", "db").await;
    until("role removed", Duration::from_secs(20), async || {
        let (st, _) = core_call(&env.core, "GET", "auth/kubernetes/role/team-a.web", None).await;
        (st == 404).then_some(())
    })
    .await;

    let log = operator_log(&env);
    assert!(!log.contains(&password), "the operator logged a password");
    rbac_covers_every_call(&env);
}

/// A DynamicCredential created before the SecretPolicy granting its
/// identity is refused (no role), then served as soon as the role exists,
/// not at the next periodic retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_waits_for_its_secret_policy() {
    let env = setup("1h", "24h").await;
    create(
        &env,
        "dynamiccredentials",
        "team-a",
        credential("web-db", json!([])),
    )
    .await;
    until("refused", Duration::from_secs(20), async || {
        let o = env
            .api
            .object("cairn.dev", "dynamiccredentials", Some("team-a"), "web-db")?;
        (ready(&o)? == "False/PermissionDenied").then_some(())
    })
    .await;
    create(
        &env,
        "secretpolicies",
        "team-a",
        policy("db", &["web"], "database/creds/team-a_ro"),
    )
    .await;
    let (user, password, _) = until("Secret", Duration::from_secs(30), async || {
        secret_creds(&env, "team-a", "web-db-secret")
    })
    .await;
    env.pg
        .connect(&user, &password)
        .await
        .expect("the issued credential logs in");
    until(
        "DynamicCredential Ready",
        Duration::from_secs(20),
        async || {
            let o = env
                .api
                .object("cairn.dev", "dynamiccredentials", Some("team-a"), "web-db")?;
            (ready(&o)? == "True/Reconciled").then_some(())
        },
    )
    .await;
    rbac_covers_every_call(&env);
}

/// Renewal, then rotation at max TTL: the Deployment restarts, and the old
/// user is dropped only after the rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_and_two_phase_rotation() {
    let env = setup("4s", "7s").await;
    create(
        &env,
        "secretpolicies",
        "team-a",
        policy("db", &["web"], "database/creds/team-a_ro"),
    )
    .await;
    create(
        &env,
        "deployments",
        "team-a",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web"}]}}}}),
    )
    .await;
    create(
        &env,
        "dynamiccredentials",
        "team-a",
        credential("web-db", json!([{"kind": "Deployment", "name": "web"}])),
    )
    .await;
    let (user1, _, lease1) = until("Secret", Duration::from_secs(30), async || {
        secret_creds(&env, "team-a", "web-db-secret")
    })
    .await;
    // Renewed before its TTL ran out (at 50 % of 4 s).
    until("renewal", Duration::from_secs(10), async || {
        let o = env
            .api
            .object("cairn.dev", "dynamiccredentials", Some("team-a"), "web-db")?;
        let renewed = o.pointer("/status/lastRenewedAt")?.as_str()?.to_owned();
        let created = o
            .pointer("/metadata/creationTimestamp")?
            .as_str()?
            .to_owned();
        (renewed > created && o.pointer("/status/leaseId")?.as_str()? == lease1).then_some(())
    })
    .await;
    // Rotation: a new user in the Secret, the Deployment restarted.
    let (user2, password2, _) = until("rotation", Duration::from_secs(20), async || {
        let c = secret_creds(&env, "team-a", "web-db-secret")?;
        (c.2 != lease1).then_some(c)
    })
    .await;
    assert_ne!(user1, user2);
    env.pg
        .connect(&user2, &password2)
        .await
        .expect("the new credential logs in");
    let deploy = env
        .api
        .object("apps", "deployments", Some("team-a"), "web")
        .unwrap();
    assert!(deploy
        .pointer("/spec/template/metadata/annotations/cairn.dev~1restartedAt")
        .is_some());
    // The old user goes after the rollout and the grace period.
    until("old user dropped", Duration::from_secs(20), async || {
        (!pg_user_exists(&env, &user1).await).then_some(())
    })
    .await;
    // Whatever the Secret holds now (the new user may itself have been
    // rotated meanwhile, 7 s max TTL) is live.
    let (current, _, _) = secret_creds(&env, "team-a", "web-db-secret").unwrap();
    assert!(
        pg_user_exists(&env, &current).await,
        "the Secret's current user {current} does not exist"
    );
    rbac_covers_every_call(&env);
}

/// Killed between issuing a credential and anything else, then restarted:
/// no duplicate, no leak, the Secret's credential is live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_leaves_one_live_credential() {
    let mut env = setup("1h", "24h").await;
    create(
        &env,
        "secretpolicies",
        "team-a",
        policy("db", &["web"], "database/creds/team-a_ro"),
    )
    .await;
    create(
        &env,
        "dynamiccredentials",
        "team-a",
        credential("web-db", json!([])),
    )
    .await;
    let (user, password, lease) = until("Secret", Duration::from_secs(30), async || {
        secret_creds(&env, "team-a", "web-db-secret")
    })
    .await;
    // Simulate a run that died after issuing: a lease owned by the object
    // that no Secret holds.
    let dc = env
        .api
        .object("cairn.dev", "dynamiccredentials", Some("team-a"), "web-db")
        .unwrap();
    let uid = dc["metadata"]["uid"].as_str().unwrap();
    let orphan = env
        .core
        .request(reqwest::Method::GET, "database/creds/team-a_ro")
        .header("X-Vault-Token", env.core.root_token())
        .header(
            "X-Cairn-Lease-Owner",
            format!("team-a/DynamicCredential/web-db/{uid}"),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let orphan_user = orphan["data"]["username"].as_str().unwrap().to_owned();
    if let Some(mut child) = env.operator.take() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    start_operator(&mut env);
    until("orphan revoked", Duration::from_secs(30), async || {
        (!pg_user_exists(&env, &orphan_user).await).then_some(())
    })
    .await;
    // The Secret's credential is untouched and live; one lease remains.
    let (user_after, _, lease_after) = secret_creds(&env, "team-a", "web-db-secret").unwrap();
    assert_eq!(
        (user_after.as_str(), lease_after.as_str()),
        (user.as_str(), lease.as_str())
    );
    env.pg.connect(&user, &password).await.expect("still live");
    assert_eq!(owned_leases(&env, "web-db", uid).await, vec![lease]);
}

/// Leases owned by a pod that no longer exists are revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_gc_revokes_leases_of_gone_pods() {
    let env = setup("1h", "24h").await;
    let issue = |owner: String| {
        let req = env
            .core
            .request(reqwest::Method::GET, "database/creds/team-a_ro")
            .header("X-Vault-Token", env.core.root_token())
            .header("X-Cairn-Lease-Owner", owner);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // A live pod keeps its lease; a pod that never existed (deleted while
    // no operator ran) loses it.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/api/v1/namespaces/team-a/pods", env.api.url()))
        .json(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "alive"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .send()
        .await
        .unwrap();
    let pod: Value = resp.json().await.unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
    let alive = issue(format!("team-a/Pod/alive/{uid}")).await;
    let gone = issue("team-a/Pod/gone/00000000-0000-0000-0000-000000000000".into()).await;
    let gone_user = gone["data"]["username"].as_str().unwrap().to_owned();
    let alive_user = alive["data"]["username"].as_str().unwrap().to_owned();
    until(
        "gone pod's lease revoked",
        Duration::from_secs(30),
        async || (!pg_user_exists(&env, &gone_user).await).then_some(()),
    )
    .await;
    assert!(pg_user_exists(&env, &alive_user).await);
    // Deleting the live pod revokes its lease (delete event).
    let resp = client
        .delete(format!(
            "{}/api/v1/namespaces/team-a/pods/alive",
            env.api.url()
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    until(
        "deleted pod's lease revoked",
        Duration::from_secs(30),
        async || (!pg_user_exists(&env, &alive_user).await).then_some(()),
    )
    .await;
    rbac_covers_every_call(&env);
}

/// The RBAC the chart renders (`helm template`) for the operator's service
/// account covers every call the operator made, and the core's every call of
/// the core (its TokenReviews).
fn rbac_covers_every_call(env: &Env) {
    let requests = env.api.recorder().requests();
    cairn_e2e::chart::assert_rbac_covers("operator", &requests);
    cairn_e2e::chart::assert_rbac_covers("core", &requests);
}
