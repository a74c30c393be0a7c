//! Tests of the ACL matcher: Vault's documented precedence, deny, unions,
//! and properties checked against a plain reference model.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::super::{parse, Capabilities, Policy};
use super::Acl;

const C: Capabilities = Capabilities::CREATE;
const R: Capabilities = Capabilities::READ;
const U: Capabilities = Capabilities::UPDATE;
const L: Capabilities = Capabilities::LIST;
const D: Capabilities = Capabilities::DELETE;
const S: Capabilities = Capabilities::SUDO;

fn policy(name: &str, text: &str) -> Arc<Policy> {
    match parse(name, text) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("test policy does not parse: {e}"),
    }
}

/// A policy from (pattern, capabilities) pairs.
fn rules(name: &str, pairs: &[(&str, &[&str])]) -> Arc<Policy> {
    let text: String = pairs
        .iter()
        .map(|(pattern, caps)| {
            let list = serde_json::to_string(caps).unwrap_or_default();
            format!("path {pattern:?} {{ capabilities = {list} }}\n")
        })
        .collect();
    policy(name, &text)
}

fn acl(pairs: &[(&str, &[&str])]) -> Acl {
    Acl::new(&[rules("p", pairs)])
}

#[test]
fn default_is_deny() {
    let empty = Acl::new(&[]);
    assert!(empty.capabilities("secret/data/a").is_empty());
    assert!(!empty.allows("secret/data/a", R));
    assert!(!empty.is_root());
    let some = acl(&[("secret/data/a", &["read"])]);
    assert!(some.capabilities("secret/data/b").is_empty());
    assert!(some.capabilities("secret/data/a/b").is_empty());
    assert!(some.capabilities("secret/data").is_empty());
}

#[test]
fn exact_glob_and_segment_matching() {
    let a = acl(&[
        ("secret/data/team-a/*", &["read", "list"]),
        ("secret/+/team-b", &["update"]),
        ("sys/mounts", &["read"]),
    ]);
    assert_eq!(a.capabilities("secret/data/team-a/x"), R | L);
    assert_eq!(a.capabilities("secret/data/team-a/x/y/z"), R | L);
    assert_eq!(a.capabilities("secret/data/team-a/"), R | L);
    assert!(a.capabilities("secret/data/team-a").is_empty());
    assert_eq!(a.capabilities("secret/data/team-b"), U);
    assert_eq!(a.capabilities("secret/metadata/team-b"), U);
    assert!(a.capabilities("secret/team-b").is_empty());
    assert!(a.capabilities("secret/data/team-b/x").is_empty());
    assert_eq!(a.capabilities("sys/mounts"), R);
    assert!(a.capabilities("sys/mounts/x").is_empty());
    // A leading slash on the request path is ignored.
    assert_eq!(a.capabilities("/sys/mounts"), R);
    // `*` matches within a segment too: it is a plain prefix.
    let b = acl(&[("secret/data/app*", &["read"])]);
    assert_eq!(b.capabilities("secret/data/app"), R);
    assert_eq!(b.capabilities("secret/data/apple/x"), R);
    // `*` anywhere else, and `+` inside a segment, are literal.
    let c = acl(&[("a/*/b", &["read"]), ("x/y+", &["list"])]);
    assert_eq!(c.capabilities("a/*/b"), R);
    assert!(c.capabilities("a/z/b").is_empty());
    assert_eq!(c.capabilities("x/y+"), L);
    assert!(c.capabilities("x/yz").is_empty());
}

#[test]
fn segment_wildcards_with_glob_suffix() {
    let a = acl(&[("secret/+/app/*", &["read"]), ("kv/+/ba*", &["list"])]);
    assert_eq!(a.capabilities("secret/x/app/y"), R);
    assert_eq!(a.capabilities("secret/x/app/y/z"), R);
    assert_eq!(a.capabilities("secret/x/app/"), R);
    assert!(a.capabilities("secret/x/app").is_empty());
    assert!(a.capabilities("secret/x/y/app/z").is_empty());
    assert_eq!(a.capabilities("kv/x/bar"), L);
    assert_eq!(a.capabilities("kv/x/bar/baz"), L);
    assert!(a.capabilities("kv/x/foo").is_empty());
    // `+` matches one segment, even an empty one, and the whole path may be `+`.
    let b = acl(&[("+", &["read"]), ("+/+", &["list"])]);
    assert_eq!(b.capabilities("sys"), R);
    assert_eq!(b.capabilities("sys/x"), L);
    assert!(b.capabilities("sys/x/y").is_empty());
}

