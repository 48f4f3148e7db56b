//! Durable whole-file writes: every file the node replaces goes temp file in the same directory
//! → fsync → rename over the target → fsync of the directory, so a crash leaves either the old
//! file or the complete new one, never a torn one, and the rename itself survives power loss.
//!
//! Owns the temp-file naming (`.<name>.<pid>-<n>.tmp`, which sweepers and backups skip) and the
//! mode a new file has before its first byte is written. Must not decide where files live
//! (that is [`crate::paths`]) or what goes in them.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who may read the file being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0666 less the umask: state other local users may read (URLs, config, logs).
    Shared,
    /// 0600 from creation on, so no secret byte is ever readable by another user.
    Secret,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Shared => 0o666,
            Mode::Secret => 0o600,
        }
    }
}

/// The step of a durable write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating or filling the temp file, or syncing it.
    Write,
    /// Moving the temp file over (or, for [`create_new`], linking it to) the target.
    Rename,
    /// Syncing the directory that holds the target.
    SyncDir,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Write => "writing",
            Step::Rename => "moving into place",
            Step::SyncDir => "syncing the directory of",
        })
    }
}

/// Why a durable write failed; the target keeps its previous content (or stays absent).
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct DurableError {
    /// What was being done.
    pub step: Step,
    /// The file that was to be written.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl DurableError {
    fn new(step: Step, path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self {
            step,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True if the target already existed (only [`create_new`] refuses that).
    pub fn already_exists(&self) -> bool {
        self.source.kind() == io::ErrorKind::AlreadyExists
    }
}

/// Replaces `path` with `bytes`.
pub fn replace(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), DurableError> {
    replace_with(path, mode, |f| f.write_all(bytes))
}

/// Replaces `path` with what `fill` writes into the temp file (for streamed formats such as a
/// CAR). `fill` must leave every byte written to the file it was given; it is synced after.
pub fn replace_with(
    path: &Path,
    mode: Mode,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), DurableError> {
    let tmp = write_temp(path, mode, fill)?;
    let committed = commit(&tmp, path);
    if committed.as_ref().is_err_and(|e| e.step == Step::Rename) {
        remove_quietly(&tmp);
    }
    committed
}

/// Writes `path`, which must not exist yet: a complete file appears under its name or nothing
/// does, and an existing file is never replaced (the error then says [`DurableError::already_exists`]).
pub fn create_new(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), DurableError> {
    let tmp = write_temp(path, mode, |f| f.write_all(bytes))?;
    let linked = std::fs::hard_link(&tmp, path);
    remove_quietly(&tmp);
    linked.map_err(DurableError::new(Step::Rename, path))?;
    sync_parent(path)
}

/// [`replace`] for many files with one round of fsyncs: every temp file is written first, then
/// each is synced and renamed, and each directory synced once. When this returns, every file is
/// durable, as after [`replace`] for each; a batch costs one disk flush instead of two per file.
pub fn replace_all(files: &[(PathBuf, &[u8])], mode: Mode) -> Result<(), DurableError> {
    let mut pending: Vec<(File, PathBuf, &Path)> = Vec::with_capacity(files.len());
    let cleanup = |pending: &[(File, PathBuf, &Path)]| {
        for (_, tmp, _) in pending {
            remove_quietly(tmp);
        }
    };
    for (path, bytes) in files {
        let tmp = temp_path(path);
        match open_temp(&tmp, mode).and_then(|mut f| f.write_all(bytes).map(|()| f)) {
            Ok(f) => pending.push((f, tmp, path)),
            Err(e) => {
                remove_quietly(&tmp);
                cleanup(&pending);
                return Err(DurableError::new(Step::Write, path)(e));
            }
        }
    }
    for (i, (f, _, path)) in pending.iter().enumerate() {
        if let Err(e) = f.sync_all() {
            cleanup(&pending[i..]);
            return Err(DurableError::new(Step::Write, path)(e));
        }
    }
    for (i, (_, tmp, path)) in pending.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, path) {
            cleanup(&pending[i..]);
            return Err(DurableError::new(Step::Rename, path)(e));
        }
    }
    let mut synced: Vec<&Path> = Vec::new();
    for (_, _, path) in &pending {
        let dir = parent_of(path);
        if !synced.contains(&dir) {
            sync_parent(path)?;
            synced.push(dir);
        }
    }
    Ok(())
}

/// Moves a complete, already synced file `tmp` over `path` and syncs the directory: the last
/// two steps of [`replace`], for writers that stream and check a file before committing it.
/// `tmp` must be in the same directory as `path`.
pub fn commit(tmp: &Path, path: &Path) -> Result<(), DurableError> {
    std::fs::rename(tmp, path).map_err(DurableError::new(Step::Rename, path))?;
    sync_parent(path)
}

/// fsyncs the directory `dir`, so renames and creations in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|f| f.sync_all())
}

/// True for the names [`replace`] gives its temp files, so sweepers can tell them apart.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_parent(path: &Path) -> Result<(), DurableError> {
    sync_dir(parent_of(path)).map_err(DurableError::new(Step::SyncDir, path))
}

fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

fn open_temp(tmp: &Path, mode: Mode) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.bits())
        .open(tmp)
}

/// Creates, fills and syncs a fresh temp file next to `path`; removed again on failure.
fn write_temp(
    path: &Path,
    mode: Mode,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<PathBuf, DurableError> {
    let tmp = temp_path(path);
    let res = open_temp(&tmp, mode).and_then(|mut f| {
        fill(&mut f)?;
        f.sync_all()
    });
    match res {
        Ok(()) => Ok(tmp),
        Err(e) => {
            remove_quietly(&tmp);
            Err(DurableError::new(Step::Write, path)(e))
        }
    }
}

fn remove_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("a.txt");
        replace(&p, b"one", Mode::Shared).expect("write");
        replace(&p, b"two", Mode::Shared).expect("replace");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(names(tmp.path()), ["a.txt"]);
    }

    #[test]
    fn secrets_are_private_from_the_start_and_never_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("k.key");
        create_new(&p, b"secret", Mode::Secret).expect("create");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = create_new(&p, b"other", Mode::Secret).expect_err("exists");
        assert!(err.already_exists(), "{err}");
        assert_eq!(err.path, p);
        assert_eq!(std::fs::read(&p).expect("read"), b"secret");
        assert_eq!(names(tmp.path()), ["k.key"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("c");
        replace(&p, b"old", Mode::Shared).expect("write");
        let err =
            replace_with(&p, Mode::Shared, |_| Err(io::Error::other("boom"))).expect_err("fails");
        assert_eq!(err.step, Step::Write);
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
        assert_eq!(names(tmp.path()), ["c"]);
    }

    #[test]
    fn a_missing_directory_names_the_target() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().join("no/such/file");
        let err = replace(&p, b"x", Mode::Shared).expect_err("no dir");
        assert_eq!(err.path, p);
        assert!(err.to_string().contains("no/such/file"), "{err}");
    }

    #[test]
    fn batches_write_every_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = [
            (tmp.path().join("x"), &b"1"[..]),
            (tmp.path().join("y"), &b"2"[..]),
        ];
        replace_all(&files, Mode::Shared).expect("batch");
        assert_eq!(names(tmp.path()), ["x", "y"]);
        assert_eq!(std::fs::read(tmp.path().join("y")).expect("read"), b"2");
    }
}
