//! The provider's unix sockets: `<name>.sock` in each provider directory
//! the driver may look in (current and legacy path).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Why no socket could be served.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The provider name cannot be a file name.
    #[error("provider name {0:?} must be a plain file name")]
    BadName(String),
    /// A non-socket file sits where the socket goes.
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// No directory could hold a socket.
    #[error("failed to listen in any of the socket directories: {0}")]
    NoneBound(String),
}

/// Bound sockets; their files are removed on drop.
pub struct Sockets {
    /// The listeners, one per directory that worked.
    pub listeners: Vec<UnixListener>,
    /// Their paths.
    pub paths: Vec<PathBuf>,
}

impl Drop for Sockets {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `<dir>/<name>.sock` in every directory of `dirs` that can hold it
/// (created if missing), replacing a stale socket. A directory that fails
/// is logged and skipped; none working is an error.
pub fn bind(dirs: &[PathBuf], name: &str) -> Result<Sockets, SocketError> {
    if name.is_empty() || name.contains('/') || name.contains('\0') || name == "." || name == ".." {
        return Err(SocketError::BadName(name.into()));
    }
    let mut sockets = Sockets {
        listeners: Vec::new(),
        paths: Vec::new(),
    };
    let mut failures = Vec::new();
    for dir in dirs {
        let path = dir.join(format!("{name}.sock"));
        match bind_one(dir, &path) {
            Ok(listener) => {
                tracing::info!(socket = %path.display(), "listening");
                sockets.listeners.push(listener);
                sockets.paths.push(path);
            }
            Err(BindFailure::NotASocket) => return Err(SocketError::NotASocket(path)),
            Err(BindFailure::Io(e)) => {
                tracing::warn!(socket = %path.display(), error = %e, "cannot listen here");
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    if sockets.listeners.is_empty() {
        return Err(SocketError::NoneBound(failures.join("; ")));
    }
    Ok(sockets)
}

enum BindFailure {
    NotASocket,
    Io(std::io::Error),
}

fn bind_one(dir: &Path, path: &Path) -> Result<UnixListener, BindFailure> {
    std::fs::create_dir_all(dir).map_err(BindFailure::Io)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(BindFailure::Io)?;
        }
        Ok(_) => return Err(BindFailure::NotASocket),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BindFailure::Io(e)),
    }
    let listener = UnixListener::bind(path).map_err(BindFailure::Io)?;
    // The driver (root) is the only intended caller.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(BindFailure::Io)?;
    Ok(listener)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_in_every_dir_replaces_stale_sockets_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b/nested");
        let dirs = vec![a.clone(), b.clone()];
        let first = bind(&dirs, "cairn").unwrap();
        assert_eq!(first.listeners.len(), 2);
        // A crashed process leaves its sockets: a new one replaces them.
        std::mem::forget(first);
        let second = bind(&dirs, "cairn").unwrap();
        assert!(a.join("cairn.sock").exists());
        drop(second);
        assert!(!a.join("cairn.sock").exists());
        assert!(!b.join("cairn.sock").exists());
    }

    #[tokio::test]
    async fn refuses_bad_names_and_regular_files() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            bind(&[tmp.path().into()], "../x"),
            Err(SocketError::BadName(_))
        ));
        std::fs::write(tmp.path().join("cairn.sock"), "x").unwrap();
        assert!(matches!(
            bind(&[tmp.path().into()], "cairn"),
            Err(SocketError::NotASocket(_))
        ));
    }

    #[tokio::test]
    async fn one_working_dir_is_enough() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let ok = bind(&[file.join("sub"), tmp.path().join("ok")], "cairn").unwrap();
        assert_eq!(ok.listeners.len(), 1);
        assert!(matches!(
            bind(&[file.join("sub")], "cairn"),
            Err(SocketError::NoneBound(_))
        ));
    }
}
