//! The structured input of the router target, and how it becomes HTTP.
//!
//! Raw bytes would almost never form a request that passes the path, token
//! and JSON checks, so the input names methods, paths, parameter names and
//! values the API knows, and leaves room for arbitrary bytes in each of them.

use arbitrary::Arbitrary;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{Map, Number, Value};

/// A few requests, sent in order to one fresh node.
#[derive(Arbitrary, Debug)]
pub struct Sequence {
    pub requests: Vec<FuzzRequest>,
}

/// One request.
#[derive(Arbitrary, Debug)]
pub struct FuzzRequest {
    pub method: FuzzMethod,
    pub path: FuzzPath,
    pub query: FuzzQuery,
    pub token: FuzzToken,
    pub body: FuzzBody,
}

#[derive(Arbitrary, Debug)]
pub enum FuzzMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    List,
    Options,
    Garbage(String),
}

/// Paths the API serves, as seeds for the fuzzer to bend.
pub const KNOWN_PATHS: &[&str] = &[
    "secret/data/a",
    "secret/data/canary",
    "secret/data/dir/b",
    "secret/metadata/a",
    "secret/metadata/",
    "secret/metadata/canary",
    "secret/delete/a",
    "secret/undelete/a",
    "secret/destroy/a",
    "secret/subkeys/a",
    "secret/config",
    "secret",
    "sys/mounts",
    "sys/mounts/kv2",
    "sys/mounts/secret/tune",
    "sys/remount",
    "sys/policies/acl",
    "sys/policies/acl/p",
    "sys/policies/acl/default",
    "sys/policy",
    "sys/policy/p",
    "sys/capabilities-self",
    "sys/capabilities",
    "sys/capabilities-accessor",
    "sys/seal-status",
    "sys/health",
    "sys/init",
    "sys/unseal",
    "sys/seal",
    "sys/rotate",
    "sys/key-status",
    "sys/leader",
    "sys/auth",
    "sys/audit",
    "sys/audit/file",
    "sys/audit-hash/file",
    "sys/metrics",
    "sys/internal/specs/openapi",
    "sys/internal/ui/mounts/secret",
    "sys/cairn/noop",
    "auth/token/create",
    "auth/token/create-orphan",
    "auth/token/lookup",
    "auth/token/lookup-self",
    "auth/token/lookup-accessor",
    "auth/token/renew",
    "auth/token/renew-self",
    "auth/token/renew-accessor",
    "auth/token/revoke",
    "auth/token/revoke-self",
    "auth/token/revoke-accessor",
    "auth/token/revoke-orphan",
    "auth/token/accessors",
    "kv2/data/x",
];

#[derive(Arbitrary, Debug)]
pub enum FuzzPath {
    /// A known path, maybe with bytes appended (`..`, `//`, `%00` ...).
    Known(u8, Option<Vec<u8>>),
    /// Arbitrary bytes after `/v1/`.
    Raw(Vec<u8>),
    /// Arbitrary bytes as the whole path (mostly outside `/v1/`).
    Outside(Vec<u8>),
}

/// Query parameter names the API reads.
const QUERY_KEYS: &[&str] = &[
    "version",
    "list",
    "format",
    "activecode",
    "sealedcode",
    "uninitcode",
    "standbyok",
    "perfstandbyok",
    "cas",
];

