//! Attacks, through the real CLI and a malicious gateway ([`Mitm`]): each one is
//! refused with a non-zero exit and an error naming the rule, and nothing of it is stored, served
//! or written.
//!
//! The malicious gateway forwards every request to a real member's node and rewrites only what
//! the attack needs. Each attack first pulls through a transparent gateway, so a refusal is due
//! to the tampering, not to the proxy.

use crate::{holdings, tmpdir};
use shubnet_tests::data::{assert_same_file, kubo_bytes, kubo_file};
use shubnet_tests::fed::{TwoMembers, create, push, request, roster_chain, show, tags, version};
use shubnet_tests::http::{Response, get};
use shubnet_tests::mitm::{Mitm, b64url_encode};
use shubnet_tests::{Run, TestNode};
use std::path::{Path, PathBuf};

/// Size of the image the attacks are about: three 256 KiB leaves and a dag-pb root.
const IMAGE_LEN: u64 = 700_000;

/// `shubnet pull REF --from FROM [--federation ID] -o OUT`, run by `node`.
fn pull(node: &TestNode, reference: &str, from: &str, federation: Option<&str>, out: &Path) -> Run {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "pull".as_ref(),
        reference.as_ref(),
        "--from".as_ref(),
        from.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    if let Some(f) = federation {
        args.push("--federation".as_ref());
        args.push(f.as_ref());
    }
    node.cli(&args)
}

/// Names of the entries of `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A fresh, empty directory for one pull's output.
fn out_dir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// Panics unless `r` failed cleanly, its stderr mentions every needle, and `dir` (where the
/// output would have gone) is still empty: no output file, no temporary file.
#[track_caller]
fn refused(r: Run, needles: &[&str], dir: &Path) {
    let mut r = r.fails();
    for n in needles {
        r = r.stderr_mentions(n);
    }
    let left = entries(dir);
    assert!(
        left.is_empty(),
        "a refused pull left {left:?} in {}\n{r}",
        dir.display()
    );
}

/// Every manifest and roster file under `DATA_DIR/log`.
fn log_files(node: &TestNode) -> Vec<String> {
    node.files_under("log")
}

/// The raw signed manifest a gateway serves for `collection/name:tag`.
#[track_caller]
fn manifest_bytes(base: &str, collection: &str, name: &str, tag: &str) -> Vec<u8> {
    let r = get(&format!(
        "{base}/shubnet/v1/manifests/{collection}/{name}/{tag}"
    ));
    r.expect_status(200);
    r.body
}

/// The one entry of `tags --json` for `reference`.
#[track_caller]
fn tag_entry(node: &TestNode, reference: &str) -> serde_json::Value {
    let all = tags(node);
    all.as_array()
        .and_then(|a| a.iter().find(|t| t["reference"] == reference).cloned())
        .unwrap_or_else(|| panic!("{reference} is not in the tags\n{all:#}"))
}

/// The position of `needle` in `hay`; panics if absent.
#[track_caller]
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{} bytes not found", needle.len()))
}

/// A copy of `data` with bit 0 of byte `at` flipped.
fn flipped(data: &[u8], at: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    v[at] ^= 1;
    v
}

/// A gateway in front of `upstream` that answers every path starting with `prefix` with
/// `body` (status 200), and forwards everything else unchanged.
fn replacing(upstream: &str, prefix: &'static str, body: Vec<u8>) -> Mitm {
    Mitm::start(upstream, move |path, resp: &mut Response| {
        if path.starts_with(prefix) {
            resp.status = 200;
            resp.body = body.clone();
        }
    })
}

/// A gateway whose `GET /shubnet/v1/federation` serves `chain` (signed roster encodings).
fn serving_chain(upstream: &str, chain: Chain) -> Mitm {
    Mitm::start(upstream, move |path, resp: &mut Response| {
        if path.starts_with("/shubnet/v1/federation") {
            let mut v: serde_json::Value =
                serde_json::from_slice(&resp.body).expect("the node's federation JSON");
            v["rosters"] = chain
                .iter()
                .map(|r| serde_json::Value::String(b64url_encode(r)))
                .collect();
            resp.body = serde_json::to_vec(&v).expect("JSON");
        }
    })
}

