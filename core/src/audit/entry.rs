//! Encoding of audit entries in Vault's audit log shape.
//!
//! An entry is encoded once per output format and the same bytes go to every
//! device using that format. The body is left as an unclosed JSON object
//! (`{"time":...`): each device's writer closes it with its own chain fields
//! (see `chain.rs`).

use serde_json::Value;

use super::hmac::Salt;
use super::{AuditAuth, AuditRequest, AuditResponse};

/// How a device wants values written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    /// Write every value as is (Vault's `log_raw`).
    pub log_raw: bool,
    /// Hash token accessors too (Vault's `hmac_accessor`).
    pub hmac_accessor: bool,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            log_raw: false,
            hmac_accessor: true,
        }
    }
}

/// Members of Vault's response envelope. An object made only of these is an
/// envelope and is split as Vault's audit log splits a response; anything
/// else is logged whole as the response's data.
const ENVELOPE: [&str; 9] = [
    "request_id",
    "lease_id",
    "renewable",
    "lease_duration",
    "data",
    "wrap_info",
    "warnings",
    "auth",
    "mount_type",
];

/// JSON object writer that places commas. Member names are static ASCII
/// identifiers, so they are written without escaping.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// Writes values according to one device format.
struct Encoder<'s> {
    salt: &'s Salt,
    format: Format,
}

impl Encoder<'_> {
    /// A string that may be secret: hashed unless the device logs raw.
    fn secret_str(&self, value: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if self.format.log_raw {
            serde_json::to_writer(out, value)
        } else {
            self.salt.write_hashed_str(value, out);
            Ok(())
        }
    }

    fn accessor(&self, value: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if self.format.hmac_accessor {
            self.secret_str(value, out)
        } else {
            serde_json::to_writer(out, value)
        }
    }

    /// A JSON value that may hold secrets at any depth.
    fn secret_value(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if self.format.log_raw {
            serde_json::to_writer(out, value)
        } else {
            self.salt.write_hashed(value, out)
        }
    }

    fn auth(&self, auth: &AuditAuth<'_>, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let mut obj = Obj::open(out);
        if let Some(token) = auth.client_token {
            self.secret_str(token, obj.key("client_token"))?;
        }
        if let Some(accessor) = auth.accessor {
            self.accessor(accessor, obj.key("accessor"))?;
        }
        serde_json::to_writer(&mut *obj.key("display_name"), auth.display_name)?;
        serde_json::to_writer(&mut *obj.key("policies"), auth.policies)?;
        serde_json::to_writer(&mut *obj.key("token_policies"), auth.policies)?;
        obj.key("token_type").extend_from_slice(b"\"service\"");
        serde_json::to_writer(&mut *obj.key("token_ttl"), &auth.token_ttl)?;
        obj.close();
        Ok(())
    }

    fn request(&self, req: &AuditRequest<'_>, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let mut obj = Obj::open(out);
        serde_json::to_writer(&mut *obj.key("id"), req.id)?;
        serde_json::to_writer(&mut *obj.key("operation"), req.operation)?;
        if let Some(auth) = &req.auth {
            if let Some(token) = auth.client_token {
                self.secret_str(token, obj.key("client_token"))?;
            }
            if let Some(accessor) = auth.accessor {
                self.accessor(accessor, obj.key("client_token_accessor"))?;
            }
        }
        obj.key("namespace").extend_from_slice(b"{\"id\":\"root\"}");
        serde_json::to_writer(&mut *obj.key("path"), req.path)?;
        if let Some(data) = req.data {
            let out = obj.key("data");
            if self.format.log_raw {
                serde_json::to_writer(out, data)?;
            } else {
                self.salt.write_hashed_map(data, out)?;
            }
        }
        serde_json::to_writer(&mut *obj.key("remote_address"), req.remote_address)?;
        obj.close();
        Ok(())
    }

    fn response(
        &self,
        resp: &AuditResponse<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        let mut obj = Obj::open(out);
        serde_json::to_writer(&mut *obj.key("status_code"), &resp.status)?;
        match resp.data {
            Some(Value::Object(map)) if map.keys().all(|k| ENVELOPE.contains(&k.as_str())) => {
                for (name, member) in [
                    ("data", "data"),
                    ("auth", "auth"),
                    ("wrap_info", "wrap_info"),
                ] {
                    match map.get(member) {
                        None | Some(Value::Null) => {}
                        Some(value) => self.secret_value(value, obj.key(name))?,
                    }
                }
                if let Some(Value::String(lease_id)) = map.get("lease_id") {
                    if !lease_id.is_empty() {
                        let secret = obj.key("secret");
                        secret.extend_from_slice(b"{\"lease_id\":");
                        self.secret_str(lease_id, secret)?;
                        secret.push(b'}');
                    }
                }
                match map.get("warnings") {
                    Some(Value::Array(w)) if !w.is_empty() => {
                        self.secret_value(&map["warnings"], obj.key("warnings"))?
                    }
                    _ => {}
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => self.secret_value(other, obj.key("data"))?,
        }
        obj.close();
        Ok(())
    }
}

/// Writes the common head of an entry: `{"time":..,"type":..,"auth":..`.
fn head<'o>(
    out: &'o mut Vec<u8>,
    kind: &str,
    time: &str,
    auth: Option<&AuditAuth<'_>>,
    enc: &Encoder<'_>,
) -> Result<Obj<'o>, serde_json::Error> {
    let mut obj = Obj::open(out);
    serde_json::to_writer(&mut *obj.key("time"), time)?;
    let out = obj.key("type");
    out.push(b'"');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    if let Some(auth) = auth {
        enc.auth(auth, obj.key("auth"))?;
    }
    Ok(obj)
}

