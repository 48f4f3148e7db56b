//! Apptainer's library client (Debian `golang-github-apptainer-container-library-client-dev`
//! 1.2.2 with `golang-go`), driven through the small program in `tests/go/src/libclient`, built
//! in GOPATH mode on first use.

use crate::cmd::{Run, run_cmd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Where Debian installs the client's sources.
pub const GOPATH_SYSTEM: &str = "/usr/share/gocode";

/// The built `libclient` binary (built once per test process), or a panic saying what to
/// install.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src =
            format!("{GOPATH_SYSTEM}/src/github.com/apptainer/container-library-client/client");
        assert!(
            std::path::Path::new(&src).exists()
                && Command::new("go").arg("version").output().is_ok(),
            "Apptainer's library client is not installed; run: apt-get install golang-go \
             golang-github-apptainer-container-library-client-dev"
        );
        let root = crate::bin::workspace_root();
        let out_dir =
            std::env::temp_dir().join(format!("shubnet-libclient-{}", std::process::id()));
        std::fs::create_dir_all(&out_dir).expect("creating the Go output directory");
        let out = out_dir.join("libclient");
        let gopath = format!("{}:{GOPATH_SYSTEM}", root.join("tests/go").display());
        let r = run_cmd(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg("libclient")
                .env("GO111MODULE", "off")
                .env("GOPATH", gopath)
                .env("GOFLAGS", "")
                .env("GOCACHE", out_dir.join("cache")),
        );
        assert!(
            r.status.success(),
            "building tests/go/src/libclient failed\n{r}"
        );
        out
    })
    .clone()
}

/// Runs `libclient BASE TOKEN ARGS`.
pub fn run(base: &str, token: &str, args: &[&str]) -> Run {
    run_cmd(Command::new(binary()).arg(base).arg(token).args(args))
}
