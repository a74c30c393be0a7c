//! Policy names: what may be stored, and which names are reserved.

use super::PolicyError;

/// Longest accepted policy name, in bytes.
const MAX_NAME_LEN: usize = 128;

/// Normalises (trims, lowercases) and checks a policy name: non-empty, at
/// most 128 characters of `[a-z0-9._-]`, not `.` or `..`. `root` passes, as
/// it may be read and listed; [`validate_write`] and [`validate_delete`]
/// refuse it.
pub fn validate_name(name: &str) -> Result<String, PolicyError> {
    let normalized = name.trim().to_lowercase();
    let invalid = |reason: String| PolicyError::InvalidName {
        name: normalized.clone(),
        reason,
    };
    if normalized.is_empty() {
        return Err(invalid("the name is empty".to_string()));
    }
    if normalized.len() > MAX_NAME_LEN {
        return Err(invalid(format!("longer than {MAX_NAME_LEN} characters")));
    }
    if let Some(bad) = normalized
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "character {bad:?} is not allowed (use a-z, 0-9, '.', '_' and '-')"
        )));
    }
    if normalized == "." || normalized == ".." {
        return Err(invalid("the name is reserved".to_string()));
    }
    Ok(normalized)
}

/// [`validate_name`] for writing, which also refuses `root`: it is built
/// in, holds every capability, and has no text to change.
pub fn validate_write(name: &str) -> Result<String, PolicyError> {
    let normalized = validate_name(name)?;
    if normalized == "root" {
        return Err(PolicyError::RootPolicy);
    }
    Ok(normalized)
}

/// [`validate_write`] for deletion, which also refuses `default`: as in
/// Vault, the default policy can be changed but not removed.
pub fn validate_delete(name: &str) -> Result<String, PolicyError> {
    let normalized = validate_write(name)?;
    if normalized == "default" {
        return Err(PolicyError::DefaultPolicy);
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_lowercased() {
        assert_eq!(
            validate_name("  Team-A.Readers_1 ").ok().as_deref(),
            Some("team-a.readers_1")
        );
        assert_eq!(
            validate_name("k8s.ns.policy").ok().as_deref(),
            Some("k8s.ns.policy")
        );
        assert_eq!(validate_name("default").ok().as_deref(), Some("default"));
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for bad in ["", "   ", "a/b", "a b", "naïve", "x*", ".", ".."] {
            let err = validate_name(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.starts_with("invalid policy name"), "{bad:?}: {err}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            validate_name(&long),
            Err(PolicyError::InvalidName { .. })
        ));
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        let err = validate_name("a/b")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("'/'"), "{err}");
    }

    #[test]
    fn root_is_reserved_and_default_undeletable() {
        assert_eq!(validate_name(" ROOT ").ok().as_deref(), Some("root"));
        assert_eq!(validate_write("root"), Err(PolicyError::RootPolicy));
        assert_eq!(validate_write(" ROOT "), Err(PolicyError::RootPolicy));
        assert_eq!(validate_write("default").ok().as_deref(), Some("default"));
        assert!(matches!(
            validate_write("a/b"),
            Err(PolicyError::InvalidName { .. })
        ));
        assert_eq!(validate_delete("root"), Err(PolicyError::RootPolicy));
        assert_eq!(validate_delete("Default"), Err(PolicyError::DefaultPolicy));
        assert_eq!(validate_delete("team").ok().as_deref(), Some("team"));
    }
}
