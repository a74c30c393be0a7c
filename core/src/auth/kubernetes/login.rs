//! `auth/<mount>/login`: a service-account token in, a Cairn token's grant out.

use serde_json::{Map, Value};

use super::config::AuthConfig;
use super::review::Reviewed;
use super::role::{check_name, Role};
use crate::auth::LoginGrant;
use crate::engines::fields::str_field;
use crate::engines::EngineError;

/// The audience a login without a role asks for: Cairn's identity model gives
/// every workload a projected token of this audience.
pub const DEFAULT_AUDIENCE: &str = "cairn";

/// The role a login without a role name uses: `<namespace>.<serviceAccount>`
/// (namespaces have no dots, so the split is unambiguous).
pub fn identity_role(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// Where login finds what it needs; the method implements it over its view.
#[async_trait::async_trait]
pub trait LoginSource: Send + Sync {
    async fn config(&self) -> Result<Option<AuthConfig>, EngineError>;
    async fn role(&self, name: &str) -> Result<Option<Role>, EngineError>;
    async fn review(
        &self,
        config: &AuthConfig,
        jwt: &str,
        audiences: &[String],
    ) -> Result<Reviewed, EngineError>;
}

/// Check a login request and decide the token to issue.
pub async fn login(
    source: &dyn LoginSource,
    data: &Map<String, Value>,
) -> Result<LoginGrant, EngineError> {
    let jwt = str_field(data, "jwt")?
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| EngineError::BadRequest("missing jwt".into()))?;
    let role_name = str_field(data, "role")?
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let config = source.config().await?.ok_or_else(|| {
        EngineError::BadRequest("the kubernetes auth method is not configured".into())
    })?;

    let (role_name, role, who) = match role_name {
        Some(name) => {
            check_name(name)?;
            let role = source
                .role(name)
                .await?
                .ok_or_else(|| EngineError::BadRequest(format!("invalid role name {name:?}")))?;
            let audiences = audiences_of(&role);
            let who = source.review(&config, jwt, &audiences).await?;
            (name.to_owned(), role, who)
        }
        None => {
            let who = source
                .review(&config, jwt, &[DEFAULT_AUDIENCE.to_owned()])
                .await?;
            let name = identity_role(&who.namespace, &who.name);
            let role = source.role(&name).await?.ok_or_else(|| {
                EngineError::Denied(format!(
                    "permission denied: no role {name:?} exists for this service account (no SecretPolicy names it)"
                ))
            })?;
            if !role.audience.is_empty() && !who.audiences.contains(&role.audience) {
                return Err(EngineError::Denied(format!(
                    "permission denied: the token was not issued for the audience {:?}",
                    role.audience
                )));
            }
            (name, role, who)
        }
    };

    match role.binds(&who.namespace, &who.name) {
        (false, _) => {
            return Err(EngineError::Denied(
                "permission denied: namespace not authorized".into(),
            ))
        }
        (_, false) => {
            return Err(EngineError::Denied(
                "permission denied: service account name not authorized".into(),
            ))
        }
        _ => {}
    }
    Ok(grant(&role_name, &role, &who))
}

fn audiences_of(role: &Role) -> Vec<String> {
    if role.audience.is_empty() {
        Vec::new()
    } else {
        vec![role.audience.clone()]
    }
}

