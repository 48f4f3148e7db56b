//! `shubnet serve --tls-cert FILE --tls-key FILE --https ADDR`: the gateway over HTTPS with a
//! self-signed certificate made by the openssl CLI in the test; shub manifests then carry
//! `https://` image URLs, and the image downloads over TLS with its exact bytes (curl, trusting
//! only that certificate). A bad key fails the start with a clear message.

use shubnet_tests::bin::shubnet_command;
use shubnet_tests::cmd::{poll_until, run_cmd};
use shubnet_tests::data::kubo_bytes;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `shubnet serve` with TLS, killed on drop.
struct TlsNode {
    child: Child,
    data: PathBuf,
    http: String,
    https: String,
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_args(data: &Path, cert: &Path, key: &Path) -> Command {
    let mut cmd = shubnet_command(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--p2p",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    cmd
}

fn start(dir: &Path, cert: &Path, key: &Path) -> TlsNode {
    let data = dir.join("data");
    let child = serve_args(&data, cert, key)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("serve.out")).expect("log"))
        .stderr(std::fs::File::create(dir.join("serve.err")).expect("log"))
        .spawn()
        .expect("spawn shubnet serve");
    let read = |name: &str| {
        std::fs::read_to_string(data.join(name))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let (http, https) = poll_until(Duration::from_secs(60), "api.url and https.url", || {
        Some((read("api.url")?, read("https.url")?))
    });
    TlsNode {
        child,
        data,
        http,
        https,
    }
}

fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let r = run_cmd(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    assert!(
        r.status.success(),
        "openssl could not make a certificate\n{r}"
    );
    (cert, key)
}

/// `curl --cacert CERT URL` → (status, body).
fn curl(cert: &Path, url: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--cacert"])
        .arg(cert)
        .args(["-w", "%{http_code}", "-o", "-"])
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let code = body.split_off(body.len().saturating_sub(3));
    (String::from_utf8_lossy(&code).parse().unwrap_or(0), body)
}

#[test]
fn tls_serves_the_shub_flow_over_https() {
    let tmp = crate::tmpdir();
    let (cert, key) = self_signed(tmp.path());
    let node = start(tmp.path(), &cert, &key);
    assert!(
        node.https.starts_with("https://127.0.0.1:"),
        "{}",
        node.https
    );
    let cli = |args: &[&str]| {
        let mut c = shubnet_command(args);
        c.env("SHUBNET_NODE", &node.http)
            .env("SHUBNET_DATA_DIR", &node.data);
        run_cmd(&mut c).ok()
    };
    cli(&[
        "federation",
        "create",
        "--name",
        "Fed",
        "--institution",
        "lab-a",
    ]);
    let bytes = kubo_bytes("tls", 800_000);
    let file = tmp.path().join("image.sif");
    std::fs::write(&file, &bytes).expect("write");
    cli(&["push", file.to_str().expect("utf8"), "lab-a/tls:v1"]);

    let (code, body) = curl(&cert, &format!("{}/api/container/lab-a/tls:v1", node.https));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let m: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let image = m["image"].as_str().expect("image");
    assert!(
        image.starts_with(&format!("{}/containers/", node.https)),
        "{image}"
    );
    let (code, got) = curl(&cert, image);
    assert_eq!(code, 200);
    assert!(got == bytes, "the image differs over TLS");

    // Plain HTTP on the TLS port is refused; the certificate is not trusted by default.
    let port = node.https.trim_start_matches("https://");
    let plain = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{port}/version"))
        .output()
        .expect("curl");
    assert!(!plain.status.success() || plain.stdout.is_empty());
    let untrusted = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("{}/version", node.https))
        .output()
        .expect("curl");
    assert!(
        !untrusted.status.success(),
        "curl trusted a self-signed certificate"
    );
}

#[test]
fn tls_bad_key_fails_the_start() {
    let tmp = crate::tmpdir();
    let (cert, _) = self_signed(tmp.path());
    let bad = tmp.path().join("bad.pem");
    std::fs::write(&bad, "not a key").expect("write");
    let mut cmd = serve_args(&tmp.path().join("data"), &cert, &bad);
    let r = shubnet_tests::cmd::run_cmd_with(&mut cmd, None, Duration::from_secs(60));
    assert!(!r.status.success(), "serve started with a bad key\n{r}");
    assert!(
        r.stderr.contains("tls-key") || r.stderr.contains("bad.pem"),
        "{r}"
    );
}