#[test]
fn exact_beats_any_glob() {
    let a = acl(&[
        ("secret/*", &["deny"]),
        ("secret/+/x", &["deny"]),
        ("secret/a/x", &["read"]),
    ]);
    assert_eq!(a.capabilities("secret/a/x"), R);
    assert!(a.capabilities("secret/b/x").is_empty());
}

#[test]
fn vault_documented_priority_order() {
    // Vault's docs: "secret/*" and "secret/+/*" have their first wildcard at
    // the same place and both end in `*`; fewer `+` segments wins.
    let a = acl(&[("secret/*", &["read"]), ("secret/+/*", &["list"])]);
    assert_eq!(a.capabilities("secret/a/b"), R);

    // The cases of Vault's acl.go comments.
    let cases: &[(&str, &str, &str)] = &[
        // (winner, loser, path both match)
        ("foo/a*", "foo/+", "foo/ab"),
        ("foo/bar/+/baz", "foo/+/bar/baz", "foo/bar/bar/baz"),
        ("foo/+/bar", "foo/+/ba*", "foo/x/bar"),
        ("foo/+", "foo/*", "foo/x"),
        ("foo/bar/+/baz", "foo/+/+/baz", "foo/bar/x/baz"),
        ("foo/+/bar/ba*", "foo/+/bar/b*", "foo/x/bar/bax"),
        ("secret/data/team/*", "secret/data/*", "secret/data/team/x"),
        ("secret/data/+/x", "secret/+/team/x", "secret/data/team/x"),
        // Equal up to length: the lexicographically greater wins, as in
        // Vault's acl.go (the docs: "if P1 is smaller lexicographically, it
        // is lower priority").
        ("a/+/c/+", "a/+/+/d", "a/x/c/d"),
    ];
    for (winner, loser, path) in cases {
        for order in [[winner, loser], [loser, winner]] {
            let p = rules(
                "p",
                &order.map(|pattern| {
                    let caps: &[&str] = if pattern == winner {
                        &["read"]
                    } else {
                        &["update"]
                    };
                    (*pattern, caps)
                }),
            );
            let a = Acl::new(&[p]);
            assert_eq!(
                a.capabilities(path),
                R,
                "{winner} should beat {loser} on {path}"
            );
        }
    }
}

#[test]
fn only_the_chosen_pattern_counts() {
    // The more specific pattern decides alone: its capabilities are not
    // added to the broader one's.
    let a = acl(&[("secret/*", &["read", "list"]), ("secret/a/*", &["update"])]);
    assert_eq!(a.capabilities("secret/a/x"), U);
    assert!(!a.allows("secret/a/x", R));
    // An empty capability list still shadows a broader grant.
    let b = acl(&[("secret/*", &["read"]), ("secret/a", &[])]);
    assert!(b.capabilities("secret/a").is_empty());
}

#[test]
fn deny_wins_on_the_chosen_pattern() {
    let a = Acl::new(&[
        rules("readers", &[("secret/data/*", &["read", "list", "sudo"])]),
        rules("blocked", &[("secret/data/*", &["deny"])]),
    ]);
    assert!(a.capabilities("secret/data/x").is_empty());
    for cap in [C, R, U, L, D, S, Capabilities::PATCH] {
        assert!(!a.allows("secret/data/x", cap));
    }
    // A deny on a broader pattern does not reach a more specific grant.
    let b = acl(&[("secret/*", &["deny"]), ("secret/data/*", &["read"])]);
    assert_eq!(b.capabilities("secret/data/x"), R);
    assert!(b.capabilities("secret/other").is_empty());
}

