//! [`TestNode`]: a real `shubnet serve` process on 127.0.0.1 with its own data directory.
//!
//! The node listens on port 0 and writes the URL it serves to `DATA_DIR/api.url`; the harness
//! polls for that file (with a deadline, never a fixed sleep). Its stdout and stderr go to files
//! under the test's directory, one pair per start, and are printed if the test panics. Dropping a
//! `TestNode` sends SIGTERM, then SIGKILL if it has not exited within [`STOP_GRACE`].

use crate::bin::shubnet_command_in;
use crate::cmd::{DEFAULT_TIMEOUT, Run, describe, poll_until, run_cmd, run_cmd_with};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// A running (or stopped) `shubnet serve`.
pub struct TestNode {
    data_dir: PathBuf,
    logs_dir: PathBuf,
    url: String,
    child: Option<Child>,
    starts: u32,
    logs: Vec<(PathBuf, PathBuf)>,
    /// Extra `serve` arguments and environment, kept across restarts.
    extra: Vec<String>,
    env: Vec<(String, String)>,
    /// The network namespace `serve` runs in; `None` for the test's own.
    netns: Option<String>,
    /// The address the HTTP API listens on (port 0); the admin API is opened to the test's
    /// calls when it is not 127.0.0.1, since they then come from another address.
    http_ip: String,
    /// Another build of `shubnet` to run (serve and CLI) instead of the one under test.
    bin: Option<PathBuf>,
    // Declared last: removed after the process is gone.
    _tmp: Option<tempfile::TempDir>,
}