#[derive(Arbitrary, Debug)]
pub enum FuzzQuery {
    None,
    Pairs(Vec<(FuzzKey, FuzzText)>),
    /// Arbitrary text, only escaped where a URI cannot hold it.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
pub enum FuzzToken {
    Missing,
    Root,
    BearerRoot,
    /// A token issued earlier in the sequence (`auth.client_token`).
    Issued(u8),
    Garbage(String),
    BearerGarbage(String),
}

#[derive(Arbitrary, Debug)]
pub enum FuzzBody {
    Empty,
    Raw(Vec<u8>),
    /// Text where `@tokenN`, `@accessorN` and `@unseal_key` stand for values
    /// handed out earlier (the text seed format uses it).
    Template(String),
    Object(Vec<(FuzzKey, FuzzJson)>),
    Json(FuzzJson),
}

/// Body field names the API reads.
const BODY_KEYS: &[&str] = &[
    "data",
    "options",
    "cas",
    "max_versions",
    "cas_required",
    "delete_version_after",
    "custom_metadata",
    "versions",
    "version",
    "policy",
    "policies",
    "ttl",
    "explicit_max_ttl",
    "period",
    "renewable",
    "no_parent",
    "num_uses",
    "type",
    "description",
    "config",
    "token",
    "accessor",
    "increment",
    "key",
    "reset",
    "secret_shares",
    "secret_threshold",
    "path",
    "paths",
    "display_name",
    "meta",
    "id",
    "default_lease_ttl",
    "max_lease_ttl",
    "local",
    "name",
    "rules",
    "from",
    "to",
    "input",
    "list",
    "format",
];

/// Values the API gives meaning to.
const KNOWN_VALUES: &[&str] = &[
    "kv",
    "kv-v2",
    "file",
    "1h",
    "0",
    "-1",
    "1",
    "2",
    "read",
    "root",
    "default",
    "true",
    "false",
    "path \"secret/*\" { capabilities = [\"read\", \"list\"] }",
    "{\"path\":{\"secret/+/a\":{\"capabilities\":[\"deny\"]}}}",
    "secret/data/a",
    "secret/",
    "1s",
    "768h",
    "-5m",
    "99999999999999999999",
    "prometheus",
    "canary",
    "sys/",
    "kv2/",
];

#[derive(Arbitrary, Debug)]
pub enum FuzzKey {
    Known(u8),
    Any(String),
}

#[derive(Arbitrary, Debug)]
pub enum FuzzText {
    Known(u8),
    Any(String),
    /// A token issued earlier in the sequence.
    IssuedToken(u8),
    /// The accessor of a token issued earlier in the sequence.
    IssuedAccessor(u8),
    /// The node's unseal key, hex.
    UnsealKey,
}

#[derive(Arbitrary, Debug)]
pub enum FuzzJson {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(FuzzText),
    Array(Vec<FuzzJson>),
    Object(Vec<(FuzzKey, FuzzJson)>),
}

/// What earlier requests of the sequence handed out, for later ones to use.
#[derive(Default)]
pub struct Issued {
    pub tokens: Vec<String>,
    pub accessors: Vec<String>,
    pub unseal_key: String,
}

/// Bytes a URI path cannot hold as they are. `%` is not among them, so the
/// fuzzer can write its own escapes (`%2e%2e`, `%00`, `%zz`).
fn needs_escape(b: u8) -> bool {
    !b.is_ascii()
        || b.is_ascii_control()
        || matches!(
            b,
            b' ' | b'"'
                | b'#'
                | b'<'
                | b'>'
                | b'?'
                | b'`'
                | b'{'
                | b'}'
                | b'\\'
                | b'^'
                | b'|'
                | b'['
                | b']'
        )
}

/// Deepest JSON nesting built; deeper values become `null`.
const MAX_DEPTH: usize = 6;

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[i as usize % list.len()]
}

fn pick_owned(list: &[String], i: u8) -> Option<&String> {
    if list.is_empty() {
        None
    } else {
        list.get(i as usize % list.len())
    }
}

