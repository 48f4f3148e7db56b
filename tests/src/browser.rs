//! The web UI's checkers, all real third-party tools: headless Chromium (Debian package
//! `chromium`) renders pages and takes screenshots, the Nu HTML checker (npm `vnu-jar` in
//! `tests/js-vnu`, run with the machine's Java) validates them, and the Python
//! `prometheus_client` parser (PyPI, in the venv `.ci/run` creates) reads `/metrics`.

use crate::bin::workspace_root;
use crate::cmd::{run_cmd, run_cmd_with};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// A headless Chromium command with a fresh profile (kept alive by the returned guard).
fn chromium() -> (Command, tempfile::TempDir) {
    let bin = which("chromium").unwrap_or_else(|| {
        panic!("headless Chromium is missing: install it with `apt-get install -y chromium`")
    });
    let profile = tempfile::tempdir().expect("a Chromium profile dir");
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    (c, profile)
}

/// The DOM of `url` after Chromium rendered it (JavaScript is not needed by the UI).
pub fn dump_dom(url: &str) -> String {
    let (mut c, _profile) = chromium();
    let run = run_cmd_with(c.args(["--dump-dom", url]), None, Duration::from_secs(60)).ok();
    run.out()
}

/// Saves a screenshot of `url` at `width`×`height` to `file`.
pub fn screenshot(url: &str, file: &Path, width: u32, height: u32) {
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d).expect("screenshot dir");
    }
    let _ = std::fs::remove_file(file);
    let (mut c, _profile) = chromium();
    run_cmd_with(
        c.arg(format!("--screenshot={}", file.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(url),
        None,
        Duration::from_secs(60),
    )
    .ok();
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(
        len > 1000,
        "Chromium wrote no screenshot of {url} to {}",
        file.display()
    );
}

/// Where the UI tests leave screenshots and pages: `$CARGO_TARGET_DIR/test-output/ui`, else
/// `target/test-output/ui`.
pub fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let d = target.join("test-output/ui");
    std::fs::create_dir_all(&d).expect("test output dir");
    d
}

/// Runs the Nu HTML checker on `files`; panics with its report if any has an error.
pub fn validate_html(files: &[PathBuf]) {
    let jar = workspace_root().join("tests/js-vnu/node_modules/vnu-jar/build/dist/vnu.jar");
    assert!(
        jar.is_file(),
        "the Nu HTML checker is missing: run `npm ci` in tests/js-vnu (`.ci/run` does)"
    );
    assert!(
        which("java").is_some(),
        "java is missing: install it with `apt-get install -y default-jre-headless`"
    );
    let run = run_cmd(
        Command::new("java")
            .arg("-jar")
            .arg(&jar)
            .arg("--errors-only")
            .args(files),
    );
    assert!(
        run.status.success(),
        "the Nu HTML checker found errors:\n{run}"
    );
}

/// The venv with `prometheus_client` (`.ci/run` installs it; override with `SHUBNET_VENV`).
fn python() -> PathBuf {
    let venv = std::env::var("SHUBNET_VENV").unwrap_or_else(|_| "/var/cache/shubnet-venv".into());
    let py = Path::new(&venv).join("bin/python");
    assert!(
        py.is_file(),
        "no Python venv at {venv}: run `python3 -m venv {venv} && {venv}/bin/pip install prometheus-client`"
    );
    py
}

/// Parses an OpenMetrics exposition with `prometheus_client`'s strict parser and returns every
/// sample as `(name, labels, value)`. Panics (with the parser's error) if the text is invalid.
pub fn parse_metrics(text: &str) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).expect("write metrics");
    let script = "import json, sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        out = []\n\
        for fam in text_string_to_metric_families(open(sys.argv[1]).read()):\n\
        \x20   for s in fam.samples:\n\
        \x20       out.append([s.name, s.labels, s.value])\n\
        print(json.dumps(out))\n";
    let run = run_cmd(Command::new(python()).arg("-c").arg(script).arg(&file));
    assert!(
        run.status.success(),
        "prometheus_client rejected the exposition (is prometheus-client installed in the venv?):\n{run}"
    );
    serde_json::from_str(&run.out()).expect("the parser's JSON")
}
