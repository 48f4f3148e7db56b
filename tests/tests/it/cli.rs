//! CLI polish: shell completions, progress bars only on a terminal, `--json` on every listing
//! command, and errors that say what to do next.

use crate::tmpdir;
use serde_json::Value;
use shubnet_tests::bin::shubnet_command;
use shubnet_tests::data::kubo_file;
use shubnet_tests::fed::{create, push};
use shubnet_tests::{TestNode, run_cmd};
use std::path::Path;

/// Runs `shubnet ARGS` against `node` inside a pseudo-terminal (util-linux `script`), so the
/// binary sees a real tty on stderr. Returns everything the terminal showed.
fn on_terminal(node: &TestNode, shell_line: &str) -> String {
    let bin = shubnet_tests::bin::shubnet_bin();
    let line = format!("{} {shell_line}", bin.display());
    let r = run_cmd(
        std::process::Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("SHUBNET_NODE", node.url())
            .env("SHUBNET_DATA_DIR", node.data_dir())
            .env_remove("SHUBNET_PROGRESS"),
    )
    .ok();
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[test]
fn completion_scripts_are_generated_and_bash_parses_its_own() {
    let dir = tmpdir();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = run_cmd(&mut shubnet_command(&["completions", shell])).ok();
        let text = String::from_utf8_lossy(&r.stdout).into_owned();
        for sub in ["push", "pull", "federation", "completions"] {
            assert!(text.contains(sub), "{shell} completions lack {sub:?}\n{r}");
        }
        if shell == "bash" {
            let file = dir.path().join("shubnet.bash");
            std::fs::write(&file, &text).unwrap();
            run_cmd(std::process::Command::new("bash").arg("-n").arg(&file)).ok();
            // Sourcing it registers the completion function for `shubnet`.
            let check = format!("source {} && complete -p shubnet", file.display());
            let r = run_cmd(std::process::Command::new("bash").args(["-c", &check])).ok();
            assert!(r.out().contains("shubnet"), "{r}");
        }
    }
    run_cmd(&mut shubnet_command(&["completions", "tcsh"]))
        .fails()
        .stderr_mentions("possible values");
}

#[test]
fn progress_bars_show_on_a_terminal_and_never_in_pipes() {
    let node = TestNode::start();
    create(&node, "Fed", "lab-a");
    let dir = tmpdir();
    let file = dir.path().join("big.sif");
    kubo_file(&file, "progress", 24 << 20);

    // Piped (the test harness captures stderr): no bar, and stdout is just the answer.
    let r = node
        .cli(&[Path::new("push"), &file, Path::new("lab-a/big:piped")])
        .ok();
    assert!(
        !r.stderr.contains("pushing"),
        "a bar was drawn into a pipe\n{r}"
    );
    assert_eq!(r.out().lines().count(), 1, "{r}");

    let shown = on_terminal(&node, &format!("push {} lab-a/big:tty", file.display()));
    assert!(
        shown.contains("pushing") && shown.contains("MiB"),
        "no push bar:\n{shown}"
    );

    let out = dir.path().join("pulled.sif");
    let shown = on_terminal(&node, &format!("pull lab-a/big:tty -o {}", out.display()));
    assert!(
        shown.contains("pulling") && shown.contains("MiB"),
        "no pull bar:\n{shown}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());

    let shown = on_terminal(&node, &format!("add {}", file.display()));
    assert!(shown.contains("adding"), "no add bar:\n{shown}");
    let cid = node.add(&file);
    let car = dir.path().join("big.car");
    let shown = on_terminal(&node, &format!("car export {cid} > {}", car.display()));
    assert!(shown.contains("exporting"), "no export counter:\n{shown}");
    assert!(std::fs::metadata(&car).unwrap().len() > 24 << 20);
}

#[test]
fn every_listing_command_answers_json() {
    let node = TestNode::start();
    create(&node, "Fed", "lab-a");
    let dir = tmpdir();
    let file = dir.path().join("a.sif");
    kubo_file(&file, "json", 300_000);
    push(&node, &file, "lab-a/tool:v1", false);
    node.cli(&[
        "token",
        "create",
        "--user",
        "alice",
        "--collection",
        "lab-a",
        "--rights",
        "pull",
    ])
    .ok();
    let listings: [&[&str]; 8] = [
        &["tags", "--json"],
        &["pin", "ls", "--json"],
        &["token", "list", "--json"],
        &["collection", "list", "--json"],
        &["keys", "show", "--json"],
        &["status", "--json"],
        &["federation", "show", "--json"],
        &["inspect", "lab-a/tool:v1", "--json"],
    ];
    for args in listings {
        let r = node.cli(args).ok();
        let v: Value = serde_json::from_slice(&r.stdout)
            .unwrap_or_else(|e| panic!("{args:?} did not print JSON: {e}\n{r}"));
        assert!(
            v.is_array() || v.is_object(),
            "{args:?} printed a bare value\n{r}"
        );
    }
    let tags: Value = serde_json::from_slice(&node.cli(&["tags", "--json"]).ok().stdout).unwrap();
    assert_eq!(tags[0]["reference"], "lab-a/tool:v1");
}

#[test]
fn errors_say_what_to_do_next() {
    // No node at that address.
    run_cmd(&mut shubnet_command(&[
        "tags",
        "--node",
        "http://127.0.0.1:9",
    ]))
    .fails()
    .stderr_mentions("shubnet serve");
    let node = TestNode::start();
    create(&node, "Fed", "lab-a");
    // A wrong admin token.
    node.cli(&["pin", "ls", "--token", "not-the-token"])
        .fails()
        .stderr_mentions("--data-dir");
    // A tag that does not exist.
    node.cli(&["inspect", "lab-a/nothing:v1"])
        .fails()
        .stderr_mentions("shubnet tags");
}