/// Signed roster encodings, oldest first.
type Chain = Vec<Vec<u8>>;

/// Length of one `[key(32), signature(64)]` pair in a signed roster's `sigs`.
const SIG_ENTRY: usize = 1 + 2 + 32 + 2 + 64;

/// `signed` with its last signature removed. A signed roster is the DAG-CBOR map
/// `{"body": …, "sigs": [[key, sig], …]}`, so `sigs` is the tail: the text key, the array
/// header, then fixed-size pairs.
#[track_caller]
fn drop_last_signature(signed: &[u8]) -> Vec<u8> {
    for n in 1..=23usize {
        let Some(header) = signed.len().checked_sub(1 + n * SIG_ENTRY) else {
            break;
        };
        if signed[header] == 0x80 | n as u8
            && header >= 5
            && &signed[header - 5..header] == b"\x64sigs"
        {
            let mut v = signed[..signed.len() - SIG_ENTRY].to_vec();
            v[header] -= 1;
            return v;
        }
    }
    panic!(
        "no `sigs` array at the end of a {}-byte roster",
        signed.len()
    );
}

/// A federation `lab-a` + `lab-b` whose roster went to version 3 (A made B a second admin with
/// threshold 2), and an image `lab-b/tool:1` published by B.
struct Published {
    fed: TwoMembers,
    image: PathBuf,
    tmp: tempfile::TempDir,
}

impl Published {
    fn start() -> Self {
        let tmp = tmpdir();
        let fed = TwoMembers::start();
        let kb = shubnet_tests::fed::keys(&fed.b);
        let r = fed
            .a
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
        shubnet_tests::fed::join(&fed.b, &fed.id, fed.a.url());
        assert_eq!(version(&show(&fed.b)), 3);
        let image = tmp.path().join("tool.sif");
        kubo_file(&image, "attack-tool", IMAGE_LEN);
        push(&fed.b, &image, "lab-b/tool:1", false);
        // Through a gateway that changes nothing, the pull works: the proxy is transparent.
        let mitm = Mitm::transparent(fed.b.url());
        let dir = out_dir(tmp.path(), "control");
        let out = dir.join("tool.sif");
        pull(&fed.a, "lab-b/tool:1", mitm.url(), Some(&fed.id), &out).ok();
        assert_same_file(&out, &image);
        for p in ["/shubnet/v1/federation", "/shubnet/v1/manifests/", "/ipfs/"] {
            assert!(
                mitm.was_asked(p),
                "pull never asked for {p}: {:?}",
                mitm.requests()
            );
        }
        Self { fed, image, tmp }
    }
}

#[test]
fn content_that_does_not_match_the_manifest_is_never_written() {
    let p = Published::start();
    let (a, b) = (&p.fed.a, &p.fed.b);
    let real = std::fs::read(&p.image).expect("image");
    let mut other_same_len = kubo_bytes("attack-other", IMAGE_LEN);
    other_same_len[0] = real[0];
    let mut longer = real.clone();
    longer.push(0);
    let variants: [(&str, Vec<u8>, &[&str]); 5] = [
        (
            "one-byte-flipped",
            flipped(&real, 300_000),
            &["content rejected", "sha256"],
        ),
        (
            "last-byte-flipped",
            flipped(&real, real.len() - 1),
            &["content rejected", "sha256"],
        ),
        (
            "truncated",
            real[..real.len() - 1000].to_vec(),
            &["content rejected", "sha256"],
        ),
        (
            "same-length-other-bytes",
            other_same_len,
            &["content rejected", "sha256"],
        ),
        (
            "one-byte-too-many",
            longer,
            &["content rejected", "more than"],
        ),
    ];
    for (name, body, needles) in variants {
        let mitm = replacing(b.url(), "/ipfs/", body);
        let dir = out_dir(p.tmp.path(), name);
        let r = pull(
            a,
            "lab-b/tool:1",
            mitm.url(),
            Some(&p.fed.id),
            &dir.join("tool.sif"),
        );
        assert!(
            mitm.was_asked("/ipfs/"),
            "{name}: the content was never fetched\n{r}"
        );
        refused(r, needles, &dir);
    }
}

