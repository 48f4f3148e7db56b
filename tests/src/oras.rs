//! The real oras-py client (PyPI `oras`), run from the venv `.ci/run` creates through the driver
//! script `tests/oras/oras_client.py`, with its home (and so its docker credentials file) in a
//! temp directory so a test never reads the real one.

use crate::cmd::{Run, run_cmd};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv's Python, or a panic saying how to install oras-py.
pub fn python() -> PathBuf {
    let venv = std::env::var("SHUBNET_SREGISTRY_VENV")
        .unwrap_or_else(|_| crate::sregistry::DEFAULT_VENV.into());
    let py = Path::new(&venv).join("bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import oras.provider"])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "oras-py is not installed in {venv}; run: {venv}/bin/pip install oras (or bash .ci/run)"
    );
    py
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oras/oras_client.py")
}

/// One client of a plain-HTTP registry at `host` (`127.0.0.1:PORT`), anonymous or with a
/// shubnet user token as its Basic auth password.
pub struct Oras {
    host: String,
    user: Option<(String, String)>,
    home: tempfile::TempDir,
}

impl Oras {
    /// An anonymous client of the gateway at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        Self {
            host: base
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            user: None,
            home: tempfile::Builder::new()
                .prefix("oras-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// The same client logging in as `user` with `token`.
    pub fn with_user(mut self, user: &str, token: &str) -> Self {
        self.user = Some((user.to_owned(), token.to_owned()));
        self
    }

    /// Runs the driver with `args` after the command and the host.
    pub fn run(&self, cmd: &str, args: &[&str]) -> Run {
        let mut c = Command::new(python());
        c.arg(script())
            .arg(cmd)
            .arg(&self.host)
            .args(args)
            .current_dir(self.home.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path());
        if let Some((u, t)) = &self.user {
            c.args(["--user", u, "--token", t]);
        }
        run_cmd(&mut c)
    }

    /// Pushes `file` as a SIF artifact to `reference`; the manifest digest the registry answered.
    pub fn push(&self, reference: &str, file: &Path) -> Run {
        self.run("push", &[reference, file.to_str().expect("utf8 path")])
    }

    /// Pulls `reference` into `outdir`; the run and the files written.
    pub fn pull(&self, reference: &str, outdir: &Path) -> (Run, Vec<PathBuf>) {
        let r = self.run("pull", &[reference, outdir.to_str().expect("utf8")]);
        let files = r.out().lines().map(PathBuf::from).collect();
        (r, files)
    }

    /// The manifest digest and JSON as the registry serves them to this client.
    pub fn manifest(&self, reference: &str) -> (String, serde_json::Value) {
        let r = self.run("manifest", &[reference]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.out())
            .unwrap_or_else(|e| panic!("the driver printed no JSON: {e}\n{r}"));
        (
            v["digest"].as_str().unwrap_or_default().to_owned(),
            v["manifest"].clone(),
        )
    }
}
