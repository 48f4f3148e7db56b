//! `shubnet config check` and the generated option reference, through the real binary.

use crate::tmpdir;
use shubnet_tests::bin::shubnet_command;
use shubnet_tests::run_cmd;
use std::path::Path;

#[test]
fn config_check_reports_each_error_with_its_line() {
    let tmp = tmpdir();
    let cases = [
        (
            "[replication]\ngrace_period_secs = 5\nmirrors = [\"all\"]\n",
            "line 3",
            "unknown field `mirrors`",
        ),
        (
            "[p2p]\n\nupload_limit = \"fast\"\n",
            "line 3",
            "invalid type",
        ),
        (
            "[p2p]\nlisten = [\n  \"/ip4/0.0.0.0/tcp/4001\",\n  \"/ip4/0.0.0.0/tcpp/1\",\n]\n",
            "line 4",
            "not a multiaddr",
        ),
        (
            "[p2p]\ngossip = true\nusage_announce_secs = 0\n",
            "line 3",
            "usage_announce_secs: must be at least 1",
        ),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).expect("write");
        let r = run_cmd(&mut shubnet_command(&[
            "config".as_ref(),
            "check".as_ref(),
            file.as_os_str(),
        ]))
        .fails();
        assert!(
            r.stderr.contains(line) && r.stderr.contains(what),
            "case {i}: {r}"
        );
    }
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "[replication]\nmirror = [\"all\"]\n").expect("write");
    let r = run_cmd(&mut shubnet_command(&[
        "config".as_ref(),
        "check".as_ref(),
        good.as_os_str(),
    ]))
    .ok();
    assert!(r.out().ends_with(": ok"), "{r}");
}

#[test]
fn the_reference_in_docs_is_the_one_the_code_prints() {
    let r = run_cmd(&mut shubnet_command(&["config", "reference"])).ok();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config-reference.md");
    let file = std::fs::read_to_string(&path).expect("reading docs/config-reference.md");
    assert!(
        file.trim_end() == String::from_utf8_lossy(&r.stdout).trim_end(),
        "docs/config-reference.md is stale: regenerate it with \
         `shubnet config reference > docs/config-reference.md`"
    );
    for key in ["grace_period_secs", "SHUBNET_UPLOAD_LIMIT", "--bootstrap"] {
        assert!(file.contains(key), "the reference lacks {key}");
    }
}
