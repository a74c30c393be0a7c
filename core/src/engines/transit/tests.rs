//! Engine-level tests: requests in, responses out, over a real barrier on
//! memory storage.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::input::B64;
use super::*;
use crate::barrier::{Barrier, Keyring, View};
use crate::storage::memory::MemoryStorage;

struct Transit {
    engine: TransitEngine,
    view: View,
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Transit {
    fn new() -> Transit {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryStorage::default())));
        barrier.set_keyring(Some(Keyring::generate(0)));
        Transit {
            engine: TransitEngine::new(),
            view: View::new(barrier, "logical/transit/"),
        }
    }

    /// The same storage seen by a fresh engine: nothing cached.
    fn restarted(&self) -> Transit {
        Transit {
            engine: TransitEngine::new(),
            view: self.view.clone(),
        }
    }

    async fn call(&self, op: Operation, path: &str, body: Value) -> Result<Response, EngineError> {
        let mut req = Request::new(op, path);
        req.data = obj(body).into();
        req.mount_point = "transit/".to_owned();
        self.engine.handle(req, &self.view).await
    }

    async fn ok(&self, op: Operation, path: &str, body: Value) -> Value {
        match self.call(op, path, body).await {
            Ok(r) => {
                assert_eq!(r.status, 0, "{op:?} {path}: status {}", r.status);
                r.data.unwrap_or(Value::Null)
            }
            Err(e) => panic!("{op:?} {path} failed: {e:?}"),
        }
    }

    /// The message of a 400.
    async fn bad(&self, op: Operation, path: &str, body: Value) -> String {
        match self.call(op, path, body).await {
            Err(EngineError::BadRequest(m)) => m,
            other => panic!("{op:?} {path}: expected 400, got {other:?}"),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(Operation::Update, path, body).await
    }

    async fn create_key(&self, name: &str, body: Value) -> Value {
        self.ok(Operation::Update, &format!("keys/{name}"), body)
            .await
    }

    async fn encrypt(&self, key: &str, plaintext: &[u8]) -> String {
        let data = self
            .post(
                &format!("encrypt/{key}"),
                json!({"plaintext": b64(plaintext)}),
            )
            .await;
        data["ciphertext"].as_str().unwrap_or_default().to_owned()
    }

    async fn decrypt(&self, key: &str, ciphertext: &str) -> Vec<u8> {
        let data = self
            .post(&format!("decrypt/{key}"), json!({"ciphertext": ciphertext}))
            .await;
        B64.decode(data["plaintext"].as_str().unwrap_or_default())
            .unwrap()
    }
}

#[tokio::test]
async fn both_key_types_round_trip() {
    let t = Transit::new();
    for (name, kind) in [("aes", "aes256-gcm96"), ("chacha", "chacha20-poly1305")] {
        let key = t.create_key(name, json!({"type": kind})).await;
        assert_eq!(key["type"], kind);
        let ct = t.encrypt(name, b"the eagle lands at noon").await;
        assert!(ct.starts_with("cairn:v1:"), "{ct}");
        assert_eq!(t.decrypt(name, &ct).await, b"the eagle lands at noon");
        assert_ne!(
            t.encrypt(name, b"the eagle lands at noon").await,
            ct,
            "nonces must differ"
        );
        // Empty plaintext is allowed, as in Vault.
        let empty = t.encrypt(name, b"").await;
        assert_eq!(t.decrypt(name, &empty).await, b"");
    }
}

#[tokio::test]
async fn keys_survive_a_restart_of_the_engine() {
    let t = Transit::new();
    t.create_key("k", json!({"type": "chacha20-poly1305"}))
        .await;
    let v1 = t.encrypt("k", b"one").await;
    t.post("keys/k/rotate", json!({})).await;
    let v2 = t.encrypt("k", b"two").await;
    let fresh = t.restarted();
    assert_eq!(fresh.decrypt("k", &v1).await, b"one");
    assert_eq!(fresh.decrypt("k", &v2).await, b"two");
    assert_eq!(
        fresh.ok(Operation::Read, "keys/k", json!({})).await["type"],
        "chacha20-poly1305"
    );
}

