//! The desired core ACL policy of a SecretPolicy, as HCL text built with
//! `hcl-rs` (never by string pasting, so a path cannot break out of its
//! block).

use crate::crd::{Capability, SecretPolicy};

/// Name of the core policy of SecretPolicy `namespace/name`.
pub fn policy_name(namespace: &str, name: &str) -> String {
    format!("k8s.{namespace}.{name}")
}

/// The HCL policy granting the SecretPolicy's rules. Rules naming the same
/// path are merged (the union of their capabilities), capabilities sorted,
/// so equal specs give byte-equal text and an unchanged object needs no
/// write.
pub fn policy_hcl(policy: &SecretPolicy) -> Result<String, hcl::Error> {
    let mut merged: std::collections::BTreeMap<&str, std::collections::BTreeSet<Capability>> =
        std::collections::BTreeMap::new();
    for rule in &policy.spec.rules {
        merged
            .entry(rule.path.as_str())
            .or_default()
            .extend(rule.capabilities.iter().copied());
    }
    let mut body = hcl::Body::builder();
    for (path, caps) in merged {
        let caps: Vec<&str> = caps.into_iter().map(Capability::as_str).collect();
        body = body.add_block(
            hcl::Block::builder("path")
                .add_label(path)
                .add_attribute(("capabilities", caps))
                .build(),
        );
    }
    hcl::to_string(&body.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PolicyRule, SecretPolicySpec};

    fn policy(rules: Vec<(&str, Vec<Capability>)>) -> SecretPolicy {
        SecretPolicy::new(
            "web",
            SecretPolicySpec {
                service_accounts: vec!["web".into()],
                rules: rules
                    .into_iter()
                    .map(|(p, c)| PolicyRule {
                        path: p.into(),
                        capabilities: c,
                    })
                    .collect(),
                token_ttl: None,
            },
        )
    }

    #[test]
    fn rules_become_path_blocks_that_parse_back() {
        let p = policy(vec![
            (
                "secret/data/team-a/*",
                vec![Capability::Read, Capability::List],
            ),
            ("database/creds/team-a_ro", vec![Capability::Read]),
            (
                "secret/data/team-a/*",
                vec![Capability::Read, Capability::Create],
            ),
        ]);
        let text = policy_hcl(&p).unwrap();
        let parsed: hcl::Body = hcl::from_str(&text).unwrap();
        let blocks: Vec<_> = parsed.blocks().collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].labels[0].as_str(), "database/creds/team-a_ro");
        assert_eq!(blocks[1].labels[0].as_str(), "secret/data/team-a/*");
        let caps = blocks[1].body.attributes().next().unwrap();
        assert_eq!(
            caps.expr,
            hcl::Expression::from(vec!["create", "read", "list"])
        );
    }

    #[test]
    fn equal_specs_give_equal_text() {
        let a = policy(vec![(
            "secret/data/team-a/x",
            vec![Capability::List, Capability::Read],
        )]);
        let b = policy(vec![(
            "secret/data/team-a/x",
            vec![Capability::Read, Capability::List],
        )]);
        assert_eq!(policy_hcl(&a).unwrap(), policy_hcl(&b).unwrap());
    }

    #[test]
    fn names_follow_the_design() {
        assert_eq!(policy_name("team-a", "web"), "k8s.team-a.web");
    }
}
