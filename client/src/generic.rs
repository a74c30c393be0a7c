//! Raw logical operations on any path, returning Vault's envelope as JSON.

use reqwest::Method;
use serde_json::{Map, Value};

use crate::client::{is_plain_not_found, Body, Client};
use crate::error::ClientError;

impl Client {
    /// `GET path`: the envelope, or `None` when nothing is there (a 404
    /// without error messages).
    pub async fn read(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.read_with_query(path, &[]).await
    }

    /// `GET path?query`: as [`Client::read`] with query parameters.
    pub async fn read_with_query(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Value>, ClientError> {
        match self
            .optional_json(Method::GET, path, query, Body::Empty)
            .await
        {
            Err(err) if is_plain_not_found(&err) => Ok(None),
            other => other,
        }
    }

    /// `POST path` with `data` as the JSON body: the envelope, or `None`
    /// for a 204.
    pub async fn write(
        &self,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Value>, ClientError> {
        let body = Body::Json(Value::Object(data.clone()));
        self.optional_json(Method::POST, path, &[], body).await
    }

    /// `DELETE path`: the envelope, or `None` for a 204.
    pub async fn delete(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.optional_json(Method::DELETE, path, &[], Body::Empty)
            .await
    }

    /// LIST `path` (`GET ?list=true`): the envelope, or `None` when empty.
    pub async fn list(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.list_raw(path).await
    }
}
