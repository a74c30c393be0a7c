//! Broker tests: devices on real files, group commit, fail-closed, reopen.

use super::*;
use serde_json::{json, Value};

const SALT: [u8; 32] = [0x5a; 32];
const TOKEN: &str = "cairn.ROOT-TOKEN-VALUE";
const ACCESSOR: &str = "ACCESSOR-VALUE";
const SECRET: &str = "correct-horse-battery-staple";

fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file_options(path: &std::path::Path) -> BTreeMap<String, String> {
    options(&[("file_path", path.to_str().expect("utf8 temp path"))])
}

/// The caller of the test requests: a root token with its policies.
struct Caller {
    policies: Vec<String>,
}

impl Caller {
    fn root() -> Self {
        Caller {
            policies: vec!["root".to_string()],
        }
    }

    /// A request as the HTTP layer would describe it.
    fn request<'a>(&'a self, id: &'a str, body: Option<&'a Value>) -> AuditRequest<'a> {
        AuditRequest {
            id,
            operation: "update",
            path: "secret/data/app",
            data: body.and_then(Value::as_object),
            remote_address: "127.0.0.1",
            auth: Some(AuditAuth {
                client_token: Some(TOKEN),
                accessor: Some(ACCESSOR),
                display_name: "root",
                policies: &self.policies,
                token_ttl: 0,
            }),
        }
    }
}

/// Logs a request whose body holds a secret.
async fn log_one(broker: &AuditBroker, id: &str) -> Result<(), AuditError> {
    let body = json!({"data": {"password": SECRET}});
    let caller = Caller::root();
    broker.log_request(&caller.request(id, Some(&body))).await
}

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("audit file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

#[test]
fn the_broker_and_its_futures_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let broker = AuditBroker::new(SALT);
    send_sync(&broker);
    let caller = Caller::root();
    send(broker.log_request(&caller.request("r", None)));
}

#[tokio::test]
async fn with_no_device_logging_succeeds_and_writes_nothing() {
    let broker = AuditBroker::new(SALT);
    assert!(broker.is_empty());
    log_one(&broker, "r1").await.expect("no device, no failure");
    assert_eq!(broker.lines_written(), 0);
}

#[tokio::test]
async fn enable_list_disable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    let broker = AuditBroker::new(SALT);
    broker
        .enable("file", "file", "main log", file_options(&path))
        .await
        .expect("enable");
    assert!(!broker.is_empty());
    let list = broker.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].path, "file/");
    let shape = serde_json::to_value(devices_by_path(&list)).expect("serialize");
    assert_eq!(
        shape,
        json!({"file/": {"type": "file", "description": "main log", "options": {"file_path": path.to_str()}, "path": "file/", "local": false}})
    );

    let again = broker
        .enable(
            "/file/",
            "file",
            "",
            file_options(&dir.path().join("b.log")),
        )
        .await;
    assert!(matches!(again, Err(AuditError::PathInUse(p)) if p == "file/"));
    let same_file = broker
        .enable(
            "other",
            "file",
            "",
            file_options(&dir.path().join("./audit.log")),
        )
        .await;
    assert!(
        matches!(same_file, Err(AuditError::FileInUse { ref device, .. }) if device == "file/"),
        "{same_file:?}"
    );
    let socket = broker
        .enable("sock", "socket", "", options(&[("address", "x")]))
        .await;
    assert!(matches!(socket, Err(AuditError::UnknownType(_))));
    let bad = broker
        .enable(
            "bad",
            "file",
            "",
            options(&[("file_path", "x"), ("mode", "0777")]),
        )
        .await;
    match bad {
        Err(err @ AuditError::Options(_)) => {
            assert!(err.to_string().contains("option mode"), "{err}")
        }
        other => panic!("mode 0777 must be refused: {other:?}"),
    }
    assert!(matches!(
        broker.enable("", "file", "", file_options(&path)).await,
        Err(AuditError::InvalidPath(_))
    ));
    let unopenable = broker
        .enable("dir", "file", "", file_options(dir.path()))
        .await;
    assert!(
        matches!(unopenable, Err(AuditError::Open { .. })),
        "{unopenable:?}"
    );
    assert_eq!(broker.list().len(), 1);

    broker.disable("file/").await.expect("disable");
    assert!(broker.is_empty());
    assert!(matches!(
        broker.disable("file").await,
        Err(AuditError::NotFound(_))
    ));
}

