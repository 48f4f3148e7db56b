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