#[test]
fn tampered_or_substituted_manifests_are_rejected_before_any_content() {
    let p = Published::start();
    let (a, b) = (&p.fed.a, &p.fed.b);
    let real = manifest_bytes(b.url(), "lab-b", "tool", "1");
    let sha = hex::decode(
        tag_entry(b, "lab-b/tool:1")["sha256"]
            .as_str()
            .expect("sha256 in tags"),
    )
    .expect("hex");
    // A validly signed manifest, but for another tag.
    let other = p.tmp.path().join("other.sif");
    kubo_file(&other, "attack-other-tag", 5_000);
    push(b, &other, "lab-b/other:1", false);
    let other_tag = manifest_bytes(b.url(), "lab-b", "other", "1");
    // A validly signed manifest for the same tag and content, from another federation whose
    // `lab-b` is an impostor.
    let evil = TestNode::start();
    create(&evil, "Evil", "lab-b");
    push(&evil, &p.image, "lab-b/tool:1", false);
    let impostor = manifest_bytes(evil.url(), "lab-b", "tool", "1");

    let variants: [(&str, Vec<u8>, &[&str]); 5] = [
        (
            "sha256-field-flipped",
            flipped(&real, find(&real, &sha) + 7),
            &["manifest rejected", "signature does not verify"],
        ),
        (
            "signature-flipped",
            flipped(&real, real.len() - 1),
            &["manifest rejected"],
        ),
        (
            "truncated",
            real[..real.len() - 10].to_vec(),
            &["manifest rejected"],
        ),
        (
            "another-tag",
            other_tag,
            &["manifest rejected", "lab-b/other:1"],
        ),
        (
            "another-federation",
            impostor,
            &["manifest rejected", "federation"],
        ),
    ];
    for (name, body, needles) in variants {
        let mitm = replacing(b.url(), "/shubnet/v1/manifests/", body);
        let dir = out_dir(p.tmp.path(), name);
        let r = pull(
            a,
            "lab-b/tool:1",
            mitm.url(),
            Some(&p.fed.id),
            &dir.join("tool.sif"),
        );
        assert!(
            mitm.was_asked("/shubnet/v1/manifests/"),
            "{name}: the manifest was never fetched\n{r}"
        );
        assert!(
            !mitm.was_asked("/ipfs/"),
            "{name}: content was fetched for a rejected manifest\n{r}"
        );
        refused(r, needles, &dir);
    }
}

#[test]
fn forged_roster_chains_are_rejected_by_pull_and_join() {
    let p = Published::start();
    let (a, b) = (&p.fed.a, &p.fed.b);
    let chain = roster_chain(b.url());
    assert_eq!(chain.len(), 3);
    let last = chain.len() - 1;
    let evil = TestNode::start();
    create(&evil, "Evil", "lab-b");
    let evil_chain = roster_chain(evil.url());

    let with_last = |r: Vec<u8>| {
        let mut c = chain.clone();
        c[last] = r;
        c
    };
    let wrong_fed: [&str; 2] = ["roster chain rejected", &p.fed.id];
    let variants: Vec<(&str, Chain, &[&str])> = vec![
        (
            "last-signature-flipped",
            with_last(flipped(&chain[last], chain[last].len() - 1)),
            &["roster chain rejected", "does not verify"],
        ),
        (
            "signature-dropped",
            with_last(drop_last_signature(&chain[last])),
            &["roster chain rejected", "0 admin signatures, 1 needed"],
        ),
        (
            "body-byte-flipped",
            with_last(flipped(&chain[last], chain[last].len() / 2)),
            &["roster"],
        ),
        (
            "version-skipped",
            vec![chain[0].clone(), chain[2].clone()],
            &["roster chain rejected", "expected roster version 2, got 3"],
        ),
        (
            "version-replayed",
            [chain.clone(), vec![chain[last].clone()]].concat(),
            &[
                "roster chain rejected",
                "roster version 3 is not newer than the current version 3",
            ],
        ),
        (
            "genesis-flipped",
            {
                let mut c = chain.clone();
                c[0] = flipped(&c[0], c[0].len() - 1);
                c
            },
            &["roster chain rejected"],
        ),
        ("another-federation", evil_chain, &wrong_fed),
        ("empty", Vec::new(), &["roster chain rejected"]),
    ];

    // A node that trusts no federation yet, joining through the malicious gateway.
    let newcomer = TestNode::start();
    let a_roster = show(a);
    let a_log = log_files(a);
    for (name, forged, needles) in variants {
        let mitm = serving_chain(b.url(), forged);
        let dir = out_dir(p.tmp.path(), name);
        let r = pull(
            a,
            "lab-b/tool:1",
            mitm.url(),
            Some(&p.fed.id),
            &dir.join("tool.sif"),
        );
        assert!(!mitm.was_asked("/ipfs/"), "{name}: content fetched\n{r}");
        refused(r, needles, &dir);

        let r = newcomer.cli(&["federation", "join", &p.fed.id, "--from", mitm.url()]);
        let r = r.fails().stderr_mentions("roster");
        newcomer
            .cli(&["federation", "show"])
            .fails()
            .stderr_mentions("not in a federation");
        assert!(
            log_files(&newcomer).is_empty(),
            "{name}: a refused join left {:?} in log/\n{r}",
            log_files(&newcomer)
        );

        // A member syncing through it keeps what it has.
        a.cli(&["federation", "join", &p.fed.id, "--from", mitm.url()])
            .fails()
            .stderr_mentions("roster");
        assert_eq!(
            show(a),
            a_roster,
            "{name}: a refused sync changed A's roster"
        );
        assert_eq!(
            log_files(a),
            a_log,
            "{name}: a refused sync wrote to A's log/"
        );
    }
}

