//! Tests of the policy parser, HCL and JSON.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::super::{Capabilities, PolicyError};
use super::{parse, parse_duration};

fn ok(text: &str) -> super::Policy {
    match parse("p", text) {
        Ok(p) => p,
        Err(e) => panic!("policy should parse: {e}\n{text}"),
    }
}

fn err(text: &str) -> PolicyError {
    match parse("p", text) {
        Ok(p) => panic!("policy should be refused: {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn hcl_paths_and_capabilities() {
    let text = r#"
        # team A reads its secrets
        path "secret/data/team-a/*" {
          capabilities = ["read", "list"]
        }
        path "secret/+/team-b" { capabilities = ["deny"] }
        path "/sys/mounts" {
          capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"]
        }
    "#;
    let p = ok(text);
    assert_eq!(p.name, "p");
    assert_eq!(p.raw, text);
    assert_eq!(p.paths.len(), 3);
    assert_eq!(p.paths[0].pattern, "secret/data/team-a/*");
    assert_eq!(
        p.paths[0].permissions.capabilities,
        Capabilities::READ | Capabilities::LIST
    );
    assert_eq!(p.paths[1].pattern, "secret/+/team-b");
    assert_eq!(p.paths[1].permissions.capabilities, Capabilities::DENY);
    // One leading slash is dropped, as API paths start after it.
    assert_eq!(p.paths[2].pattern, "sys/mounts");
    assert_eq!(p.paths[2].permissions.capabilities, Capabilities::ALL);
}

#[test]
fn json_form_parses_like_hcl() {
    let hcl = ok(r#"
        path "secret/data/a" { capabilities = ["read"] }
        path "secret/metadata/*" { capabilities = ["list", "delete"] }
    "#);
    let json = ok(r#"  {"path": {
        "secret/data/a": {"capabilities": ["read"]},
        "secret/metadata/*": {"capabilities": ["list", "delete"]}
    }}"#);
    assert_eq!(hcl.paths, json.paths);
    // HCL's JSON spelling of repeated blocks: lists of objects.
    let listed = ok(r#"{"path": [
        {"secret/data/a": [{"capabilities": ["read"]}]},
        {"secret/metadata/*": {"capabilities": ["list", "delete"]}}
    ]}"#);
    assert_eq!(hcl.paths, listed.paths);
}

#[test]
fn deny_drops_other_capabilities_and_constraints() {
    let p = ok(r#"path "a" {
        capabilities = ["read", "deny", "sudo"]
        allowed_parameters = { "x" = [] }
    }"#);
    assert_eq!(p.paths[0].permissions.capabilities, Capabilities::DENY);
    assert_eq!(p.paths[0].permissions.allowed_parameters, None);
}

#[test]
fn legacy_policy_shorthand() {
    let caps = |legacy: &str| {
        ok(&format!(r#"path "a" {{ policy = "{legacy}" }}"#)).paths[0]
            .permissions
            .capabilities
    };
    let write = Capabilities::CREATE
        | Capabilities::READ
        | Capabilities::UPDATE
        | Capabilities::DELETE
        | Capabilities::LIST;
    assert_eq!(caps("read"), Capabilities::READ | Capabilities::LIST);
    assert_eq!(caps("write"), write);
    assert_eq!(caps("sudo"), write | Capabilities::SUDO);
    assert_eq!(caps("deny"), Capabilities::DENY);
    // The shorthand adds to explicit capabilities.
    let both = ok("path \"a\" {\n policy = \"read\"\n capabilities = [\"patch\"]\n}");
    assert_eq!(
        both.paths[0].permissions.capabilities,
        Capabilities::READ | Capabilities::LIST | Capabilities::PATCH
    );
    let e = err(r#"path "a" { policy = "admin" }"#);
    assert!(
        matches!(&e, PolicyError::InvalidLegacyPolicy { path, value } if path == "a" && value == "admin"),
        "{e:?}"
    );
}

#[test]
fn parameters_and_wrapping_ttls_are_stored() {
    let p = ok(r#"
        path "auth/token/create" {
          capabilities = ["update"]
          allowed_parameters = {
            "TTL" = ["1h", "2h"]
            "*" = []
          }
          denied_parameters {
            policies = ["root", 3, true]
          }
          required_parameters = ["ttl"]
          min_wrapping_ttl = "1m"
          max_wrapping_ttl = 3600
          comment = "tokens for CI"
        }
    "#);
    let perms = &p.paths[0].permissions;
    let allowed = perms.allowed_parameters.clone().unwrap_or_default();
    assert_eq!(allowed["ttl"], vec![json!("1h"), json!("2h")]);
    assert!(allowed["*"].is_empty());
    let denied = perms.denied_parameters.clone().unwrap_or_default();
    assert_eq!(
        denied["policies"],
        vec![json!("root"), json!(3), json!(true)]
    );
    assert_eq!(perms.required_parameters, vec!["ttl"]);
    assert_eq!(perms.min_wrapping_ttl, Some(Duration::from_secs(60)));
    assert_eq!(perms.max_wrapping_ttl, Some(Duration::from_secs(3600)));

    let json = ok(r#"{"path": {"auth/token/create": {
        "capabilities": ["update"],
        "allowed_parameters": {"TTL": ["1h", "2h"], "*": []},
        "denied_parameters": {"policies": ["root", 3, true]},
        "required_parameters": ["ttl"],
        "min_wrapping_ttl": "60s",
        "max_wrapping_ttl": "1h",
        "comment": "tokens for CI"
    }}}"#);
    assert_eq!(p.paths, json.paths);
}

#[test]
fn top_level_name_is_accepted_and_empty_policy_is_valid() {
    let p = ok("name = \"ignored\"\npath \"a\" { capabilities = [\"read\"] }");
    assert_eq!(p.name, "p");
    assert!(ok("# nothing yet\n").paths.is_empty());
    assert!(ok("").paths.is_empty());
    assert!(ok("{}").paths.is_empty());
}

#[test]
fn unknown_capability_is_named() {
    let e = err(r#"path "secret/*" { capabilities = ["read", "write"] }"#);
    assert_eq!(
        e,
        PolicyError::InvalidCapability {
            path: "secret/*".into(),
            capability: "write".into()
        }
    );
    assert!(e.to_string().contains("\"write\""), "{e}");
    assert!(e.to_string().contains("\"secret/*\""), "{e}");
    // Capabilities are case-sensitive, as in Vault.
    assert!(matches!(
        err(r#"{"path": {"a": {"capabilities": ["Read"]}}}"#),
        PolicyError::InvalidCapability { .. }
    ));
}

#[test]
fn syntax_errors_are_reported() {
    for text in [
        r#"path "a" { capabilities = ["read"] "#,
        r#"path "a" { capabilities = ["read" }"#,
        r#"path "a" capabilities = ["read"]"#,
        "path \"a\" { capabilities = [\"read\"] }}",
        r#"{"path": {"a": {"capabilities": ["read"]}}"#,
        r#"{"path": "a"}"#,
        "{ not json",
    ] {
        let e = err(text);
        assert!(matches!(e, PolicyError::Syntax(_)), "{text}: {e:?}");
        assert!(e.to_string().starts_with("failed to parse policy: "), "{e}");
        assert!(
            !e.to_string().starts_with("failed to parse policy:  "),
            "{e}"
        );
    }
}

#[test]
fn long_syntax_errors_are_cut_short() {
    let text = format!(
        "path \"a\" {{ capabilities = [\"{}\"] x",
        "é".repeat(10_000)
    );
    let message = err(&text).to_string();
    assert!(message.len() < 600, "{} bytes", message.len());
    assert!(message.ends_with(" ..."));
}

#[test]
fn structural_mistakes_name_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        (
            r#"paths "a" { capabilities = ["read"] }"#,
            "unknown key \"paths\"",
        ),
        (
            r#"path { capabilities = ["read"] }"#,
            "exactly one quoted pattern",
        ),
        (
            r#"path "a" "b" { capabilities = ["read"] }"#,
            "exactly one quoted pattern",
        ),
        (
            r#"path "a" { capability = ["read"] }"#,
            "unknown key \"capability\"",
        ),
        (
            r#"path "a" { capabilities = "read" }"#,
            "capabilities: must be a list of strings",
        ),
        (
            r#"path "a" { capabilities = [1] }"#,
            "must be a list of strings, found 1",
        ),
        (
            r#"path "a" { capabilities = [var.x] }"#,
            "must be a literal value",
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n capabilities = [\"list\"]\n}",
            "redefined attribute",
        ),
        (
            r#"{"path": {"a": [{"capabilities": ["read"]}, {"capabilities": ["list"]}]}}"#,
            "given more than once",
        ),
        (
            r#"path "secret/{{identity.entity.id}}/*" { capabilities = ["read"] }"#,
            "templated policies are not supported",
        ),
        (
            r#"path "a" { policy = ["read"] }"#,
            "policy: must be a string",
        ),
        (
            r#"path "a/+*" { capabilities = ["read"] }"#,
            "'+*' is forbidden",
        ),
        (
            r#"path "" { capabilities = ["read"] }"#,
            "the pattern is empty",
        ),
        (
            r#"path "/" { capabilities = ["read"] }"#,
            "the pattern is empty",
        ),
        (
            r#"path "a" { allowed_parameters = ["x"] }"#,
            "must map parameter names",
        ),
        (
            r#"path "a" { allowed_parameters = { "x" = "y" } }"#,
            "must be a list of values",
        ),
        (
            r#"path "a" { denied_parameters = { "x*" = [] } }"#,
            "non-tail wildcards",
        ),
        (
            r#"path "a" { allowed_parameters = { "/a/b" = [] } }"#,
            "JSON-pointer",
        ),
        (
            r#"path "a" { required_parameters = ["x*"] }"#,
            "wildcards are not permitted",
        ),
        (
            r#"path "a" { min_wrapping_ttl = "soon" }"#,
            "invalid duration \"soon\"",
        ),
        (r#"path "a" { max_wrapping_ttl = -5 }"#, "non-negative"),
        (
            "path \"a\" {\n min_wrapping_ttl = \"1h\"\n max_wrapping_ttl = \"1m\"\n}",
            "cannot be less than min_wrapping_ttl",
        ),
        (
            r#"path "a" { mfa_methods = ["totp"] }"#,
            "not supported by Cairn",
        ),
        (
            "path \"a\" {\n control_group {\n ttl = \"1h\"\n }\n}",
            "not supported by Cairn",
        ),
        (
            "path \"a\" {\n nested \"x\" {\n }\n}",
            "unknown key \"nested\"",
        ),
        (
            "path \"a\" {\n allowed_parameters {\n inner {\n }\n }\n}",
            "unexpected block \"inner\"",
        ),
        (
            r#"{"path": {"a": {"capabilities": ["read"], "extra": 1}}}"#,
            "unknown key \"extra\"",
        ),
        (r#"{"paths": {}}"#, "unknown key \"paths\""),
        (r#"{"path": {"a": "read"}}"#, "the rule must be an object"),
        ("[1]", "failed to parse policy"),
    ];
    for (text, expected) in cases {
        let message = err(text).to_string();
        assert!(
            message.contains(expected),
            "{text}\n => {message}\n (wanted {expected:?})"
        );
    }
}

#[test]
fn deep_nesting_is_refused_not_crashed() {
    // Each of these aborts the process with a stack overflow if it reaches
    // hcl-rs unguarded.
    for deep in [
        format!(
            "path \"a\" {{ capabilities = {}{} }}",
            "[".repeat(5000),
            "]".repeat(5000)
        ),
        format!("x = {}true", "!".repeat(20_000)),
        format!("x = 1{}", "+1".repeat(20_000)),
        format!("x = {}1", "true ? 1 : ".repeat(20_000)),
        format!("x = \"{}\"", "%{if true}".repeat(20_000)),
        format!("x = {}1{}", "f(".repeat(5000), ")".repeat(5000)),
        format!("{}{}", "a {\n".repeat(5000), "}\n".repeat(5000)),
    ] {
        assert!(matches!(err(&deep), PolicyError::Syntax(_)));
    }
    let deep_json = format!("{{\"path\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    assert!(matches!(err(&deep_json), PolicyError::Syntax(_)));
    // Nesting up to the limit still reaches the parser and its real errors.
    let nested = format!(
        "path \"a\" {{\n capabilities = {}{}\n}}",
        "[".repeat(15),
        "]".repeat(15)
    );
    assert!(err(&nested)
        .to_string()
        .contains("must be a list of strings"));
}

#[test]
fn templates_heredocs_and_expressions_are_refused_before_parsing() {
    for (text, expected) in [
        (
            "path \"a\" {\n comment = \"${x}\"\n capabilities = [\"read\"]\n}",
            "template sequences",
        ),
        (
            "path \"a\" {\n comment = <<EOT\nfree text\nEOT\n capabilities = [\"read\"]\n}\n",
            "heredocs",
        ),
        (
            "path \"a\" {\n capabilities = !!!!!!!!!!!!!!!!!!!!!!!!!true\n}",
            "expression operators",
        ),
    ] {
        let e = err(text);
        assert!(matches!(e, PolicyError::Syntax(_)), "{e:?}");
        assert!(e.to_string().contains(expected), "{e}");
    }
}

#[test]
fn durations_follow_vault_syntax() {
    let secs = |s: &str| parse_duration(s).map(|d| d.as_secs_f64());
    assert_eq!(secs("300"), Some(300.0));
    assert_eq!(secs("90s"), Some(90.0));
    assert_eq!(secs("1h30m"), Some(5400.0));
    assert_eq!(secs("1.5h"), Some(5400.0));
    assert_eq!(secs("2d"), Some(172_800.0));
    assert_eq!(secs("250ms"), Some(0.25));
    assert_eq!(secs(""), Some(0.0));
    for bad in [
        "1x",
        "h",
        "-1s",
        "1h-",
        "1..2s",
        "1 h",
        "99999999999999999999999h",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary text never panics the parser: it parses or is refused.
    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        let _ = parse("p", &text);
    }

    /// Text built from the policy language's own tokens reaches deeper into
    /// the parser than random characters do.
    #[test]
    fn parse_never_panics_on_policy_like_text(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "path", "\"secret/*\"", "\"a/+/b\"", "{", "}", "[", "]", "=", ",", "\n",
            "capabilities", "\"read\"", "\"deny\"", "policy", "\"write\"",
            "allowed_parameters", "denied_parameters", "required_parameters",
            "min_wrapping_ttl", "\"1h\"", "3600", "-1", "\"\"", "#", "\"${x}\"",
            ":", "\"path\"", "null", "true", "1.5e400", "<<EOT", "EOT", "\"+*\"",
        ]), 0..40)
    ) {
        let text = tokens.join(" ");
        let _ = parse("p", &text);
        let _ = parse("p", &format!("{{{text}}}"));
    }

    /// Every string list of known capabilities round-trips, and HCL and JSON
    /// agree on it.
    #[test]
    fn hcl_and_json_agree(
        pattern in "[a-z+/]{1,12}\\*?",
        caps in prop::collection::vec(prop::sample::select(vec![
            "create", "read", "update", "patch", "delete", "list", "sudo", "deny",
        ]), 0..8)
    ) {
        let list = serde_json::to_string(&caps).unwrap_or_default();
        let hcl = parse("p", &format!("path {:?} {{ capabilities = {list} }}", pattern));
        let json = parse("p", &format!("{{\"path\": {{{:?}: {{\"capabilities\": {list}}}}}}}", pattern));
        match (hcl, json) {
            (Ok(h), Ok(j)) => {
                prop_assert_eq!(&h.paths, &j.paths);
                let expected = caps.iter().fold(Capabilities::NONE, |acc, c| {
                    acc | Capabilities::from_name(c).unwrap_or_default()
                });
                let expected = if expected.contains(Capabilities::DENY) { Capabilities::DENY } else { expected };
                prop_assert_eq!(h.paths[0].permissions.capabilities, expected);
            }
            (Err(h), Err(j)) => prop_assert_eq!(h, j),
            (h, j) => prop_assert!(false, "HCL {:?} but JSON {:?}", h, j),
        }
    }
}
