//! `auth/<mount>/role/<name>`: which service accounts may log in, and the
//! token they get.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::engines::fields::{bool_field, duration_field, list_field, str_field, OneString};
use crate::engines::EngineError;

/// A login role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Role {
    /// Service account names allowed to log in; `*` allows any.
    pub bound_service_account_names: Vec<String>,
    /// Namespaces allowed to log in; `*` allows any.
    pub bound_service_account_namespaces: Vec<String>,
    /// If set, the TokenReview asks for this audience and the login fails
    /// unless the token was issued for it.
    pub audience: String,
    /// `serviceaccount_uid` (default) or `serviceaccount_name`.
    pub alias_name_source: String,
    pub token_policies: Vec<String>,
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    pub token_period: i64,
    pub token_no_default_policy: bool,
}

/// Role names: the operator's `<namespace>.<serviceAccount>` form and Vault's
/// usual names. No `/`, so a role can never address another path.
pub fn check_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::BadRequest(
            "invalid role name: use letters, digits, '-', '_', '.' and '@'".into(),
        ))
    }
}

/// A field given under its `token_` name or Vault's older alias.
fn either<T>(
    data: &Map<String, Value>,
    name: &str,
    alias: &str,
    read: impl Fn(&Map<String, Value>, &str) -> Result<Option<T>, crate::engines::fields::FieldError>,
) -> Result<Option<T>, EngineError> {
    match read(data, name)? {
        Some(v) => Ok(Some(v)),
        None => Ok(read(data, alias)?),
    }
}

impl Role {
    /// Create (`previous = None`) or update a role from a write's body.
    pub fn from_body(
        data: &Map<String, Value>,
        previous: Option<&Role>,
    ) -> Result<Role, EngineError> {
        let mut role = previous.cloned().unwrap_or_default();
        let list = |field: &str| list_field(data, field, OneString::SplitCommas);
        if let Some(v) = list("bound_service_account_names")? {
            role.bound_service_account_names = v;
        }
        if let Some(v) = list("bound_service_account_namespaces")? {
            role.bound_service_account_namespaces = v;
        }
        if let Some(v) = str_field(data, "audience")? {
            role.audience = v.trim().to_owned();
        }
        if let Some(v) = str_field(data, "alias_name_source")? {
            if !matches!(v, "serviceaccount_uid" | "serviceaccount_name") {
                return Err(EngineError::BadRequest(
                    "alias_name_source must be serviceaccount_uid or serviceaccount_name".into(),
                ));
            }
            role.alias_name_source = v.to_owned();
        }
        let policies = |d: &Map<String, Value>, f: &str| list_field(d, f, OneString::SplitCommas);
        if let Some(v) = either(data, "token_policies", "policies", policies)? {
            role.token_policies = v;
        }
        if let Some(v) = either(data, "token_ttl", "ttl", duration_field)? {
            role.token_ttl = v;
        }
        if let Some(v) = either(data, "token_max_ttl", "max_ttl", duration_field)? {
            role.token_max_ttl = v;
        }
        if let Some(v) = either(data, "token_period", "period", duration_field)? {
            role.token_period = v;
        }
        if let Some(v) = bool_field(data, "token_no_default_policy")? {
            role.token_no_default_policy = v;
        }
        if let Some(t) = str_field(data, "token_type")? {
            if !matches!(t, "" | "default" | "service") {
                return Err(EngineError::BadRequest(format!(
                    "token_type {t:?} is not supported; use \"service\""
                )));
            }
        }
        role.validate()?;
        Ok(role)
    }