/// Escape bytes that cannot appear in a URI path, keeping everything else.
fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if !needs_escape(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl FuzzMethod {
    /// The method, or `None` when the garbage is not a valid token.
    pub fn to_http(&self) -> Option<http::Method> {
        Some(match self {
            FuzzMethod::Get => http::Method::GET,
            FuzzMethod::Head => http::Method::HEAD,
            FuzzMethod::Post => http::Method::POST,
            FuzzMethod::Put => http::Method::PUT,
            FuzzMethod::Patch => http::Method::PATCH,
            FuzzMethod::Delete => http::Method::DELETE,
            FuzzMethod::List => http::Method::from_bytes(b"LIST").ok()?,
            FuzzMethod::Options => http::Method::OPTIONS,
            FuzzMethod::Garbage(s) => http::Method::from_bytes(s.as_bytes()).ok()?,
        })
    }
}

impl FuzzPath {
    /// The request target's path, starting with `/`.
    pub fn render(&self) -> String {
        match self {
            FuzzPath::Known(i, suffix) => {
                let base = pick(KNOWN_PATHS, *i);
                let tail = suffix.as_deref().map(escape_path).unwrap_or_default();
                format!("/v1/{base}{tail}")
            }
            FuzzPath::Raw(bytes) => format!("/v1/{}", escape_path(bytes)),
            FuzzPath::Outside(bytes) => format!("/{}", escape_path(bytes)),
        }
    }
}

impl FuzzKey {
    fn render(&self, known: &[&str]) -> String {
        match self {
            FuzzKey::Known(i) => pick(known, *i).to_string(),
            FuzzKey::Any(s) => s.clone(),
        }
    }
}

impl FuzzText {
    fn render(&self, issued: &Issued) -> String {
        match self {
            FuzzText::Known(i) => pick(KNOWN_VALUES, *i).to_string(),
            FuzzText::Any(s) => s.clone(),
            FuzzText::IssuedToken(i) => pick_owned(&issued.tokens, *i).cloned().unwrap_or_default(),
            FuzzText::IssuedAccessor(i) => pick_owned(&issued.accessors, *i)
                .cloned()
                .unwrap_or_default(),
            FuzzText::UnsealKey => issued.unseal_key.clone(),
        }
    }
}

impl FuzzQuery {
    /// The query string without `?`, or `None`.
    pub fn render(&self, issued: &Issued) -> Option<String> {
        match self {
            FuzzQuery::None => None,
            FuzzQuery::Pairs(pairs) => Some(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            utf8_percent_encode(&k.render(QUERY_KEYS), NON_ALPHANUMERIC),
                            utf8_percent_encode(&v.render(issued), NON_ALPHANUMERIC)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("&"),
            ),
            FuzzQuery::Raw(s) => Some(escape_path(s.as_bytes()).replace("%3F", "?")),
        }
    }
}

impl FuzzJson {
    fn to_value(&self, issued: &Issued, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        match self {
            FuzzJson::Null => Value::Null,
            FuzzJson::Bool(b) => Value::Bool(*b),
            FuzzJson::Int(i) => Value::from(*i),
            FuzzJson::UInt(u) => Value::from(*u),
            FuzzJson::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            FuzzJson::Str(t) => Value::String(t.render(issued)),
            FuzzJson::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| v.to_value(issued, depth + 1))
                    .collect(),
            ),
            FuzzJson::Object(fields) => Value::Object(object(fields, issued, depth + 1)),
        }
    }
}

fn object(fields: &[(FuzzKey, FuzzJson)], issued: &Issued, depth: usize) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.render(BODY_KEYS), v.to_value(issued, depth)))
        .collect()
}

impl FuzzBody {
    /// The body bytes.
    pub fn render(&self, issued: &Issued) -> Vec<u8> {
        match self {
            FuzzBody::Empty => Vec::new(),
            FuzzBody::Raw(bytes) => bytes.clone(),
            FuzzBody::Template(text) => fill_template(text, issued).into_bytes(),
            FuzzBody::Object(fields) => Value::Object(object(fields, issued, 0))
                .to_string()
                .into_bytes(),
            FuzzBody::Json(v) => v.to_value(issued, 0).to_string().into_bytes(),
        }
    }
}

