//! The deployment files stay valid: the compose federation (`docker-compose config`), the
//! Kubernetes manifests (`kubernetes-validate --strict`, as files and as `kubectl kustomize`
//! renders them: a p2p Service other sites reach, a PodDisruptionBudget a drain gets through),
//! the hardened systemd unit, the image (Dockerfile, `.dockerignore`, one image name), and the
//! Dockerfile's build command, which `.ci/run` runs too so the image's build cannot rot.
//! The containers themselves are started by `deploy/compose/ci-test.sh`, its own `.ci/run` step.

use serde_json::Value;
use shubnet_tests::cmd::run_cmd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    let dir = repo().join("deploy/kubernetes/base");
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
    let sts = read("deploy/kubernetes/base/statefulset.yaml");
    for needle in [
        "/readyz",
        "/healthz",
        "volumeClaimTemplates",
        "requests:",
        "runAsNonRoot: true",
    ] {
        assert!(sts.contains(needle), "statefulset.yaml lacks {needle}");
    }
    let kustomize = read("deploy/kubernetes/base/kustomization.yaml");
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

/// A `kubectl` whose kustomize knows components (kustomize v5): `.ci/run` installs kubectl 1.33
/// in /var/cache/shubnet-kubectl; `SHUBNET_KUBECTL` names another.
fn kubectl() -> PathBuf {
    if let Some(p) = std::env::var_os("SHUBNET_KUBECTL") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from("/var/cache/shubnet-kubectl/kubectl");
    if cached.is_file() {
        return cached;
    }
    tool(
        "kubectl",
        "/usr/bin/kubectl",
        "kubectl >= 1.27 (kustomize v5); .ci/run installs one in /var/cache/shubnet-kubectl",
    )
}

/// Every object `kubectl kustomize DIR` renders, after `kubernetes-validate --strict` passed
/// them, as JSON (through PyYAML, which kubernetes-validate's venv has).
fn render(dir: &str) -> Vec<Value> {
    let kv = tool(
        "kubernetes-validate",
        "/var/cache/shubnet-venv/bin/kubernetes-validate",
        "pip install kubernetes-validate",
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("rendered.yaml");
    let r = run_cmd(
        Command::new(kubectl())
            .arg("kustomize")
            .arg(repo().join(dir)),
    )
    .ok();
    std::fs::write(&file, &r.stdout).expect("writing the render");
    let v = run_cmd(Command::new(&kv).arg("--strict").arg(&file)).ok();
    assert!(
        !format!("{}{}", v.out(), v.stderr).contains("ERROR"),
        "{dir}: {v}"
    );
    let python = Some(kv.with_file_name("python"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"));
    let j = run_cmd(
        Command::new(python)
            .arg("-c")
            .arg(
                "import json, sys, yaml\n\
                 docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]\n\
                 print(json.dumps(docs))",
            )
            .arg(&file)
            .stdin(Stdio::null()),
    )
    .ok();
    serde_json::from_slice(&j.stdout).unwrap_or_else(|e| panic!("{dir}: rendered JSON: {e}\n{j}"))
}

fn object<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

/// Whether every `selector` label is on the pod template.
fn selects(selector: &Value, pod_labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &pod_labels[k] == v))
}

/// The p2p Service is reachable from other sites (the wanted type, TCP and UDP, published before
/// the pod is ready), and the node announces the port it is reached on.
fn check_p2p(dir: &str, objs: &[Value], want_type: &str) {
    let sts = object(objs, "StatefulSet", "shubnet");
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    let p2p: Vec<&Value> = objs
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter(|o| o["spec"]["clusterIP"] != "None")
        .filter(|o| {
            o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["targetPort"] == "p2p-tcp" || p["targetPort"] == 4001 || p["port"] == 4001
                })
        })
        .collect();
    assert_eq!(p2p.len(), 1, "{dir}: one p2p Service, not {p2p:#?}");
    let svc = p2p[0];
    let spec = &svc["spec"];
    assert_eq!(spec["type"], want_type, "{dir}: p2p Service type\n{svc:#}");
    assert_eq!(
        spec["publishNotReadyAddresses"], true,
        "{dir}: a node that is not ready (no peer) must still be dialable\n{svc:#}"
    );
    assert!(selects(&spec["selector"], pod_labels), "{dir}: {svc:#}");
    let ports = spec["ports"].as_array().expect("ports");
    let tcp = ports
        .iter()
        .find(|p| p["protocol"] == "TCP" && p["targetPort"] == "p2p-tcp")
        .unwrap_or_else(|| panic!("{dir}: no TCP p2p port\n{svc:#}"));
    assert!(
        ports
            .iter()
            .any(|p| p["protocol"] == "UDP" && p["targetPort"] == "p2p-quic"),
        "{dir}: no UDP (QUIC) p2p port\n{svc:#}"
    );
    let reached_on = if want_type == "NodePort" {
        let n = tcp["nodePort"]
            .as_u64()
            .unwrap_or_else(|| panic!("{dir}: a fixed nodePort to announce\n{svc:#}"));
        assert!((30000..=32767).contains(&n), "{dir}: nodePort {n}");
        n
    } else {
        tcp["port"].as_u64().expect("port")
    };
    let announce = object(objs, "ConfigMap", "shubnet-env")["data"]["SHUBNET_ANNOUNCE"]
        .as_str()
        .unwrap_or_else(|| panic!("{dir}: shubnet-env has no SHUBNET_ANNOUNCE"))
        .to_string();
    assert!(
        announce.starts_with("/dns4/")
            || announce.starts_with("/dns6/")
            || announce.starts_with("/dns/"),
        "{dir}: announce a DNS name, not {announce}"
    );
    assert!(
        announce.ends_with(&format!("/tcp/{reached_on}")),
        "{dir}: SHUBNET_ANNOUNCE {announce} is not the port the Service is reached on ({reached_on})"
    );
    let node = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "shubnet"))
        .unwrap_or_else(|| panic!("{dir}: no shubnet container"));
    let args: Vec<&str> = node["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--announce", "$(SHUBNET_ANNOUNCE)"]),
        "{dir}: the node must announce $(SHUBNET_ANNOUNCE): {args:?}"
    );
    let env = node["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == "SHUBNET_ANNOUNCE"))
        .unwrap_or_else(|| panic!("{dir}: no SHUBNET_ANNOUNCE env"));
    assert_eq!(
        env["valueFrom"]["configMapKeyRef"]["name"], "shubnet-env",
        "{dir}: {env:#}"
    );
}