#[test]
fn a_member_does_not_roll_back_to_an_older_roster() {
    let p = Published::start();
    let (a, b) = (&p.fed.a, &p.fed.b);
    let chain = roster_chain(b.url());
    let before = show(a);
    assert_eq!(version(&before), 3);
    let mitm = serving_chain(b.url(), chain[..2].to_vec());
    let r = a.cli(&["federation", "join", &p.fed.id, "--from", mitm.url()]);
    // Refusing, or answering that there is nothing newer, are both fine; rolling back is not.
    assert_eq!(
        show(a),
        before,
        "A went back to an older roster after syncing from a gateway serving v1..v2\n{r}"
    );
    assert_eq!(roster_chain(a.url()).len(), 3, "{r}");
}

#[test]
fn pull_against_another_federation_id_fails() {
    let p = Published::start();
    let (a, b) = (&p.fed.a, &p.fed.b);
    let evil = TestNode::start();
    let evil_id = create(&evil, "Evil", "lab-b");
    // A well-formed id of another federation, and B's own id with its last character changed.
    let mut near = p.fed.id.clone();
    let last = near.pop().expect("id");
    near.push(if last == 'a' { 'b' } else { 'a' });
    for (name, id) in [("another", evil_id.as_str()), ("near", near.as_str())] {
        let dir = out_dir(p.tmp.path(), name);
        let r = pull(a, "lab-b/tool:1", b.url(), Some(id), &dir.join("tool.sif"));
        refused(r, &["roster chain rejected", id], &dir);
    }
}

#[test]
fn publishing_outside_ones_namespace_is_refused_and_stores_nothing() {
    let tmp = tmpdir();
    let TwoMembers { a, b, id } = TwoMembers::start();
    // A node that trusts the federation but was never admitted.
    let outsider = TestNode::start();
    shubnet_tests::fed::join(&outsider, &id, a.url());
    // A small image (its upload fits in socket buffers) and a realistic one (it does not). The
    // large one is pushed several times: whether its refusal reaches the client has depended
    // on timing.
    let small = tmp.path().join("small.sif");
    kubo_file(&small, "namespace-small", 1_000);
    let large = tmp.path().join("large.sif");
    kubo_file(&large, "namespace-large", 16 << 20);
    let cases: [(&TestNode, &str, &str); 3] = [
        (&b, "lab-a/tool:1", "may not publish to collection lab-a"),
        (&b, "other/tool:1", "may not publish to collection other"),
        (
            &outsider,
            "lab-a/tool:1",
            "belongs to no member of the roster",
        ),
    ];
    for (node, reference, rule) in cases {
        for file in [&small, &large, &large, &large, &large] {
            let before = (tags(node), holdings(node), log_files(node));
            node.cli(&[Path::new("push"), file, Path::new(reference)])
                .fails()
                .stderr_mentions("manifest rejected")
                .stderr_mentions(rule);
            assert_eq!(
                (tags(node), holdings(node), log_files(node)),
                before,
                "a refused push of {} to {reference} changed the node",
                file.display()
            );
        }
    }
    assert_eq!(
        tags(&a),
        serde_json::json!([]),
        "A holds tags nobody may publish"
    );
}

