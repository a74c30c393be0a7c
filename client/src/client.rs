//! The HTTP client: address, token, TLS options and the request plumbing
//! every typed method goes through.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{decode_error_body, ClientError};

/// Header carrying the token, as in Vault.
const TOKEN_HEADER: &str = "X-Vault-Token";

/// Connection options beyond the address and token.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// PEM file with the CA certificate(s) that sign the server's certificate.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate. For tests and first contact only.
    pub tls_skip_verify: bool,
    /// Timeout of a whole request, connection included.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            ca_cert: None,
            tls_skip_verify: false,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A token kept out of `Debug` output and marked sensitive in headers.
#[derive(Clone)]
struct Token(HeaderValue);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The body of a request.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// `application/json`.
    Json(Value),
    /// `application/merge-patch+json` (RFC 7396), for KV v2 patch.
    MergePatch(Value),
}

/// A typed async client of the Cairn (Vault-compatible) HTTP API.
///
/// Cloning is cheap: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<Token>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

impl Client {
    /// A client of the server at `addr` (e.g. `https://127.0.0.1:8200`) with
    /// default options.
    pub fn new(addr: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_options(addr, token, &ClientOptions::default())
    }

    /// A client of the server at `addr` with explicit TLS and timeout options.
    pub fn with_options(
        addr: &str,
        token: Option<String>,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let base = parse_address(addr)?;
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .danger_accept_invalid_certs(options.tls_skip_verify);
        if let Some(path) = &options.ca_cert {
            let pem = std::fs::read(path).map_err(|source| ClientError::CaCertRead {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| ClientError::CaCertParse { path: path.clone() })?;
            if certs.is_empty() {
                return Err(ClientError::CaCertParse { path: path.clone() });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(ClientError::Build)?;
        let token = token.map(|t| token_header(&t)).transpose()?;
        Ok(Self { http, base, token })
    }

    /// The server address this client talks to.
    pub fn address(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Replaces the token (e.g. after creating one, or `None` to drop it).
    pub fn set_token(&mut self, token: Option<String>) -> Result<(), ClientError> {
        self.token = token.map(|t| token_header(&t)).transpose()?;
        Ok(())
    }

    /// Whether a token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The URL of API path `path` (relative to `/v1/`), each segment
    /// percent-encoded so a key name cannot smuggle a query or fragment.
    pub(crate) fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        // `parse_address` refused cannot-be-a-base URLs, so segments exist;
        // the `if let` keeps this total anyway.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("v1");
            for segment in trimmed.split('/') {
                segments.push(segment);
            }
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        url
    }

    /// Sends a request and returns the response if its status is a success;
    /// an error status becomes [`ClientError::Api`] with the server's errors.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<reqwest::Response, ClientError> {
        let response = self.send_raw(method, path, query, body).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(api_error(status, response).await)
    }

    /// Sends a request and returns the response whatever its status.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<reqwest::Response, ClientError> {
        self.request(method, path, query, body)
            .send()
            .await
            .map_err(ClientError::Connection)
    }

    /// Builds a request with the token and body set, for callers that add
    /// headers of their own before sending.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, self.url(path, query));
        if let Some(token) = &self.token {
            request = request.header(TOKEN_HEADER, token.0.clone());
        }
        match body {
            Body::Empty => request,
            Body::Json(value) => request
                .header(CONTENT_TYPE, "application/json")
                .body(value.to_string()),
            Body::MergePatch(value) => request
                .header(CONTENT_TYPE, "application/merge-patch+json")
                .body(value.to_string()),
        }
    }

    /// Sends a request and decodes the JSON answer as `T`.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, query, body).await?;
        decode_response(response).await
    }

    /// Sends a request whose answer carries nothing of interest (often 204).
    pub(crate) async fn empty(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(), ClientError> {
        self.send(method, path, &[], body).await?;
        Ok(())
    }

    /// Sends a request and returns its JSON body, or `None` for an empty
    /// body (204) — the shape of Vault's logical writes and deletes.
    pub(crate) async fn optional_json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Option<Value>, ClientError> {
        let response = self.send(method, path, query, body).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(ClientError::Connection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ClientError::Decode { status, source })
    }

    /// LIST of `path` (as `GET ?list=true`): the `data.keys` strings; a 404
    /// means nothing is there and gives an empty list, as in Vault.
    pub(crate) async fn list_keys(&self, path: &str) -> Result<Vec<String>, ClientError> {
        match self.list_raw(path).await? {
            None => Ok(Vec::new()),
            Some(envelope) => keys_of(envelope),
        }
    }

    /// LIST of `path`, returning the raw envelope or `None` on 404.
    pub(crate) async fn list_raw(&self, path: &str) -> Result<Option<Value>, ClientError> {
        let query = [("list", "true".to_string())];
        match self
            .optional_json(Method::GET, path, &query, Body::Empty)
            .await
        {
            Err(err) if is_plain_not_found(&err) => Ok(None),
            other => other,
        }
    }
}

/// A 404 without error messages: Vault's way of saying "nothing here".
pub(crate) fn is_plain_not_found(err: &ClientError) -> bool {
    matches!(err, ClientError::Api { status: 404, errors } if errors.is_empty())
}

/// Extracts `data.keys` from a LIST envelope.
fn keys_of(envelope: Value) -> Result<Vec<String>, ClientError> {
    #[derive(serde::Deserialize)]
    struct Keys {
        #[serde(default)]
        keys: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Option<Keys>,
    }
    let envelope: Envelope =
        serde_json::from_value(envelope).map_err(|source| ClientError::Decode {
            status: 200,
            source,
        })?;
    Ok(envelope.data.map(|d| d.keys).unwrap_or_default())
}