    fn validate(&self) -> Result<(), EngineError> {
        if self.bound_service_account_names.is_empty() {
            return Err(EngineError::BadRequest(
                "\"bound_service_account_names\" can not be empty".into(),
            ));
        }
        if self.bound_service_account_namespaces.is_empty() {
            return Err(EngineError::BadRequest(
                "\"bound_service_account_namespaces\" can not be empty".into(),
            ));
        }
        let wild_and_more = |l: &[String]| l.len() > 1 && l.iter().any(|n| n == "*");
        if wild_and_more(&self.bound_service_account_names)
            || wild_and_more(&self.bound_service_account_namespaces)
        {
            return Err(EngineError::BadRequest(
                "a bound list holding \"*\" can not name anything else".into(),
            ));
        }
        if self
            .token_policies
            .iter()
            .any(|p| p.eq_ignore_ascii_case("root"))
        {
            return Err(EngineError::BadRequest(
                "a login role can not grant the root policy".into(),
            ));
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(EngineError::BadRequest(
                "token_ttl can not be greater than token_max_ttl".into(),
            ));
        }
        Ok(())
    }

    /// Whether the service account `namespace/name` may use this role.
    pub fn binds(&self, namespace: &str, name: &str) -> (bool, bool) {
        let matches = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        (
            matches(&self.bound_service_account_namespaces, namespace),
            matches(&self.bound_service_account_names, name),
        )
    }

    /// Vault's read shape (with the older field aliases hvac users read).
    pub fn to_json(&self) -> Value {
        json!({
            "bound_service_account_names": self.bound_service_account_names,
            "bound_service_account_namespaces": self.bound_service_account_namespaces,
            "bound_service_account_namespace_selector": "",
            "audience": self.audience,
            "alias_name_source": if self.alias_name_source.is_empty() { "serviceaccount_uid" } else { &self.alias_name_source },
            "token_policies": self.token_policies,
            "policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "max_ttl": self.token_max_ttl,
            "token_period": self.token_period,
            "period": self.token_period,
            "token_no_default_policy": self.token_no_default_policy,
            "token_type": "default",
            "token_bound_cidrs": [],
            "token_explicit_max_ttl": 0,
            "token_num_uses": 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn vault_aliases_and_weak_shapes() {
        let r = Role::from_body(
            &body(json!({
                "bound_service_account_names": "app, worker",
                "bound_service_account_namespaces": ["team-a"],
                "policies": "read-db", "ttl": "1h", "max_ttl": 7200, "audience": "cairn"
            })),
            None,
        )
        .unwrap();
        assert_eq!(r.bound_service_account_names, vec!["app", "worker"]);
        assert_eq!(r.token_policies, vec!["read-db"]);
        assert_eq!((r.token_ttl, r.token_max_ttl), (3600, 7200));
        assert_eq!(r.binds("team-a", "worker"), (true, true));
        assert_eq!(r.binds("team-b", "worker"), (false, true));
        assert_eq!(r.binds("team-a", "other"), (true, false));
        // An update changes only what it names.
        let r2 = Role::from_body(&body(json!({"token_ttl": 60})), Some(&r)).unwrap();
        assert_eq!(r2.token_ttl, 60);
        assert_eq!(
            r2.bound_service_account_names,
            r.bound_service_account_names
        );
    }

    #[test]
    fn bad_roles_are_refused() {
        for bad in [
            json!({"bound_service_account_names": ["a"]}),
            json!({"bound_service_account_namespaces": ["a"]}),
            json!({"bound_service_account_names": ["*", "a"], "bound_service_account_namespaces": ["x"]}),
            json!({"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["x"], "ttl": 10, "max_ttl": 5}),
            json!({"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["x"], "ttl": "soon"}),
            json!({"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["x"], "alias_name_source": "x"}),
            json!({"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["x"], "policies": "Root"}),
        ] {
            assert!(Role::from_body(&body(bad.clone()), None).is_err(), "{bad}");
        }
        assert!(check_name("team-a.app").is_ok());
        for bad in ["", "../x", "a/b", "a b", "a\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcards_bind_everything() {
        let r = Role::from_body(
            &body(json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*"})),
            None,
        )
        .unwrap();
        assert_eq!(r.binds("any", "one"), (true, true));
    }
}
