//! A Wing–Gong linearizability checker for the versioned register KV v2
//! offers per key: write (returns the new version), check-and-set on a
//! version, and read (version and value). Operations whose outcome the
//! client never learned may take effect at any point after they started, or
//! never.
#![allow(dead_code)]

use std::collections::HashSet;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Write(String),
    Cas(u64, String),
    Read,
}

/// What it learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A write or a successful CAS, with the version it created.
    Written(u64),
    /// A CAS refused because the version did not match.
    CasFailed,
    /// A read: (version, value); version 0 means the key was absent.
    Read(u64, Option<String>),
    /// Refused before it could take effect (recorded by nobody).
    NotApplied,
    /// No answer (crash, timeout, 5xx): it may or may not have happened.
    Unknown,
}

/// One operation with its real-time interval (any monotonic clock, e.g. µs).
#[derive(Debug, Clone)]
pub struct Op {
    pub call: Call,
    pub outcome: Outcome,
    pub invoked: u64,
    /// `u64::MAX` for unknown outcomes.
    pub completed: u64,
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct State {
    version: u64,
    value: Option<String>,
}

/// The value of a write no read ever returned. Such writes differ only in
/// their value, which nothing observed, so they all leave the same state.
const UNOBSERVED: &str = "\u{0}unobserved";

/// Apply `op` to `state`: the next state, or `None` if the outcome the client
/// saw is impossible from `state`.
fn step(state: &State, op: &Op, observed: &HashSet<&str>) -> Option<State> {
    let next = |value: &str| State {
        version: state.version + 1,
        value: Some(
            if observed.contains(value) {
                value
            } else {
                UNOBSERVED
            }
            .to_owned(),
        ),
    };
    match (&op.call, &op.outcome) {
        (Call::Write(v), Outcome::Written(n)) => (*n == state.version + 1).then(|| next(v)),
        (Call::Write(v), Outcome::Unknown) => Some(next(v)),
        (Call::Cas(exp, v), Outcome::Written(n)) => {
            (*exp == state.version && *n == state.version + 1).then(|| next(v))
        }
        (Call::Cas(exp, _), Outcome::CasFailed) => (*exp != state.version).then(|| state.clone()),
        // An unknown CAS that did not apply is the same as one never linearized.
        (Call::Cas(exp, v), Outcome::Unknown) => (*exp == state.version).then(|| next(v)),
        (Call::Read, Outcome::Read(n, v)) => {
            (*n == state.version && *v == state.value).then(|| state.clone())
        }
        (Call::Read, Outcome::Unknown) => Some(state.clone()),
        _ => None,
    }
}

/// Whether `history` (one key's operations) is linearizable from an absent key.
pub fn check(history: &[Op]) -> bool {
    // A read nobody saw the answer of constrains nothing.
    let mut ops: Vec<Op> = history
        .iter()
        .filter(|o| !(o.call == Call::Read && o.outcome == Outcome::Unknown))
        .cloned()
        .collect();
    ops.sort_by_key(|o| o.invoked);
    let observed: HashSet<&str> = ops
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Read(_, Some(v)) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    // Unknown operations nobody observed are interchangeable when they have
    // the same effect: a write, or a check-and-set on the same version. They
    // complete at "never", so once one is eligible it stays eligible, and
    // trying one of a class at each point is as good as trying all of them.
    // Without this the search grows with 2^(unknown writes).
    let class: Vec<Option<Option<u64>>> = ops
        .iter()
        .map(|o| match (&o.call, &o.outcome) {
            (Call::Write(v), Outcome::Unknown) if !observed.contains(v.as_str()) => Some(None),
            (Call::Cas(exp, v), Outcome::Unknown) if !observed.contains(v.as_str()) => {
                Some(Some(*exp))
            }
            _ => None,
        })
        .collect();
    let mut done = vec![false; ops.len()];
    let mut seen = HashSet::new();
    let history = History {
        ops: &ops,
        class: &class,
        observed: &observed,
    };
    search(
        &history,
        &mut done,
        State {
            version: 0,
            value: None,
        },
        &mut seen,
    )
}

/// One key's operations sorted by invocation, with what the search needs
/// about them.
struct History<'a> {
    ops: &'a [Op],
    /// For unobserved unknown operations, their effect class.
    class: &'a [Option<Option<u64>>],
    observed: &'a HashSet<&'a str>,
}

