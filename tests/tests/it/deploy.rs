//! The deployment files stay valid: the compose federation (`docker-compose config`), the
//! Kubernetes manifests (`kubernetes-validate --strict`), the hardened systemd unit, and the
//! Dockerfile's build command, which `.ci/run` runs too so the image's build cannot rot.

use shubnet_tests::cmd::run_cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A tool the test needs; fails with how to install it when missing.
fn tool(name: &str, fallback: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found
        .or_else(|| Some(PathBuf::from(fallback)).filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("`{name}` is needed for this test: {install} (.ci/run does)"))
}

#[test]
fn compose_file_is_valid_and_forms_three_institutions() {
    let dc = tool(
        "docker-compose",
        "/usr/bin/docker-compose",
        "apt-get install docker-compose",
    );
    let file = repo().join("deploy/compose/docker-compose.yml");
    let r = run_cmd(
        Command::new(&dc)
            .arg("-f")
            .arg(&file)
            .args(["config", "--services"]),
    )
    .ok();
    let mut services: Vec<String> = r.out().lines().map(str::to_string).collect();
    services.sort();
    assert_eq!(services, ["lab-a", "lab-b", "lab-c"], "{r}");
    let script = repo().join("deploy/compose/federate.sh");
    run_cmd(Command::new("sh").arg("-n").arg(&script)).ok();
    let text = read("deploy/compose/federate.sh");
    for step in [
        "shubnet federation create",
        "shubnet federation request",
        "shubnet federation admit",
        "shubnet federation join",
    ] {
        assert!(text.contains(step), "federate.sh does not run `{step}`");
    }
}

#[test]
fn kubernetes_manifests_validate_strictly() {
    let kv = tool(
        "kubernetes-validate",
        "/var/cache/shubnet-venv/bin/kubernetes-validate",
        "pip install kubernetes-validate",
    );
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("listing deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let r = run_cmd(Command::new(&kv).arg("--strict").args(&files)).ok();
    let all = format!("{}{}", r.out(), r.stderr);
    for kind in [
        "statefulset/shubnet",
        "service/shubnet",
        "configmap/shubnet-config",
        "poddisruptionbudget/shubnet",
    ] {
        assert!(all.contains(kind), "{kind} was not validated\n{all}");
    }
    let sts = read("deploy/kubernetes/statefulset.yaml");
    for needle in [
        "/readyz",
        "/healthz",
        "volumeClaimTemplates",
        "requests:",
        "runAsNonRoot: true",
    ] {
        assert!(sts.contains(needle), "statefulset.yaml lacks {needle}");
    }
    let kustomize = read("deploy/kubernetes/kustomization.yaml");
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            kustomize.contains(name),
            "kustomization.yaml does not list {name}"
        );
    }
}

#[test]
fn systemd_unit_is_hardened() {
    let unit = read("deploy/systemd/shubnet.service");
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/shubnet",
        "NoNewPrivileges=yes",
        "ExecStart=/usr/local/bin/shubnet serve",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "unit lacks `{line}`"
        );
    }
}

#[test]
fn ci_runs_the_dockerfile_build_command() {
    let docker = read("deploy/Dockerfile");
    let build = docker
        .lines()
        .find_map(|l| l.strip_prefix("RUN cargo build"))
        .map(|rest| format!("cargo build{rest}"))
        .expect("the Dockerfile builds with `RUN cargo build …`");
    let ci = read(".ci/run");
    assert!(
        ci.contains(&build),
        ".ci/run does not run the Dockerfile's `{build}`"
    );
    assert!(
        docker.contains("USER shubnet"),
        "the image must not run as root"
    );
    assert!(
        docker.contains("HEALTHCHECK"),
        "the image needs a health check"
    );
    assert!(
        docker.contains("VOLUME [\"/data\"]"),
        "the data dir must be a volume"
    );
}
