//! `cairn-operator bootstrap`: with a root (or otherwise privileged) token,
//! enable and configure the Kubernetes auth method and create the operator's
//! own role and policy, holding just the rights the operator uses.

use std::path::PathBuf;

use anyhow::Context as _;
use cairn_client::{Client, ClientOptions, KubernetesRole};

use crate::roles::AUDIENCE;

/// Flags of `cairn-operator bootstrap`.
#[derive(Debug, Clone, clap::Args)]
pub struct BootstrapArgs {
    /// The core's address.
    #[arg(long, env = "CAIRN_ADDR")]
    pub cairn_addr: String,
    /// PEM file with the CA of the core.
    #[arg(long, env = "CAIRN_CACERT")]
    pub cairn_ca_cert: Option<PathBuf>,
    /// A token allowed to enable auth methods and write policies (root).
    #[arg(
        long,
        env = "CAIRN_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_stdin"
    )]
    pub token: Option<String>,
    /// Read that token from the first line of standard input instead. Use it
    /// with `kubectl exec -i`: the command line of an exec is part of the
    /// request the API server records in its audit log.
    #[arg(long)]
    pub token_stdin: bool,
    /// Mount of the Kubernetes auth method.
    #[arg(long, env = "CAIRN_AUTH_MOUNT", default_value = "kubernetes")]
    pub auth_mount: String,
    /// The operator's role (and policy) name.
    #[arg(long, env = "CAIRN_AUTH_ROLE", default_value = "cairn-operator")]
    pub auth_role: String,
    /// The API server the core sends TokenReviews to. Default: the in-cluster
    /// address from KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT.
    #[arg(long, env = "CAIRN_KUBERNETES_HOST")]
    pub kubernetes_host: Option<String>,
    /// PEM CA of that API server.
    #[arg(long, env = "CAIRN_KUBERNETES_CA_CERT")]
    pub kubernetes_ca_cert: Option<PathBuf>,
    /// A token the core presents to the TokenReview API (unset: each login's
    /// own token is used, as Vault does).
    #[arg(long, env = "CAIRN_TOKEN_REVIEWER_JWT_FILE")]
    pub token_reviewer_jwt_file: Option<PathBuf>,
    /// Namespace of the operator's service account.
    #[arg(long, env = "POD_NAMESPACE", default_value = "cairn")]
    pub operator_namespace: String,
    /// The operator's service account.
    #[arg(
        long,
        env = "CAIRN_OPERATOR_SERVICE_ACCOUNT",
        default_value = "cairn-operator"
    )]
    pub operator_service_account: String,
    /// TTL of the operator's Cairn tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
}

/// The operator's policy: write the `k8s.*` policies and the identity roles
/// of the auth mount, renew / look up / revoke leases, and the lease-owner
/// endpoints. It may not touch its own role.
pub fn operator_policy(mount: &str, role: &str) -> Result<String, hcl::Error> {
    let block = |path: String, caps: &[&str]| {
        hcl::Block::builder("path")
            .add_label(path)
            .add_attribute(("capabilities", caps.to_vec()))
            .build()
    };
    let body = hcl::Body::builder()
        .add_block(block(
            "sys/policies/acl/k8s.*".into(),
            &["create", "read", "update", "delete"],
        ))
        .add_block(block(
            format!("auth/{mount}/role/*"),
            &["create", "read", "update", "delete"],
        ))
        .add_block(block(format!("auth/{mount}/role/{role}"), &["deny"]))
        // The leases it manages are owned by objects of other namespaces
        // (DynamicCredentials, pods); the core lets a namespace-bound token
        // act on another namespace's leases only with sudo on the path.
        .add_block(block("sys/leases/renew".into(), &["update", "sudo"]))
        .add_block(block("sys/leases/lookup".into(), &["update"]))
        .add_block(block("sys/leases/revoke".into(), &["update", "sudo"]))
        .add_block(block("sys/cairn/leases/owners".into(), &["read", "sudo"]))
        .add_block(block("sys/cairn/leases/owner".into(), &["update", "sudo"]))
        .add_block(block(
            "sys/cairn/leases/revoke-owner".into(),
            &["update", "sudo"],
        ))
        .build();
    hcl::to_string(&body)
}

/// The token on the first line of `input`, without its line ending.
fn read_token(mut input: impl std::io::BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("failed to read the token from standard input")?;
    let token = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!token.is_empty(), "no token on standard input");
    Ok(token.to_owned())
}