impl TestNode {
    /// Starts a node with a fresh temporary data directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a node with a fresh temporary data directory and extra `serve` arguments
    /// (e.g. `--bootstrap ADDR`, `--no-gossip`), kept for restarts.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_fresh(args, None)
    }

    /// Starts a node with a fresh data directory whose `config.toml` is `config`, passing
    /// `args` to `shubnet serve` on this and every later start.
    pub fn start_configured(args: &[&str], config: &str) -> Self {
        Self::start_fresh(args, Some(config))
    }

    /// Starts a node with a fresh data directory in network namespace `ns` (`None`: the test's
    /// own) with its HTTP API on `http_ip` (see [`TestNode::set_netns`]), passing `args` to
    /// `shubnet serve` on every start.
    pub fn start_in_netns(ns: Option<&str>, http_ip: &str, args: &[&str]) -> Self {
        Self::start_fresh_in(Some((ns, http_ip)), args, None)
    }

    /// Starts a node with a fresh data directory, passing `args` to `shubnet serve` and
    /// setting `env` for it, on this and every later start.
    pub fn start_with_env(args: &[&str], env: &[(String, String)]) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("shubnet-node-")
            .tempdir()
            .expect("creating a temp dir");
        let mut n = Self::new(tmp.path().join("data"), tmp.path().join("logs"));
        n._tmp = Some(tmp);
        n.set_args(args);
        n.env = env.to_vec();
        n.spawn();
        n
    }

    /// Replaces the environment `serve` gets from the next (re)start on.
    pub fn set_env(&mut self, env: &[(String, String)]) {
        self.env = env.to_vec();
    }

    fn start_fresh(args: &[&str], config: Option<&str>) -> Self {
        Self::start_fresh_in(None, args, config)
    }

    /// [`TestNode::start_configured`] running another build of `shubnet`, `bin`, for `serve`
    /// and for the CLI calls made through this node (see [`TestNode::set_binary`]).
    pub fn start_configured_on(bin: &Path, args: &[&str], config: &str) -> Self {
        Self::start_fresh_with(None, args, Some(config), Some(bin))
    }

    fn start_fresh_in(
        netns: Option<(Option<&str>, &str)>,
        args: &[&str],
        config: Option<&str>,
    ) -> Self {
        Self::start_fresh_with(netns, args, config, None)
    }

    fn start_fresh_with(
        netns: Option<(Option<&str>, &str)>,
        args: &[&str],
        config: Option<&str>,
        bin: Option<&Path>,
    ) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("shubnet-node-")
            .tempdir()
            .expect("creating a temp dir");
        let data_dir = tmp.path().join("data");
        let logs_dir = tmp.path().join("logs");
        if let Some(text) = config {
            std::fs::create_dir_all(&data_dir).expect("creating the data dir");
            std::fs::write(data_dir.join("config.toml"), text).expect("writing config.toml");
        }
        let mut n = Self::new(data_dir, logs_dir);
        n._tmp = Some(tmp);
        n.bin = bin.map(Path::to_path_buf);
        n.set_args(args);
        if let Some((ns, ip)) = netns {
            n.set_netns(ns, ip);
        }
        n.spawn();
        n
    }

    /// The node's TCP listen address on 127.0.0.1 with `/p2p/<peer id>`, from
    /// `DATA_DIR/p2p.addrs` (waits for the file).
    pub fn p2p_addr(&self) -> String {
        let path = self.data_dir.join("p2p.addrs");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Some(line) = text.lines().map(str::trim).find(|l| {
                    l.starts_with("/ip4/127.0.0.1/tcp/")
                        && l.contains("/p2p/")
                        && !l.contains("/quic")
                })
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no /ip4/127.0.0.1/tcp/PORT/p2p/PEERID address in {}\n{}",
                path.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a node on `data_dir` (created if missing), logging under `logs_dir`. The caller
    /// owns both directories and must keep them until the node is dropped.
    pub fn start_at(data_dir: &Path, logs_dir: &Path) -> Self {
        let mut n = Self::new(data_dir.to_path_buf(), logs_dir.to_path_buf());
        n.spawn();
        n
    }

    fn new(data_dir: PathBuf, logs_dir: PathBuf) -> Self {
        std::fs::create_dir_all(&logs_dir).expect("creating the logs dir");
        Self {
            data_dir,
            logs_dir,
            url: String::new(),
            child: None,
            starts: 0,
            logs: Vec::new(),
            extra: Vec::new(),
            env: Vec::new(),
            netns: None,
            http_ip: "127.0.0.1".to_string(),
            bin: None,
            _tmp: None,
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node already running");
        self.starts += 1;
        let out = self.logs_dir.join(format!("serve-{}.stdout", self.starts));
        let err = self.logs_dir.join(format!("serve-{}.stderr", self.starts));
        self.logs.push((out.clone(), err.clone()));
        // A URL left by an earlier run (e.g. after kill -9) must not be mistaken for this one.
        let api = self.api_file();
        match std::fs::remove_file(&api) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing stale {}: {e}", api.display()),
        }
        let http = format!("{}:0", self.http_ip);
        let mut args = vec!["serve", "--http", &http, "--p2p", "/ip4/127.0.0.1/tcp/0"];
        if self.http_ip != "127.0.0.1" {
            // The test's calls come from another address than loopback.
            args.push("--allow-remote-admin");
        }
        args.push("--data-dir");
        let mut cmd = self.shubnet(self.netns.as_deref(), &args);
        cmd.arg(&self.data_dir)
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_BACKTRACE", "1")
            // Plain logs in the log files (tracing-subscriber colours even when not on a TTY).
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("creating stdout log"))
            .stderr(std::fs::File::create(&err).expect("creating stderr log"));
        let line = describe(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "`{line}` exited with {status} before it was ready\n{}",
                    self.log_text()
                );
            }
            if let Some(url) = self.ready_url() {
                self.url = url;
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "`{line}` wrote no usable {} within {START_TIMEOUT:?}\n{}",
                    api.display(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The URL in `api.url`, once a connection to it succeeds.
    fn ready_url(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.api_file()).ok()?;
        let url = text.trim().trim_end_matches('/').to_string();
        let hostport = url.strip_prefix("http://")?;
        TcpStream::connect(hostport).ok()?;
        Some(url)
    }

    /// From the next (re)start on, and for CLI calls from now on, runs `bin` instead of the
    /// build under test (`None`: the build under test again, as after an in-place upgrade).
    pub fn set_binary(&mut self, bin: Option<&Path>) {
        self.bin = bin.map(Path::to_path_buf);
    }

    fn shubnet<S: AsRef<std::ffi::OsStr>>(&self, netns: Option<&str>, args: &[S]) -> Command {
        match &self.bin {
            Some(b) => crate::bin::shubnet_command_of(b, netns, args),
            None => shubnet_command_in(netns, args),
        }
    }

    /// Replaces the extra `serve` arguments used from the next (re)start on.
    pub fn set_args(&mut self, args: &[&str]) {
        self.extra = args.iter().map(|a| a.to_string()).collect();
    }

    /// From the next (re)start on, runs `serve` inside network namespace `ns` (`None`: the
    /// test's own) with its HTTP API on `http_ip`, an address the test can reach.
    pub fn set_netns(&mut self, ns: Option<&str>, http_ip: &str) {
        self.netns = ns.map(str::to_string);
        self.http_ip = http_ip.to_string();
    }

    /// Sets extra `serve` arguments and environment variables for the next (re)start.
    pub fn set_serve_args(&mut self, args: &[&str], env: &[(&str, &str)]) {
        self.extra = args.iter().map(|a| a.to_string()).collect();
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Starts the node again on the same data directory (stopping it first if it runs).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// SIGTERM, then waits up to [`STOP_GRACE`]; panics if the node does not exit in time.
    pub fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("node is not running");
        };
        signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node did not exit within {STOP_GRACE:?} of SIGTERM; killed it\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the node to exit on its own (e.g. after `shubnet leave` or a signal sent by
    /// the test); panics with its log after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("node is not running");
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node did not exit within {timeout:?}; killed it\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the crash case. Waits for the process to be gone.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("node is not running");
        };
        child.kill().expect("kill -9 the node");
        child.wait().expect("reaping the node");
    }

    /// Panics (with the logs) unless the process is still running.
    #[track_caller]
    pub fn assert_running(&mut self) {
        let Some(child) = self.child.as_mut() else {
            panic!("node is not running (stopped by the test)");
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            panic!(
                "node exited unexpectedly with {status}\n{}",
                self.log_text()
            );
        }
        // And it still answers.
        let hostport = self.url.trim_start_matches("http://").to_string();
        if let Err(e) = TcpStream::connect(&hostport) {
            panic!(
                "node no longer accepts connections at {hostport}: {e}\n{}",
                self.log_text()
            );
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `DATA_DIR/api.url`.
    pub fn api_file(&self) -> PathBuf {
        self.data_dir.join("api.url")
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The admin token from `DATA_DIR/keys/admin.token`.
    pub fn token(&self) -> String {
        let p = self.data_dir.join("keys/admin.token");
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
            .trim()
            .to_string()
    }

    /// A `Command` for `shubnet ARGS…` pointed at this node (`SHUBNET_NODE`,
    /// `SHUBNET_DATA_DIR`).
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = self.shubnet(None, args);
        c.env("SHUBNET_NODE", &self.url)
            .env("SHUBNET_DATA_DIR", &self.data_dir);
        c
    }

    /// Runs `shubnet ARGS…` against this node.
    pub fn cli<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        run_cmd(&mut self.command(args))
    }

    /// Runs `shubnet ARGS…` against this node with stdout going to `out`.
    pub fn cli_to_file<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], out: &Path) -> Run {
        run_cmd_with(&mut self.command(args), Some(out), DEFAULT_TIMEOUT)
    }

    /// `shubnet add FILE`, checked; returns the CID it printed.
    #[track_caller]
    pub fn add(&self, file: &Path) -> String {
        let r = self.cli(&[Path::new("add"), file]).ok();
        let cid = r.out();
        assert!(
            crate::cid::decode(&cid).is_some(),
            "`shubnet add` printed no CID\n{r}"
        );
        cid
    }

    /// `shubnet cat CID > out`, checked.
    #[track_caller]
    pub fn cat_to(&self, cid: &str, out: &Path) {
        self.cli_to_file(&["cat", cid], out).ok();
    }

    /// The pins as `(cid, size)` from `shubnet pin ls --json`, sorted.
    #[track_caller]
    pub fn pins(&self) -> Vec<(String, u64)> {
        let r = self.cli(&["pin", "ls", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_slice(&r.stdout)
            .unwrap_or_else(|e| panic!("`pin ls --json` printed no JSON: {e}\n{r}"));
        let mut pins: Vec<(String, u64)> = v
            .as_array()
            .unwrap_or_else(|| panic!("`pin ls --json` printed no array\n{r}"))
            .iter()
            .map(|p| {
                (
                    p["cid"].as_str().unwrap_or_default().to_string(),
                    p["size"].as_u64().unwrap_or(u64::MAX),
                )
            })
            .collect();
        pins.sort();
        pins
    }

    /// Names of the entries of `DATA_DIR/SUB` (recursively, relative paths), sorted; empty if
    /// the directory does not exist.
    pub fn files_under(&self, sub: &str) -> Vec<String> {
        let root = self.data_dir.join(sub);
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    /// Both logs of every start, for failure messages.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        for (out, err) in &self.logs {
            for p in [out, err] {
                let text = std::fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"));
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(200);
                s.push_str(&format!(
                    "===== {} ({} lines{}) =====\n",
                    p.display(),
                    lines.len(),
                    if from > 0 { ", last 200 shown" } else { "" }
                ));
                for l in &lines[from..] {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(
                p.strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

/// Sends a signal with the `kill` command (the workspace forbids `unsafe`, so no libc).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + STOP_GRACE;
            let exited = poll_until_or(deadline, || child.try_wait().ok().flatten().is_some());
            if !exited {
                eprintln!(
                    "shubnet node pid {} ignored SIGTERM for {STOP_GRACE:?}; sending SIGKILL",
                    child.id()
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "----- logs of the shubnet node at {} (data dir {}) -----\n{}",
                self.url,
                self.data_dir.display(),
                self.log_text()
            );
        }
    }
}

fn poll_until_or(deadline: Instant, mut f: impl FnMut() -> bool) -> bool {
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Waits (with a deadline) until `path` exists.
pub fn wait_for_file(path: &Path, timeout: Duration) {
    poll_until(timeout, &format!("{} to appear", path.display()), || {
        path.exists().then_some(())
    });
}
