//! The errors of a Mount and the gRPC code each one is answered with.

use tonic::{Code, Status};

/// Why a Mount failed. Each variant maps to one gRPC code on purpose (see
/// [`MountError::code`]); messages name what failed and never carry a token
/// or a secret value.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The attributes, parameters or an object of the SecretProviderClass
    /// are malformed (bad JSON or YAML, bad file name, unknown encoding).
    #[error("{0}")]
    InvalidArgument(String),
    /// The driver sent no service-account token for the audience.
    #[error(
        "no service-account token for audience {audience:?} in csi.storage.k8s.io/serviceAccount.tokens \
         (the CSIDriver object must request it under tokenRequests)"
    )]
    NoToken {
        /// The audience looked for.
        audience: String,
    },
    /// The core refused: login refused (wrong audience, unbound service
    /// account) or the ACL denies a path.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A path or key holds nothing.
    #[error("not found: {0}")]
    NotFound(String),
    /// A value does not decode with the object's encoding.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The core is sealed, on standby without a leader, or unreachable.
    #[error("the core is unavailable: {0}")]
    Unavailable(String),
    /// The files exceed the gRPC message limit of the driver.
    #[error(
        "the mount response is {size} bytes, over the {limit} byte gRPC message limit; \
         split the objects over several SecretProviderClasses"
    )]
    TooLarge {
        /// Encoded size of the response.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The whole Mount took longer than the per-request timeout.
    #[error("the mount did not finish within {0:?}")]
    Timeout(std::time::Duration),
    /// The core answered something the provider cannot use, or failed itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MountError {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            MountError::InvalidArgument(_) | MountError::NoToken { .. } => Code::InvalidArgument,
            MountError::PermissionDenied(_) => Code::PermissionDenied,
            MountError::NotFound(_) => Code::NotFound,
            MountError::FailedPrecondition(_) => Code::FailedPrecondition,
            MountError::Unavailable(_) => Code::Unavailable,
            MountError::TooLarge { .. } => Code::ResourceExhausted,
            MountError::Timeout(_) => Code::DeadlineExceeded,
            MountError::Internal(_) => Code::Internal,
        }
    }
}

impl From<MountError> for Status {
    fn from(err: MountError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

/// Classifies an error of the core's client for the operation `what` (e.g.
/// `read secret/data/app`). The core's own messages are kept: they never
/// hold secret material.
pub fn from_client(what: &str, err: cairn_client::ClientError) -> MountError {
    use cairn_client::ClientError as E;
    match err {
        E::Api { status, errors } => {
            let detail = if errors.is_empty() {
                format!("{what}: HTTP {status}")
            } else {
                format!("{what}: {}", errors.join("; "))
            };
            match status {
                401 | 403 => MountError::PermissionDenied(detail),
                404 => MountError::NotFound(detail),
                400 | 405 | 409 | 412 | 422 => MountError::InvalidArgument(detail),
                429 | 502 | 503 | 504 => MountError::Unavailable(detail),
                _ => MountError::Internal(detail),
            }
        }
        E::Connection(source) => {
            let why = if source.is_timeout() {
                "timed out"
            } else {
                "cannot connect"
            };
            MountError::Unavailable(format!("{what}: {why}"))
        }
        E::Decode { status, .. } => {
            MountError::Internal(format!("{what}: undecodable answer (HTTP {status})"))
        }
        E::InvalidAddress { addr, reason } => {
            MountError::InvalidArgument(format!("invalid core address {addr:?}: {reason}"))
        }
        E::CaCertRead { path, .. } | E::CaCertParse { path } => {
            MountError::InvalidArgument(format!("unusable CA certificate {}", path.display()))
        }
        E::InvalidToken => MountError::InvalidArgument(
            "the service-account token holds characters not allowed in a header".into(),
        ),
        other => MountError::Internal(format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::ClientError;

    fn api(status: u16) -> ClientError {
        ClientError::Api {
            status,
            errors: vec!["x".into()],
        }
    }

    #[test]
    fn core_statuses_map_to_grpc_codes() {
        let cases = [
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (400, Code::InvalidArgument),
            (503, Code::Unavailable),
            (502, Code::Unavailable),
            (429, Code::Unavailable),
            (500, Code::Internal),
        ];
        for (status, code) in cases {
            assert_eq!(from_client("op", api(status)).code(), code, "{status}");
        }
    }

    #[test]
    fn status_carries_the_message() {
        let status: Status = MountError::NoToken {
            audience: "cairn".into(),
        }
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("\"cairn\""));
    }
}
