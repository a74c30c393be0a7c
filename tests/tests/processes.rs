//! The process helpers: a real `cairn server --dev` and a real PostgreSQL.

use cairn_e2e::{CoreServer, Postgres};

#[tokio::test]
async fn core_dev_server_starts_and_answers_health_with_its_root_token() {
    let core = CoreServer::start().await;
    assert!(core.addr().starts_with("http://127.0.0.1:"));
    let health: serde_json::Value = reqwest::get(format!("{}/v1/sys/health", core.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["initialized"], true);
    assert_eq!(health["sealed"], false);
    // The parsed root token is the real one: it can look itself up; a wrong one cannot.
    let me = core
        .request(reqwest::Method::GET, "auth/token/lookup-self")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert!(
        body["data"]["policies"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("root")),
        "{body}"
    );
    let wrong = reqwest::Client::new()
        .get(format!("{}/v1/auth/token/lookup-self", core.addr()))
        .header("X-Vault-Token", "not-the-root-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(
        !core.log().contains(core.root_token()),
        "the root token must not be logged"
    );
}

#[tokio::test]
async fn two_core_servers_run_side_by_side_and_stop_on_drop() {
    let a = CoreServer::start().await;
    let b = CoreServer::start().await;
    assert_ne!(a.addr(), b.addr());
    assert_ne!(a.root_token(), b.root_token());
    let addr = a.addr().to_string();
    drop(a);
    assert!(
        reqwest::get(format!("{addr}/v1/sys/health")).await.is_err(),
        "killed on drop"
    );
    assert!(reqwest::get(format!("{}/v1/sys/health", b.addr()))
        .await
        .unwrap()
        .status()
        .is_success());
}

#[tokio::test]
async fn postgres_starts_and_accepts_a_password_login() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.admin().await;
    let row = admin.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert!(pg.connect("postgres", "wrong-password").await.is_err());
    assert!(pg.template_url().contains("{{username}}"));
}