/// Performs the bootstrap.
pub async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
    let options = ClientOptions {
        ca_cert: args.cairn_ca_cert.clone(),
        ..ClientOptions::default()
    };
    let token = if args.token_stdin {
        read_token(std::io::stdin().lock())?
    } else {
        args.token
            .clone()
            .context("--token or --token-stdin is required")?
    };
    let client = Client::with_options(&args.cairn_addr, Some(token), &options)
        .context("failed to build the core client")?;
    let host = match &args.kubernetes_host {
        Some(h) => h.clone(),
        None => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST")
                .context("--kubernetes-host is required outside a cluster")?;
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
            format!("https://{host}:{port}")
        }
    };
    let ca = match &args.kubernetes_ca_cert {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {}", path.display()))?,
        ),
        None => {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt").ok()
        }
    };
    let reviewer = match &args.token_reviewer_jwt_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };

    let mounts = client
        .read("sys/auth")
        .await
        .context("failed to list auth methods")?
        .unwrap_or_default();
    let key = format!("{}/", args.auth_mount);
    let enabled = mounts.get(&key).is_some() || mounts.pointer(&format!("/data/{key}")).is_some();
    if !enabled {
        client
            .enable_auth(&args.auth_mount, "kubernetes")
            .await
            .context("failed to enable the Kubernetes auth method")?;
        println!(
            "enabled the kubernetes auth method at auth/{}",
            args.auth_mount
        );
    }
    client
        .configure_kubernetes_auth(&args.auth_mount, &host, ca.as_deref(), reviewer.as_deref())
        .await
        .context("failed to configure the Kubernetes auth method")?;
    let policy = operator_policy(&args.auth_mount, &args.auth_role)?;
    client
        .write_policy(&args.auth_role, &policy)
        .await
        .context("failed to write the operator's policy")?;
    let role = KubernetesRole {
        bound_service_account_names: vec![args.operator_service_account.clone()],
        bound_service_account_namespaces: vec![args.operator_namespace.clone()],
        token_policies: vec![args.auth_role.clone()],
        token_ttl: args.token_ttl,
        token_max_ttl: 0,
        audience: AUDIENCE.to_owned(),
    };
    client
        .write_kubernetes_role(&args.auth_mount, &args.auth_role, &role)
        .await
        .context("failed to write the operator's role")?;
    println!(
        "configured auth/{} for {host}; role and policy {} for {}/{}",
        args.auth_mount, args.auth_role, args.operator_namespace, args.operator_service_account
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_first_line_of_standard_input() {
        assert_eq!(read_token(&b"cairn.abc\n"[..]).unwrap(), "cairn.abc");
        assert_eq!(
            read_token(&b"cairn.abc\r\nmore\n"[..]).unwrap(),
            "cairn.abc"
        );
        assert_eq!(read_token(&b"cairn.abc"[..]).unwrap(), "cairn.abc");
        assert!(read_token(&b""[..]).is_err());
        assert!(read_token(&b"\n"[..]).is_err());
    }

    #[test]
    fn operator_policy_parses_and_denies_its_own_role() {
        let text = operator_policy("kubernetes", "cairn-operator").unwrap();
        let body: hcl::Body = hcl::from_str(&text).unwrap();
        let paths: Vec<String> = body
            .blocks()
            .map(|b| b.labels[0].as_str().to_owned())
            .collect();
        assert!(paths.contains(&"auth/kubernetes/role/cairn-operator".to_owned()));
        assert!(paths.contains(&"sys/cairn/leases/revoke-owner".to_owned()));
        assert!(!paths
            .iter()
            .any(|p| p == "*" || p.starts_with("sys/policies/acl/*")));
        let own = body
            .blocks()
            .find(|b| b.labels[0].as_str() == "auth/kubernetes/role/cairn-operator")
            .unwrap();
        assert_eq!(
            own.body.attributes().next().unwrap().expr,
            hcl::Expression::from(vec!["deny"])
        );
        // The leases it renews, revokes and collects are owned by objects of
        // other namespaces than its own: the core wants sudo for that.
        for path in [
            "sys/leases/renew",
            "sys/leases/revoke",
            "sys/cairn/leases/owners",
            "sys/cairn/leases/owner",
            "sys/cairn/leases/revoke-owner",
        ] {
            let block = body
                .blocks()
                .find(|b| b.labels[0].as_str() == path)
                .unwrap();
            let caps = block.body.attributes().next().unwrap().expr.to_string();
            assert!(caps.contains("sudo"), "{path}: {caps}");
        }
    }
}
