//! Download counts across the federation, with real nodes: each node counts the pulls
//! its gateway serves, gossips the totals that changed every `--usage-announce` seconds, and a
//! member that connects pulls a peer's totals at once through sync. Every member's image page
//! and library image object then show the same federation-wide count: exact (never a download
//! counted twice, never one lost), raised by later pulls, and kept over a restart.

use serde_json::Value;
use shubnet_tests::bin::shubnet_command;
use shubnet_tests::data::kubo_file;
use shubnet_tests::fed::{TwoMembers, push};
use shubnet_tests::http::get;
use shubnet_tests::swarm::wait_head;
use shubnet_tests::{TestNode, run_cmd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a count may take to reach every member with a 1 s announce interval (sync every
/// 2 s); generous for a loaded CI machine.
const SPREAD: Duration = Duration::from_secs(30);

/// The image's tag path parts and its bytes.
struct Image {
    collection: &'static str,
    name: &'static str,
    tag: &'static str,
    bytes: Vec<u8>,
}

impl Image {
    fn reference(&self) -> String {
        format!("{}/{}:{}", self.collection, self.name, self.tag)
    }

    /// Pushes a fresh file on `node`; returns the image and its manifest CID.
    fn push_on(node: &TestNode, dir: &Path, name: &'static str) -> (Self, String) {
        let file = dir.join(format!("{name}.sif"));
        kubo_file(&file, &format!("usage-{name}"), 300_000);
        let img = Image {
            collection: "lab-a",
            name,
            tag: "v1",
            bytes: std::fs::read(&file).expect("reading the image"),
        };
        let manifest = push(node, &file, &img.reference(), false);
        (img, manifest)
    }

    /// One pull as `apptainer pull shub://` does it: the container JSON, then its image URL.
    #[track_caller]
    fn pull_shub(&self, node: &TestNode) {
        let c = get(&node.at(&format!("/api/container/{}", self.reference())));
        c.expect_status(200);
        let v: Value = serde_json::from_slice(&c.body).expect("container JSON");
        let url = v["image"].as_str().expect("an image URL").to_owned();
        let r = get(&url);
        r.expect_status(200);
        assert!(r.body == self.bytes, "the shub download is not the image");
    }

    /// One pull as Apptainer's library client downloads: `GET /v1/imagefile/REF`.
    #[track_caller]
    fn pull_library(&self, node: &TestNode) {
        let r = get(&node.at(&format!("/v1/imagefile/{}", self.reference())));
        r.expect_status(200);
        assert!(
            r.body == self.bytes,
            "the library download is not the image"
        );
    }

    /// The downloads `node` shows: on the image page and in the library image object.
    #[track_caller]
    fn counts(&self, node: &TestNode) -> (u64, u64) {
        let page = get(&node.at(&format!(
            "/ui/images/{}/{}/{}",
            self.collection, self.name, self.tag
        )));
        page.expect_status(200);
        let html = String::from_utf8_lossy(&page.body);
        let ui = shown_downloads(&html)
            .unwrap_or_else(|| panic!("no `N downloads` on the image page:\n{html}"));
        let lib = get(&node.at(&format!("/v1/images/{}", self.reference())));
        lib.expect_status(200);
        let v: Value = serde_json::from_slice(&lib.body).expect("library JSON");
        let api = v["data"]["containerDownloads"]
            .as_u64()
            .unwrap_or_else(|| panic!("no containerDownloads in {v:#}"));
        (ui, api)
    }

    /// Waits until every node in `nodes` shows exactly `want` downloads on both surfaces.
    #[track_caller]
    fn wait_counts(&self, nodes: &[(&str, &TestNode)], want: u64) {
        let deadline = Instant::now() + SPREAD;
        loop {
            let seen: Vec<(&str, (u64, u64))> = nodes
                .iter()
                .map(|(n, node)| (*n, self.counts(node)))
                .collect();
            if seen.iter().all(|(_, c)| *c == (want, want)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "downloads (page, library) after {SPREAD:?}: {seen:?}, want {want} everywhere"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asserts the count stays exactly `want` for a few announce and sync rounds: repeated
    /// announcements and syncs must not add up.
    #[track_caller]
    fn stays(&self, nodes: &[(&str, &TestNode)], want: u64) {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            for (n, node) in nodes {
                assert_eq!(self.counts(node), (want, want), "downloads on {n}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The number in the image page's `N downloads`.
fn shown_downloads(html: &str) -> Option<u64> {
    let at = html.find(" downloads")?;
    let digits: String = html[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// The two nodes, named for messages.
fn both<'a>(a: &'a TestNode, b: &'a TestNode) -> [(&'static str, &'a TestNode); 2] {
    [("A", a), ("B", b)]
}

/// A and B in one federation, both announcing every second and syncing every 2 s; B dials A.
/// A takes the interval as a flag, B from the environment (`SHUBNET_USAGE_ANNOUNCE`).
fn announcing_pair() -> TwoMembers {
    let mut fed = TwoMembers::start();
    fed.a
        .set_serve_args(&["--sync-interval", "2", "--usage-announce", "1"], &[]);
    fed.a.restart();
    let a_addr = fed.a.p2p_addr();
    fed.b.set_serve_args(
        &["--bootstrap", &a_addr, "--sync-interval", "2"],
        &[("SHUBNET_USAGE_ANNOUNCE", "1")],
    );
    fed.b.restart();
    fed
}

#[test]
fn downloads_add_up_across_members_rise_again_and_survive_a_restart() {
    let TwoMembers { a, mut b, .. } = announcing_pair();
    let dir = tempfile::tempdir().expect("tmp");
    let (img, manifest) = Image::push_on(&a, dir.path(), "counted");
    wait_head(&b, &img.reference(), &manifest, SPREAD);
    img.wait_counts(&both(&a, &b), 0);

    // 3 pulls through A's gateway, 2 through B's (which streams A's copy on demand).
    for _ in 0..3 {
        img.pull_shub(&a);
    }
    img.pull_shub(&b);
    img.pull_library(&b);
    img.wait_counts(&both(&a, &b), 5);
    img.stays(&both(&a, &b), 5);

    // A later pull raises only B's total: the changed-totals announcement carries it.
    img.pull_library(&b);
    img.wait_counts(&both(&a, &b), 6);

    // B restarts: its own 3 are on disk, A's 3 come back (stored, and pulled again on
    // connect); A keeps one total per member, so B's re-announced 3 do not add up.
    b.restart();
    img.wait_counts(&both(&a, &b), 6);
    img.stays(&both(&a, &b), 6);
    img.pull_shub(&a);
    img.pull_shub(&b);
    img.wait_counts(&both(&a, &b), 8);
    img.stays(&both(&a, &b), 8);
}

#[test]
fn a_member_that_connects_gets_the_counts_without_waiting_for_an_announcement() {
    // A announces once an hour: only sync on connect can bring its counts to B in time.
    let mut fed = TwoMembers::start();
    fed.a.set_serve_args(&["--usage-announce", "3600"], &[]);
    fed.a.restart();
    let dir = tempfile::tempdir().expect("tmp");
    let (img, manifest) = Image::push_on(&fed.a, dir.path(), "early");
    for _ in 0..4 {
        img.pull_shub(&fed.a);
    }
    img.pull_library(&fed.a);
    assert_eq!(img.counts(&fed.a), (5, 5));

    let a_addr = fed.a.p2p_addr();
    fed.b.set_serve_args(&["--bootstrap", &a_addr], &[]);
    fed.b.restart();
    wait_head(&fed.b, &img.reference(), &manifest, SPREAD);
    img.wait_counts(&[("A", &fed.a), ("B", &fed.b)], 5);
    img.stays(&[("A", &fed.a), ("B", &fed.b)], 5);
}

/// The flag is checked like the config key (whose `config check` case is in `config.rs`).
#[test]
fn a_zero_announce_interval_is_refused_with_the_flag_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf8");
    run_cmd(&mut shubnet_command(&[
        "serve",
        "--data-dir",
        data,
        "--usage-announce",
        "0",
    ]))
    .fails()
    .stderr_mentions("--usage-announce");
}