#[tokio::test]
async fn read_shows_settings_and_no_key_material() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    let data = t.ok(Operation::Read, "keys/k", json!({})).await;
    for (field, want) in [
        ("name", json!("k")),
        ("type", json!("aes256-gcm96")),
        ("derived", json!(false)),
        ("deletion_allowed", json!(false)),
        ("exportable", json!(false)),
        ("latest_version", json!(1)),
        ("min_available_version", json!(0)),
        ("min_decryption_version", json!(1)),
        ("min_encryption_version", json!(0)),
        ("supports_encryption", json!(true)),
        ("supports_decryption", json!(true)),
        ("supports_derivation", json!(true)),
        ("supports_signing", json!(false)),
    ] {
        assert_eq!(data[field], want, "{field}");
    }
    assert!(
        data["keys"]["1"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000),
        "{data}"
    );
    let stored = store::load(&t.view, "k").await.unwrap().unwrap();
    let text = data.to_string();
    for v in stored.versions() {
        assert!(!text.contains(&b64(v.key())) && !text.contains(&hex::encode(v.key())));
        assert!(!text.contains(&b64(v.hmac_key())));
    }
}

#[tokio::test]
async fn list_and_delete_follow_deletion_allowed() {
    let t = Transit::new();
    assert!(matches!(
        t.call(Operation::List, "keys/", json!({})).await,
        Err(EngineError::NotFound)
    ));
    t.create_key("a", json!({})).await;
    t.create_key("b", json!({})).await;
    assert_eq!(
        t.ok(Operation::List, "keys/", json!({})).await,
        json!({"keys": ["a", "b"]})
    );
    assert_eq!(
        t.ok(Operation::List, "keys", json!({})).await,
        json!({"keys": ["a", "b"]})
    );

    let msg = t.bad(Operation::Delete, "keys/a", json!({})).await;
    assert_eq!(msg, "deletion is not allowed for this key");
    let ct = t.encrypt("a", b"x").await;
    let data = t
        .post("keys/a/config", json!({"deletion_allowed": true}))
        .await;
    assert_eq!(data["deletion_allowed"], true);
    t.ok(Operation::Delete, "keys/a", json!({})).await;
    assert!(matches!(
        t.call(Operation::Read, "keys/a", json!({})).await,
        Err(EngineError::NotFound)
    ));
    assert_eq!(
        t.bad(Operation::Update, "decrypt/a", json!({"ciphertext": ct}))
            .await,
        "encryption key not found"
    );
    assert_eq!(
        t.ok(Operation::List, "keys/", json!({})).await,
        json!({"keys": ["b"]})
    );
    assert!(t
        .bad(Operation::Delete, "keys/a", json!({}))
        .await
        .contains("not found"));
}

#[tokio::test]
async fn create_refuses_what_is_not_offered_and_keeps_existing_keys() {
    let t = Transit::new();
    for body in [
        json!({"exportable": true}),
        json!({"allow_plaintext_backup": true}),
        json!({"derived": true, "convergent_encryption": true}),
        json!({"auto_rotate_period": "24h"}),
        json!({"type": "ed25519"}),
        json!({"type": "nonsense"}),
    ] {
        t.bad(Operation::Update, "keys/k", body).await;
    }
    assert!(matches!(
        t.call(Operation::Read, "keys/k", json!({})).await,
        Err(EngineError::NotFound)
    ));
    t.create_key("k", json!({"exportable": false, "auto_rotate_period": 0}))
        .await;
    t.post("keys/k/rotate", json!({})).await;
    let again = t
        .call(
            Operation::Update,
            "keys/k",
            json!({"type": "chacha20-poly1305"}),
        )
        .await
        .unwrap();
    let data = again.data.unwrap();
    assert_eq!(data["latest_version"], 2, "an existing key is not replaced");
    assert_eq!(data["type"], "aes256-gcm96");
    assert_eq!(again.warnings.len(), 1);
    for bad in ["a/b", "", "-x", "x-", "a b", "..", "ü"] {
        let path = format!("keys/{bad}");
        assert!(
            t.call(Operation::Update, &path, json!({})).await.is_err(),
            "{bad:?}"
        );
    }
    assert!(matches!(
        t.call(Operation::Read, "keys/k/nothing", json!({})).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        t.call(Operation::Read, "encrypt/k", json!({})).await,
        Err(EngineError::UnsupportedOperation)
    ));
}

