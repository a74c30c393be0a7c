//! The capability bit set of Vault's ACL language.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of capabilities (`create`, `read`, `update`, `patch`, `delete`,
/// `list`, `sudo`, `deny`), stored as bits so that checks on the request path
/// are a single mask operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

/// Every capability with its policy-language name, in the order Vault's
/// `sys/capabilities-self` reports them (deny last, as it is never reported
/// beside another one).
const NAMED: [(Capabilities, &str); 8] = [
    (Capabilities::SUDO, "sudo"),
    (Capabilities::READ, "read"),
    (Capabilities::LIST, "list"),
    (Capabilities::UPDATE, "update"),
    (Capabilities::DELETE, "delete"),
    (Capabilities::CREATE, "create"),
    (Capabilities::PATCH, "patch"),
    (Capabilities::DENY, "deny"),
];

impl Capabilities {
    /// The empty set: nothing is allowed.
    pub const NONE: Capabilities = Capabilities(0);
    /// Create new data at a path (POST/PUT where nothing exists yet).
    pub const CREATE: Capabilities = Capabilities(1 << 0);
    /// Read data at a path (GET).
    pub const READ: Capabilities = Capabilities(1 << 1);
    /// Change existing data at a path (POST/PUT).
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    /// Partially change data at a path (PATCH).
    pub const PATCH: Capabilities = Capabilities(1 << 3);
    /// Delete data at a path (DELETE).
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    /// List keys under a path (LIST).
    pub const LIST: Capabilities = Capabilities(1 << 5);
    /// Reach root-protected paths; never granted by itself.
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    /// Explicit denial: overrides every other capability on the same pattern.
    pub const DENY: Capabilities = Capabilities(1 << 7);
    /// Every grantable capability (everything but `deny`): what root holds.
    pub const ALL: Capabilities = Capabilities(
        Self::CREATE.0
            | Self::READ.0
            | Self::UPDATE.0
            | Self::PATCH.0
            | Self::DELETE.0
            | Self::LIST.0
            | Self::SUDO.0,
    );

    /// The raw bits, for storage or metrics.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The union of two sets.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// True when every capability of `other` is in `self` (so any set
    /// contains [`Capabilities::NONE`]).
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no capability is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The policy-language names of the set, in the order Vault's
    /// `sys/capabilities-self` reports them.
    pub fn names(self) -> Vec<&'static str> {
        NAMED
            .iter()
            .filter(|(cap, _)| self.contains(*cap))
            .map(|(_, name)| *name)
            .collect()
    }

    /// The capability a policy-language name stands for (exact, lowercase, as
    /// Vault accepts them), or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Capabilities> {
        NAMED
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(cap, _)| *cap)
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Capabilities) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_name() {
        for (cap, name) in NAMED {
            assert_eq!(Capabilities::from_name(name), Some(cap));
            assert_eq!(cap.names(), vec![name]);
        }
        assert_eq!(Capabilities::from_name("Read"), None);
        assert_eq!(Capabilities::from_name("write"), None);
        assert_eq!(Capabilities::from_name(""), None);
    }

    #[test]
    fn names_follow_vault_report_order() {
        let caps = Capabilities::CREATE | Capabilities::LIST | Capabilities::SUDO;
        assert_eq!(caps.names(), vec!["sudo", "list", "create"]);
        assert_eq!(Capabilities::NONE.names(), Vec::<&str>::new());
    }

    #[test]
    fn contains_is_subset() {
        let rw = Capabilities::READ | Capabilities::UPDATE;
        assert!(rw.contains(Capabilities::READ));
        assert!(rw.contains(rw));
        assert!(rw.contains(Capabilities::NONE));
        assert!(!rw.contains(Capabilities::READ | Capabilities::LIST));
        assert!(!Capabilities::ALL.contains(Capabilities::DENY));
        assert!(Capabilities::ALL.contains(Capabilities::SUDO | Capabilities::PATCH));
    }

    #[test]
    fn empty_and_bits() {
        assert!(Capabilities::NONE.is_empty());
        assert!(!Capabilities::DENY.is_empty());
        let mut c = Capabilities::NONE;
        c |= Capabilities::DELETE;
        assert_eq!(c.bits(), 1 << 4);
        assert_eq!(format!("{:?}", c), "{\"delete\"}");
        assert_eq!(
            (Capabilities::READ | Capabilities::LIST).to_string(),
            "read, list"
        );
    }
}
