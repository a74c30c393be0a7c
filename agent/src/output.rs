//! Writing a rendered file atomically: a temporary file in the same
//! directory, the final mode set before any byte is written, then a rename,
//! so a reader sees the old file or the new one, never half of one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cairn_client::agent_config::is_valid_file_name;

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The name could leave the output directory.
    #[error("file name {0:?} is not a safe relative path")]
    Name(String),
    /// A directory on the way is a symbolic link or not a directory.
    #[error("{0} is not a directory the agent created")]
    NotADirectory(PathBuf),
    /// The file system refused.
    #[error("failed to write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write `content` to `dir/name` with `mode` unless the file already holds
/// exactly that; answers whether it wrote.
pub fn write_atomic(
    dir: &Path,
    name: &str,
    content: &[u8],
    mode: u32,
) -> Result<bool, OutputError> {
    if !is_valid_file_name(name) {
        return Err(OutputError::Name(name.to_owned()));
    }
    let target = dir.join(name);
    let parent = target.parent().unwrap_or(dir).to_owned();
    ensure_dirs(dir, &parent)?;
    if unchanged(&target, content, mode) {
        return Ok(false);
    }
    let mut temp = tempfile::Builder::new()
        .prefix(".cairn-")
        .tempfile_in(&parent)
        .map_err(io(&parent))?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(&target))?;
    temp.write_all(content).map_err(io(&target))?;
    temp.as_file().sync_all().map_err(io(&target))?;
    temp.persist(&target).map_err(|e| OutputError::Io {
        path: target.clone(),
        source: e.error,
    })?;
    Ok(true)
}

/// Whether `target` is a regular file (not a link) with this content and mode.
fn unchanged(target: &Path, content: &[u8], mode: u32) -> bool {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o7777 == mode => {
            fs::read(target).is_ok_and(|old| old == content)
        }
        _ => false,
    }
}

/// Create the directories between `root` and `parent`, refusing symbolic
/// links on the way: the volume is shared with the app's containers.
fn ensure_dirs(root: &Path, parent: &Path) -> Result<(), OutputError> {
    let relative = parent.strip_prefix(root).unwrap_or(Path::new(""));
    let mut current = root.to_owned();
    for part in relative.components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(OutputError::NotADirectory(current)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(io(&current))?;
                fs::set_permissions(&current, fs::Permissions::from_mode(0o755))
                    .map_err(io(&current))?;
            }
            Err(e) => return Err(io(&current)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(dir.path(), "a.env", b"x=1\n", 0o640).unwrap());
        let path = dir.path().join("a.env");
        assert_eq!(fs::read(&path).unwrap(), b"x=1\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(!write_atomic(dir.path(), "a.env", b"x=1\n", 0o640).unwrap());
        // A mode change alone is a change.
        assert!(write_atomic(dir.path(), "a.env", b"x=1\n", 0o600).unwrap());
        assert!(write_atomic(dir.path(), "a.env", b"x=2\n", 0o600).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"x=2\n");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn creates_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(dir.path(), "tls/ca.crt", b"pem", 0o644).unwrap());
        assert_eq!(fs::read(dir.path().join("tls/ca.crt")).unwrap(), b"pem");
    }

    #[test]
    fn refuses_escapes_and_linked_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            write_atomic(dir.path(), "../x", b"", 0o644),
            Err(OutputError::Name(_))
        ));
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("link")).unwrap();
        assert!(matches!(
            write_atomic(dir.path(), "link/x", b"", 0o644),
            Err(OutputError::NotADirectory(_))
        ));
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }

    #[test]
    fn replaces_a_planted_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("f")).unwrap();
        assert!(write_atomic(dir.path(), "f", b"new", 0o644).unwrap());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(fs::symlink_metadata(dir.path().join("f"))
            .unwrap()
            .is_file());
    }
}