#[test]
fn a_frozen_tag_cannot_move_or_be_deleted() {
    let tmp = tmpdir();
    let TwoMembers { a, b, .. } = TwoMembers::start();
    let frozen = tmp.path().join("frozen.sif");
    kubo_file(&frozen, "frozen-v1", IMAGE_LEN);
    let newer = tmp.path().join("newer.sif");
    kubo_file(&newer, "frozen-v2", IMAGE_LEN);
    let newer_cid = crate::shubnet_cid(&newer, None);
    push(&b, &frozen, "lab-b/tool:1", true);
    let entry = tag_entry(&b, "lab-b/tool:1");
    assert_eq!(entry["frozen"], true, "{entry:#}");
    let before = (tags(&b), holdings(&b), log_files(&b));

    b.cli(&[Path::new("push"), &newer, Path::new("lab-b/tool:1")])
        .fails()
        .stderr_mentions("frozen");
    b.cli(&[
        Path::new("push"),
        &newer,
        Path::new("lab-b/tool:1"),
        Path::new("--freeze"),
    ])
    .fails()
    .stderr_mentions("frozen");
    b.cli(&["delete", "lab-b/tool:1"])
        .fails()
        .stderr_mentions("frozen");
    let after = (tags(&b), holdings(&b), log_files(&b));
    assert_eq!(after.0, before.0, "a refused move changed the tags");
    assert_eq!(after.2, before.2, "a refused move wrote to log/");
    assert_eq!(
        after.1, before.1,
        "a push refused because the tag is frozen left its content stored"
    );
    get(&b.at(&format!("/ipfs/{newer_cid}"))).expect_status(404);

    let out = tmp.path().join("pulled.sif");
    pull(&a, "lab-b/tool:1", b.url(), None, &out).ok();
    assert_same_file(&out, &frozen);
}

/// Replay towards a client: after the tag moved on, a gateway answers with the tag's older,
/// validly signed manifest (and its content, which the node still holds). The federation requires that a
/// pull give exactly what was last published under the tag, even from a compromised member's
/// gateway.
#[test]
fn pull_refuses_a_replayed_older_manifest() {
    let p = Published::start();
    let b = &p.fed.b;
    let old = manifest_bytes(b.url(), "lab-b", "tool", "1");
    let newer = p.tmp.path().join("newer.sif");
    kubo_file(&newer, "attack-tool-v2", 2_000);
    push(b, &newer, "lab-b/tool:1", false);
    assert_eq!(tag_entry(b, "lab-b/tool:1")["seq"], 2);
    let mitm = replacing(b.url(), "/shubnet/v1/manifests/", old);
    let dir = out_dir(p.tmp.path(), "replay");
    let r = pull(
        b,
        "lab-b/tool:1",
        mitm.url(),
        Some(&p.fed.id),
        &dir.join("tool.sif"),
    );
    refused(r, &["manifest rejected"], &dir);
}

#[test]
fn a_join_request_is_bound_to_its_keys() {
    // Admitting a request whose line was altered in transit (another institution id) fails.
    let TwoMembers { a, .. } = TwoMembers::start();
    let c = TestNode::start();
    let line = request(&c, "lab-c");
    let before = show(&a);
    let (prefix, payload) = line.split_once('.').expect("a dot in the line");
    let mut bytes = shubnet_tests::mitm::b64url_decode(payload);
    let at = find(&bytes, b"lab-c");
    bytes[at + 4] = b'x'; // lab-c → lab-x
    let forged = format!("{prefix}.{}", b64url_encode(&bytes));
    let r = a
        .cli(&["federation", "admit", &forged])
        .fails()
        .stderr_mentions("does not verify");
    assert_eq!(
        show(&a),
        before,
        "a forged join request changed the roster\n{r}"
    );
}
