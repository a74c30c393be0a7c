//! Parsed policies: the rules of one policy document, and the permissions a
//! path pattern grants once several policies are merged.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::capabilities::Capabilities;

/// A named ACL policy, parsed from HCL or JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The policy's name (normalised by the caller with `validate_name`).
    pub name: String,
    /// The policy text exactly as written, returned on read.
    pub raw: String,
    /// The `path` stanzas in the order written.
    pub paths: Vec<PathRule>,
}

/// One `path "<pattern>" { ... }` stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The pattern as written, less one leading `/`: a trailing `*` makes it
    /// a prefix glob, a `+` segment matches exactly one path segment.
    pub pattern: String,
    /// What the stanza grants.
    pub permissions: Permissions,
}

/// A map of request parameter name (lowercased) to the values it may or may
/// not take; an empty list means "any value".
pub type ParameterValues = BTreeMap<String, Vec<Value>>;

/// What a pattern grants: capabilities plus the parameter and
/// response-wrapping constraints Vault attaches to them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Permissions {
    /// Granted capabilities; exactly [`Capabilities::DENY`] when denied.
    pub capabilities: Capabilities,
    /// `allowed_parameters`: when present and non-empty, only these request
    /// parameters (key `*`: any) with these values (globs allowed) pass.
    pub allowed_parameters: Option<ParameterValues>,
    /// `denied_parameters`: these parameters (key `*`: all) with these values
    /// are refused.
    pub denied_parameters: Option<ParameterValues>,
    /// `required_parameters`: the request must carry each of these.
    pub required_parameters: Vec<String>,
    /// `min_wrapping_ttl`: stored; Cairn has no response wrapping yet.
    pub min_wrapping_ttl: Option<Duration>,
    /// `max_wrapping_ttl`: stored; Cairn has no response wrapping yet.
    pub max_wrapping_ttl: Option<Duration>,
}

impl Permissions {
    /// True when the pattern explicitly denies.
    pub fn is_deny(&self) -> bool {
        self.capabilities.contains(Capabilities::DENY)
    }

    /// The capabilities this grants: none at all when denied.
    pub fn effective(&self) -> Capabilities {
        if self.is_deny() {
            Capabilities::NONE
        } else {
            self.capabilities
        }
    }

    /// Folds the permissions of another stanza with the identical pattern
    /// into these, as Vault does across a token's policies: a deny anywhere
    /// wins and drops everything else; otherwise capabilities are unioned,
    /// parameter lists merged (an empty list, meaning "any value", absorbs a
    /// non-empty one), required parameters unioned, and the smaller of each
    /// wrapping TTL kept.
    pub fn merge(&mut self, other: &Permissions) {
        if self.is_deny() {
            return;
        }
        if other.is_deny() {
            *self = Permissions {
                capabilities: Capabilities::DENY,
                ..Permissions::default()
            };
            return;
        }
        self.capabilities |= other.capabilities;
        self.max_wrapping_ttl = min_set(self.max_wrapping_ttl, other.max_wrapping_ttl);
        self.min_wrapping_ttl = min_set(self.min_wrapping_ttl, other.min_wrapping_ttl);
        merge_parameters(&mut self.allowed_parameters, &other.allowed_parameters);
        merge_parameters(&mut self.denied_parameters, &other.denied_parameters);
        for name in &other.required_parameters {
            if !self.required_parameters.contains(name) {
                self.required_parameters.push(name.clone());
            }
        }
    }
}

/// The smaller of two optional durations, a missing one not counting.
fn min_set(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn merge_parameters(into: &mut Option<ParameterValues>, from: &Option<ParameterValues>) {
    let Some(from) = from.as_ref().filter(|m| !m.is_empty()) else {
        return;
    };
    let Some(into) = into.as_mut() else {
        *into = Some(from.clone());
        return;
    };
    for (key, values) in from {
        match into.get_mut(key) {
            // An empty list allows (or denies) every value, so it absorbs
            // any list it meets.
            Some(existing) if existing.is_empty() => {}
            Some(existing) if values.is_empty() => existing.clear(),
            Some(existing) => existing.extend(values.iter().cloned()),
            None => {
                into.insert(key.clone(), values.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps(c: Capabilities) -> Permissions {
        Permissions {
            capabilities: c,
            ..Permissions::default()
        }
    }

    #[test]
    fn merge_unions_capabilities() {
        let mut p = caps(Capabilities::READ);
        p.merge(&caps(Capabilities::LIST | Capabilities::UPDATE));
        assert_eq!(
            p.capabilities,
            Capabilities::READ | Capabilities::LIST | Capabilities::UPDATE
        );
        assert_eq!(p.effective(), p.capabilities);
    }

    #[test]
    fn deny_wins_in_either_order() {
        let mut a = caps(Capabilities::READ);
        a.allowed_parameters = Some(BTreeMap::from([("x".into(), vec![])]));
        a.merge(&caps(Capabilities::DENY));
        assert_eq!(a.capabilities, Capabilities::DENY);
        assert_eq!(a.allowed_parameters, None);
        assert_eq!(a.effective(), Capabilities::NONE);

        let mut b = caps(Capabilities::DENY);
        b.merge(&caps(Capabilities::ALL));
        assert_eq!(b.capabilities, Capabilities::DENY);
    }

    #[test]
    fn merge_parameters_and_ttls() {
        let mut a = caps(Capabilities::UPDATE);
        a.allowed_parameters = Some(BTreeMap::from([
            ("ttl".into(), vec![json!("1h")]),
            ("role".into(), vec![]),
        ]));
        a.required_parameters = vec!["ttl".into()];
        a.max_wrapping_ttl = Some(Duration::from_secs(300));
        let mut b = caps(Capabilities::CREATE);
        b.allowed_parameters = Some(BTreeMap::from([
            ("ttl".into(), vec![json!("2h")]),
            ("role".into(), vec![json!("r1")]),
            ("name".into(), vec![]),
        ]));
        b.required_parameters = vec!["ttl".into(), "name".into()];
        b.max_wrapping_ttl = Some(Duration::from_secs(60));
        b.min_wrapping_ttl = Some(Duration::from_secs(10));
        a.merge(&b);
        let allowed = a.allowed_parameters.clone().unwrap_or_default();
        assert_eq!(allowed["ttl"], vec![json!("1h"), json!("2h")]);
        assert!(allowed["role"].is_empty());
        assert!(allowed["name"].is_empty());
        assert_eq!(a.required_parameters, vec!["ttl", "name"]);
        assert_eq!(a.max_wrapping_ttl, Some(Duration::from_secs(60)));
        assert_eq!(a.min_wrapping_ttl, Some(Duration::from_secs(10)));

        // An empty list on the incoming side clears the existing values.
        let mut c = Permissions::default();
        c.merge(&b);
        let mut d = caps(Capabilities::READ);
        d.allowed_parameters = Some(BTreeMap::from([("role".into(), vec![])]));
        c.merge(&d);
        assert!(c.allowed_parameters.unwrap_or_default()["role"].is_empty());
    }
}
