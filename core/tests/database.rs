//! The `database` secrets engine against a real PostgreSQL and a real
//! `cairn server`.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use cairn_e2e::Postgres;
use common::Server;
use serde_json::json;

struct Env {
    pg: Postgres,
    server: Server,
    token: String,
    _dir: tempfile::TempDir,
}

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
                      GRANT pg_read_all_data TO \"{{name}}\";";

async fn setup() -> Env {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "", "storage \"inmem\" {}").await;
    let (keys, token) = server.init().await;
    server.unseal(&keys).await;
    let (st, body) = server
        .call(
            "POST",
            "sys/mounts/database",
            Some(&token),
            Some(json!({"type": "database"})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = server
        .call(
            "POST",
            "database/config/pg",
            Some(&token),
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg.template_url(),
                "username": pg.superuser,
                "password": pg.password,
                "allowed_roles": "app,short,y",
            })),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = server
        .call(
            "POST",
            "database/roles/app",
            Some(&token),
            Some(json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h", "max_ttl": "24h"})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    Env {
        pg,
        server,
        token,
        _dir: dir,
    }
}

async fn creds(env: &Env, role: &str) -> (String, String, String) {
    let (st, body) = env
        .server
        .call(
            "GET",
            &format!("database/creds/{role}"),
            Some(&env.token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["renewable"], true, "{body}");
    let u = body["data"]["username"].as_str().unwrap().to_owned();
    let p = body["data"]["password"].as_str().unwrap().to_owned();
    (body["lease_id"].as_str().unwrap().to_owned(), u, p)
}

async fn role_exists(pg: &Postgres, user: &str) -> bool {
    let admin = pg.admin().await;
    admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap()
        .is_some()
}

async fn valid_until(pg: &Postgres, user: &str) -> i64 {
    let admin = pg.admin().await;
    let row = admin
        .query_one(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap();
    row.get::<_, i64>(0)
}

async fn can_login(pg: &Postgres, user: &str, pw: &str) -> bool {
    match pg.connect(user, pw).await {
        Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn config_roles_creds_revoke_renew() {
    let env = setup().await;
    let s = &env.server;
    let t = Some(env.token.as_str());

    // Reads never return the password; lists work.
    let (st, body) = s.call("GET", "database/config/pg", t, None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["plugin_name"], "postgresql-database-plugin");
    assert!(
        !body.to_string().contains(&env.pg.password),
        "password leaked in read"
    );
    let (st, body) = s.call("LIST", "database/config", t, None).await;
    assert_eq!(
        (st, body["data"]["keys"].clone()),
        (200, json!(["pg"])),
        "{body}"
    );
    let (st, body) = s.call("GET", "database/roles/app", t, None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["default_ttl"], 3600);
    assert_eq!(body["data"]["db_name"], "pg");
    let (st, body) = s.call("LIST", "database/roles", t, None).await;
    assert_eq!(
        (st, body["data"]["keys"].clone()),
        (200, json!(["app"])),
        "{body}"
    );

    // Issued credentials log in and can query.
    let (lease, user, pw) = creds(&env, "app").await;
    assert!(user.starts_with("v-app-") && user.len() <= 63, "{user}");
    assert!(pw.len() >= 24);
    let client = env
        .pg
        .connect(&user, &pw)
        .await
        .expect("login with issued credential");
    let rows = client
        .query("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), user);
    drop(client);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let vu = valid_until(&env.pg, &user).await;
    assert!(
        (vu - (now + 3600)).abs() < 30,
        "VALID UNTIL {vu} vs now {now}"
    );

    // Renew moves VALID UNTIL.
    let (st, body) = s
        .call(
            "PUT",
            "sys/leases/renew",
            t,
            Some(json!({"lease_id": lease, "increment": 7200})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let vu2 = valid_until(&env.pg, &user).await;
    assert!(
        vu2 > vu + 3000,
        "renew did not extend VALID UNTIL: {vu} -> {vu2}"
    );

    // Revoke: the user is gone and cannot log in.
    let (st, body) = s
        .call(
            "PUT",
            "sys/leases/revoke",
            t,
            Some(json!({"lease_id": lease})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    assert!(!can_login(&env.pg, &user, &pw).await);
    assert!(!role_exists(&env.pg, &user).await);

    // Role delete and config delete.
    let (st, _) = s.call("DELETE", "database/roles/app", t, None).await;
    assert_eq!(st, 204);
    let (st, _) = s.call("GET", "database/roles/app", t, None).await;
    assert_eq!(st, 404);
    let (st, _) = s.call("POST", "database/reset/pg", t, None).await;
    assert_eq!(st, 204);
    let (st, _) = s.call("DELETE", "database/config/pg", t, None).await;
    assert_eq!(st, 204);
    let (st, _) = s.call("LIST", "database/config", t, None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn short_lease_expires_and_drops_the_user() {
    let env = setup().await;
    let t = Some(env.token.as_str());
    let (st, body) = env
        .server
        .call(
            "POST",
            "database/roles/short",
            t,
            Some(json!({"db_name": "pg", "creation_statements": CREATE, "default_ttl": 2, "max_ttl": 2})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (_, user, pw) = creds(&env, "short").await;
    assert!(can_login(&env.pg, &user, &pw).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if !role_exists(&env.pg, &user).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "user {user} still exists after its 2 s lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!can_login(&env.pg, &user, &pw).await);
}

#[tokio::test]
async fn rotate_root_replaces_the_root_password() {
    let env = setup().await;
    let t = Some(env.token.as_str());
    let (st, body) = env
        .server
        .call("POST", "database/rotate-root/pg", t, None)
        .await;
    assert_eq!(st, 204, "{body}");
    assert!(
        !can_login(&env.pg, &env.pg.superuser, &env.pg.password).await,
        "old root password still works"
    );
    let (lease, user, pw) = creds(&env, "app").await;
    assert!(can_login(&env.pg, &user, &pw).await);
    // Revocation also works with the rotated root password.
    let (st, body) = env
        .server
        .call(
            "PUT",
            "sys/leases/revoke",
            t,
            Some(json!({"lease_id": lease})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    assert!(!can_login(&env.pg, &user, &pw).await);
}

#[tokio::test]
async fn injection_attempts_are_refused() {
    let env = setup().await;
    let s = &env.server;
    let t = Some(env.token.as_str());
    for bad in ["a\"b", "x';DROP", "a%20b", "r.b"] {
        let enc: String = percent_encode(bad);
        let (st, body) = s
            .call(
                "POST",
                &format!("database/roles/{enc}"),
                t,
                Some(json!({"db_name": "pg", "creation_statements": [CREATE]})),
            )
            .await;
        assert!(
            st == 400 || st == 404,
            "role name {bad:?} accepted: {st} {body}"
        );
    }
    let (st, body) = s
        .call(
            "POST",
            "database/roles/x",
            t,
            Some(
                json!({"db_name": "pg\"; DROP ROLE postgres; --", "creation_statements": [CREATE]}),
            ),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = s
        .call(
            "POST",
            "database/roles/y",
            t,
            Some(json!({"db_name": "pg", "creation_statements": ["SELECT {{evil}}"]})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    // Unknown placeholders fail at issue time, with no lease.
    let (st, body) = s.call("GET", "database/creds/y", t, None).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.to_string().contains("placeholder"), "{body}");
    let (st, _) = s
        .call("LIST", "sys/leases/lookup/database/creds/y/", t, None)
        .await;
    assert_eq!(st, 404);
    // Allowed roles are enforced.
    let (st, body) = s
        .call(
            "POST",
            "database/roles/z",
            t,
            Some(json!({"db_name": "pg", "creation_statements": [CREATE]})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = s.call("GET", "database/creds/z", t, None).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.to_string().contains("not an allowed role"), "{body}");
    let (st, _) = s.call("GET", "database/config/..%2f", t, None).await;
    assert!(st == 400 || st == 404);
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn postgres_down_gives_an_error_and_no_lease() {
    let mut env = setup().await;
    let t = Some(env.token.clone());
    env.pg.stop();
    let (st, body) = env
        .server
        .call("GET", "database/creds/app", t.as_deref(), None)
        .await;
    assert!(st == 400 || st == 500, "{st} {body}");
    assert!(!body.to_string().contains(&env.pg.password));
    let (st, body) = env
        .server
        .call(
            "LIST",
            "sys/leases/lookup/database/creds/app/",
            t.as_deref(),
            None,
        )
        .await;
    assert_eq!(st, 404, "a lease was recorded: {body}");
    // A failing creation statement leaves no user behind either.
    env.pg.start_server();
    let (st, body) = env
        .server
        .call(
            "POST",
            "database/roles/app",
            t.as_deref(),
            Some(json!({"db_name": "pg", "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'",
                "GRANT no_such_role TO \"{{name}}\"",
            ]})),
        )
        .await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = env
        .server
        .call("GET", "database/creds/app", t.as_deref(), None)
        .await;
    assert_eq!(st, 400, "{body}");
    let admin = env.pg.admin().await;
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-app-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "orphan user left behind");
    let (st, _) = env
        .server
        .call(
            "LIST",
            "sys/leases/lookup/database/creds/app/",
            t.as_deref(),
            None,
        )
        .await;
    assert_eq!(st, 404);
}

/// `rolpassword` as PostgreSQL stores it.
async fn stored_password(pg: &Postgres, user: &str) -> String {
    let admin = pg.admin().await;
    let row = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap();
    row.get::<_, String>(0)
}

#[tokio::test]
async fn passwords_reach_postgres_as_scram_verifiers() {
    let env = setup().await;
    let s = &env.server;
    let t = Some(env.token.as_str());

    // Default: Cairn sends a SCRAM-SHA-256 verifier with its default count;
    // the plaintext never reaches PostgreSQL, and the password logs in
    // (the harness's host connections use scram-sha-256 authentication).
    let (st, body) = s.call("GET", "database/config/pg", t, None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["password_authentication"], "scram-sha-256");
    assert_eq!(body["data"]["scram_iterations"], 16);
    let (_, user, pw) = creds(&env, "app").await;
    let stored = stored_password(&env.pg, &user).await;
    assert!(stored.starts_with("SCRAM-SHA-256$16:"), "{stored}");
    assert!(!stored.contains(&pw));
    assert!(can_login(&env.pg, &user, &pw).await);
    assert!(!can_login(&env.pg, &user, "not-the-password").await);

    // A larger count is honoured; Vault's "password" sends the plaintext,
    // which PostgreSQL hashes with its own settings (4,096 iterations). (Root
    // rotation hashes the same way: `rotate_root_replaces_the_root_password`
    // logs in with the rotated root password.)
    for (config, stored_prefix) in [
        (json!({"scram_iterations": 4096}), "SCRAM-SHA-256$4096:"),
        (
            json!({"password_authentication": "password"}),
            "SCRAM-SHA-256$4096:",
        ),
        (
            json!({"password_authentication": "scram-sha-256", "scram_iterations": 32}),
            "SCRAM-SHA-256$32:",
        ),
    ] {
        let (st, body) = s
            .call("POST", "database/config/pg", t, Some(config.clone()))
            .await;
        assert_eq!(st, 204, "{config}: {body}");
        let (_, user, pw) = creds(&env, "app").await;
        let stored = stored_password(&env.pg, &user).await;
        assert!(stored.starts_with(stored_prefix), "{config}: {stored}");
        assert!(can_login(&env.pg, &user, &pw).await, "{config}");
    }

    // Bad values are refused and change nothing.
    for bad in [
        json!({"password_authentication": "md5"}),
        json!({"scram_iterations": 0}),
        json!({"scram_iterations": "lots"}),
        json!({"scram_iterations": 2_000_000}),
    ] {
        let (st, body) = s
            .call("POST", "database/config/pg", t, Some(bad.clone()))
            .await;
        assert_eq!(st, 400, "{bad}: {body}");
    }
    let (_, body) = s.call("GET", "database/config/pg", t, None).await;
    assert_eq!(body["data"]["scram_iterations"], 32, "{body}");
}

#[tokio::test]
async fn concurrent_revocations_are_dropped_together_and_fail_alone() {
    let env = setup().await;
    let mut issued = Vec::new();
    for _ in 0..24 {
        issued.push(creds(&env, "app").await);
    }
    // One user PostgreSQL cannot drop: it holds a privilege on a table in
    // another database, which DROP OWNED (run in the connection's database)
    // cannot revoke.
    let stuck = issued[5].1.clone();
    let admin = env.pg.admin().await;
    admin
        .batch_execute("CREATE DATABASE cairn_stuck")
        .await
        .unwrap();
    let mut cfg: tokio_postgres::Config = env
        .pg
        .url(&env.pg.superuser, &env.pg.password)
        .replace("/postgres?", "/cairn_stuck?")
        .parse()
        .unwrap();
    cfg.connect_timeout(Duration::from_secs(5));
    let (other, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    other
        .batch_execute(&format!(
            "CREATE TABLE t (x int); GRANT SELECT ON t TO \"{stuck}\""
        ))
        .await
        .unwrap();

    // Revoke all at once, so that the drops are batched.
    let calls = issued.iter().map(|(lease, _, _)| {
        env.server.call(
            "PUT",
            "sys/leases/revoke",
            Some(&env.token),
            Some(json!({"lease_id": lease})),
        )
    });
    let results = futures::future::join_all(calls).await;
    for ((lease, user, _), (st, body)) in issued.iter().zip(&results) {
        if *user == stuck {
            assert_eq!(*st, 400, "{body}");
            assert!(body.to_string().contains("cannot be dropped"), "{body}");
            let (st, body) = env
                .server
                .call(
                    "PUT",
                    "sys/leases/lookup",
                    Some(&env.token),
                    Some(json!({"lease_id": lease})),
                )
                .await;
            assert_eq!(st, 200, "the failed lease is kept: {body}");
        } else {
            assert_eq!(*st, 204, "{user}: {body}");
            assert!(!role_exists(&env.pg, user).await, "{user} still exists");
        }
    }
    assert!(role_exists(&env.pg, &stuck).await);
}

/// A client that goes away while its credential is being created still
/// leaves a leased user, never an orphan: the request runs to its end.
#[tokio::test]
async fn a_client_gone_mid_request_still_gets_its_user_leased() {
    use tokio::io::AsyncWriteExt;
    let env = setup().await;
    let t = Some(env.token.clone());
    // `y` is an allowed role; its creation takes half a second.
    let (st, body) = env
        .server
        .call(
            "POST",
            "database/roles/y",
            t.as_deref(),
            Some(json!({"db_name": "pg", "creation_statements": [
                "SELECT pg_sleep(0.5)",
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
            ]})),
        )
        .await;
    assert_eq!(st, 204, "{body}");

    let mut stream = tokio::net::TcpStream::connect(&env.server.addr)
        .await
        .unwrap();
    let request = format!(
        "GET /v1/database/creds/y HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {}\r\n\r\n",
        env.server.addr, env.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The client hangs up once the creation is under way in PostgreSQL.
    let admin = env.pg.admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sleeping: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if sleeping > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the creation never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(10);
    let leases = loop {
        let (st, body) = env
            .server
            .call(
                "LIST",
                "sys/leases/lookup/database/creds/y/",
                t.as_deref(),
                None,
            )
            .await;
        if st == 200 {
            break body["data"]["keys"].as_array().unwrap().len();
        }
        assert!(
            Instant::now() < deadline,
            "no lease after the client left: {st} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(leases, 1);
    let users: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-y-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1, "the user and its lease go together");
}
