//! The built-in `default` policy, attached to every non-root token.

/// HCL text of the `default` policy, equivalent to Vault's (less cubbyhole,
/// response wrapping and identity, which Cairn does not have): a token may
/// look itself up, renew and revoke itself, ask what it may do, and look up
/// and renew its leases.
pub const DEFAULT_POLICY: &str = r#"# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path
# for old clients, new path for newer
path "sys/renew" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Allow a workload to find the leases its own pod or object owns (the core
# limits a Kubernetes-login token to objects of its own namespace), e.g. the
# CSI provider after a restart.
path "sys/cairn/leases/owner" {
  capabilities = ["update"]
}

# Allow a token to read several secrets in one request; each path is checked
# for "read" on its own, so this grants nothing a single read would not.
path "sys/cairn/read" {
  capabilities = ["update"]
}

# Allow a token to wait for changes of secrets (Cairn's change stream); each
# watched path is checked for "read" on its own, so this reveals nothing.
path "sys/cairn/watch/*" {
  capabilities = ["read"]
}
"#;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{parse, Acl, Capabilities};
    use super::DEFAULT_POLICY;

    #[test]
    fn default_policy_grants_what_vault_grants_and_nothing_else() {
        let policy = match parse("default", DEFAULT_POLICY) {
            Ok(p) => p,
            Err(e) => panic!("default policy does not parse: {e}"),
        };
        assert_eq!(policy.paths.len(), 11);
        let acl = Acl::new(&[Arc::new(policy)]);
        let read = Capabilities::READ;
        let update = Capabilities::UPDATE;
        assert_eq!(acl.capabilities("auth/token/lookup-self"), read);
        assert_eq!(acl.capabilities("sys/internal/ui/resultant-acl"), read);
        for path in [
            "auth/token/renew-self",
            "auth/token/revoke-self",
            "sys/capabilities-self",
            "sys/renew",
            "sys/leases/renew",
            "sys/leases/lookup",
            "sys/cairn/leases/owner",
            "sys/cairn/read",
        ] {
            assert_eq!(acl.capabilities(path), update, "{path}");
        }
        // Cairn's change stream: each watched path is checked on its own.
        assert_eq!(acl.capabilities("sys/cairn/watch/secret/data/x"), read);
        for path in [
            "auth/token/create",
            "secret/data/x",
            "sys/policies/acl/default",
            "sys/leases/revoke",
            "sys/cairn/leases/revoke-owner",
            "sys/cairn/leases/owners",
        ] {
            assert!(acl.capabilities(path).is_empty(), "{path}");
        }
    }
}