fn search(
    h: &History<'_>,
    done: &mut Vec<bool>,
    state: State,
    seen: &mut HashSet<(Vec<bool>, State)>,
) -> bool {
    let ops = h.ops;
    // Finished once every operation with a known outcome is linearized.
    if ops
        .iter()
        .zip(done.iter())
        .all(|(o, d)| *d || o.outcome == Outcome::Unknown)
    {
        return true;
    }
    if !seen.insert((done.clone(), state.clone())) {
        return false;
    }
    // Any pending op may go next if none other finished before it started.
    let horizon = ops
        .iter()
        .zip(done.iter())
        .filter(|(_, d)| !**d)
        .map(|(o, _)| o.completed)
        .min()
        .unwrap_or(u64::MAX);
    let eligible: Vec<usize> = (0..ops.len())
        .filter(|&i| !done[i] && ops[i].invoked <= horizon)
        .collect();
    // Known outcomes first: an unknown write is only tried where a later
    // observation needs it, which keeps the search short.
    let ordered = eligible
        .iter()
        .filter(|&&i| ops[i].outcome != Outcome::Unknown)
        .chain(
            eligible
                .iter()
                .filter(|&&i| ops[i].outcome == Outcome::Unknown),
        );
    let mut tried_classes = HashSet::new();
    for &i in ordered {
        if let Some(c) = h.class[i] {
            if !tried_classes.insert(c) {
                continue;
            }
        }
        if let Some(next) = step(&state, &ops[i], h.observed) {
            done[i] = true;
            if search(h, done, next, seen) {
                return true;
            }
            done[i] = false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome, invoked: u64, completed: u64) -> Op {
        Op {
            call,
            outcome,
            invoked,
            completed,
        }
    }

    #[test]
    fn accepts_concurrent_and_rejects_stale() {
        let w1 = op(Call::Write("a".into()), Outcome::Written(1), 0, 10);
        let w2 = op(Call::Write("b".into()), Outcome::Written(2), 5, 20);
        let r = op(Call::Read, Outcome::Read(1, Some("a".into())), 8, 12);
        assert!(check(&[w1.clone(), w2.clone(), r]));
        // Reading the old value after the newer write completed is a violation.
        let stale = op(Call::Read, Outcome::Read(1, Some("a".into())), 25, 30);
        assert!(!check(&[w1.clone(), w2.clone(), stale]));
        // An unknown write may have applied.
        let lost = op(Call::Write("c".into()), Outcome::Unknown, 30, u64::MAX);
        let later = op(Call::Read, Outcome::Read(3, Some("c".into())), 40, 41);
        assert!(check(&[w1.clone(), w2.clone(), lost, later]));
        // An acknowledged write that a later read does not see was lost.
        let gone = op(Call::Read, Outcome::Read(1, Some("a".into())), 40, 41);
        assert!(!check(&[w1, w2, gone]));
    }

    #[test]
    fn many_unknown_writes_check_quickly_and_still_fill_version_gaps() {
        // 200 unobserved unknown writes: exponential without the classes.
        let mut h: Vec<Op> = (0..200)
            .map(|i| op(Call::Write(format!("u{i}")), Outcome::Unknown, i, u64::MAX))
            .collect();
        h.push(op(Call::Write("a".into()), Outcome::Written(3), 300, 310));
        h.push(op(Call::Read, Outcome::Read(3, Some("a".into())), 320, 330));
        // Two unknown writes fill versions 1 and 2.
        assert!(check(&h));
        // A read of version 1 after version 3 was acknowledged is still stale.
        h.push(op(
            Call::Read,
            Outcome::Read(1, Some("u7".into())),
            340,
            350,
        ));
        assert!(!check(&h));
    }
}
