//! Validation of secret paths below `data/`, `metadata/`, `delete/`, ... .
//!
//! A secret path becomes part of storage keys, so anything that could make two
//! spellings name one secret, or climb out of a folder, is refused outright
//! instead of being normalised.

use crate::engines::EngineError;

/// Why a secret path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing after `data/` (or `metadata/`, ...).
    #[error("missing path")]
    Missing,
    /// `/app`: paths are relative to the mount.
    #[error("invalid path: must not start with '/'")]
    LeadingSlash,
    /// `app/`: a trailing `/` names a folder, not a secret.
    #[error("invalid path: must not end with '/' (a trailing '/' names a folder)")]
    TrailingSlash,
    /// `app//db`.
    #[error("invalid path: empty segment ('//')")]
    EmptySegment,
    /// `app/../db` or `app/./db`.
    #[error("invalid path: '.' and '..' segments are not allowed")]
    DotSegment,
    /// A NUL byte anywhere.
    #[error("invalid path: NUL character")]
    Nul,
}

impl From<PathError> for EngineError {
    fn from(e: PathError) -> Self {
        EngineError::BadRequest(e.to_string())
    }
}

/// Check the path of one secret (`app/db`): non-empty, relative, no empty,
/// `.` or `..` segments, no NUL, no trailing `/`.
pub fn secret_path(path: &str) -> Result<&str, PathError> {
    if path.is_empty() {
        return Err(PathError::Missing);
    }
    if path.ends_with('/') {
        // Checked before segments so `app/` gets the clearer message.
        check_common(path.trim_end_matches('/'))?;
        return Err(PathError::TrailingSlash);
    }
    check_common(path)?;
    Ok(path)
}

/// Check a folder to list (`""`, `app`, `app/`) and return it in storage form:
/// empty for the root, otherwise ending with `/` (Vault lists `app` as `app/`).
pub fn list_prefix(path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Ok(String::new());
    }
    let folder = path.strip_suffix('/').unwrap_or(path);
    if folder.is_empty() {
        // A bare "/" is the root spelled with a leading slash.
        return Err(PathError::LeadingSlash);
    }
    check_common(folder)?;
    Ok(format!("{folder}/"))
}

fn check_common(path: &str) -> Result<(), PathError> {
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if path.starts_with('/') {
        return Err(PathError::LeadingSlash);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." | ".." => return Err(PathError::DotSegment),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        assert_eq!(secret_path("db"), Ok("db"));
        assert_eq!(
            secret_path("team-a/app/db.password"),
            Ok("team-a/app/db.password")
        );
        assert_eq!(secret_path(".env"), Ok(".env"));
        assert_eq!(secret_path("a/..b/c.."), Ok("a/..b/c.."));
    }

    #[test]
    fn refuses_bad_secret_paths() {
        assert_eq!(secret_path(""), Err(PathError::Missing));
        assert_eq!(secret_path("/db"), Err(PathError::LeadingSlash));
        assert_eq!(secret_path("app/"), Err(PathError::TrailingSlash));
        assert_eq!(secret_path("app//db"), Err(PathError::EmptySegment));
        assert_eq!(secret_path("app/../db"), Err(PathError::DotSegment));
        assert_eq!(secret_path(".."), Err(PathError::DotSegment));
        assert_eq!(secret_path("app/./db"), Err(PathError::DotSegment));
        assert_eq!(secret_path("app/d\0b"), Err(PathError::Nul));
        assert_eq!(secret_path("../x/"), Err(PathError::DotSegment));
    }

    #[test]
    fn list_prefixes_end_with_slash() {
        assert_eq!(list_prefix("").as_deref(), Ok(""));
        assert_eq!(list_prefix("app").as_deref(), Ok("app/"));
        assert_eq!(list_prefix("app/sub/").as_deref(), Ok("app/sub/"));
        assert_eq!(list_prefix("/"), Err(PathError::LeadingSlash));
        assert_eq!(list_prefix("/app/"), Err(PathError::LeadingSlash));
        assert_eq!(list_prefix("app//"), Err(PathError::EmptySegment));
        assert_eq!(list_prefix("../"), Err(PathError::DotSegment));
        assert_eq!(list_prefix("a\0/"), Err(PathError::Nul));
    }

    #[test]
    fn errors_become_bad_requests_with_the_reason() {
        let e: EngineError = PathError::DotSegment.into();
        match e {
            EngineError::BadRequest(msg) => assert!(msg.contains("'..'"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