#[tokio::test]
async fn lines_hold_hashes_never_raw_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    let broker = AuditBroker::new(SALT);
    broker
        .enable("file", "file", "", file_options(&path))
        .await
        .expect("enable");
    log_one(&broker, "req-1").await.expect("request logged");
    let envelope = json!({"request_id": "req-1", "data": {"password": SECRET}, "lease_id": "", "renewable": false, "lease_duration": 0});
    let caller = Caller::root();
    let response = AuditResponse {
        request: caller.request("req-1", None),
        status: 200,
        data: Some(&envelope),
        error: None,
    };
    broker
        .log_response(&response)
        .await
        .expect("response logged");
    broker.disable("file").await.expect("disable");

    let text = std::fs::read_to_string(&path).expect("audit file");
    for raw in [TOKEN, ACCESSOR, SECRET] {
        assert!(!text.contains(raw), "{raw} appears in the audit log");
    }
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "request");
    assert_eq!(
        lines[0]["request"]["data"]["data"]["password"],
        broker.hash(SECRET)
    );
    assert_eq!(lines[0]["auth"]["client_token"], broker.hash(TOKEN));
    assert_eq!(lines[1]["type"], "response");
    assert_eq!(lines[1]["request"]["id"], "req-1");
    assert_eq!(
        lines[1]["response"]["data"]["password"],
        broker.hash(SECRET)
    );
    assert!(humantime::parse_rfc3339(lines[1]["time"].as_str().expect("time")).is_ok());
    assert_eq!(verify(&path).expect("chain intact").lines, 2);
}