fn grant(role_name: &str, role: &Role, who: &Reviewed) -> LoginGrant {
    let meta = [
        ("role", role_name.to_owned()),
        ("service_account_name", who.name.clone()),
        ("service_account_namespace", who.namespace.clone()),
        ("service_account_uid", who.uid.clone()),
        ("service_account_secret_name", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    LoginGrant {
        // A role can never hold `root` (refused at write); drop it anyway.
        policies: role
            .token_policies
            .iter()
            .filter(|p| !p.eq_ignore_ascii_case("root"))
            .cloned()
            .collect(),
        no_default_policy: role.token_no_default_policy,
        ttl: role.token_ttl,
        max_ttl: role.token_max_ttl,
        period: role.token_period,
        display_name: format!("kubernetes-{}-{}", who.namespace, who.name),
        meta,
        alias_name: if role.alias_name_source == "serviceaccount_name" || who.uid.is_empty() {
            format!("{}/{}", who.namespace, who.name)
        } else {
            who.uid.clone()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    /// A fake API server: tokens map to (namespace, name, audiences).
    struct Fake {
        roles: BTreeMap<String, Role>,
        tokens: BTreeMap<&'static str, (&'static str, &'static str, Vec<&'static str>)>,
        asked: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl LoginSource for Fake {
        async fn config(&self) -> Result<Option<AuthConfig>, EngineError> {
            let mut config = AuthConfig::default();
            config.kubernetes_host = "http://k8s".into();
            Ok(Some(config))
        }
        async fn role(&self, name: &str) -> Result<Option<Role>, EngineError> {
            Ok(self.roles.get(name).cloned())
        }
        async fn review(
            &self,
            _: &AuthConfig,
            jwt: &str,
            audiences: &[String],
        ) -> Result<Reviewed, EngineError> {
            self.asked.lock().unwrap().push(audiences.to_vec());
            let (ns, name, auds) = self
                .tokens
                .get(jwt)
                .ok_or_else(|| EngineError::Denied("permission denied: unknown token".into()))?;
            let valid: Vec<String> = auds
                .iter()
                .map(|a| a.to_string())
                .filter(|a| audiences.is_empty() || audiences.contains(a))
                .collect();
            if !audiences.is_empty() && valid.is_empty() {
                return Err(EngineError::Denied("permission denied: audience".into()));
            }
            Ok(Reviewed {
                namespace: ns.to_string(),
                name: name.to_string(),
                uid: "uid-1".into(),
                audiences: valid,
            })
        }
    }

    fn role(names: &str, namespaces: &str, audience: &str) -> Role {
        Role::from_body(
            json!({
                "bound_service_account_names": names,
                "bound_service_account_namespaces": namespaces,
                "audience": audience, "token_policies": "p1", "token_ttl": 600,
            })
            .as_object()
            .unwrap(),
            None,
        )
        .unwrap()
    }

    fn fake() -> Fake {
        Fake {
            roles: [
                ("app-role".to_owned(), role("app", "team-a", "cairn")),
                ("team-a.app".to_owned(), role("app", "team-a", "cairn")),
            ]
            .into_iter()
            .collect(),
            tokens: [
                ("tok-a", ("team-a", "app", vec!["cairn"])),
                ("tok-b", ("team-b", "app", vec!["cairn"])),
                (
                    "tok-api",
                    ("team-a", "app", vec!["https://kubernetes.default.svc"]),
                ),
                ("tok-orphan", ("team-a", "nobody", vec!["cairn"])),
            ]
            .into_iter()
            .collect(),
            asked: Mutex::new(Vec::new()),
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[tokio::test]
    async fn login_with_a_role() {
        let f = fake();
        let g = login(&f, &body(json!({"role": "app-role", "jwt": "tok-a"})))
            .await
            .unwrap();
        assert_eq!(g.policies, vec!["p1"]);
        assert_eq!(g.ttl, 600);
        assert_eq!(g.meta["service_account_namespace"], "team-a");
        assert_eq!(g.meta["role"], "app-role");
        assert_eq!(f.asked.lock().unwrap()[0], vec!["cairn".to_owned()]);
    }

    #[tokio::test]
    async fn login_without_a_role_uses_the_identity_role() {
        let f = fake();
        let g = login(&f, &body(json!({"jwt": "tok-a"}))).await.unwrap();
        assert_eq!(g.meta["role"], "team-a.app");
        // team-a.nobody has no role: refused with 403, not 400.
        let e = login(&f, &body(json!({"jwt": "tok-orphan"})))
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Denied(_)), "{e}");
    }

    #[tokio::test]
    async fn refusals_say_why_and_never_echo_the_token() {
        let f = fake();
        for (req, kind) in [
            (json!({"role": "app-role"}), "bad"),
            (json!({"role": "app-role", "jwt": ""}), "bad"),
            (json!({"role": "nope", "jwt": "tok-a"}), "bad"),
            (json!({"role": "../x", "jwt": "tok-a"}), "bad"),
            (json!({"role": "app-role", "jwt": "tok-b"}), "denied"),
            (json!({"role": "app-role", "jwt": "tok-api"}), "denied"),
            (json!({"jwt": "tok-api"}), "denied"),
            (
                json!({"role": "app-role", "jwt": "garbage-token-value"}),
                "denied",
            ),
        ] {
            let e = login(&f, &body(req.clone())).await.unwrap_err();
            match kind {
                "bad" => assert!(matches!(e, EngineError::BadRequest(_)), "{req}: {e}"),
                _ => assert!(matches!(e, EngineError::Denied(_)), "{req}: {e}"),
            }
            assert!(!e.to_string().contains("garbage-token-value"));
        }
    }
}