#[tokio::test]
async fn rotation_keeps_old_versions_decrypting() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    let v1 = t.encrypt("k", b"first").await;
    let rotated = t.post("keys/k/rotate", json!({})).await;
    assert_eq!(rotated["latest_version"], 2);
    let v2 = t.encrypt("k", b"second").await;
    assert!(v2.starts_with("cairn:v2:"), "{v2}");
    assert_eq!(t.decrypt("k", &v1).await, b"first");
    assert_eq!(t.decrypt("k", &v2).await, b"second");
    let keys = t.ok(Operation::Read, "keys/k", json!({})).await["keys"].clone();
    assert!(keys["1"].is_i64() && keys["2"].is_i64(), "{keys}");

    // Explicit older version, and rewrap onto the latest.
    let old = t
        .post(
            "encrypt/k",
            json!({"plaintext": b64(b"pinned"), "key_version": 1}),
        )
        .await;
    assert_eq!(old["key_version"], 1);
    let old_ct = old["ciphertext"].as_str().unwrap();
    let rewrapped = t.post("rewrap/k", json!({"ciphertext": old_ct})).await;
    assert_eq!(rewrapped["key_version"], 2);
    let new_ct = rewrapped["ciphertext"].as_str().unwrap();
    assert!(new_ct.starts_with("cairn:v2:"));
    assert_eq!(t.decrypt("k", new_ct).await, b"pinned");
    assert!(t
        .bad(
            Operation::Update,
            "encrypt/k",
            json!({"plaintext": "", "key_version": 3})
        )
        .await
        .contains("higher"));
    // Only one stored entry per key, whatever the number of versions.
    assert_eq!(
        t.view.keys_with_prefix("policy/").await.unwrap(),
        vec!["policy/k".to_owned()]
    );
}

#[tokio::test]
async fn min_decryption_version_refuses_old_ciphertext() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    let v1 = t.encrypt("k", b"old").await;
    t.post("keys/k/rotate", json!({})).await;
    t.post("keys/k/rotate", json!({})).await;
    let v3 = t.encrypt("k", b"new").await;

    let data = t
        .post("keys/k/config", json!({"min_decryption_version": 2}))
        .await;
    assert_eq!(data["min_decryption_version"], 2);
    assert_eq!(
        data["keys"].as_object().map(|m| m.len()),
        Some(2),
        "v1 no longer listed: {data}"
    );
    let msg = t
        .bad(Operation::Update, "decrypt/k", json!({"ciphertext": v1}))
        .await;
    assert_eq!(
        msg,
        "ciphertext or signature version is disallowed by policy (too old)"
    );
    assert_eq!(t.decrypt("k", &v3).await, b"new");
    assert!(t
        .bad(Operation::Update, "rewrap/k", json!({"ciphertext": v1}))
        .await
        .contains("too old"));
    assert!(t
        .bad(
            Operation::Update,
            "encrypt/k",
            json!({"plaintext": "", "key_version": 1})
        )
        .await
        .contains("minimum"));
    // A fresh engine reads the same limit from storage.
    assert!(t
        .restarted()
        .bad(Operation::Update, "decrypt/k", json!({"ciphertext": v1}))
        .await
        .contains("too old"));
}

