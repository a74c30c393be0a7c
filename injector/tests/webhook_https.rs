//! The `cairn-injector` process over HTTPS with real `AdmissionReview` JSON:
//! injection, denial, skipping, malformed and oversized bodies, certificate
//! rotation, and the probe / metrics port.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;

use base64::Engine as _;
use serde_json::json;

use common::{
    admission_review, apply, client, pod, post_review, validate_against_schema, Injector, TestCa,
};

fn write_pair(dir: &Path, cert: &str, key: &str) {
    // As a Kubernetes Secret volume does: new files renamed into place.
    for (name, text) in [("tls.crt", cert), ("tls.key", key)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

#[tokio::test]
async fn admission_reviews_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key, _) = ca.issue("cairn-injector");
    write_pair(dir.path(), &cert, &key);
    let injector = Injector::start(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        &[],
    );
    let client = client(&ca);

    // Injected: a base64 JSONPatch that applies to the pod and yields a valid pod.
    let web = pod("deployment-web.json");
    let answer = post_review(&client, &injector, &admission_review("uid-inject", &web)).await;
    assert_eq!(answer["uid"], "uid-inject");
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["patchType"], "JSONPatch");
    let patch_json = base64::engine::general_purpose::STANDARD
        .decode(answer["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch_json).unwrap();
    let patched = apply(&web, &patch);
    assert_eq!(
        patched["metadata"]["annotations"]["cairn.dev/status"],
        "injected"
    );
    assert_eq!(patched["spec"]["initContainers"][0]["name"], "cairn-agent");
    validate_against_schema(&[("webhook-web".into(), patched.clone())]);

    // The pod as created (patched) again: left alone.
    let again = post_review(&client, &injector, &admission_review("uid-again", &patched)).await;
    assert_eq!(
        (again["allowed"].clone(), again.get("patch")),
        (json!(true), None)
    );

    // Denied: the message names the annotation, code 403.
    let mut vault = pod("vault-app.json");
    vault["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-template-api.env"] =
        json!("{{ with secret \"internal/data/api\" }}{{ .Data.data | toYAML }}{{ end }}");
    let denied = post_review(&client, &injector, &admission_review("uid-deny", &vault)).await;
    assert_eq!(denied["uid"], "uid-deny");
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["status"]["code"], 403);
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("vault.hashicorp.com/agent-inject-template-api.env")
            && message.contains("toYAML"),
        "{message}"
    );

    // Skipped: kube-system, and a pod without the annotation; no patch.
    let mut system = pod("deployment-web.json");
    system["metadata"]["namespace"] = json!("kube-system");
    let skipped = post_review(&client, &injector, &admission_review("uid-skip", &system)).await;
    assert_eq!(
        (skipped["allowed"].clone(), skipped.get("patch")),
        (json!(true), None)
    );

    // The namespace comes from the request when the object has none.
    let mut unnamed = pod("job-migrate.json");
    unnamed["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let mut review = admission_review("uid-ns", &unnamed);
    review["request"]["namespace"] = json!("kube-system");
    let skipped = post_review(&client, &injector, &review).await;
    assert_eq!(skipped.get("patch"), None);

    // Malformed and oversized bodies: HTTP errors, not reviews.
    let bad = client
        .post(injector.url("/mutate"))
        .header("content-type", "application/json")
        .body("{\"kind\": \"AdmissionReview\"")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let huge = client
        .post(injector.url("/mutate"))
        .body(vec![b' '; 4 * 1024 * 1024])
        .send()
        .await;
    // The server may close the connection before reading it all.
    if let Ok(r) = huge {
        assert_eq!(r.status(), 413);
    }
    let missing = client.get(injector.url("/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // Probes and metrics on the plain port.
    let http = reqwest::Client::new();
    let base = format!("http://{}", injector.http);
    for path in ["/healthz", "/readyz"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "cairn_injector_admissions_total{outcome=\"injected\"} 1",
        "cairn_injector_admissions_total{outcome=\"denied\"} 1",
        "cairn_injector_admissions_total{outcome=\"skipped\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(
        metrics.contains("cairn_injector_admissions_total{outcome=\"invalid\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_injector_admission_duration_seconds_bucket"),
        "{metrics}"
    );
}

async fn served_cert(ca: &TestCa, injector: &Injector) -> Vec<u8> {
    // A new client: a new connection, so a new handshake.
    let response = client(ca)
        .get(injector.url("/healthz"))
        .send()
        .await
        .unwrap();
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .unwrap();
    info.peer_certificate().unwrap().to_vec()
}

#[tokio::test]
async fn rotated_certificate_is_served_on_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert_a, key_a, der_a) = ca.issue("first");
    write_pair(dir.path(), &cert_a, &key_a);
    let injector = Injector::start(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
        &[],
    );
    assert_eq!(served_cert(&ca, &injector).await, der_a);

    let (cert_b, key_b, der_b) = ca.issue("second");
    write_pair(dir.path(), &cert_b, &key_b);
    assert_eq!(served_cert(&ca, &injector).await, der_b);

    // A broken pair (key of another certificate) is not served; the last
    // good one stays.
    let (cert_c, _, _) = ca.issue("third");
    write_pair(dir.path(), &cert_c, &key_b);
    assert_eq!(served_cert(&ca, &injector).await, der_b);
    assert!(
        injector.logs().contains("cannot be loaded"),
        "{}",
        injector.logs()
    );

    // Fixed files are picked up again.
    let (cert_d, key_d, der_d) = ca.issue("fourth");
    write_pair(dir.path(), &cert_d, &key_d);
    assert_eq!(served_cert(&ca, &injector).await, der_d);

    let metrics = reqwest::get(format!("http://{}/metrics", injector.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("cairn_injector_tls_reloads_total{result=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_injector_tls_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
}

#[test]
fn refuses_to_start_without_a_usable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("tls.key"), "not a key").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-injector"))
        .args(["--listen", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .args(["--agent-image", "a", "--cairn-addr", "https://c:8200"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("failed to load the serving certificate"),
        "{stdout}"
    );
}