/// Reads the whole body and decodes it as JSON `T`.
pub(crate) async fn decode_response<T: DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(ClientError::Connection)?;
    serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { status, source })
}

/// Builds [`ClientError::Api`] from an error response.
pub(crate) async fn api_error(status: StatusCode, response: reqwest::Response) -> ClientError {
    // A body we cannot read still leaves the status, which is the main fact.
    let body = response.text().await.unwrap_or_default();
    ClientError::Api {
        status: status.as_u16(),
        errors: decode_error_body(&body),
    }
}

/// Vault's sys endpoints answer both at top level (legacy) and under `data`;
/// prefer `data` when it is an object.
pub(crate) fn sys_payload(value: Value) -> Value {
    match value {
        Value::Object(mut map) => match map.remove("data") {
            Some(data @ Value::Object(_)) => data,
            Some(other) => {
                map.insert("data".to_string(), other);
                Value::Object(map)
            }
            None => Value::Object(map),
        },
        other => other,
    }
}

/// Decodes a sys payload (see [`sys_payload`]) as `T`.
pub(crate) fn decode_sys<T: DeserializeOwned>(value: Value) -> Result<T, ClientError> {
    serde_json::from_value(sys_payload(value)).map_err(|source| ClientError::Decode {
        status: 200,
        source,
    })
}

/// The entries of a sys listing (`sys/mounts`, `sys/audit`,
/// `sys/capabilities-self`) whose value passes `keep`: the `data` object when
/// present, else the top level minus the envelope's own fields.
pub(crate) fn listing_entries(
    value: Value,
    keep: fn(&Value) -> bool,
) -> serde_json::Map<String, Value> {
    const ENVELOPE: [&str; 8] = [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ];
    match sys_payload(value) {
        Value::Object(map) => map
            .into_iter()
            .filter(|(k, v)| !ENVELOPE.contains(&k.as_str()) && keep(v))
            .collect(),
        _ => serde_json::Map::new(),
    }
}

fn token_header(token: &str) -> Result<Token, ClientError> {
    let mut value = HeaderValue::from_str(token).map_err(|_| ClientError::InvalidToken)?;
    value.set_sensitive(true);
    Ok(Token(value))
}

fn parse_address(addr: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidAddress {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(addr).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("the address needs a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the address must not have a query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn client(addr: &str) -> Client {
        Client::new(addr, Some("s3cr3t-token".into())).unwrap()
    }

    #[test]
    fn url_joins_v1_and_path() {
        let c = client("http://127.0.0.1:8200");
        assert_eq!(
            c.url("secret/data/app/db", &[]).as_str(),
            "http://127.0.0.1:8200/v1/secret/data/app/db"
        );
        assert_eq!(
            c.url("/sys/health", &[]).as_str(),
            "http://127.0.0.1:8200/v1/sys/health"
        );
    }

    #[test]
    fn url_keeps_base_path_and_trailing_slash() {
        let c = client("https://vault.example/prefix/");
        assert_eq!(
            c.url("secret/metadata/app/", &[("list", "true".into())])
                .as_str(),
            "https://vault.example/prefix/v1/secret/metadata/app/?list=true"
        );
    }

    #[test]
    fn url_encodes_segments() {
        let c = client("http://localhost:8200");
        assert_eq!(
            c.url("secret/data/a b?c#d", &[("version", "3".into())])
                .as_str(),
            "http://localhost:8200/v1/secret/data/a%20b%3Fc%23d?version=3"
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        for addr in [
            "127.0.0.1:8200",
            "ftp://host",
            "http://host/?x=1",
            "not a url",
        ] {
            assert!(
                matches!(
                    Client::new(addr, None),
                    Err(ClientError::InvalidAddress { .. })
                ),
                "{addr} should be refused"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = client("http://127.0.0.1:8200");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn token_with_newline_is_refused() {
        assert!(matches!(
            Client::new("http://h", Some("a\nb".into())),
            Err(ClientError::InvalidToken)
        ));
    }

    #[test]
    fn missing_ca_file_is_reported() {
        let options = ClientOptions {
            ca_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..ClientOptions::default()
        };
        assert!(matches!(
            Client::with_options("https://h", None, &options),
            Err(ClientError::CaCertRead { .. })
        ));
    }

    #[test]
    fn sys_payload_prefers_data() {
        let v = serde_json::json!({"term": 1, "data": {"term": 2}});
        assert_eq!(sys_payload(v)["term"], 2);
        let v = serde_json::json!({"term": 1, "data": null});
        assert_eq!(sys_payload(v)["term"], 1);
    }

    #[test]
    fn listing_entries_skips_envelope_fields() {
        let v = serde_json::json!({
            "request_id": "r", "secret/": {"type": "kv"}, "warnings": null,
            "data": {"secret/": {"type": "kv"}, "sys/": {"type": "system"}}
        });
        let entries = listing_entries(v, Value::is_object);
        assert_eq!(entries.len(), 2);
        let v = serde_json::json!({"request_id": "r", "auth": {}, "file/": {"type": "file"}});
        let entries = listing_entries(v, Value::is_object);
        assert_eq!(entries.keys().collect::<Vec<_>>(), vec!["file/"]);
    }

    #[test]
    fn keys_of_reads_data_keys() {
        let v = serde_json::json!({"data": {"keys": ["a", "b/"]}});
        assert_eq!(keys_of(v).unwrap(), vec!["a", "b/"]);
        let v = serde_json::json!({"data": null});
        assert!(keys_of(v).unwrap().is_empty());
    }
}