#[tokio::test]
async fn config_is_validated_like_vault() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    t.post("keys/k/rotate", json!({})).await;
    let cases = [
        (
            json!({"min_decryption_version": 3}),
            "cannot set min decryption version of 3, latest key version is 2",
        ),
        (
            json!({"min_encryption_version": 5}),
            "cannot set min encryption version of 5, latest key version is 2",
        ),
        (
            json!({"min_decryption_version": -1}),
            "min decryption version cannot be negative",
        ),
        (
            json!({"min_encryption_version": -1}),
            "min encryption version cannot be negative",
        ),
        (
            json!({"min_decryption_version": 2, "min_encryption_version": 1}),
            "min encryption version must be greater",
        ),
        (json!({"exportable": true}), "exportable"),
        (json!({"allow_plaintext_backup": true}), "plaintext backups"),
        (json!({"deletion_allowed": "maybe"}), "deletion_allowed"),
    ];
    for (body, want) in cases {
        let msg = t
            .bad(Operation::Update, "keys/k/config", body.clone())
            .await;
        assert!(msg.contains(want), "{body}: {msg}");
    }
    // Nothing of a refused request was applied.
    let data = t.ok(Operation::Read, "keys/k", json!({})).await;
    assert_eq!(
        (
            data["min_decryption_version"].clone(),
            data["min_encryption_version"].clone()
        ),
        (json!(1), json!(0))
    );

    let resp = t
        .call(
            Operation::Update,
            "keys/k/config",
            json!({"min_decryption_version": 0}),
        )
        .await
        .unwrap();
    assert_eq!(resp.data.unwrap()["min_decryption_version"], 1);
    assert_eq!(resp.warnings.len(), 1);
    let data = t
        .post(
            "keys/k/config",
            json!({"min_encryption_version": 2, "min_decryption_version": "2"}),
        )
        .await;
    assert_eq!(
        (
            data["min_decryption_version"].clone(),
            data["min_encryption_version"].clone()
        ),
        (json!(2), json!(2))
    );
    assert!(t
        .bad(Operation::Update, "keys/missing/config", json!({}))
        .await
        .contains("no existing key"));
    assert_eq!(
        t.bad(Operation::Update, "keys/missing/rotate", json!({}))
            .await,
        "encryption key not found"
    );
}

#[tokio::test]
async fn tampered_and_foreign_ciphertexts_fail_authentication() {
    let t = Transit::new();
    t.create_key("a", json!({})).await;
    t.create_key("b", json!({})).await;
    let ct = t.encrypt("a", b"secret payload").await;
    let payload = ct.strip_prefix("cairn:v1:").unwrap();
    let mut raw = B64.decode(payload).unwrap();
    for i in [0, 12, raw.len() - 1] {
        raw[i] ^= 0x01;
        let tampered = format!("cairn:v1:{}", b64(&raw));
        raw[i] ^= 0x01;
        let msg = t
            .bad(
                Operation::Update,
                "decrypt/a",
                json!({"ciphertext": tampered}),
            )
            .await;
        assert_eq!(msg, "cipher: message authentication failed");
    }
    let msg = t
        .bad(Operation::Update, "decrypt/b", json!({"ciphertext": ct}))
        .await;
    assert_eq!(msg, "cipher: message authentication failed");
    let truncated = format!("cairn:v1:{}", b64(&raw[..20]));
    assert!(t
        .bad(
            Operation::Update,
            "decrypt/a",
            json!({"ciphertext": truncated})
        )
        .await
        .contains("too short"));
    for (bad, want) in [
        (
            "cairn:v1:%%%",
            "invalid ciphertext: could not decode base64",
        ),
        ("cairn:v7:AAAA", "invalid ciphertext: version is too new"),
        ("v1:AAAA", "invalid ciphertext: no prefix"),
        (
            "cairn:vx:AAAA",
            "invalid ciphertext: version number could not be decoded",
        ),
    ] {
        assert_eq!(
            t.bad(Operation::Update, "decrypt/a", json!({"ciphertext": bad}))
                .await,
            want
        );
    }
    assert_eq!(
        t.bad(Operation::Update, "decrypt/a", json!({})).await,
        "missing ciphertext to decrypt"
    );
    assert_eq!(
        t.bad(
            Operation::Update,
            "decrypt/nokey",
            json!({"ciphertext": ct})
        )
        .await,
        "encryption key not found"
    );
    // Associated data is bound to the ciphertext.
    let with_ad = t
        .post(
            "encrypt/a",
            json!({"plaintext": b64(b"x"), "associated_data": b64(b"row 7")}),
        )
        .await;
    let ct_ad = with_ad["ciphertext"].as_str().unwrap();
    let ok = t
        .post(
            "decrypt/a",
            json!({"ciphertext": ct_ad, "associated_data": b64(b"row 7")}),
        )
        .await;
    assert_eq!(ok["plaintext"], b64(b"x"));
    let msg = t
        .bad(
            Operation::Update,
            "decrypt/a",
            json!({"ciphertext": ct_ad, "associated_data": b64(b"row 8")}),
        )
        .await;
    assert_eq!(msg, "cipher: message authentication failed");
}

