//! Errors of the client: transport, the server's answer, and decoding.

use std::path::PathBuf;

/// Everything that can go wrong talking to a Cairn (or Vault) server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is not an absolute `http`/`https` URL.
    #[error("invalid server address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// The CA certificate file could not be read.
    #[error("failed to read CA certificate {path}")]
    CaCertRead {
        /// The file named by the caller.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA certificate file holds no usable PEM certificate.
    #[error("failed to parse CA certificate {path}: no PEM certificate found")]
    CaCertParse {
        /// The file named by the caller.
        path: PathBuf,
    },
    /// The token holds characters that cannot go into an HTTP header.
    #[error("the token contains characters that are not allowed in an HTTP header")]
    InvalidToken,
    /// The HTTP client could not be built (TLS configuration).
    #[error("failed to build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// The request never got an answer: connection refused, TLS failure, timeout.
    #[error("failed to reach the server")]
    Connection(#[source] reqwest::Error),
    /// The server answered with an error status; `errors` is its `errors` list.
    #[error("{}", api_message(*.status, .errors))]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The server's `errors` list (may be empty, e.g. a plain 404).
        errors: Vec<String>,
    },
    /// The server answered 2xx but the body is not what the API documents.
    #[error("failed to decode the server's response (HTTP {status})")]
    Decode {
        /// The HTTP status code of the answer.
        status: u16,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The HTTP status when the server answered with an error, else `None`.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 answer (the path holds nothing).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Formats an API error as Vault's CLI does: the code, then each error.
fn api_message(status: u16, errors: &[String]) -> String {
    if errors.is_empty() {
        format!("Code: {status}. Errors: (none)")
    } else {
        let list: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
        format!("Code: {status}. Errors:\n\n{}", list.join("\n"))
    }
}

/// Extracts the `errors` list from an error body, or the trimmed body itself
/// when it is not Vault's JSON shape (a proxy's HTML page, plain text).
pub(crate) fn decode_error_body(body: &str) -> Vec<String> {
    // Cap what we keep from a non-JSON body: it is shown to a human, and a
    // misbehaving proxy could send megabytes.
    const MAX_RAW: usize = 512;
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(serde_json::Value::Array(items)) = map.get("errors") {
            return items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    let mut end = trimmed.len().min(MAX_RAW);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    vec![trimmed[..end].to_string()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vault_errors_list() {
        let errors = decode_error_body(r#"{"errors":["permission denied","second"]}"#);
        assert_eq!(errors, vec!["permission denied", "second"]);
    }

    #[test]
    fn empty_errors_list_stays_empty() {
        assert!(decode_error_body(r#"{"errors":[]}"#).is_empty());
        assert!(decode_error_body("").is_empty());
        assert!(decode_error_body("  \n").is_empty());
    }

    #[test]
    fn non_json_body_is_kept_trimmed_and_capped() {
        assert_eq!(decode_error_body(" bad gateway \n"), vec!["bad gateway"]);
        let long = "é".repeat(1000);
        let errors = decode_error_body(&long);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].len() <= 512);
    }

    #[test]
    fn non_string_errors_are_rendered_as_json() {
        assert_eq!(decode_error_body(r#"{"errors":[42]}"#), vec!["42"]);
    }

    #[test]
    fn api_error_display_lists_errors() {
        let err = ClientError::Api {
            status: 403,
            errors: vec!["permission denied".into()],
        };
        assert_eq!(err.to_string(), "Code: 403. Errors:\n\n* permission denied");
        assert!(!err.is_not_found());
        let missing = ClientError::Api {
            status: 404,
            errors: vec![],
        };
        assert!(missing.is_not_found());
        assert_eq!(missing.to_string(), "Code: 404. Errors: (none)");
    }
}
