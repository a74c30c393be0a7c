//! the ACL policy parser and the compiled matcher.
//!
//! Input: arbitrary bytes, decoded lossily to UTF-8 (so valid UTF-8 passes
//! through unchanged), parsed with `cairn_core::policy::parse`. When the
//! document parses, it is compiled into an [`Acl`] and queried on paths
//! derived from its own patterns and from the input text.
//!
//! Invariants besides "never panics, never overflows the stack":
//! - `allows(p, c)` agrees with `capabilities(p).contains(c)` for every single
//!   capability `c` on every path `p` not ending in `/`;
//! - `allows(p, NONE)` and `allows(p, DENY)` are always false;
//! - an exact pattern grants on itself exactly the union of its stanzas'
//!   capabilities, or nothing when one of them denies;
//! - compiling the same policy twice changes no answer (merging identical
//!   stanzas is idempotent);
//! - parsing is deterministic.

use std::sync::Arc;

use cairn_core::policy::{parse, Acl, Capabilities, Policy};

/// Every single capability, deny included.
const SINGLE: [Capabilities; 8] = [
    Capabilities::CREATE,
    Capabilities::READ,
    Capabilities::UPDATE,
    Capabilities::PATCH,
    Capabilities::DELETE,
    Capabilities::LIST,
    Capabilities::SUDO,
    Capabilities::DENY,
];

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(policy) = parse("fuzz", &text) else {
        return;
    };
    let again = parse("fuzz", &text);
    assert_eq!(again.as_ref(), Ok(&policy), "parsing is not deterministic");

    let policy = Arc::new(policy);
    let acl = Acl::new(&[policy.clone()]);
    let doubled = Acl::new(&[policy.clone(), policy.clone()]);

    for path in probe_paths(&policy, &text) {
        let caps = acl.capabilities(&path);
        assert!(
            !caps.contains(Capabilities::DENY),
            "capabilities({path:?}) reports deny as a capability"
        );
        assert_eq!(
            doubled.capabilities(&path),
            caps,
            "merging a policy with itself changed capabilities({path:?})"
        );
        assert!(
            !acl.allows(&path, Capabilities::NONE),
            "allows({path:?}, NONE)"
        );
        assert!(
            !acl.allows(&path, Capabilities::DENY),
            "allows({path:?}, DENY)"
        );
        if path.ends_with('/') {
            // `capabilities` tries the path without its `/` too, `allows`
            // only for list: the two may differ there by design.
            continue;
        }
        for cap in SINGLE {
            if cap == Capabilities::DENY {
                continue;
            }
            assert_eq!(
                acl.allows(&path, cap),
                caps.contains(cap),
                "allows({path:?}, {cap:?}) disagrees with capabilities {caps:?}"
            );
        }
    }

    check_exact_patterns(&policy, &acl);
}

/// Exact patterns (no trailing `*`, no `+` segment) are looked up by hash and
/// always win, so their answer is known from the stanzas alone.
fn check_exact_patterns(policy: &Policy, acl: &Acl) {
    for rule in &policy.paths {
        let pattern = rule.pattern.as_str();
        // The matcher trims every leading `/` of a queried path; a pattern
        // that still starts with one cannot be asked for as written.
        if pattern.ends_with('*')
            || pattern.starts_with('/')
            || pattern.split('/').any(|s| s == "+")
        {
            continue;
        }
        let same: Vec<_> = policy
            .paths
            .iter()
            .filter(|r| r.pattern == rule.pattern)
            .collect();
        let expected = if same.iter().any(|r| r.permissions.is_deny()) {
            Capabilities::NONE
        } else {
            same.iter().fold(Capabilities::NONE, |acc, r| {
                acc.union(r.permissions.capabilities)
            })
        };
        assert_eq!(
            acl.capabilities(pattern),
            expected,
            "exact pattern {pattern:?} does not grant what its stanzas say"
        );
    }
}

/// Paths to query: each pattern as written and bent in ways that cross the
/// matcher's boundaries, a few fixed paths, and words of the input.
fn probe_paths(policy: &Policy, text: &str) -> Vec<String> {
    let mut paths: Vec<String> = [
        "",
        "/",
        "secret/data/a",
        "secret/",
        "sys/policies/acl/x",
        "a/b/c/d",
        "//x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for rule in policy.paths.iter().take(16) {
        let p = &rule.pattern;
        let filled = p.replace('+', "seg").replace('*', "tail/more");
        let shorter: String = {
            let mut chars = p.chars();
            chars.next_back();
            chars.as_str().to_string()
        };
        paths.extend([
            p.clone(),
            format!("{p}/"),
            format!("{p}x"),
            format!("{p}/x/y"),
            format!("/{p}"),
            shorter,
            filled.clone(),
            format!("{filled}/"),
            p.replace('+', ""),
        ]);
    }
    paths.extend(
        text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .filter(|w| !w.is_empty())
            .take(8)
            .map(str::to_string),
    );
    paths
}