#[test]
fn identical_patterns_union_across_policies() {
    let a = Acl::new(&[
        rules(
            "one",
            &[("secret/data/*", &["read"]), ("sys/mounts", &["read"])],
        ),
        rules("two", &[("secret/data/*", &["list", "update"])]),
        rules(
            "three",
            &[
                ("secret/data/*", &["create"]),
                ("secret/data/*", &["delete"]),
            ],
        ),
    ]);
    assert_eq!(a.capabilities("secret/data/x"), R | L | U | C | D);
    assert!(a.allows("secret/data/x", R | U));
    assert_eq!(a.capabilities("sys/mounts"), R);
    // `secret/data` and `secret/data*` are different patterns.
    let b = Acl::new(&[
        rules("one", &[("secret/data", &["read"])]),
        rules("two", &[("secret/data*", &["list"])]),
    ]);
    assert_eq!(b.capabilities("secret/data"), R);
    assert_eq!(b.capabilities("secret/datax"), L);
}

#[test]
fn list_accepts_a_trailing_slash() {
    let a = acl(&[
        ("secret/metadata/team", &["list"]),
        ("kv/+/keys", &["list"]),
    ]);
    assert!(a.allows("secret/metadata/team/", L));
    assert!(a.allows("kv/x/keys/", L));
    assert!(!a.allows("secret/metadata/team/", R));
    // capabilities-self behaves like Vault's, which checks as a list.
    assert_eq!(a.capabilities("secret/metadata/team/"), L);
    // Without the fallback the slash matters.
    assert!(a.permissions("secret/metadata/team/", false).is_none());
    assert!(a.permissions("secret/metadata/team/", true).is_some());
}

#[test]
fn allows_needs_every_capability_and_fails_closed_on_nonsense() {
    let a = acl(&[("secret/*", &["read", "update"])]);
    assert!(a.allows("secret/x", R));
    assert!(a.allows("secret/x", R | U));
    assert!(!a.allows("secret/x", R | C));
    assert!(!a.allows("secret/x", Capabilities::NONE));
    assert!(!a.allows("secret/x", Capabilities::DENY));
    assert!(!a.allows("secret/x", R | Capabilities::DENY));
}

#[test]
fn root_allows_everything() {
    let root = Acl::root();
    assert!(root.is_root());
    assert_eq!(root.capabilities("any/path"), Capabilities::ALL);
    assert!(root.allows("sys/policies/acl/x", S | U));
    assert!(root.allows_with_parameters("auth/token/create", U, &Map::new()));
    assert!(!root.allows("x", Capabilities::NONE));
    assert!(root.permissions("x", false).is_none());
}

#[test]
fn parameters_are_enforced_on_the_chosen_pattern() {
    let a = Acl::new(&[policy(
        "p",
        r#"path "auth/token/create" {
             capabilities = ["update"]
             allowed_parameters = { "ttl" = ["1h", "2h"], "policies" = [] }
             denied_parameters = { "policies" = ["root"] }
           }"#,
    )]);
    let body = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let path = "auth/token/create";
    assert!(a.allows_with_parameters(path, U, &body(json!({"ttl": "1h"}))));
    assert!(a.allows_with_parameters(path, U, &body(json!({"policies": ["dev"]}))));
    assert!(!a.allows_with_parameters(path, U, &body(json!({"ttl": "9h"}))));
    assert!(!a.allows_with_parameters(path, U, &body(json!({"policies": ["root"]}))));
    assert!(!a.allows_with_parameters(path, U, &body(json!({"num_uses": 1}))));
    assert!(!a.allows_with_parameters(path, C, &body(json!({"ttl": "1h"}))));
    assert!(!a.allows_with_parameters("elsewhere", U, &Map::new()));
}

// ------------------------------------------------------------ reference model

/// (first wildcard, not a prefix, minus the `+` count, length, pattern):
/// the greatest wins.
type ModelRank = (usize, bool, i64, usize, String);

/// A direct transcription of Vault's algorithm, with none of the indexes:
/// merged rules in a map, every candidate collected and sorted.
struct Model {
    rules: BTreeMap<String, Capabilities>,
}