impl FuzzToken {
    /// The header to send, if any, and the token value it carries.
    pub fn render(&self, issued: &Issued) -> Option<(&'static str, String, String)> {
        match self {
            FuzzToken::Missing => None,
            FuzzToken::Root => Some(("x-vault-token", "root".into(), "root".into())),
            FuzzToken::BearerRoot => Some(("authorization", "Bearer root".into(), "root".into())),
            FuzzToken::Issued(i) => {
                let t = pick_owned(&issued.tokens, *i)?.clone();
                Some(("x-vault-token", t.clone(), t))
            }
            FuzzToken::Garbage(s) => Some(("x-vault-token", s.clone(), s.clone())),
            FuzzToken::BearerGarbage(s) => {
                Some(("authorization", format!("Bearer {s}"), s.trim().to_string()))
            }
        }
    }
}

/// Replace `@tokenN`, `@accessorN` (N a digit) and `@unseal_key`.
fn fill_template(text: &str, issued: &Issued) -> String {
    let mut out = text.replace("@unseal_key", &issued.unseal_key);
    for i in 0..10u8 {
        let token = pick_owned(&issued.tokens, i).cloned().unwrap_or_default();
        let accessor = pick_owned(&issued.accessors, i)
            .cloned()
            .unwrap_or_default();
        out = out
            .replace(&format!("@token{i}"), &token)
            .replace(&format!("@accessor{i}"), &accessor);
    }
    out
}

/// Marks an input written in the text format below instead of the
/// `arbitrary` encoding.
pub const TEXT_MAGIC: &[u8] = b"#requests\n";

/// The human-readable input format of seeds and regressions, one request a line:
///
/// ```text
/// #requests
/// METHOD TARGET [token=root|token=@N|token=-|bearer=VALUE|token=VALUE] [BODY...]
/// ```
///
/// `TARGET` is the request target as sent (`/v1/secret/data/a?version=1`);
/// `@N` is the N-th token issued earlier in the sequence (default `root`);
/// `BODY` is the rest of the line, with `@tokenN`, `@accessorN` and
/// `@unseal_key` filled in.
pub fn parse_text(text: &str) -> Sequence {
    let requests = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(parse_line)
        .collect();
    Sequence { requests }
}

fn parse_line(line: &str) -> FuzzRequest {
    let (method, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (target, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (token, body) = match rest.split_once(' ').unwrap_or((rest, "")) {
        (t, b) if t.starts_with("token=") || t.starts_with("bearer=") => (parse_token(t), b),
        _ => (FuzzToken::Root, rest),
    };
    let method = match method {
        "GET" => FuzzMethod::Get,
        "HEAD" => FuzzMethod::Head,
        "POST" => FuzzMethod::Post,
        "PUT" => FuzzMethod::Put,
        "PATCH" => FuzzMethod::Patch,
        "DELETE" => FuzzMethod::Delete,
        "LIST" => FuzzMethod::List,
        "OPTIONS" => FuzzMethod::Options,
        other => FuzzMethod::Garbage(other.to_string()),
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, FuzzQuery::Raw(q.to_string())),
        None => (target, FuzzQuery::None),
    };
    let path = FuzzPath::Outside(path.trim_start_matches('/').as_bytes().to_vec());
    let body = if body.is_empty() {
        FuzzBody::Empty
    } else {
        FuzzBody::Template(body.to_string())
    };
    FuzzRequest {
        method,
        path,
        query,
        token,
        body,
    }
}

fn parse_token(spec: &str) -> FuzzToken {
    if let Some(v) = spec.strip_prefix("bearer=") {
        return if v == "root" {
            FuzzToken::BearerRoot
        } else {
            FuzzToken::BearerGarbage(v.to_string())
        };
    }
    let v = spec.trim_start_matches("token=");
    match v {
        "-" => FuzzToken::Missing,
        "root" => FuzzToken::Root,
        _ => match v.strip_prefix('@').and_then(|n| n.parse::<u8>().ok()) {
            Some(n) => FuzzToken::Issued(n),
            None => FuzzToken::Garbage(v.to_string()),
        },
    }
}
