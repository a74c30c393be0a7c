//! The compiled matcher of a token's policies.
//!
//! Patterns fall in three kinds, each with its own index so that a query
//! costs one hash lookup, one walk down a byte trie and a scan of the (few)
//! `+` patterns, with no allocation:
//! - exact patterns (no `*` suffix, no `+` segment): a hash map;
//! - prefix globs (`*` suffix, no `+` segment): a trie, longest prefix wins;
//! - segment patterns (a `+` segment, `*` suffix or not): a list.
//!
//! An exact match always wins. Otherwise every matching candidate is ranked
//! with Vault's priority order (see `Rank`) and the highest one decides.

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::capabilities::Capabilities;
use super::rule::{Permissions, Policy};

/// The union of a token's policies, compiled for fast queries.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    /// Merged permissions, one per distinct pattern across all policies.
    rules: Vec<Permissions>,
    exact: HashMap<Box<str>, usize>,
    prefixes: PrefixTrie,
    segments: Vec<SegmentPattern>,
}

impl Acl {
    /// Compiles the policies of one token. Stanzas with identical patterns
    /// (across or within policies) are merged first: capabilities unioned,
    /// a `deny` anywhere leaving only the deny.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        let mut acl = Acl::default();
        let mut by_pattern: HashMap<&str, usize> = HashMap::new();
        for policy in policies {
            for rule in &policy.paths {
                if let Some(&index) = by_pattern.get(rule.pattern.as_str()) {
                    acl.rules[index].merge(&rule.permissions);
                    continue;
                }
                let index = acl.rules.len();
                acl.rules.push(rule.permissions.clone());
                by_pattern.insert(rule.pattern.as_str(), index);
                acl.index(&rule.pattern, index);
            }
        }
        acl
    }

    /// The ACL of a root token: every capability on every path.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    /// True for the root ACL (`sys/capabilities-self` then reports `root`).
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The capabilities held on `path`, as `sys/capabilities-self` reports
    /// them: empty when nothing matches or the winning pattern denies (Vault
    /// then reports `["deny"]`), and [`Capabilities::ALL`] for root. Like
    /// Vault, a path ending in `/` is also tried without it.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ALL;
        }
        self.lookup(path, true)
            .map_or(Capabilities::NONE, Permissions::effective)
    }

    /// Whether every capability of `needed` is held on `path`. An empty
    /// `needed`, or one naming `deny`, is never allowed (fail closed). When
    /// `needed` has `list`, a trailing `/` on the path is optional, as in
    /// Vault.
    pub fn allows(&self, path: &str, needed: Capabilities) -> bool {
        if needed.is_empty() || needed.contains(Capabilities::DENY) {
            return false;
        }
        if self.root {
            return true;
        }
        self.lookup(path, needed.contains(Capabilities::LIST))
            .is_some_and(|perms| perms.effective().contains(needed))
    }

    /// Like [`Acl::allows`], and also checks the request body against the
    /// winning pattern's `allowed_parameters`, `denied_parameters` and
    /// `required_parameters` (call it for read, create, update and patch
    /// requests, as Vault does).
    pub fn allows_with_parameters(
        &self,
        path: &str,
        needed: Capabilities,
        data: &Map<String, Value>,
    ) -> bool {
        if !self.allows(path, needed) {
            return false;
        }
        if self.root {
            return true;
        }
        self.lookup(path, needed.contains(Capabilities::LIST))
            .is_some_and(|perms| perms.parameters_allowed(data))
    }

    /// The merged permissions of the pattern that decides `path`, or `None`
    /// when no pattern matches (always `None` for root). `list` enables the
    /// trailing-`/` fallback used for list requests.
    pub fn permissions(&self, path: &str, list: bool) -> Option<&Permissions> {
        if self.root {
            return None;
        }
        self.lookup(path, list)
    }

    fn index(&mut self, pattern: &str, index: usize) {
        let glob = pattern.strip_suffix('*');
        // A segment is a wildcard only when it is exactly `+`; elsewhere a
        // `+` is literal.
        let has_segment_wildcard = glob.unwrap_or(pattern).split('/').any(|s| s == "+");
        match (has_segment_wildcard, glob) {
            (true, _) => self.segments.push(SegmentPattern::new(pattern, index)),
            (false, Some(prefix)) => self.prefixes.insert(prefix.as_bytes(), index),
            (false, None) => {
                self.exact.insert(pattern.into(), index);
            }
        }
    }

    fn lookup(&self, path: &str, list: bool) -> Option<&Permissions> {
        let path = path.trim_start_matches('/');
        if let Some(&index) = self.exact.get(path) {
            return Some(&self.rules[index]);
        }
        if list {
            if let Some(trimmed) = path.strip_suffix('/') {
                if let Some(&index) = self.exact.get(trimmed) {
                    return Some(&self.rules[index]);
                }
                if let Some(index) = self.non_exact(trimmed) {
                    return Some(&self.rules[index]);
                }
            }
        }
        self.non_exact(path).map(|index| &self.rules[index])
    }

    /// The best-ranked glob or segment pattern matching `path`.
    fn non_exact(&self, path: &str) -> Option<usize> {
        let mut best: Option<(Rank<'_>, usize)> = None;
        if let Some((len, index)) = self.prefixes.longest_prefix(path.as_bytes()) {
            let rank = Rank {
                first_wildcard: len,
                is_prefix: true,
                wildcards: 0,
                key: path.get(..len).unwrap_or_default(),
            };
            best = Some((rank, index));
        }
        if self.segments.is_empty() {
            return best.map(|(_, index)| index);
        }
        let parts = path.bytes().filter(|&b| b == b'/').count() + 1;
        for pattern in &self.segments {
            if !pattern.matches(path, parts) {
                continue;
            }
            let rank = pattern.rank();
            if best.as_ref().is_none_or(|(current, _)| rank > *current) {
                best = Some((rank, pattern.index));
            }
        }
        best.map(|(_, index)| index)
    }
}