/// 200 concurrent entries through a device in `fsync` mode `mode`; returns
/// the fsyncs counted once every entry was acknowledged (and, in batch mode,
/// once the syncer caught up).
async fn concurrent_entries(mode: &str) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    let broker = Arc::new(AuditBroker::new(SALT));
    let mut opts = file_options(&path);
    opts.insert("fsync".into(), mode.into());
    broker
        .enable("file", "file", "", opts)
        .await
        .expect("enable");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let broker = broker.clone();
        tasks.spawn(async move { log_one(&broker, &format!("req-{i}")).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("logged");
    }
    assert_eq!(broker.lines_written(), 200);
    if mode == "batch" {
        // The syncer runs beside the writer; give it a bounded moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while broker.fsyncs() == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let fsyncs = broker.fsyncs();
    broker.disable("file").await.expect("disable");

    assert_eq!(verify(&path).expect("chain intact").lines, 200);
    let mut ids: Vec<String> = read_lines(&path)
        .iter()
        .map(|l| l["request"]["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every entry written exactly once");
    fsyncs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_entries_share_fsyncs() {
    // Typically 10-20 groups on this machine; half is a loose bound that
    // still fails if every entry got its own fsync.
    let always = concurrent_entries("always").await;
    assert!(
        (1..=100).contains(&always),
        "200 concurrent entries took {always} fsyncs"
    );
    let batch = concurrent_entries("batch").await;
    assert!(
        (1..=100).contains(&batch),
        "batch mode took {batch} fsyncs for 200 entries"
    );
}

#[tokio::test]
async fn a_full_disk_fails_closed() {
    let broker = AuditBroker::new(SALT);
    broker
        .enable("full", "file", "", options(&[("file_path", "/dev/full")]))
        .await
        .expect("open succeeds");
    assert!(matches!(
        log_one(&broker, "r1").await,
        Err(AuditError::NotRecorded)
    ));
    let caller = Caller::root();
    let response = AuditResponse {
        request: caller.request("r1", None),
        status: 200,
        data: None,
        error: None,
    };
    assert!(matches!(
        broker.log_response(&response).await,
        Err(AuditError::NotRecorded)
    ));
}

#[tokio::test]
async fn one_working_device_is_enough() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    let broker = AuditBroker::new(SALT);
    broker
        .enable("full", "file", "", options(&[("file_path", "/dev/full")]))
        .await
        .expect("enable full");
    broker
        .enable("file", "file", "", file_options(&path))
        .await
        .expect("enable file");
    log_one(&broker, "r1")
        .await
        .expect("recorded by the working device");
    broker.disable("file").await.expect("disable");
    assert_eq!(verify(&path).expect("intact").lines, 1);
    assert!(matches!(
        log_one(&broker, "r2").await,
        Err(AuditError::NotRecorded)
    ));
}

#[tokio::test]
async fn stdout_and_discard_devices_record() {
    let broker = AuditBroker::new(SALT);
    broker
        .enable("out", "file", "", options(&[("file_path", "stdout")]))
        .await
        .expect("stdout");
    log_one(&broker, "r1").await.expect("written to stdout");
    assert_eq!(broker.lines_written(), 1);
    assert_eq!(broker.fsyncs(), 0, "stdout is flushed, not synced");
    broker.disable("out").await.expect("disable");

    broker
        .enable("null", "file", "", options(&[("file_path", "discard")]))
        .await
        .expect("discard");
    log_one(&broker, "r2").await.expect("discarded");
    assert_eq!(broker.lines_written(), 1);
}

#[tokio::test]
async fn reopening_continues_the_chain_and_keeps_acknowledged_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.log");
    let broker = AuditBroker::new(SALT);
    broker
        .enable("file", "file", "", file_options(&path))
        .await
        .expect("enable");
    for i in 0..3 {
        log_one(&broker, &format!("a{i}")).await.expect("logged");
    }
    broker.disable("file").await.expect("disable");
    assert_eq!(
        read_lines(&path).len(),
        3,
        "every acknowledged line is on disk after disable"
    );

    // A new broker, as after a restart, with a different device path.
    let broker = AuditBroker::new(SALT);
    broker
        .enable("again", "file", "", file_options(&path))
        .await
        .expect("reopen");
    for i in 0..2 {
        log_one(&broker, &format!("b{i}")).await.expect("logged");
    }
    broker.disable("again").await.expect("disable");
    assert_eq!(verify(&path).expect("one chain across reopen").lines, 5);
    let lines = read_lines(&path);
    assert_eq!(lines[3]["prev_hash"], lines[2]["hash"]);
}

#[tokio::test]
async fn log_raw_and_hmac_accessor_options_apply_per_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hashed = dir.path().join("hashed.log");
    let raw = dir.path().join("raw.log");
    let broker = AuditBroker::new(SALT);
    broker
        .enable(
            "hashed",
            "file",
            "",
            options(&[
                ("file_path", hashed.to_str().expect("utf8")),
                ("hmac_accessor", "false"),
            ]),
        )
        .await
        .expect("enable");
    broker
        .enable(
            "raw",
            "file",
            "",
            options(&[
                ("file_path", raw.to_str().expect("utf8")),
                ("log_raw", "true"),
            ]),
        )
        .await
        .expect("enable");
    log_one(&broker, "r1").await.expect("logged");
    broker.disable("hashed").await.expect("disable");
    broker.disable("raw").await.expect("disable");
    let hashed = read_lines(&hashed);
    assert_eq!(hashed[0]["auth"]["accessor"], ACCESSOR);
    assert_eq!(hashed[0]["auth"]["client_token"], broker.hash(TOKEN));
    let raw = read_lines(&raw);
    assert_eq!(raw[0]["auth"]["client_token"], TOKEN);
    assert_eq!(raw[0]["request"]["data"]["data"]["password"], SECRET);
}

#[test]
fn debug_and_hash_do_not_reveal_the_salt() {
    let broker = AuditBroker::new([0xC7; 32]);
    let printed = format!("{broker:?}");
    assert!(printed.contains("<redacted>"));
    assert!(
        !printed.contains("199") && !printed.to_lowercase().contains("c7"),
        "{printed}"
    );
    assert!(broker.hash("x").starts_with("hmac-sha256:"));
    assert_ne!(broker.hash("x"), AuditBroker::new([0xC8; 32]).hash("x"));
}
