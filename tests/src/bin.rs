//! Where the `shubnet` binary and the workspace are.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable that names the `shubnet` binary to test.
pub const SHUBNET_BIN_ENV: &str = "SHUBNET_BIN";

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// Candidate locations of the binary, best first: `$SHUBNET_BIN`; the profile directory this
/// test executable was built into (`<target>/<profile>/deps/it-… → <target>/<profile>/shubnet`,
/// which follows `CARGO_TARGET_DIR` and `--release`); `$CARGO_TARGET_DIR/debug`;
/// `<workspace>/target/debug`.
fn candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os(SHUBNET_BIN_ENV) {
        return vec![PathBuf::from(p)];
    }
    let mut out = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // deps/ → profile dir
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            out.push(profile_dir.join("shubnet"));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        out.push(PathBuf::from(t).join("debug/shubnet"));
    }
    out.push(workspace_root().join("target/debug/shubnet"));
    out
}

/// The `shubnet` binary under test. Panics, saying how to build it, if it is missing.
pub fn shubnet_bin() -> PathBuf {
    let candidates = candidates();
    for c in &candidates {
        if c.is_file() {
            static CHECKED: std::sync::Once = std::sync::Once::new();
            CHECKED.call_once(|| warn_if_stale(c));
            return c.clone();
        }
    }
    panic!(
        "the shubnet binary was not found; looked at {candidates:?}.\n\
         Build it first: `cargo build --workspace --bins` (cargo does not build another \
         package's binaries for tests), or set {SHUBNET_BIN_ENV}=/path/to/shubnet"
    );
}

/// A `Command` for `shubnet ARGS…` with no node settings inherited from the environment.
pub fn shubnet_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    shubnet_command_in(None, args)
}

/// [`shubnet_command`], run inside network namespace `netns` (`ip netns exec`, which also
/// gives the process that namespace's `/etc/netns/NAME/hosts` as `/etc/hosts`) when given.
pub fn shubnet_command_in<S: AsRef<std::ffi::OsStr>>(netns: Option<&str>, args: &[S]) -> Command {
    shubnet_command_of(&shubnet_bin(), netns, args)
}

/// [`shubnet_command_in`] with another build of `shubnet`, `bin` (the previous release of the
/// mixed-version tests).
pub fn shubnet_command_of<S: AsRef<std::ffi::OsStr>>(
    bin: &Path,
    netns: Option<&str>,
    args: &[S],
) -> Command {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    c.args(args);
    for var in [
        "SHUBNET_NODE",
        "SHUBNET_DATA_DIR",
        "SHUBNET_TOKEN",
        "SHUBNET_HTTP",
        "SHUBNET_LOG",
        "SHUBNET_MAX_UPLOAD",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// Warns (once per test binary) when a source file of the binary's crates is newer than the
/// binary: the tests would then exercise old code. Not an error, since `SHUBNET_BIN` may name
/// a binary built elsewhere on purpose.
fn warn_if_stale(bin: &Path) {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let root = workspace_root();
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = ["protocol/src", "gateway/src", "node/src"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(n, _)| t > *n)
            {
                newest = Some((t, p));
            }
        }
    }
    if let Some((_, p)) = newest.filter(|(t, _)| *t > built) {
        eprintln!(
            "warning: {} is older than {}; rebuild with `cargo build --workspace --bins`",
            bin.display(),
            p.display()
        );
    }
}