/// Appends the unclosed body of a request entry.
pub(crate) fn request_body(
    salt: &Salt,
    format: Format,
    time: &str,
    req: &AuditRequest<'_>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let enc = Encoder { salt, format };
    let mut obj = head(out, "request", time, req.auth.as_ref(), &enc)?;
    enc.request(req, obj.key("request"))?;
    Ok(())
}

/// Appends the unclosed body of a response entry.
pub(crate) fn response_body(
    salt: &Salt,
    format: Format,
    time: &str,
    resp: &AuditResponse<'_>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let enc = Encoder { salt, format };
    let mut obj = head(out, "response", time, resp.request.auth.as_ref(), &enc)?;
    enc.request(&resp.request, obj.key("request"))?;
    enc.response(resp, obj.key("response"))?;
    if let Some(error) = resp.error {
        serde_json::to_writer(&mut *obj.key("error"), error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "cairn.TOKEN-VALUE";
    const ACCESSOR: &str = "ACCESSOR-VALUE";

    fn policies() -> Vec<String> {
        vec!["default".into(), "team-a".into()]
    }

    fn request<'a>(data: Option<&'a Value>, policies: &'a [String]) -> AuditRequest<'a> {
        AuditRequest {
            id: "req-1",
            operation: "update",
            path: "secret/data/app",
            data: data.and_then(Value::as_object),
            remote_address: "127.0.0.1",
            auth: Some(AuditAuth {
                client_token: Some(TOKEN),
                accessor: Some(ACCESSOR),
                display_name: "token",
                policies,
                token_ttl: 3600,
            }),
        }
    }

    /// Closes a body as a writer would (without the chain) and parses it.
    fn parse(mut body: Vec<u8>) -> (String, Value) {
        body.push(b'}');
        let text = String::from_utf8(body).expect("utf8");
        let value = serde_json::from_str(&text).expect("valid JSON");
        (text, value)
    }

    #[test]
    fn a_request_entry_hashes_tokens_and_data() {
        let salt = Salt::new([3; 32]);
        let data = json!({"data": {"password": "hunter2", "n": 5}});
        let pol = policies();
        let mut out = Vec::new();
        request_body(
            &salt,
            Format::default(),
            "2025-01-01T00:00:00Z",
            &request(Some(&data), &pol),
            &mut out,
        )
        .expect("encode");
        let (text, v) = parse(out);
        for raw in [TOKEN, ACCESSOR, "hunter2"] {
            assert!(!text.contains(raw), "{raw} leaked: {text}");
        }
        assert_eq!(v["type"], "request");
        assert_eq!(v["time"], "2025-01-01T00:00:00Z");
        assert_eq!(v["auth"]["client_token"], salt.hash(TOKEN));
        assert_eq!(v["auth"]["accessor"], salt.hash(ACCESSOR));
        assert_eq!(v["auth"]["policies"], json!(["default", "team-a"]));
        assert_eq!(v["auth"]["token_ttl"], 3600);
        assert_eq!(v["request"]["client_token"], salt.hash(TOKEN));
        assert_eq!(v["request"]["client_token_accessor"], salt.hash(ACCESSOR));
        assert_eq!(v["request"]["path"], "secret/data/app");
        assert_eq!(v["request"]["operation"], "update");
        assert_eq!(v["request"]["remote_address"], "127.0.0.1");
        assert_eq!(
            v["request"]["data"],
            json!({"data": {"password": salt.hash("hunter2"), "n": 5}})
        );
        assert!(v.get("response").is_none() && v.get("error").is_none());
    }

    #[test]
    fn hmac_accessor_false_and_log_raw_are_honoured() {
        let salt = Salt::new([3; 32]);
        let data = json!({"password": "hunter2"});
        let pol = policies();
        let mut out = Vec::new();
        let format = Format {
            log_raw: false,
            hmac_accessor: false,
        };
        request_body(&salt, format, "t", &request(Some(&data), &pol), &mut out).expect("encode");
        let (_, v) = parse(out);
        assert_eq!(v["auth"]["accessor"], ACCESSOR);
        assert_eq!(v["request"]["client_token_accessor"], ACCESSOR);
        assert_eq!(v["auth"]["client_token"], salt.hash(TOKEN));

        let mut out = Vec::new();
        let format = Format {
            log_raw: true,
            hmac_accessor: true,
        };
        request_body(&salt, format, "t", &request(Some(&data), &pol), &mut out).expect("encode");
        let (_, v) = parse(out);
        assert_eq!(v["auth"]["client_token"], TOKEN);
        assert_eq!(v["auth"]["accessor"], ACCESSOR);
        assert_eq!(v["request"]["data"]["password"], "hunter2");
    }

    #[test]
    fn a_response_envelope_is_split_and_hashed() {
        let salt = Salt::new([4; 32]);
        let pol = policies();
        let envelope = json!({
            "request_id": "req-1", "lease_id": "database/creds/x/abc", "renewable": true, "lease_duration": 60,
            "data": {"username": "u1", "password": "p1", "ttl": 60},
            "wrap_info": null, "warnings": ["careful"],
            "auth": {"client_token": "cairn.NEW", "policies": ["p"]}
        });
        let resp = AuditResponse {
            request: request(None, &pol),
            status: 200,
            data: Some(&envelope),
            error: None,
        };
        let mut out = Vec::new();
        response_body(&salt, Format::default(), "t", &resp, &mut out).expect("encode");
        let (text, v) = parse(out);
        for raw in ["u1", "p1", "cairn.NEW", "database/creds/x/abc"] {
            assert!(!text.contains(raw), "{raw} leaked: {text}");
        }
        assert_eq!(v["type"], "response");
        assert_eq!(v["response"]["status_code"], 200);
        assert_eq!(
            v["response"]["data"],
            json!({"username": salt.hash("u1"), "password": salt.hash("p1"), "ttl": 60})
        );
        assert_eq!(
            v["response"]["auth"]["client_token"],
            salt.hash("cairn.NEW")
        );
        assert_eq!(
            v["response"]["secret"]["lease_id"],
            salt.hash("database/creds/x/abc")
        );
        assert_eq!(v["response"]["warnings"], json!([salt.hash("careful")]));
        assert!(v["response"].get("wrap_info").is_none());
        assert!(v["request"].get("data").is_none());
    }

    #[test]
    fn a_non_envelope_response_is_logged_whole_and_errors_are_kept() {
        let salt = Salt::new([4; 32]);
        let pol = policies();
        let inner = json!({"data": {"k": "v"}, "metadata": {"version": 2}});
        let resp = AuditResponse {
            request: request(None, &pol),
            status: 403,
            data: Some(&inner),
            error: Some("permission denied"),
        };
        let mut out = Vec::new();
        response_body(&salt, Format::default(), "t", &resp, &mut out).expect("encode");
        let (_, v) = parse(out);
        assert_eq!(
            v["response"]["data"],
            json!({"data": {"k": salt.hash("v")}, "metadata": {"version": 2}})
        );
        assert_eq!(v["error"], "permission denied");
    }

    #[test]
    fn an_unauthenticated_request_has_no_auth() {
        let salt = Salt::new([5; 32]);
        let req = AuditRequest {
            id: "r",
            operation: "read",
            path: "sys/health",
            data: None,
            remote_address: "::1",
            auth: None,
        };
        let mut out = Vec::new();
        request_body(&salt, Format::default(), "t", &req, &mut out).expect("encode");
        let (_, v) = parse(out);
        assert!(v.get("auth").is_none());
        assert!(v["request"].get("client_token").is_none());
        assert_eq!(v["request"]["namespace"], json!({"id": "root"}));
    }
}
