//! [`Garage`]: a real Garage S3 server (the Rust distributed object store, installed from
//! crates.io by `.ci/run`) on 127.0.0.1, with a generated one-node configuration, and a key and
//! a bucket made with its own CLI.
//!
//! With `SHUBNET_S3_SERVER=moto` the same helper runs moto's server mode (PyPI `moto[server]`,
//! `moto_server` on `PATH`) instead, a second S3 implementation; it keeps its objects in memory
//! and accepts any credentials, so restarts and credential checks are Garage's alone.
//!
//! The binary is `$SHUBNET_GARAGE`, else `/var/cache/shubnet-tools/garage/bin/garage`, else
//! `garage` on `PATH`. Dropping a `Garage` kills the server; its directories go with the test's
//! temporary directory.

use crate::cmd::{Run, describe, run_cmd};
use shubnet_node::store::{BlobsUrl, ObjectBlobs};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key id the helper imports (Garage's format: `GK` and 24 hex digits).
const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The region Garage answers for.
pub const REGION: &str = "garage";

/// A running Garage server with one bucket.
pub struct Garage {
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    /// The S3 API port on 127.0.0.1.
    pub s3_port: u16,
    /// The bucket the tests use.
    pub bucket: String,
    starts: u32,
    _tmp: Option<tempfile::TempDir>,
}

/// The Garage binary.
pub fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SHUBNET_GARAGE") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from("/var/cache/shubnet-tools/garage/bin/garage");
    if cached.exists() {
        return cached;
    }
    PathBuf::from("garage")
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

impl Garage {
    /// Starts Garage in a fresh temporary directory, lays out its single node, imports the
    /// test key and creates bucket `shubnet` it may read and write.
    pub fn start() -> Self {
        if std::env::var("SHUBNET_S3_SERVER").as_deref() == Ok("moto") {
            return Self::start_moto();
        }
        let tmp = tempfile::Builder::new()
            .prefix("shubnet-garage-")
            .tempdir()
            .expect("creating a temp dir");
        let mut g = Self::configure(tmp.path());
        g._tmp = Some(tmp);
        g.spawn();
        g.setup();
        g
    }

    /// True when the server is moto rather than Garage.
    pub fn is_moto(&self) -> bool {
        self.config.as_os_str().is_empty()
    }

    fn start_moto() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("shubnet-moto-")
            .tempdir()
            .expect("creating a temp dir");
        let s3_port = free_port();
        let log = tmp.path().join("garage-1.log");
        let child = Command::new("moto_server")
            .args(["-p", &s3_port.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("log"))
            .spawn()
            .expect("starting moto_server");
        let g = Self {
            dir: tmp.path().to_path_buf(),
            config: PathBuf::new(),
            child: Some(child),
            s3_port,
            bucket: "shubnet".into(),
            starts: 1,
            _tmp: Some(tmp),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", s3_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not listen\n{}",
                g.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        run_cmd(Command::new("curl").args([
            "-sf",
            "-X",
            "PUT",
            &format!("{}/{}", g.endpoint(), g.bucket),
        ]))
        .ok();
        g
    }

    fn configure(dir: &Path) -> Self {
        let s3_port = free_port();
        let rpc_port = free_port();
        let admin_port = free_port();
        let config = dir.join("garage.toml");
        let text = format!(
            "metadata_dir = \"{meta}\"\n\
             data_dir = \"{data}\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\n\
             s3_region = \"{REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
             root_domain = \".s3.garage.localhost\"\n\
             [admin]\n\
             api_bind_addr = \"127.0.0.1:{admin_port}\"\n",
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
        );
        std::fs::write(&config, text).expect("writing garage.toml");
        Self {
            dir: dir.to_path_buf(),
            config,
            child: None,
            s3_port,
            bucket: "shubnet".into(),
            starts: 0,
            _tmp: None,
        }
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut c = Command::new(garage_bin());
        c.arg("-c").arg(&self.config).args(args);
        c.env("RUST_LOG", "warn");
        c
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "garage already running");
        self.starts += 1;
        let log = self.dir.join(format!("garage-{}.log", self.starts));
        let mut cmd = self.cli(&["server"]);
        cmd.env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("creating the garage log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("garage log"));
        let line = describe(&cmd);
        self.child = Some(cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start `{line}` (is Garage installed? `bash .ci/run` installs it): {e}")
        }));
        // The S3 port answers once the server is up.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "garage did not listen\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a garage CLI command, retrying for a while (the cluster takes a moment to settle).
    fn retry(&self, args: &[&str]) -> Run {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = run_cmd(&mut self.cli(args));
            if r.status.success() || Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn setup(&self) {
        let status = self.retry(&["status"]).ok();
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        // The node id is the first 16-hex-digit word of the status table.
        let id = text
            .split_whitespace()
            .find(|w| w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no node id in `garage status`\n{status}"))
            .to_owned();
        self.retry(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])
            .ok();
        self.retry(&["layout", "apply", "--version", "1"]).ok();
        self.retry(&["key", "import", "--yes", "-n", "shubnet", KEY_ID, SECRET])
            .ok();
        self.retry(&["bucket", "create", &self.bucket]).ok();
        self.retry(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket,
            "--key",
            "shubnet",
        ])
        .ok();
    }

    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The variables a node needs to reach the bucket.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// An S3 client for `prefix`, for checks through the S3 API itself.
    pub fn client(&self, prefix: &str) -> ObjectBlobs {
        let url: BlobsUrl = self.url(prefix).parse().expect("a valid s3:// URL");
        let env = self.env();
        let opts: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ObjectBlobs::with_options(url, &opts).expect("an S3 client")
    }

    /// Objects under `prefix/blobs/` (ListObjectsV2): (name, size).
    pub fn blobs(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut v = self
            .client(prefix)
            .list_blobs_blocking()
            .expect("listing the bucket");
        v.sort();
        v
    }

    /// Multipart uploads under `prefix/` never completed nor aborted (ListMultipartUploads).
    pub fn incomplete_uploads(&self, prefix: &str) -> Vec<(String, String)> {
        self.client(prefix)
            .incomplete_uploads_blocking()
            .expect("listing multipart uploads")
    }

    /// Kills the server (its data stays), e.g. to make the store unreachable.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.retry(&["status"]).ok();
    }

    /// The server's logs.
    pub fn log_text(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.starts {
            for ext in ["log", "err"] {
                let p = self.dir.join(format!("garage-{n}.{ext}"));
                out.push_str(&format!("--- {}\n", p.display()));
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
        out
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}
