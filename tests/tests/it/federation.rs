//! The federation through the real CLI and separate node processes: a two-admin,
//! threshold-2 federation admits a third member only once both admins signed; what was published
//! survives a restart and the loss of `index/` (the registry is rebuilt from `log/`).

use crate::tmpdir;
use shubnet_tests::TestNode;
use shubnet_tests::data::{assert_same_file, kubo_file};
use shubnet_tests::fed::{
    TwoMembers, create, federation_doc, join, keys, member_ids, push, request, roster_chain, show,
    tags, version,
};
use std::path::Path;

/// The admin keys in `show`, sorted.
fn admins(roster: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = roster["admins"]
        .as_array()
        .unwrap_or_else(|| panic!("no admins in {roster:#}"))
        .iter()
        .map(|k| k.as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

/// `shubnet pull REF --from URL -o OUT` run by `node`, checked, then compared with `want`.
#[track_caller]
fn pull_matches(node: &TestNode, reference: &str, from: &str, out: &Path, want: &Path) {
    let o = out.as_os_str();
    let r = node
        .cli(&[
            "pull".as_ref(),
            reference.as_ref(),
            "--from".as_ref(),
            from.as_ref(),
            "-o".as_ref(),
            o,
        ])
        .ok();
    assert!(
        out.is_file(),
        "pull exited 0 but wrote no {}\n{r}",
        out.display()
    );
    assert_same_file(out, want);
}

#[test]
fn threshold_two_admits_a_third_member_only_after_both_admins_sign() {
    let tmp = tmpdir();
    let (a, b, c) = (TestNode::start(), TestNode::start(), TestNode::start());
    let (ka, kb) = (keys(&a), keys(&b));

    // A founds the federation and admits B; then makes B a second admin with threshold 2.
    let fed = create(&a, "Fed", "lab-a");
    let r = a.cli(&["federation", "admit", &request(&b, "lab-b")]).ok();
    assert_eq!(r.out(), "roster version 2 accepted", "{r}");
    let r = a
        .cli(&[
            "federation",
            "admins",
            "--add",
            &kb.admin_key,
            "--threshold",
            "2",
        ])
        .ok();
    assert_eq!(r.out(), "roster version 3 accepted", "{r}");
    let r = join(&b, &fed, a.url());
    assert!(r.out().contains("version 3"), "join did not reach v3\n{r}");
    let mut both = vec![ka.admin_key.clone(), kb.admin_key.clone()];
    both.sort();
    for n in [&a, &b] {
        let roster = show(n);
        assert_eq!(roster["id"], fed.as_str(), "{roster:#}");
        assert_eq!(version(&roster), 3, "{roster:#}");
        assert_eq!(roster["threshold"], 2, "{roster:#}");
        assert_eq!(admins(&roster), both, "{roster:#}");
        assert_eq!(member_ids(&roster), ["lab-a", "lab-b"], "{roster:#}");
    }

    // A admits C: with threshold 2 that is only a pending version 4, to be co-signed.
    let r = a.cli(&["federation", "admit", &request(&c, "lab-c")]).ok();
    let line = r.out();
    assert!(
        line.starts_with("shubnet-roster-v1.") && !line.contains(char::is_whitespace),
        "admit with threshold 2 did not print one roster line to co-sign\n{r}"
    );
    assert!(
        r.stderr.contains("needs 2 admin signatures and has 1"),
        "admit did not explain that a signature is missing\n{r}"
    );
    for n in [&a, &b] {
        let roster = show(n);
        assert_eq!(
            version(&roster),
            3,
            "admit alone advanced the roster\n{roster:#}"
        );
        assert_eq!(member_ids(&roster), ["lab-a", "lab-b"], "{roster:#}");
    }
    let doc = federation_doc(a.url());
    assert!(
        doc["pending"].as_str().is_some_and(|p| !p.is_empty()),
        "A serves no pending version after admit\n{doc:#}"
    );
    assert_eq!(roster_chain(a.url()).len(), 3, "{doc:#}");

    // A signing its own pending version again does not make two signatures.
    let r = a.cli(&["federation", "sign", &line]).ok();
    assert_ne!(
        r.out(),
        "roster version 4 accepted",
        "one admin signed twice\n{r}"
    );
    assert_eq!(version(&show(&a)), 3, "one admin alone advanced the roster");

    // B co-signs: version 4 with C is accepted on B; A catches up from B's gateway.
    let r = b.cli(&["federation", "sign", &line]).ok();
    assert_eq!(r.out(), "roster version 4 accepted", "{r}");
    let roster_b = show(&b);
    assert_eq!(version(&roster_b), 4, "{roster_b:#}");
    assert_eq!(
        member_ids(&roster_b),
        ["lab-a", "lab-b", "lab-c"],
        "{roster_b:#}"
    );
    let r = join(&a, &fed, b.url());
    assert!(r.out().contains("version 4"), "{r}");
    let roster_a = show(&a);
    assert_eq!(roster_a, roster_b, "A and B disagree after the sync");

    // C joins and publishes; A pulls from C's gateway, verifying everything.
    join(&c, &fed, a.url());
    let roster_c = show(&c);
    assert_eq!(roster_c, roster_a, "C's roster differs from A's");
    let chain = roster_chain(a.url());
    assert_eq!(chain.len(), 4);
    assert_eq!(
        roster_chain(b.url()),
        chain,
        "B serves another chain than A"
    );
    assert_eq!(
        roster_chain(c.url()),
        chain,
        "C serves another chain than A"
    );
    let img = tmp.path().join("tool.sif");
    kubo_file(&img, "federation-tool", 700_000);
    push(&c, &img, "lab-c/tool:1", false);
    pull_matches(&a, "lab-c/tool:1", c.url(), &tmp.path().join("a.sif"), &img);
    pull_matches(&b, "lab-c/tool:1", c.url(), &tmp.path().join("b.sif"), &img);

    // Once version 4 is accepted everywhere, nobody offers it for signing any more.
    for n in [&a, &b, &c] {
        let doc = federation_doc(n.url());
        assert!(
            doc["pending"].is_null(),
            "{} still serves a pending version after version 4 was accepted\n{doc:#}",
            n.url()
        );
    }
}

#[test]
fn tags_and_roster_survive_restart_and_the_loss_of_the_index() {
    let tmp = tmpdir();
    let TwoMembers { a, mut b, id } = TwoMembers::start();
    let files: Vec<_> = [("one", 600_000), ("two", 1_000), ("three", 300_000)]
        .iter()
        .map(|(seed, len)| {
            let p = tmp.path().join(format!("{seed}.sif"));
            kubo_file(&p, &format!("persist-{seed}"), *len);
            p
        })
        .collect();
    push(&b, &files[0], "lab-b/tool:1", false);
    push(&b, &files[1], "lab-b/tool:2", true);
    push(&b, &files[2], "lab-b/gone:1", false);
    b.cli(&["delete", "lab-b/gone:1"]).ok();
    // The tag moves: seq 2 for lab-b/tool:1.
    push(&b, &files[2], "lab-b/tool:1", false);
    let tags_before = tags(&b);
    let roster_before = show(&b);
    let chain_before = roster_chain(b.url());
    assert_eq!(
        tags_before.as_array().map(Vec::len),
        Some(3),
        "{tags_before:#}"
    );

    let check = |b: &TestNode, when: &str| {
        assert_eq!(tags(b), tags_before, "tags differ {when}");
        assert_eq!(show(b), roster_before, "the roster differs {when}");
        assert_eq!(
            roster_chain(b.url()),
            chain_before,
            "the served chain differs {when}"
        );
        let out = tmp
            .path()
            .join(format!("tool1-{}.sif", when.replace(' ', "-")));
        pull_matches(&a, "lab-b/tool:1", b.url(), &out, &files[2]);
        let out = tmp
            .path()
            .join(format!("tool2-{}.sif", when.replace(' ', "-")));
        pull_matches(&a, "lab-b/tool:2", b.url(), &out, &files[1]);
        let out = tmp
            .path()
            .join(format!("gone-{}.sif", when.replace(' ', "-")));
        a.cli(&[
            "pull".as_ref(),
            "lab-b/gone:1".as_ref(),
            "--from".as_ref(),
            b.url().as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ])
        .fails()
        .stderr_mentions("was deleted");
        assert!(
            !out.exists(),
            "a deleted tag was written to {}",
            out.display()
        );
        // Frozen is remembered too.
        b.cli(&[Path::new("push"), &files[0], Path::new("lab-b/tool:2")])
            .fails()
            .stderr_mentions("frozen");
        assert_eq!(
            tags(b),
            tags_before,
            "a refused push changed the tags {when}"
        );
    };
    check(&b, "before the restart");

    let status = b.stop();
    assert!(
        status.success(),
        "SIGTERM did not stop the node cleanly: {status}"
    );
    b.restart();
    check(&b, "after a restart");

    b.stop();
    let index = b.data_dir().join("index");
    assert!(index.is_dir(), "no index at {}", index.display());
    std::fs::remove_dir_all(&index).expect("rm -rf index");
    b.restart();
    check(&b, "after the index was deleted");
    assert_eq!(show(&a)["id"], id.as_str());
}