impl Model {
    fn new(policies: &[Vec<(String, Capabilities)>]) -> Model {
        let mut rules: BTreeMap<String, Capabilities> = BTreeMap::new();
        for policy in policies {
            for (pattern, caps) in policy {
                // As the parser does: API paths start after the `/`.
                let pattern = pattern.strip_prefix('/').unwrap_or(pattern).to_string();
                let caps = if caps.contains(Capabilities::DENY) {
                    Capabilities::DENY
                } else {
                    *caps
                };
                let merged = match rules.get(&pattern) {
                    Some(existing) if existing.contains(Capabilities::DENY) => *existing,
                    Some(_) if caps.contains(Capabilities::DENY) => caps,
                    Some(existing) => *existing | caps,
                    None => caps,
                };
                rules.insert(pattern, merged);
            }
        }
        Model { rules }
    }

    /// The pattern that decides `path` (no list fallback).
    fn chosen(&self, path: &str) -> Option<&str> {
        if self.rules.contains_key(path) {
            return self.rules.get_key_value(path).map(|(k, _)| k.as_str());
        }
        let mut candidates: Vec<(ModelRank, &str)> = Vec::new();
        let parts: Vec<&str> = path.split('/').collect();
        for pattern in self.rules.keys() {
            let (key, is_prefix) = match pattern.strip_suffix('*') {
                Some(k) => (k, true),
                None => (pattern.as_str(), false),
            };
            let segs: Vec<&str> = key.split('/').collect();
            let wildcards = segs.iter().filter(|s| **s == "+").count();
            if wildcards == 0 {
                if is_prefix && path.starts_with(key) {
                    candidates.push(((key.len(), false, 0, key.len(), key.to_string()), pattern));
                }
                continue;
            }
            if parts.len() < segs.len() || (!is_prefix && parts.len() != segs.len()) {
                continue;
            }
            let ok = segs.iter().enumerate().all(|(i, s)| {
                *s == "+"
                    || *s == parts[i]
                    || (is_prefix && i == segs.len() - 1 && parts[i].starts_with(s))
            });
            if ok {
                let first = segs
                    .iter()
                    .position(|s| *s == "+")
                    .map_or(0, |p| segs[..p].iter().map(|s| s.len() + 1).sum::<usize>());
                candidates.push((
                    (
                        first,
                        !is_prefix,
                        -(wildcards as i64),
                        key.len(),
                        key.to_string(),
                    ),
                    pattern,
                ));
            }
        }
        candidates.sort();
        candidates.last().map(|(_, p)| *p)
    }

    /// What the token holds on `path`; `list` enables the trailing-`/`
    /// fallback of list requests (and of capabilities-self).
    fn lookup(&self, path: &str, list: bool) -> Capabilities {
        let path = path.trim_start_matches('/');
        let decide = |p: &str| {
            self.chosen(p)
                .and_then(|pattern| self.rules.get(pattern))
                .map(|caps| {
                    if caps.contains(Capabilities::DENY) {
                        Capabilities::NONE
                    } else {
                        *caps
                    }
                })
        };
        if self.rules.contains_key(path) {
            return decide(path).unwrap_or_default();
        }
        if list {
            if let Some(caps) = path.strip_suffix('/').and_then(decide) {
                return caps;
            }
        }
        decide(path).unwrap_or_default()
    }
}

fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "ab", "ba", ""])
}

fn path_strategy() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(), 1..5), any::<bool>()).prop_map(|(segs, slash)| {
        let mut p = segs.join("/");
        if slash {
            p.push('/');
        }
        p
    })
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "+", ""]), 1..5),
        any::<bool>(),
    )
        .prop_map(|(segs, glob)| {
            let mut p = segs.join("/");
            if glob && !p.ends_with('+') {
                p.push('*');
            }
            p
        })
        .prop_filter("empty patterns are refused by the parser", |p| {
            !p.is_empty() && p != "/"
        })
}

fn caps_strategy() -> impl Strategy<Value = Capabilities> {
    prop::collection::vec(
        prop::sample::select(vec![
            C,
            R,
            U,
            L,
            D,
            S,
            Capabilities::PATCH,
            Capabilities::DENY,
        ]),
        0..4,
    )
    .prop_map(|v| v.into_iter().fold(Capabilities::NONE, |a, c| a | c))
}

fn policies_strategy() -> impl Strategy<Value = Vec<Vec<(String, Capabilities)>>> {
    prop::collection::vec(
        prop::collection::vec((pattern_strategy(), caps_strategy()), 0..6),
        1..4,
    )
}

