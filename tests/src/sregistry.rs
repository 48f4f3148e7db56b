//! The real `sregistry` client (PyPI `sregistry`, `SREGISTRY_CLIENT=registry`), run from the
//! venv `.ci/run` creates, with its settings, database, storage and home in a temp directory so
//! a test never touches the real home directory (client-protocols.md §10).

use crate::cmd::{Run, run_cmd};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `.ci/run` installs the client: `python3 -m venv` + `pip install sregistry
/// requests-toolbelt`. Overridden by `SHUBNET_SREGISTRY_VENV`.
pub const DEFAULT_VENV: &str = "/var/cache/shubnet-venv";

/// The `sregistry` executable, or a panic saying how to install it.
pub fn binary() -> PathBuf {
    let venv = std::env::var("SHUBNET_SREGISTRY_VENV").unwrap_or_else(|_| DEFAULT_VENV.into());
    let bin = Path::new(&venv).join("bin/sregistry");
    assert!(
        bin.exists(),
        "the sregistry client is not installed at {}; run: python3 -m venv {venv} && \
         {venv}/bin/pip install sregistry requests-toolbelt (or set SHUBNET_SREGISTRY_VENV)",
        bin.display()
    );
    bin
}

/// One configured client: a registry base URL and optional credentials.
pub struct Client {
    base: String,
    user: Option<(String, String)>,
    home: tempfile::TempDir,
}

impl Client {
    /// A client of `base` (e.g. `http://127.0.0.1:PORT`), anonymous.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            user: None,
            home: tempfile::Builder::new()
                .prefix("sregistry-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// The same client with a username and token (the HMAC key).
    pub fn with_user(mut self, user: &str, token: &str) -> Self {
        self.user = Some((user.to_owned(), token.to_owned()));
        self
    }

    /// The working directory pulls write to.
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// Runs `sregistry ARGS` in [`Client::dir`].
    pub fn run(&self, args: &[&str]) -> Run {
        let h = self.home.path();
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .current_dir(h)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", h)
            .env("SREGISTRY_CLIENT", "registry")
            .env("SREGISTRY_REGISTRY_BASE", &self.base)
            .env("SREGISTRY_CLIENT_SECRETS", h.join("secrets.json"))
            .env("SREGISTRY_DATABASE", h.join("db"))
            .env("SREGISTRY_STORAGE", h.join("storage"))
            .env("SREGISTRY_REGISTRY_NOHTTPS", "1");
        if let Some((u, t)) = &self.user {
            cmd.env("SREGISTRY_REGISTRY_USERNAME", u)
                .env("SREGISTRY_REGISTRY_TOKEN", t);
        }
        run_cmd(&mut cmd)
    }

    /// `sregistry pull REF`, then the one `.sif` file it wrote (anywhere under its directory).
    pub fn pull(&self, reference: &str) -> (Run, Option<PathBuf>) {
        let before = sif_files(self.dir());
        let r = self.run(&["pull", reference]);
        let after = sif_files(self.dir());
        let new: Vec<_> = after.into_iter().filter(|p| !before.contains(p)).collect();
        (r, new.into_iter().next())
    }
}

fn sif_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "sif") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
