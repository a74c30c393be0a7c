//! ACL policies (`sys/policies/acl`) and `sys/capabilities-self`.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{decode_sys, listing_entries, Body, Client};
use crate::envelope::null_default;
use crate::error::ClientError;

/// A named ACL policy and its HCL or JSON text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AclPolicy {
    /// Policy name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Policy text as written.
    #[serde(default, deserialize_with = "null_default")]
    pub policy: String,
}

impl Client {
    /// `LIST sys/policies/acl`: the policy names.
    pub async fn list_policies(&self) -> Result<Vec<String>, ClientError> {
        self.list_keys("sys/policies/acl").await
    }

    /// `GET sys/policies/acl/:name`.
    pub async fn read_policy(&self, name: &str) -> Result<AclPolicy, ClientError> {
        let path = format!("sys/policies/acl/{name}");
        let value = self.json(Method::GET, &path, &[], Body::Empty).await?;
        decode_sys(value)
    }

    /// `PUT sys/policies/acl/:name`: create or replace a policy.
    pub async fn write_policy(&self, name: &str, policy: &str) -> Result<(), ClientError> {
        let path = format!("sys/policies/acl/{name}");
        let body = Body::Json(json!({ "policy": policy }));
        self.empty(Method::PUT, &path, body).await
    }

    /// `DELETE sys/policies/acl/:name`.
    pub async fn delete_policy(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("sys/policies/acl/{name}");
        self.empty(Method::DELETE, &path, Body::Empty).await
    }

    /// `POST sys/capabilities-self`: this token's capabilities on each path.
    /// The map has one entry per path (and Vault's aggregate `capabilities`).
    pub async fn capabilities_self(
        &self,
        paths: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, ClientError> {
        let body = Body::Json(json!({ "paths": paths }));
        let value: Value = self
            .json(Method::POST, "sys/capabilities-self", &[], body)
            .await?;
        listing_entries(value, Value::is_array)
            .into_iter()
            .map(|(path, caps)| {
                serde_json::from_value(caps)
                    .map(|caps| (path, caps))
                    .map_err(|source| ClientError::Decode {
                        status: 200,
                        source,
                    })
            })
            .collect()
    }
}
