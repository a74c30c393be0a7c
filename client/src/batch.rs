//! `POST sys/cairn/read`: several reads in one request (Cairn's extension).
//! Each path is checked, audited and answered as its own `GET` would be.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::client::{decode_response, Body, Client};
use crate::envelope::Secret;
use crate::error::ClientError;
use crate::lease::LeaseOwner;

/// The most paths one batch may name (the server's limit).
pub const MAX_BATCH_PATHS: usize = 128;

#[derive(Deserialize)]
struct BatchAnswer {
    responses: Vec<BatchItem>,
}

#[derive(Deserialize)]
struct BatchItem {
    status: u16,
    #[serde(default)]
    body: Value,
}

impl Client {
    /// Read every path of `paths` in one request; a lease an engine issues is
    /// owned by `owner` when given. One result per path, in order: the
    /// secret as [`Client::write_leased`] would give it, or that read's error.
    /// The whole call fails only when the batch itself does (bad request,
    /// token refused, server unreachable).
    pub async fn read_many(
        &self,
        paths: &[&str],
        owner: Option<&LeaseOwner>,
    ) -> Result<Vec<Result<Secret<Map<String, Value>>, ClientError>>, ClientError> {
        let body = Body::Json(json!({ "paths": paths }));
        let response = self
            .send_owned(Method::POST, "sys/cairn/read", body, owner)
            .await?;
        let answer: BatchAnswer = decode_response(response).await?;
        if answer.responses.len() != paths.len() {
            return Err(ClientError::Api {
                status: 502,
                errors: vec![format!(
                    "the batch read answered {} results for {} paths",
                    answer.responses.len(),
                    paths.len()
                )],
            });
        }
        Ok(answer.responses.into_iter().map(item_result).collect())
    }
}

fn item_result(item: BatchItem) -> Result<Secret<Map<String, Value>>, ClientError> {
    if (200..300).contains(&item.status) {
        return serde_json::from_value(item.body).map_err(|source| ClientError::Decode {
            status: item.status,
            source,
        });
    }
    let errors = item
        .body
        .get("errors")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Err(ClientError::Api {
        status: item.status,
        errors,
    })
}
