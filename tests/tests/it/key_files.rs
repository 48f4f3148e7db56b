//! Secrets on disk (Keys): the files under `DATA_DIR/keys/` are created 0600, and a node
//! whose key file is readable by other users refuses to start, naming the file.

use shubnet_tests::TestNode;
use shubnet_tests::bin::shubnet_command;
use shubnet_tests::cmd::run_cmd_with;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// How long a refusing node may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
        .unwrap_or_else(|e| panic!("chmod {m:o} {}: {e}", p.display()));
}

#[test]
fn serve_refuses_key_files_readable_by_others() {
    let mut node = TestNode::start();
    let keys = node.data_dir().join("keys");
    let secrets = ["publisher.key", "node.key", "admin.key", "admin.token"];
    for name in secrets {
        let p = keys.join(name);
        assert_eq!(mode(&p), 0o600, "{} is not created 0600", p.display());
    }
    node.stop();

    for (name, m) in [
        ("publisher.key", 0o644),
        ("publisher.key", 0o640),
        ("publisher.key", 0o604),
        ("node.key", 0o644),
        ("admin.key", 0o644),
        ("admin.token", 0o644),
    ] {
        let p = keys.join(name);
        set_mode(&p, m);
        let mut cmd = shubnet_command(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--p2p",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
        ]);
        cmd.arg(node.data_dir());
        let api = node.api_file();
        let _ = std::fs::remove_file(&api);
        let r = run_cmd_with(&mut cmd, None, REFUSAL_TIMEOUT);
        let r = r
            .fails()
            .stderr_mentions(&p.display().to_string())
            .stderr_mentions("readable");
        assert!(
            !api.exists(),
            "a refusing node wrote {}\n{r}",
            api.display()
        );
        assert_eq!(
            mode(&p),
            m,
            "serve changed the mode of {} itself",
            p.display()
        );
        set_mode(&p, 0o600);
    }

    // Back to 0600, the same data directory starts again.
    node.restart();
    node.assert_running();
}