#[tokio::test]
async fn vault_prefixed_ciphertexts_decrypt() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    let ct = t.encrypt("k", b"moved from vault").await;
    let vault = ct.replacen("cairn:", "vault:", 1);
    assert_eq!(t.decrypt("k", &vault).await, b"moved from vault");
    let rewrapped = t.post("rewrap/k", json!({"ciphertext": vault})).await;
    assert!(rewrapped["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("cairn:v1:"));
}

#[tokio::test]
async fn derived_keys_need_and_bind_the_context() {
    let t = Transit::new();
    t.create_key("d", json!({"derived": true, "type": "chacha20-poly1305"}))
        .await;
    let data = t.ok(Operation::Read, "keys/d", json!({})).await;
    assert_eq!(
        (data["derived"].clone(), data["kdf"].clone()),
        (json!(true), json!("hkdf_sha256"))
    );
    let msg = t
        .bad(
            Operation::Update,
            "encrypt/d",
            json!({"plaintext": b64(b"x")}),
        )
        .await;
    assert!(
        msg.starts_with("missing 'context' for key derivation"),
        "{msg}"
    );

    let (ctx_a, ctx_b) = (b64(b"tenant-a"), b64(b"tenant-b"));
    let enc = t
        .post(
            "encrypt/d",
            json!({"plaintext": b64(b"per tenant"), "context": ctx_a}),
        )
        .await;
    let ct = enc["ciphertext"].as_str().unwrap();
    let dec = t
        .post("decrypt/d", json!({"ciphertext": ct, "context": ctx_a}))
        .await;
    assert_eq!(dec["plaintext"], b64(b"per tenant"));
    let msg = t
        .bad(
            Operation::Update,
            "decrypt/d",
            json!({"ciphertext": ct, "context": ctx_b}),
        )
        .await;
    assert_eq!(msg, "cipher: message authentication failed");
    assert!(t
        .bad(Operation::Update, "decrypt/d", json!({"ciphertext": ct}))
        .await
        .contains("context"));

    t.post("keys/d/rotate", json!({})).await;
    let re = t
        .post("rewrap/d", json!({"ciphertext": ct, "context": ctx_a}))
        .await;
    assert_eq!(re["key_version"], 2);
    let dec = t
        .post(
            "decrypt/d",
            json!({"ciphertext": re["ciphertext"], "context": ctx_a}),
        )
        .await;
    assert_eq!(dec["plaintext"], b64(b"per tenant"));

    // A first encrypt with a context creates a derived key.
    let up = t
        .ok(
            Operation::Create,
            "encrypt/fresh",
            json!({"plaintext": b64(b"y"), "context": ctx_a}),
        )
        .await;
    assert!(up["ciphertext"].is_string());
    assert_eq!(
        t.ok(Operation::Read, "keys/fresh", json!({})).await["derived"],
        true
    );
}

#[tokio::test]
async fn first_encrypt_creates_the_key_only_with_create() {
    let t = Transit::new();
    assert!(!t.engine.exists("encrypt/auto", &t.view).await.unwrap());
    let msg = t
        .bad(
            Operation::Update,
            "encrypt/auto",
            json!({"plaintext": b64(b"x")}),
        )
        .await;
    assert_eq!(msg, "encryption key not found");
    assert!(t
        .bad(
            Operation::Create,
            "encrypt/auto",
            json!({"plaintext": "", "type": "rsa-2048"})
        )
        .await
        .contains("rsa-2048"));
    let data = t
        .ok(
            Operation::Create,
            "encrypt/auto",
            json!({"plaintext": b64(b"x"), "type": "chacha20-poly1305"}),
        )
        .await;
    assert_eq!(data["key_version"], 1);
    assert!(t.engine.exists("encrypt/auto", &t.view).await.unwrap());
    let key = t.ok(Operation::Read, "keys/auto", json!({})).await;
    assert_eq!(
        (key["type"].clone(), key["derived"].clone()),
        (json!("chacha20-poly1305"), json!(false))
    );
    assert!(t.engine.exists("keys/anything", &t.view).await.unwrap());
}

#[tokio::test]
async fn batch_items_fail_on_their_own() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    let body = json!({"batch_input": [
        {"plaintext": b64(b"one"), "reference": "r1"},
        {"plaintext": "not base64 %%"},
        {"plaintext": b64(b"three"), "reference": "r3"},
    ]});
    let resp = t.call(Operation::Update, "encrypt/k", body).await.unwrap();
    assert_eq!(
        resp.status, 400,
        "Vault answers 400 with the results when an item failed"
    );
    let results = resp.data.unwrap()["batch_results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["reference"], "r1");
    assert_eq!(results[1]["error"], "failed to base64-decode plaintext");
    assert!(results[1].get("ciphertext").is_none());
    assert_eq!(results[2]["reference"], "r3");

    let good: Vec<Value> = [&results[0], &results[2]]
        .iter()
        .map(|r| json!({"ciphertext": r["ciphertext"], "reference": r["reference"]}))
        .chain([json!({"ciphertext": "cairn:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})])
        .collect();
    let resp = t
        .call(
            Operation::Update,
            "decrypt/k",
            json!({"batch_input": good, "partial_failure_response_code": 207}),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 207);
    let results = resp.data.unwrap()["batch_results"].clone();
    assert_eq!(results[0]["plaintext"], b64(b"one"));
    assert_eq!(results[1]["plaintext"], b64(b"three"));
    assert_eq!(results[1]["reference"], "r3");
    assert_eq!(results[2]["error"], "cipher: message authentication failed");

    let all_good = json!({"batch_input": [{"plaintext": b64(b"a")}, {"plaintext": b64(b"b")}]});
    let resp = t
        .call(Operation::Update, "encrypt/k", all_good)
        .await
        .unwrap();
    assert_eq!(resp.status, 0);
    let results = resp.data.unwrap()["batch_results"].clone();
    assert_eq!(results[1]["key_version"], 1);
    let rewrap =
        json!({"batch_input": [{"ciphertext": results[0]["ciphertext"]}, {"ciphertext": "junk"}]});
    let resp = t.call(Operation::Update, "rewrap/k", rewrap).await.unwrap();
    assert_eq!(resp.status, 400);
    let results = resp.data.unwrap()["batch_results"].clone();
    assert!(results[0]["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("cairn:v1:"));
    assert_eq!(results[1]["error"], "invalid ciphertext: no prefix");

    let mixed =
        json!({"batch_input": [{"plaintext": "", "context": b64(b"c")}, {"plaintext": ""}]});
    assert!(t
        .bad(Operation::Update, "encrypt/k", mixed)
        .await
        .contains("context should be set"));
}

#[tokio::test]
async fn datakeys_decrypt_to_their_plaintext() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    let data = t.post("datakey/plaintext/k", json!({})).await;
    let plaintext = data["plaintext"].as_str().unwrap();
    assert_eq!(B64.decode(plaintext).unwrap().len(), 32);
    assert_eq!(
        t.decrypt("k", data["ciphertext"].as_str().unwrap()).await,
        B64.decode(plaintext).unwrap()
    );
    assert_eq!(data["key_version"], 1);

    let wrapped = t.post("datakey/wrapped/k", json!({"bits": 512})).await;
    assert!(wrapped.get("plaintext").is_none());
    assert_eq!(
        t.decrypt("k", wrapped["ciphertext"].as_str().unwrap())
            .await
            .len(),
        64
    );
    assert_eq!(
        B64.decode(
            t.post("datakey/plaintext/k", json!({"bits": "128"})).await["plaintext"]
                .as_str()
                .unwrap()
        )
        .unwrap()
        .len(),
        16
    );
    assert!(t
        .bad(
            Operation::Update,
            "datakey/plaintext/k",
            json!({"bits": 100})
        )
        .await
        .contains("bits"));
    assert!(t
        .bad(Operation::Update, "datakey/other/k", json!({}))
        .await
        .contains("invalid path"));
    assert_eq!(
        t.bad(Operation::Update, "datakey/wrapped/none", json!({}))
            .await,
        "encryption key not found"
    );

    t.create_key("d", json!({"derived": true})).await;
    assert!(t
        .bad(Operation::Update, "datakey/wrapped/d", json!({}))
        .await
        .contains("context"));
    let ctx = b64(b"ctx");
    let w = t.post("datakey/plaintext/d", json!({"context": ctx})).await;
    let dec = t
        .post(
            "decrypt/d",
            json!({"ciphertext": w["ciphertext"], "context": ctx}),
        )
        .await;
    assert_eq!(dec["plaintext"], w["plaintext"]);
}

#[tokio::test]
async fn hmac_and_verify() {
    let t = Transit::new();
    t.create_key("k", json!({})).await;
    let input = b64(b"message to authenticate");
    let mac = t.post("hmac/k", json!({"input": input})).await["hmac"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(mac.starts_with("cairn:v1:"));
    assert_eq!(B64.decode(&mac["cairn:v1:".len()..]).unwrap().len(), 32);
    let valid = |data: Value| data["valid"].as_bool().unwrap();
    assert!(valid(
        t.post("verify/k", json!({"input": input, "hmac": mac}))
            .await
    ));
    assert!(!valid(
        t.post(
            "verify/k",
            json!({"input": b64(b"other message"), "hmac": mac})
        )
        .await
    ));
    assert!(valid(
        t.post(
            "verify/k",
            json!({"input": input, "hmac": mac.replacen("cairn:", "vault:", 1)})
        )
        .await
    ));

    // Algorithm from the URL or the body; verify must use the same one.
    let mac512 = t.post("hmac/k/sha2-512", json!({"input": input})).await["hmac"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(B64.decode(&mac512["cairn:v1:".len()..]).unwrap().len(), 64);
    let body384 = t
        .post("hmac/k", json!({"input": input, "algorithm": "sha2-384"}))
        .await;
    assert_eq!(
        B64.decode(&body384["hmac"].as_str().unwrap()["cairn:v1:".len()..])
            .unwrap()
            .len(),
        48
    );
    assert!(valid(
        t.post("verify/k/sha2-512", json!({"input": input, "hmac": mac512}))
            .await
    ));
    assert!(valid(
        t.post(
            "verify/k",
            json!({"input": input, "hmac": mac512, "hash_algorithm": "sha2-512"})
        )
        .await
    ));
    assert!(!valid(
        t.post("verify/k", json!({"input": input, "hmac": mac512}))
            .await
    ));
    assert!(t
        .bad(Operation::Update, "hmac/k/md5", json!({"input": input}))
        .await
        .contains("unsupported algorithm"));

    // HMAC keys are per version, and min_decryption_version applies.
    t.post("keys/k/rotate", json!({})).await;
    let mac2 = t.post("hmac/k", json!({"input": input})).await["hmac"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(mac2.starts_with("cairn:v2:") && mac2[9..] != mac[9..]);
    assert!(valid(
        t.post("verify/k", json!({"input": input, "hmac": mac}))
            .await
    ));
    t.post("keys/k/config", json!({"min_decryption_version": 2}))
        .await;
    let msg = t
        .bad(
            Operation::Update,
            "verify/k",
            json!({"input": input, "hmac": mac}),
        )
        .await;
    assert_eq!(
        msg,
        "ciphertext or signature version is disallowed by policy (too old)"
    );

    let batch = json!({"batch_input": [
        {"input": input, "hmac": mac2, "reference": "ok"},
        {"input": b64(b"tampered"), "hmac": mac2},
        {"input": input, "hmac": "cairn:v2:!!"},
    ]});
    let resp = t.call(Operation::Update, "verify/k", batch).await.unwrap();
    assert_eq!(resp.status, 400);
    let results = resp.data.unwrap()["batch_results"].clone();
    assert_eq!(
        (results[0]["valid"].clone(), results[0]["reference"].clone()),
        (json!(true), json!("ok"))
    );
    assert_eq!(results[1]["valid"], false);
    assert_eq!(results[2]["error"], "invalid HMAC: could not decode base64");
    let batch = json!({"batch_input": [{"input": input}, {"input": b64(b"2")}]});
    let results = t.post("hmac/k", batch).await["batch_results"].clone();
    assert_eq!(results[0]["hmac"], mac2);

    assert!(t
        .bad(
            Operation::Update,
            "verify/k",
            json!({"input": input, "signature": "vault:v1:AAAA"})
        )
        .await
        .contains("signatures"));
    assert!(t
        .bad(Operation::Update, "verify/k", json!({"input": input}))
        .await
        .contains("missing"));
    assert_eq!(
        t.bad(Operation::Update, "hmac/none", json!({"input": input}))
            .await,
        "encryption key not found"
    );
}

#[tokio::test]
async fn random_bytes_in_every_path_shape() {
    let t = Transit::new();
    let len = |data: &Value| {
        B64.decode(data["random_bytes"].as_str().unwrap())
            .unwrap()
            .len()
    };
    assert_eq!(len(&t.post("random", json!({})).await), 32);
    assert_eq!(len(&t.post("random", json!({"bytes": 16})).await), 16);
    assert_eq!(len(&t.post("random/64", json!({"bytes": 16})).await), 64);
    assert_eq!(
        len(&t.post("random/platform", json!({"bytes": 8})).await),
        8
    );
    assert_eq!(len(&t.post("random/all/24", json!({})).await), 24);
    let hex_out = t.post("random/10", json!({"format": "hex"})).await;
    assert_eq!(
        hex::decode(hex_out["random_bytes"].as_str().unwrap())
            .unwrap()
            .len(),
        10
    );
    assert_ne!(
        t.post("random", json!({})).await,
        t.post("random", json!({})).await
    );
    for (path, body) in [
        ("random", json!({"bytes": 0})),
        ("random", json!({"bytes": 200_000})),
        ("random/x/1", json!({})),
        ("random", json!({"format": "base32"})),
        ("random/seal", json!({})),
        ("random/platform/many", json!({})),
    ] {
        t.bad(Operation::Update, path, body).await;
    }
}

#[tokio::test]
async fn concurrent_rotations_lose_no_version() {
    let t = Arc::new(Transit::new());
    t.create_key("k", json!({})).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.post("keys/k/rotate", json!({})).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        t.ok(Operation::Read, "keys/k", json!({})).await["latest_version"],
        9
    );
    assert_eq!(
        t.restarted().ok(Operation::Read, "keys/k", json!({})).await["latest_version"],
        9
    );
}

#[tokio::test]
async fn errors_never_echo_secret_input() {
    let t = Transit::new();
    t.create_key("k", json!({"derived": true})).await;
    let secret_text = "c2VjcmV0LXBsYWludGV4dA==!!";
    let msg = t
        .bad(
            Operation::Update,
            "encrypt/k",
            json!({"plaintext": secret_text, "context": "Y3R4"}),
        )
        .await;
    assert!(
        !msg.contains(secret_text) && !msg.contains("c2VjcmV0"),
        "{msg}"
    );
    let msg = t
        .bad(
            Operation::Update,
            "encrypt/k",
            json!({"plaintext": "", "context": "@@Y3R4@@"}),
        )
        .await;
    assert!(!msg.contains("Y3R4"), "{msg}");
    let ct = "cairn:v1:c2VjcmV0LWNpcGhlcnRleHQtdGhhdC1pcy1sb25nLWVub3VnaA==";
    let msg = t
        .bad(
            Operation::Update,
            "decrypt/k",
            json!({"ciphertext": ct, "context": "Y3R4"}),
        )
        .await;
    assert!(!msg.contains("c2VjcmV0"), "{msg}");
}

#[tokio::test]
async fn invalidation_drops_state_changed_by_another_node() {
    // Two engines over one storage stand for two nodes of a cluster.
    let a = Transit::new();
    let b = a.restarted();
    a.create_key("k", json!({})).await;
    let v1 = a.encrypt("k", b"old").await;
    b.post("keys/k/rotate", json!({})).await;
    b.post("keys/k/config", json!({"min_decryption_version": 2}))
        .await;
    // Node a still serves its cached copy ...
    assert_eq!(a.decrypt("k", &v1).await, b"old");
    // ... until the replicated change is announced to it.
    a.engine.invalidate(a.view.prefix(), "policy/k");
    assert!(a
        .bad(Operation::Update, "decrypt/k", json!({"ciphertext": v1}))
        .await
        .contains("too old"));
    assert!(a.encrypt("k", b"new").await.starts_with("cairn:v2:"));

    b.post("keys/k/config", json!({"deletion_allowed": true}))
        .await;
    b.ok(Operation::Delete, "keys/k", json!({})).await;
    a.engine.invalidate(a.view.prefix(), "unrelated/k");
    assert!(a.ok(Operation::Read, "keys/k", json!({})).await.is_object());
    a.engine.invalidate_all();
    assert!(matches!(
        a.call(Operation::Read, "keys/k", json!({})).await,
        Err(EngineError::NotFound)
    ));
}