/// The PodDisruptionBudget selects the node's pod and lets a drain evict it.
fn check_pdb(dir: &str, objs: &[Value]) {
    let sts = object(objs, "StatefulSet", "shubnet");
    let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
    let pdb = object(objs, "PodDisruptionBudget", "shubnet");
    assert!(
        selects(
            &pdb["spec"]["selector"]["matchLabels"],
            &sts["spec"]["template"]["metadata"]["labels"]
        ),
        "{dir}: the PDB does not select the pod\n{pdb:#}"
    );
    let spec = &pdb["spec"];
    let allowed = if let Some(n) = spec["maxUnavailable"].as_i64() {
        n
    } else if let Some(n) = spec["minAvailable"].as_i64() {
        replicas - n
    } else {
        panic!("{dir}: give the PDB an integer maxUnavailable or minAvailable\n{pdb:#}")
    };
    assert!(
        allowed >= 1,
        "{dir}: with {replicas} replica(s) the PDB allows {allowed} disruptions: a drain would block\n{pdb:#}"
    );
}

#[test]
fn kustomize_renders_valid_reachable_p2p_and_a_drainable_pdb() {
    for (dir, p2p_type) in [
        ("deploy/kubernetes", "LoadBalancer"),
        ("deploy/kubernetes/overlays/nodeport", "NodePort"),
        ("deploy/kubernetes/overlays/cert-manager", "LoadBalancer"),
        ("deploy/kubernetes/overlays/tls-secret", "NodePort"),
    ] {
        let objs = render(dir);
        check_p2p(dir, &objs, p2p_type);
        check_pdb(dir, &objs);
        let images: Vec<&Value> = objs
            .iter()
            .filter(|o| o["kind"] == "StatefulSet")
            .flat_map(|o| {
                let spec = &o["spec"]["template"]["spec"];
                let main = spec["containers"].as_array().into_iter().flatten();
                main.chain(spec["initContainers"].as_array().into_iter().flatten())
                    .map(|c| &c["image"])
            })
            .collect();
        assert!(images.len() >= 2, "{dir}: {images:?}");
        let want = if dir.ends_with("cert-manager") {
            "registry.shubnet.example/shubnet:0.1.0"
        } else {
            "shubnet:local"
        };
        assert!(images.iter().all(|i| *i == want), "{dir}: {images:?}");
    }
    let tls = render("deploy/kubernetes/overlays/cert-manager");
    let ingress = object(&tls, "Ingress", "shubnet");
    assert!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].is_string(),
        "{ingress:#}"
    );
}

