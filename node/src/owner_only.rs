//! Keeps a node's data readable by its owner only: `DATA_DIR` is created 0700, the directories
//! already in it are tightened to 0700 at start (with a log line naming the old mode), and the
//! process umask becomes 077 so every blob, index page and secret written afterwards is 0600.
//! Private images sit in `blobs/` as plain files, so a world-readable directory would hand them
//! to any local user.
//!
//! It must not decide where files live ([`crate::paths`]) or how they are written
//! ([`crate::durable`]).

use crate::paths::DataDir;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Owner read, write and search; nothing for group or others.
const DIR_MODE: u32 = 0o700;

/// Makes files and directories this process creates from now on owner-only.
#[allow(unsafe_code)]
pub fn restrict_umask() {
    // SAFETY: umask only swaps the process's file-mode mask; it takes no pointers and cannot
    // fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (0700) if needed and tightens it and the directories in it to 0700. `init` and
/// `serve` call it, after [`restrict_umask`], before anything else touches the directory.
pub fn secure(dir: &DataDir) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir.root())?;
    tighten(dir.root())?;
    for sub in [
        dir.blobs(),
        dir.partial(),
        dir.quarantine(),
        dir.index(),
        dir.keys(),
        dir.accounts(),
        dir.log(),
        dir.uploads(),
    ] {
        match tighten(&sub) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Removes group and other access from directory `path`, logging when it had any.
fn tighten(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))?;
    tracing::warn!(
        path = %path.display(),
        was = %format!("{mode:o}"),
        now = %format!("{DIR_MODE:o}"),
        "tightened the permissions of a data directory: other local users could read it"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightens_existing_directories_and_creates_new_ones_owner_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        let dir = DataDir::new(&root);
        std::fs::create_dir_all(dir.blobs()).expect("mkdir");
        for p in [dir.root().to_path_buf(), dir.blobs()] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        secure(&dir).expect("secure");
        for p in [dir.root().to_path_buf(), dir.blobs()] {
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", p.display());
        }
        let fresh = DataDir::new(tmp.path().join("a/b"));
        secure(&fresh).expect("secure");
        let mode = std::fs::metadata(fresh.root())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }
}
