//! `cairn-agent` against a real `cairn server`: Kubernetes login through a
//! TokenReview endpoint, KV files following the change stream, a PostgreSQL
//! credential whose lease and token are renewed, the core killed and
//! restarted, SIGTERM revoking what the agent owns, and no secret in the logs.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use cairn_e2e::Postgres;
use common::{assert_no_secrets, within, AgentProcess, World};
use serde_json::{json, Value};

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_kv_files_and_follows_changes_within_a_second() {
    let world = World::start(3600, 7200).await;
    world
        .core
        .put(
            "team-a/db",
            json!({"user": "app", "password": "first-Secret-1"}),
        )
        .await;
    let marker = world.dir.path().join("reloaded");
    let config = world.config(
        json!([
            {"name": "db.env", "path": "secret/data/team-a/db", "format": "env", "mode": 0o600},
            {"name": "db.json", "path": "secret/data/team-a/db"},
            {"name": "db.yaml", "path": "secret/data/team-a/db", "format": "yaml"},
            {"name": "password", "path": "secret/data/team-a/db", "key": "password", "mode": 0o400},
            {"name": "conf/url", "path": "secret/data/team-a/db",
             "template": "postgres://{{ secret.data.user }}:{{ secret.data.password }}@db/app\n",
             "command": format!("touch {}", marker.display())},
        ]),
        false,
    );
    let mut agent = AgentProcess::sidecar(&world, &config);
    agent.wait_ready().await;
    assert_eq!(agent.get("/healthz").await.0, 200);
    assert_eq!(agent.get("/nope").await.0, 404);

    assert_eq!(
        world.file("db.env").unwrap(),
        "password='first-Secret-1'\nuser='app'\n"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&world.file("db.json").unwrap()).unwrap(),
        json!({"user": "app", "password": "first-Secret-1"})
    );
    assert_eq!(
        world.file("db.yaml").unwrap(),
        "\"password\": \"first-Secret-1\"\n\"user\": \"app\"\n"
    );
    assert_eq!(world.file("password").unwrap(), "first-Secret-1");
    assert_eq!(
        world.file("conf/url").unwrap(),
        "postgres://app:first-Secret-1@db/app\n"
    );
    assert_eq!(mode_of(&world.output().join("db.env")), 0o600);
    assert_eq!(mode_of(&world.output().join("password")), 0o400);
    assert_eq!(mode_of(&world.output().join("db.json")), 0o644);
    within(Duration::from_secs(5), "the command after render", || {
        marker.exists()
    })
    .await;
    assert_eq!(
        agent
            .metric("cairn_agent_renders_total{result=\"written\"}")
            .await,
        5.0
    );
    assert_eq!(
        agent
            .metric("cairn_agent_logins_total{result=\"success\"}")
            .await,
        1.0
    );

    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let value = format!("changed-Secret-{i}");
        let put_at = Instant::now();
        world
            .core
            .put("team-a/db", json!({"user": "app", "password": value}))
            .await;
        // Files are written in config order; the template is the last.
        let url = format!("postgres://app:{value}@db/app\n");
        within(Duration::from_secs(1), "re-render after kv put", || {
            world.file("conf/url").as_deref() == Some(url.as_str())
        })
        .await;
        slowest = slowest.max(put_at.elapsed());
        assert_eq!(world.file("password").unwrap(), value);
    }
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    assert!(agent.metric("cairn_agent_changes_total").await >= 5.0);

    // A change the template cannot render keeps the last good file.
    world
        .core
        .put("team-a/db", json!({"password": "no-user-Secret"}))
        .await;
    within(Duration::from_secs(2), "the key file follows", || {
        world.file("password").as_deref() == Some("no-user-Secret")
    })
    .await;
    assert_eq!(
        world.file("conf/url").unwrap(),
        "postgres://app:changed-Secret-4@db/app\n"
    );
    assert!(
        agent
            .metric("cairn_agent_renders_total{result=\"failed\"}")
            .await
            >= 1.0
    );

    assert!(agent.terminate().success());
    assert_no_secrets(
        &agent.logs(),
        &[
            "first-Secret-1",
            "changed-Secret-4",
            "no-user-Secret",
            &world.jwt,
            &world.core.root,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_renders_once_or_fails_with_a_clear_message() {
    let world = World::start(3600, 7200).await;
    world
        .core
        .put("team-a/api", json!({"key": "init-Secret-7"}))
        .await;
    let good = world.config(
        json!([{"name": "api", "path": "secret/data/team-a/api", "key": "key"}]),
        true,
    );
    let (status, logs) = AgentProcess::init(&world, &good, &[]);
    assert!(status.success(), "{logs}");
    assert_eq!(world.file("api").unwrap(), "init-Secret-7");
    assert_no_secrets(&logs, &["init-Secret-7", &world.jwt]);

    // A secret that does not exist: fail at once, naming the path.
    let missing = world.config(
        json!([{"name": "x", "path": "secret/data/team-a/missing"}]),
        false,
    );
    let started = Instant::now();
    let (status, logs) = AgentProcess::init(&world, &missing, &[]);
    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(logs.contains("secret/data/team-a/missing"), "{logs}");
    assert!(logs.contains("first render failed"), "{logs}");

    // A path the identity may not read: a 403, not a retry loop.
    let denied = world.config(
        json!([{"name": "x", "path": "secret/data/team-b/db"}]),
        false,
    );
    let (status, logs) = AgentProcess::init(&world, &denied, &[]);
    assert!(!status.success());
    assert!(logs.contains("403"), "{logs}");

    // An unreachable core: retried until --init-timeout, then a failure.
    let mut config: Value = serde_json::from_str(&good).unwrap();
    config["cairn_addr"] = json!(format!("http://127.0.0.1:{}", common::free_port()));
    let started = Instant::now();
    let (status, logs) = AgentProcess::init(&world, &config.to_string(), &["--init-timeout", "1s"]);
    assert!(!status.success());
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(logs.contains("did not finish within"), "{logs}");

    // A config that is not valid JSON of the schema.
    let (status, logs) = AgentProcess::init(&world, "{\"version\": 1}", &[]);
    assert!(!status.success());
    assert!(logs.contains("CAIRN_AGENT_CONFIG"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_files_while_the_core_is_down_and_recovers() {
    let mut world = World::start(3600, 7200).await;
    world
        .core
        .put("team-a/db", json!({"password": "before-Secret"}))
        .await;
    let config = world.config(
        json!([{"name": "pw", "path": "secret/data/team-a/db", "key": "password"}]),
        false,
    );
    let mut agent = AgentProcess::sidecar(&world, &config);
    agent.wait_ready().await;
    assert_eq!(world.file("pw").unwrap(), "before-Secret");

    world.core.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.is_running());
    assert_eq!(world.file("pw").unwrap(), "before-Secret");
    assert_eq!(agent.get("/healthz").await.0, 200);
    assert_eq!(agent.get("/readyz").await.0, 200);

    world.core.restart().await;
    world
        .core
        .put("team-a/db", json!({"password": "after-Secret"}))
        .await;
    let took = within(
        Duration::from_secs(10),
        "re-render after the restart",
        || world.file("pw").as_deref() == Some("after-Secret"),
    )
    .await;
    eprintln!("recovered {took:?} after the restart");
    let (_, metrics) = agent.get("/metrics").await;
    assert!(
        cairn_agent::metrics::sample(&metrics, "cairn_agent_core_errors_total").unwrap() >= 1.0,
        "{metrics}"
    );
    // And the stream works at full speed again.
    world
        .core
        .put("team-a/db", json!({"password": "again-Secret"}))
        .await;
    within(Duration::from_secs(1), "re-render", || {
        world.file("pw").as_deref() == Some("again-Secret")
    })
    .await;
    assert!(agent.terminate().success());
    assert_no_secrets(
        &agent.logs(),
        &["before-Secret", "after-Secret", "again-Secret", &world.jwt],
    );
}

/// `(username, password, lease id)` from the credential file.
fn credential(world: &World) -> Option<(String, String, String)> {
    let text = world.file("pg")?;
    let mut lines = text.lines().map(str::to_owned);
    Some((lines.next()?, lines.next()?, lines.next()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_lease_and_token_then_logs_in_again_near_max_ttl() {
    // Tokens: 3 s TTL, 8 s max; leases: 3 s TTL, 60 s max.
    let world = World::start(3, 8).await;
    let pg = Postgres::start();
    world.core.database(&pg, 3, 60).await;
    let config = world.config(
        json!([{"name": "pg", "path": "database/creds/team-a-app",
                "template": "{{ secret.username }}\n{{ secret.password }}\n{{ lease.id }}\n"}]),
        false,
    );
    let mut agent = AgentProcess::sidecar(&world, &config);
    agent.wait_ready().await;
    let started = Instant::now();
    let (user, password, lease) = credential(&world).unwrap();
    pg.connect(&user, &password).await.unwrap();

    // Past the lease's and the token's first TTL, both were renewed in place.
    let deadline = Instant::now() + Duration::from_secs(8);
    while agent
        .metric("cairn_agent_lease_renewals_total{result=\"success\"}")
        .await
        < 2.0
    {
        assert!(
            Instant::now() < deadline,
            "no lease renewals: {}",
            agent.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(3));
    assert!(
        agent
            .metric("cairn_agent_token_renewals_total{result=\"success\"}")
            .await
            >= 1.0
    );
    let (status, found) = world.core.lookup_lease(&lease).await;
    assert_eq!(status, 200, "{found}");
    assert!(found["data"]["ttl"].as_i64().unwrap() > 0, "{found}");
    assert_eq!(credential(&world).unwrap().0, user, "renewal issued anew");
    pg.connect(&user, &password).await.unwrap();

    // Near the token's max TTL the agent logs in again and, since the old
    // token's lease dies with it, issues a new credential under the new one.
    within(Duration::from_secs(8), "a second login", || {
        std::fs::read_to_string(&agent.log)
            .unwrap()
            .matches("\"logged in\"")
            .count()
            >= 2
    })
    .await;
    within(Duration::from_secs(3), "a new credential", || {
        credential(&world).is_some_and(|c| c.0 != user)
    })
    .await;
    let (user2, password2, _) = credential(&world).unwrap();
    pg.connect(&user2, &password2).await.unwrap();
    assert!(agent.terminate().success());
    assert_no_secrets(&agent.logs(), &[&password, &password2, &world.jwt]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_revokes_the_token_and_its_leases() {
    let world = World::start(3600, 7200).await;
    let pg = Postgres::start();
    world.core.database(&pg, 600, 3600).await;
    let config = world.config(
        json!([{"name": "pg", "path": "database/creds/team-a-app",
                "template": "{{ secret.username }}\n{{ secret.password }}\n{{ lease.id }}\n"}]),
        true,
    );
    let mut agent = AgentProcess::sidecar(&world, &config);
    agent.wait_ready().await;
    let (user, password, lease) = credential(&world).unwrap();
    pg.connect(&user, &password).await.unwrap();
    assert_eq!(world.core.lookup_lease(&lease).await.0, 200);
    let accessor = agent
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "logged in")
        .and_then(|l| l["fields"]["accessor"].as_str().map(str::to_owned))
        .unwrap();
    let (status, _) = world
        .core
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(status, 200);

    assert!(agent.terminate().success());
    assert!(
        agent.logs().contains("revoked the agent's tokens"),
        "{}",
        agent.logs()
    );
    let (status, body) = world.core.lookup_lease(&lease).await;
    assert_ne!(status, 200, "{body}");
    let (status, _) = world
        .core
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_ne!(status, 200);
    assert!(pg.connect(&user, &password).await.is_err());
    // The files stay: the pod is going away, the app may still be reading.
    assert!(world.file("pg").is_some());
    assert_no_secrets(&agent.logs(), &[&password, &world.jwt]);
}
