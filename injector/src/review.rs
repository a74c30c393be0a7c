//! One `AdmissionReview` (`admission.k8s.io/v1`) in, one out: the
//! translation between the webhook protocol and [`crate::mutate`].

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use crate::config::Config;
use crate::metrics::Outcome;
use crate::mutate::mutate;

/// A review that cannot be answered with an `AdmissionReview` (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not an `AdmissionReview` with a pod.
    #[error("the body is not an AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    /// The review carries no request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Answer one review: the response `AdmissionReview` (JSON) and what
/// became of the pod.
pub fn review(body: &[u8], config: &Config) -> Result<(Value, Outcome), ReviewError> {
    let (response, outcome) = respond(body, config)?;
    let mut review = serde_json::to_value(response.into_review())?;
    // kube-core writes the patch as an array of numbers; the API documents
    // (and Go's []byte expects) a base64 string.
    if let Some(patch) = review.pointer_mut("/response/patch") {
        if let Some(bytes) = patch.as_array() {
            let bytes: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            *patch = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
    Ok((review, outcome))
}

fn respond(body: &[u8], config: &Config) -> Result<(AdmissionResponse, Outcome), ReviewError> {
    let review: AdmissionReview<Pod> = serde_json::from_slice(body)?;
    let request: AdmissionRequest<Pod> = review.try_into().map_err(|_| ReviewError::NoRequest)?;
    let response = AdmissionResponse::from(&request);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    let pod = match (&request.object, &request.operation) {
        (Some(pod), Operation::Create) if is_pod && request.sub_resource.is_none() => pod,
        _ => return Ok((response, Outcome::Skipped)),
    };
    let mut pod = pod.clone();
    // At creation the object's namespace may be empty; the request's is not.
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = request.namespace.clone();
    }
    let name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    match mutate(&pod, config) {
        Ok(None) => Ok((response, Outcome::Skipped)),
        Ok(Some(patch)) => {
            tracing::info!(%namespace, pod = %name, "agent injected");
            match response.with_patch(patch) {
                Ok(response) => Ok((response, Outcome::Injected)),
                // Serialising a patch of JSON values cannot fail; were it to,
                // refuse the pod rather than admit it without its secrets.
                Err(e) => {
                    tracing::error!(%namespace, pod = %name, error = %e, "failed to encode the patch");
                    let denied = AdmissionResponse::from(&request)
                        .deny("cairn-injector failed to encode its patch");
                    Ok((denied, Outcome::Denied))
                }
            }
        }
        Err(deny) => {
            let message = deny.to_string();
            tracing::info!(%namespace, pod = %name, reason = %message, "pod denied");
            let mut denied = response.deny(message);
            denied.result.code = 403;
            denied.result.reason = "Forbidden".into();
            Ok((denied, Outcome::Denied))
        }
    }
}