/// Vault's priority between matching non-exact patterns; the greater wins:
/// 1. the later first wildcard (`+` or `*`);
/// 2. not ending in `*` over ending in `*`;
/// 3. fewer `+` segments;
/// 4. the longer pattern (without its `*`);
/// 5. the lexicographically greater pattern (Vault's `acl.go` sorts the
///    smaller one as lower priority; this only separates patterns such as
///    `a/+/c/+` and `a/+/+/d`, which both match `a/x/c/d`).
#[derive(Debug, PartialEq, Eq)]
struct Rank<'a> {
    first_wildcard: usize,
    is_prefix: bool,
    wildcards: usize,
    key: &'a str,
}

impl Rank<'_> {
    fn sort_key(&self) -> (usize, bool, Reverse<usize>, usize, &str) {
        (
            self.first_wildcard,
            !self.is_prefix,
            Reverse(self.wildcards),
            self.key.len(),
            self.key,
        )
    }
}

impl PartialOrd for Rank<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rank<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

/// One segment of a `+` pattern.
#[derive(Debug, Clone)]
enum Segment {
    Any,
    Literal(Box<str>),
}

/// A pattern with at least one `+` segment.
#[derive(Debug, Clone)]
struct SegmentPattern {
    /// The pattern without its trailing `*`.
    key: Box<str>,
    segments: Vec<Segment>,
    is_prefix: bool,
    first_wildcard: usize,
    wildcards: usize,
    index: usize,
}

impl SegmentPattern {
    fn new(pattern: &str, index: usize) -> SegmentPattern {
        let (key, is_prefix) = match pattern.strip_suffix('*') {
            Some(key) => (key, true),
            None => (pattern, false),
        };
        let segments: Vec<Segment> = key
            .split('/')
            .map(|s| match s {
                "+" => Segment::Any,
                literal => Segment::Literal(literal.into()),
            })
            .collect();
        let wildcards = segments
            .iter()
            .filter(|s| matches!(s, Segment::Any))
            .count();
        // Byte offset of the first `+` segment.
        let mut offset = 0;
        let mut first_wildcard = key.len();
        for part in key.split('/') {
            if part == "+" {
                first_wildcard = offset;
                break;
            }
            offset += part.len() + 1;
        }
        SegmentPattern {
            key: key.into(),
            first_wildcard,
            segments,
            is_prefix,
            wildcards,
            index,
        }
    }

    fn rank(&self) -> Rank<'_> {
        Rank {
            first_wildcard: self.first_wildcard,
            is_prefix: self.is_prefix,
            wildcards: self.wildcards,
            key: &self.key,
        }
    }

    /// `parts` is the number of `/`-separated segments of `path`. Without a
    /// `*` the segment counts must agree; with one, the last pattern segment
    /// is a prefix of its path segment and the path may go on.
    fn matches(&self, path: &str, parts: usize) -> bool {
        let len = self.segments.len();
        if parts < len || (!self.is_prefix && parts != len) {
            return false;
        }
        let last = len - 1;
        self.segments
            .iter()
            .zip(path.split('/'))
            .enumerate()
            .all(|(i, (segment, part))| match segment {
                Segment::Any => true,
                Segment::Literal(literal) if self.is_prefix && i == last => {
                    part.starts_with(&**literal)
                }
                Segment::Literal(literal) => **literal == *part,
            })
    }
}

/// A byte trie of glob prefixes, for longest-prefix lookup without
/// allocating.
#[derive(Debug, Clone)]
struct PrefixTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// Children sorted by byte, for binary search.
    children: Vec<(u8, usize)>,
    rule: Option<usize>,
}

impl Default for PrefixTrie {
    fn default() -> Self {
        PrefixTrie {
            nodes: vec![TrieNode::default()],
        }
    }
}

impl PrefixTrie {
    fn insert(&mut self, key: &[u8], rule: usize) {
        let mut node = 0;
        for &byte in key {
            node = match self.nodes[node]
                .children
                .binary_search_by_key(&byte, |c| c.0)
            {
                Ok(found) => self.nodes[node].children[found].1,
                Err(at) => {
                    let child = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].children.insert(at, (byte, child));
                    child
                }
            };
        }
        self.nodes[node].rule = Some(rule);
    }

    /// The longest inserted prefix of `path`, as (length, rule).
    fn longest_prefix(&self, path: &[u8]) -> Option<(usize, usize)> {
        let mut node = 0;
        let mut best = self.nodes[0].rule.map(|rule| (0, rule));
        for (i, &byte) in path.iter().enumerate() {
            let children = &self.nodes[node].children;
            match children.binary_search_by_key(&byte, |c| c.0) {
                Ok(found) => node = children[found].1,
                Err(_) => break,
            }
            if let Some(rule) = self.nodes[node].rule {
                best = Some((i + 1, rule));
            }
        }
        best
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