fn compile(policies: &[Vec<(String, Capabilities)>]) -> Acl {
    let arcs: Vec<Arc<Policy>> = policies
        .iter()
        .enumerate()
        .map(|(i, rules)| {
            let text: String = rules
                .iter()
                .map(|(pattern, caps)| {
                    let list = serde_json::to_string(&caps.names()).unwrap_or_default();
                    format!("path {pattern:?} {{ capabilities = {list} }}\n")
                })
                .collect();
            policy(&format!("p{i}"), &text)
        })
        .collect();
    Acl::new(&arcs)
}

proptest! {
    // Failures are turned into named unit tests rather than persisted
    // beside the crate.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The indexed matcher agrees with the plain model on every path.
    #[test]
    fn matcher_agrees_with_reference_model(
        policies in policies_strategy(),
        paths in prop::collection::vec(path_strategy(), 1..8),
    ) {
        let acl = compile(&policies);
        let model = Model::new(&policies);
        for path in &paths {
            prop_assert_eq!(acl.capabilities(path), model.lookup(path, true), "path {}", path);
            for cap in [C, R, U, D, S, Capabilities::PATCH] {
                prop_assert_eq!(acl.allows(path, cap), model.lookup(path, false).contains(cap), "path {}", path);
            }
            prop_assert_eq!(acl.allows(path, L), model.lookup(path, true).contains(L), "path {}", path);
        }
    }

    /// An exact rule decides its path whatever globs cover it.
    #[test]
    fn exact_rule_beats_covering_globs(
        segs in prop::collection::vec(prop::sample::select(vec!["a", "b", "ab"]), 1..5),
        exact in caps_strategy().prop_filter("a grant", |c| !c.contains(Capabilities::DENY)),
        cover in prop::collection::vec((0usize..5, 0usize..5, any::<bool>(), caps_strategy()), 0..6),
    ) {
        let path = segs.join("/");
        let mut rules = vec![(path.clone(), exact)];
        for (cut, plus_at, glob, caps) in cover {
            let mut s: Vec<&str> = segs.clone();
            if plus_at < s.len() { s[plus_at] = "+"; }
            let cut = cut.min(s.len());
            let pattern = if glob {
                format!("{}*", s[..cut].join("/"))
            } else {
                s.join("/")
            };
            if pattern == path || pattern.is_empty() || pattern.ends_with("+*") { continue; }
            rules.push((pattern, caps));
        }
        let acl = compile(&[rules]);
        prop_assert_eq!(acl.capabilities(&path), exact);
    }

    /// Adding `deny` on the pattern that decides a path, in any policy,
    /// leaves no capability on that path.
    #[test]
    fn deny_on_chosen_pattern_gives_nothing(
        policies in policies_strategy(),
        path in path_strategy(),
    ) {
        let path = path.trim_matches('/').to_string();
        let model = Model::new(&policies);
        if let Some(chosen) = model.chosen(&path) {
            let mut with_deny = policies.clone();
            with_deny.push(vec![(chosen.to_string(), Capabilities::DENY)]);
            let acl = compile(&with_deny);
            prop_assert!(acl.capabilities(&path).is_empty());
            for cap in [C, R, U, L, D, S, Capabilities::PATCH] {
                prop_assert!(!acl.allows(&path, cap));
            }
        }
    }

    /// The same pattern in several policies grants the union.
    #[test]
    fn same_pattern_unions(
        pattern in pattern_strategy(),
        grants in prop::collection::vec(caps_strategy().prop_filter("a grant", |c| !c.contains(Capabilities::DENY)), 1..4),
    ) {
        let policies: Vec<Vec<(String, Capabilities)>> =
            grants.iter().map(|c| vec![(pattern.clone(), *c)]).collect();
        // Request paths lose every leading `/`, patterns only one, so
        // `//a` can match nothing.
        prop_assume!(!pattern.starts_with("//"));
        let acl = compile(&policies);
        // A path the pattern matches: `+` -> "x", `*` -> "y".
        let path = pattern.replace('+', "x").replace('*', "y");
        let union = grants.iter().fold(Capabilities::NONE, |a, c| a | *c);
        prop_assert_eq!(acl.capabilities(&path), union);
    }
}
