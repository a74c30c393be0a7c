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
    let (response, patch, outcome) = respond(body, config)?;
    let mut review = serde_json::to_value(response.into_review())?;
    // The patch goes in as the base64 string the API documents (Go's
    // []byte). kube-core's `with_patch` would store it as bytes that serde
    // writes as an array of numbers, one JSON value per byte.
    if let Some(patch) = patch {
        if let Some(answer) = review.get_mut("response").and_then(Value::as_object_mut) {
            answer.insert("patchType".into(), Value::from("JSONPatch"));
            answer.insert(
                "patch".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(patch)),
            );
        }
    }
    Ok((review, outcome))
}

/// The response, the JSONPatch (serialised) when the pod is mutated, and
/// the outcome.
fn respond(
    body: &[u8],
    config: &Config,
) -> Result<(AdmissionResponse, Option<Vec<u8>>, Outcome), ReviewError> {
    let review: AdmissionReview<Pod> = serde_json::from_slice(body)?;
    let mut request: AdmissionRequest<Pod> =
        review.try_into().map_err(|_| ReviewError::NoRequest)?;
    let response = AdmissionResponse::from(&request);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    let creates_a_pod =
        is_pod && request.operation == Operation::Create && request.sub_resource.is_none();
    let mut pod = match request.object.take() {
        Some(pod) if creates_a_pod => pod,
        _ => return Ok((response, None, Outcome::Skipped)),
    };
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
        Ok(None) => Ok((response, None, Outcome::Skipped)),
        Ok(Some(patch)) => {
            tracing::info!(%namespace, pod = %name, "agent injected");
            match serde_json::to_vec(&patch) {
                Ok(bytes) => Ok((response, Some(bytes), Outcome::Injected)),
                // Serialising a patch of JSON values cannot fail; were it to,
                // refuse the pod rather than admit it without its secrets.
                Err(e) => {
                    tracing::error!(%namespace, pod = %name, error = %e, "failed to encode the patch");
                    let denied = response.deny("cairn-injector failed to encode its patch");
                    Ok((denied, None, Outcome::Denied))
                }
            }
        }
        Err(deny) => {
            let message = deny.to_string();
            tracing::info!(%namespace, pod = %name, reason = %message, "pod denied");
            let mut denied = response.deny(message);
            denied.result.code = 403;
            denied.result.reason = "Forbidden".into();
            Ok((denied, None, Outcome::Denied))
        }
    }
}
