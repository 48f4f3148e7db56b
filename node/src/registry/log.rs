//! `log/`: the append-only record of accepted rosters and manifests, one file per CID.

use std::io::Write;
use std::path::Path;

/// Writes `name` in `log/` durably (temp → fsync → rename → fsync dir). An existing file with
/// the same name holds the same bytes (names are CIDs) and is left alone.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dest = dir.join(name);
    if dest.exists() {
        return Ok(());
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &dest)?;
    std::fs::File::open(dir)?.sync_all()
}

/// [`write`] for many files at once, with one round of fsyncs: every temp file is written
/// first, then each is synced, renamed, and the directory synced once. A batch of manifests
/// from sync (or a bulk import) costs one disk flush instead of two per file; when this
/// returns, every file is durable, exactly as after [`write`] for each.
pub fn write_many(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let mut pending = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let dest = dir.join(name);
        if dest.exists() {
            continue;
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        pending.push((f, tmp, dest));
    }
    for (f, _, _) in &pending {
        f.sync_all()?;
    }
    for (_, tmp, dest) in &pending {
        std::fs::rename(tmp, dest)?;
    }
    if !pending.is_empty() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Encoded rosters and encoded manifests, as read from `log/`.
pub type LogContents = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Every roster and manifest encoding in `log/`, unverified.
pub fn read_all(dir: &Path) -> std::io::Result<LogContents> {
    let mut rosters = Vec::new();
    let mut manifests = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".roster") {
            rosters.push(std::fs::read(e.path())?);
        } else if name.ends_with(".manifest") {
            manifests.push(std::fs::read(e.path())?);
        }
    }
    Ok((rosters, manifests))
}
