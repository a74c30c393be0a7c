//! `auth/<method>/login`: the one authenticated-method path a caller reaches
//! without a token. The method checks the proof (e.g. a TokenReview), the
//! token store issues an orphan token with the granted policies, and both
//! the request and the response (the new token HMAC'd) are audited.

use super::call::Call;
use super::pipeline::audit_response;
use super::reply::{ApiError, Reply};
use super::AppState;
use crate::audit::AuditRequest;
use crate::auth::token::{CreateParams, DurationParam};
use crate::auth::LoginGrant;
use crate::engines::Operation;
use crate::time;

/// Whether `path` is an auth method's login (`auth/<mount>/login`); the
/// token method has no login.
pub fn is_login(path: &str) -> bool {
    path.starts_with("auth/") && path.ends_with("/login") && !path.starts_with("auth/token/")
}

/// Log in and answer the new token in the envelope's `auth`.
pub async fn run(
    state: &AppState,
    call: &Call,
    remote: &str,
    request_id: &str,
) -> Result<Reply, ApiError> {
    let unsealed = state.node.unsealed().map_err(|_| ApiError::sealed())?;
    let audit_req = AuditRequest {
        id: request_id,
        operation: "update",
        path: &call.path,
        data: Some(&call.data),
        remote_address: remote,
        auth: None,
    };
    let broker = unsealed.audit.broker.clone();
    broker
        .log_request(&audit_req)
        .await
        .map_err(|e| ApiError::internal(format!("audit: {e}")))?;

    let result = async {
        if !matches!(call.operation, Operation::Create | Operation::Update) {
            return Err(ApiError::method_not_allowed());
        }
        let (mount, _) = unsealed
            .mounts
            .route(&call.path)
            .filter(|(m, rest)| m.entry.is_auth() && *rest == "login")
            .ok_or_else(ApiError::unsupported_path)?;
        let grant = mount.engine.login(&call.data, &mount.view).await?;
        let issued = unsealed
            .tokens
            .create(None, params(grant), &call.path, true, time::now())
            .await?;
        tracing::info!(path = %mount.entry.path, display_name = %issued.entry.display_name, "login");
        Ok(Reply {
            auth: Some(issued.entry.auth_block(&issued.token, time::now())),
            ..Default::default()
        })
    }
    .await;
    audit_response(&broker, audit_req, request_id, result).await?
}

/// The token the grant asks for: an orphan (a login has no parent token).
fn params(grant: LoginGrant) -> CreateParams {
    CreateParams {
        policies: grant.policies,
        meta: grant.meta,
        no_default_policy: Some(grant.no_default_policy),
        renewable: Some(true),
        ttl: DurationParam(grant.ttl),
        explicit_max_ttl: DurationParam(grant.max_ttl),
        period: DurationParam(grant.period),
        display_name: Some(grant.display_name),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::is_login;

    #[test]
    fn login_paths() {
        assert!(is_login("auth/kubernetes/login"));
        assert!(is_login("auth/k8s/prod/login"));
        assert!(!is_login("auth/token/login"));
        assert!(!is_login("auth/kubernetes/role/login-role"));
        assert!(!is_login("secret/data/login"));
    }
}
