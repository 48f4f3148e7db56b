//! The operator guide and its end-to-end script stay one: `deploy/e2e.sh` must hold, between
//! its "guide" markers, exactly the guide's ```` ```sh e2e INSTITUTION ```` blocks (each after
//! `at INSTITUTION`), and the script must run: three institutions as separate processes on
//! 127.0.0.1 doing create, request, admit, join, push, pull from another member, backup and
//! restore, and leave. `SHUBNET_BLESS=1` rewrites the script's generated part from the guide.

use shubnet_tests::bin::{shubnet_bin, workspace_root};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BEGIN: &str = "# >>> guide: generated from docs/operator-guide.md; do not edit by hand\n";
const END: &str = "# <<< guide\n";

/// The script text the guide's marked blocks make, in order.
fn generated(guide: &str) -> String {
    let mut out = String::new();
    let mut block: Option<String> = None;
    for line in guide.lines() {
        match &mut block {
            None => {
                if let Some(who) = line.strip_prefix("```sh e2e ") {
                    out.push_str(&format!("at {}\n", who.trim()));
                    block = Some(String::new());
                }
            }
            Some(b) => {
                if line.trim_end() == "```" {
                    out.push_str(b);
                    out.push('\n');
                    block = None;
                } else {
                    b.push_str(line);
                    b.push('\n');
                }
            }
        }
    }
    assert!(block.is_none(), "an e2e block in the guide is not closed");
    out
}

/// The script's text between the markers, and the text around it.
fn split(script: &str) -> (&str, &str, &str) {
    let b = script
        .find(BEGIN)
        .expect("deploy/e2e.sh lacks the begin marker")
        + BEGIN.len();
    let e = script
        .find(END)
        .expect("deploy/e2e.sh lacks the end marker");
    assert!(b <= e, "markers out of order in deploy/e2e.sh");
    (&script[..b], &script[b..e], &script[e..])
}

#[test]
fn the_script_runs_the_guides_blocks_word_for_word() {
    let root = workspace_root();
    let guide = std::fs::read_to_string(root.join("docs/operator-guide.md")).expect("the guide");
    let path = root.join("deploy/e2e.sh");
    let script = std::fs::read_to_string(&path).expect("deploy/e2e.sh");
    let want = generated(&guide);
    for step in [
        "federation create",
        "federation request",
        "federation admit",
        "federation join",
        "shubnet push",
        "shubnet pull",
        "shubnet backup",
        "shubnet restore",
        "shubnet leave",
    ] {
        assert!(
            want.contains(step),
            "the guide's e2e blocks have no `{step}`"
        );
    }
    let (head, have, tail) = split(&script);
    if have != want {
        if std::env::var_os("SHUBNET_BLESS").is_some() {
            std::fs::write(&path, format!("{head}{want}{tail}")).expect("rewriting deploy/e2e.sh");
            return;
        }
        panic!(
            "deploy/e2e.sh no longer holds the guide's e2e blocks; rerun this test with \
             SHUBNET_BLESS=1 to regenerate it.\n--- guide ---\n{want}\n--- script ---\n{have}"
        );
    }
}

#[test]
fn the_e2e_script_brings_up_three_institutions_and_passes() {
    let root = workspace_root();
    let work = crate::tmpdir();
    let bin_dir = shubnet_bin()
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out_file = work.path().join("e2e.out");
    let err_file = work.path().join("e2e.err");
    let mut child = Command::new("bash")
        .arg(root.join("deploy/e2e.sh"))
        .env("PATH", path)
        .env("WORK", work.path().join("run"))
        .env_remove("SHUBNET_DATA_DIR")
        .env_remove("SHUBNET_NODE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).expect("stdout file"))
        .stderr(std::fs::File::create(&err_file).expect("stderr file"))
        .process_group(0)
        .spawn()
        .expect("running bash deploy/e2e.sh");
    let t = Instant::now();
    let limit = Duration::from_secs(240);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the script") {
            break Some(s);
        }
        if t.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever happened, no node of the script outlives the test.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let out = std::fs::read_to_string(&out_file).unwrap_or_default();
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    match status {
        Some(s) if s.success() && out.trim_end().ends_with("e2e: ok") => {
            eprintln!("deploy/e2e.sh passed in {:?}", t.elapsed());
        }
        Some(s) => {
            panic!("deploy/e2e.sh failed ({s})\n--- stdout ---\n{out}\n--- stderr ---\n{err}")
        }
        None => panic!(
            "deploy/e2e.sh did not finish within {limit:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        ),
    }
}