#[test]
fn image_build_and_name_follow_one_convention() {
    let docker = read("deploy/Dockerfile");
    for needle in [
        // Official bases by default; any other through the build args.
        "ARG BUILD_IMAGE=rust:1.95-bookworm",
        "ARG RUNTIME_IMAGE=debian:bookworm-slim",
        "FROM ${RUNTIME_IMAGE} AS base",
        "FROM ${BUILD_IMAGE} AS build",
        // uid:gid 10001:10001, created without warnings, and the volumes' directories.
        "groupadd --gid 10001 shubnet",
        "useradd --no-log-init --uid 10001 --gid 10001",
        "install -d -o 10001 -g 10001 -m 0700 /data",
        "/exchange",
        // Stripped, with the debug info kept apart.
        "--only-keep-debug",
        "--strip-debug",
        "AS debug-symbols",
    ] {
        assert!(
            docker.contains(needle),
            "deploy/Dockerfile lacks `{needle}`"
        );
    }
    let froms: Vec<&str> = docker.lines().filter(|l| l.starts_with("FROM ")).collect();
    let at = |stage: &str| {
        froms
            .iter()
            .position(|l| l.ends_with(&format!(" AS {stage}")))
            .unwrap_or_else(|| panic!("no stage {stage}: {froms:?}"))
    };
    // The legacy builder builds every stage up to --target: the prebuilt target must come
    // before the Rust stage; the default target (the last stage) builds from source.
    assert!(at("runtime-prebuilt") < at("build"), "{froms:?}");
    assert_eq!(at("runtime"), froms.len() - 1, "{froms:?}");

    let ignore = read(".dockerignore");
    for line in ["target/", ".git/", "**/node_modules/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == line),
            ".dockerignore lacks {line}"
        );
    }

    // One image name: shubnet:local in compose, Kubernetes, the Dockerfile's usage and the docs.
    assert!(
        read("deploy/compose/docker-compose.yml")
            .contains("image: ${SHUBNET_IMAGE:-shubnet:local}")
    );
    let kustomize = read("deploy/kubernetes/base/kustomization.yaml");
    assert!(
        kustomize.contains("newName: shubnet") && kustomize.contains("newTag: local"),
        "{kustomize}"
    );
    for doc in [
        "README.md",
        "deploy/README.md",
        "docs/operator-guide.md",
        "deploy/Dockerfile",
        "deploy/compose/ci-test.sh",
    ] {
        let text = read(doc);
        for (i, _) in text.match_indices("-t shubnet") {
            let rest = &text[i + "-t shubnet".len()..];
            assert!(
                rest.starts_with(":local"),
                "{doc}: an image tagged other than shubnet:local: {}",
                &text[i..(i + 40).min(text.len())]
            );
        }
    }
    let guide = read("docs/operator-guide.md");
    for both in ["docker compose -f", "docker-compose -f"] {
        assert!(
            guide.contains(both),
            "the operator guide does not show `{both}`"
        );
    }
}

#[test]
fn compose_script_traps_signals_first_and_announces_a_name() {
    let text = read("deploy/compose/federate.sh");
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a line of logic");
    assert!(
        first.starts_with("trap ") && first.contains("TERM"),
        "federate.sh must trap TERM on its first line of logic, not `{first}`"
    );
    assert!(
        text.contains("--announce"),
        "federate.sh announces no address"
    );
    assert!(text.contains("/dns4/$INSTITUTION/tcp/4001"));
    let ci = read(".ci/run");
    assert!(
        ci.contains("deploy/compose/ci-test.sh") && ci.contains("SHUBNET_SKIP_CONTAINER_TEST"),
        ".ci/run must run the container test (skippable only by SHUBNET_SKIP_CONTAINER_TEST)"
    );
}
