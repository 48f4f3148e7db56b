//! Federation acceptance of the client APIs: images pushed on node A are pulled from
//! node B, which did not hold them before the request, with every client of the acceptance
//! list: the `sregistry` client (public; private refused on B, which does not own it), Apptainer's
//! library client (public, and private with a federation token A issued), Apptainer's library
//! client (GetImage, DownloadImage, ConcurrentDownloadImage), the `shub://` request sequence
//! (manifest, HEAD, Content-Length, Range, then the image) and `/ipfs/<cid>`. B serves them
//! through its on-demand path: it fetches leaves from A over `/shubnet/fetch/1` while it
//! streams. Each pull gets its own image, so every one is B's first contact with the content.

use shubnet_tests::TestNode;
use shubnet_tests::data::{assert_same_file, kubo_file};
use shubnet_tests::fed::{TwoMembers, federation_token, push, user_token, wait_private_on};
use shubnet_tests::golib;
use shubnet_tests::http::{get, get_range, head};
use shubnet_tests::sregistry::Client;
use shubnet_tests::swarm::wait_head;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One image pushed on A for one pull on B.
struct Image {
    reference: String,
    manifest: String,
    file: PathBuf,
    root: String,
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON: {e}: {}", String::from_utf8_lossy(body)))
}

/// Panics unless `node` holds nothing of `root`: no blob, no partial download.
#[track_caller]
fn holds_nothing_of(node: &TestNode, root: &str) {
    let held: Vec<String> = node
        .files_under("blobs")
        .into_iter()
        .chain(node.files_under("partial"))
        .filter(|f| f.contains(root))
        .collect();
    assert!(
        held.is_empty(),
        "B already held {root} before the pull: {held:?}"
    );
}

fn push_on_a(a: &TestNode, dir: &Path, name: &str, len: u64) -> Image {
    let file = dir.join(format!("{name}.sif"));
    kubo_file(&file, &format!("gateway-fed-{name}"), len);
    let reference = format!("lab-a/{name}:v1");
    let manifest = push(a, &file, &reference, false);
    let root = a
        .cli(&["cid", file.to_str().expect("utf8")])
        .ok()
        .out()
        .trim()
        .to_owned();
    Image {
        reference,
        manifest,
        file,
        root,
    }
}

impl Image {
    fn reference(&self) -> &str {
        &self.reference
    }

    /// `lab-a/name` and `v1`, for the library client.
    fn container_and_tag(&self) -> (&str, &str) {
        self.reference()
            .split_once(':')
            .expect("a tag in the reference")
    }
}

#[test]
fn every_client_pull_succeeds_from_a_member_that_did_not_hold_the_image() {
    let tmp = crate::tmpdir();
    let TwoMembers { a, b, .. } = TwoMembers::connected();
    // Sizes span several leaves (256 KiB) and more than one DAG level's worth of reads.
    let names = [
        ("sreg", 3_000_000),
        ("libdl", 2_600_000),
        ("libcdl", 5_300_000),
        ("shub", 4_100_000),
        ("ipfs", 1_700_000),
        ("secret", 2_200_000),
    ];
    let images: Vec<Image> = names
        .iter()
        .map(|(n, len)| push_on_a(&a, tmp.path(), n, *len))
        .collect();
    for img in &images {
        wait_head(&b, img.reference(), &img.manifest, Duration::from_secs(30));
        holds_nothing_of(&b, &img.root);
    }
    let [sreg, libdl, libcdl, shub, ipfs, secret] = &images[..] else {
        unreachable!("six images")
    };

    // The sregistry client, anonymous, public image.
    let client = Client::new(b.url());
    let (run, file) = client.pull(sreg.reference());
    let run = run.ok();
    let file = file.unwrap_or_else(|| panic!("sregistry pulled nothing from B\n{run}"));
    assert_same_file(&file, &sreg.file);

    // The library client: GetImage, then DownloadImage and ConcurrentDownloadImage.
    for (img, cmd) in [(libdl, "download"), (libcdl, "cdownload")] {
        let (container, tag) = img.container_and_tag();
        let v = json(
            &golib::run(b.url(), "", &["get", &format!("{container}:{tag}")])
                .ok()
                .stdout,
        );
        let (sha, size) = shubnet_tests::data::sha256_file(&img.file);
        assert_eq!(v["hash"], format!("sha256.{sha}"), "{v:#}");
        assert_eq!(v["size"], size, "{v:#}");
        let out = tmp.path().join(format!("{cmd}-from-b.sif"));
        golib::run(
            b.url(),
            "",
            &[cmd, container, tag, out.to_str().expect("utf8")],
        )
        .ok();
        assert_same_file(&out, &img.file);
    }

    // The shub:// sequence: manifest, then the image URL (HEAD, a Range, the whole file).
    let want = std::fs::read(&shub.file).expect("read");
    let m = json(
        &get(&b.at(&format!("/api/container/{}", shub.reference())))
            .expect_status(200)
            .body,
    );
    assert_eq!(m["commit"], shubnet_tests::data::sha256_hex(&want), "{m:#}");
    let image = m["image"].as_str().expect("image URL");
    let url = image.replace(b.url(), "");
    let url = b.at(&url);
    let h = head(&url);
    h.expect_status(200);
    assert!(h.header("location").is_none(), "{h}");
    assert_eq!(h.content_length(), Some(want.len() as u64), "{h}");
    let part = get_range(&url, "3000000-3000999");
    part.expect_status(206);
    assert!(
        part.body == want[3_000_000..3_001_000],
        "Range bytes differ"
    );
    let g = get(&url);
    g.expect_status(200).expect_framed();
    assert!(!g.chunked, "no Content-Length on B's image\n{g}");
    assert!(g.body == want, "shub image bytes from B differ");

    // `apptainer pull ipfs://CID` through B.
    let want = std::fs::read(&ipfs.file).expect("read");
    let r = get(&b.at(&format!("/ipfs/{}", ipfs.root)));
    r.expect_status(200).expect_framed();
    assert_eq!(
        r.header("etag").map(|e| e.trim_matches('"')),
        Some(ipfs.root.as_str())
    );
    assert!(r.body == want, "/ipfs bytes from B differ");

    // Private: A, which owns lab-a, makes it private, and B enforces it too. B's own tokens grant
    // nothing on A's collection; a federation token A issued opens it on B.
    a.cli(&["collection", "set-private", "lab-a"]).ok();
    wait_private_on(&b, "lab-a");
    holds_nothing_of(&b, &secret.root);
    let (run, file) = Client::new(b.url()).pull(secret.reference());
    assert!(file.is_none(), "anonymous pull of a private image\n{run}");
    let (run, file) = Client::new(b.url())
        .with_user("bob", "0123456789abcdef0123456789abcdef01234567")
        .pull(secret.reference());
    assert!(file.is_none(), "pull with a wrong token\n{run}");
    let bob = user_token(&b, "bob", "lab-a", "pull");
    let (run, file) = Client::new(b.url())
        .with_user("bob", &bob)
        .pull(secret.reference());
    assert!(
        file.is_none(),
        "B's own token opened a collection A owns\n{run}"
    );
    let carol = federation_token(&a, "carol", "lab-a");
    let (container, tag) = secret.container_and_tag();
    let out = tmp.path().join("secret-from-b.sif");
    golib::run(
        b.url(),
        &carol,
        &["download", container, tag, out.to_str().expect("utf8")],
    )
    .ok();
    assert_same_file(&out, &secret.file);

    // B may not publish into A's namespace, even with a token of its own that names it: the
    // push is refused and B keeps nothing of it.
    let pins = b.pins();
    let logs = (a.files_under("log"), b.files_under("log"));
    let intruder = tmp.path().join("intruder.sif");
    kubo_file(&intruder, "gateway-fed-intruder", 600_000);
    let mallory = user_token(&b, "mallory", "lab-a", "push");
    let r = Client::new(b.url()).with_user("mallory", &mallory).run(&[
        "push",
        "--name",
        "lab-a/intruder",
        "--tag",
        "v1",
        intruder.to_str().expect("utf8"),
    ]);
    assert!(!r.status.success(), "B published into lab-a\n{r}");
    assert_eq!(b.pins(), pins, "a refused push left content pinned on B");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (a.files_under("log"), b.files_under("log")),
        logs,
        "a refused push wrote a manifest"
    );
}

/// The trustless-gateway forms through a member that does not hold the image: its root block
/// (`?format=raw`) and the whole DAG as a CAR come on demand from A, byte-identical to A's own
/// answers, whichever is asked first.
#[test]
fn raw_blocks_and_cars_come_on_demand_from_a_member_that_did_not_hold_the_image() {
    let tmp = crate::tmpdir();
    let TwoMembers { a, b, .. } = TwoMembers::connected();
    let raw_first = push_on_a(&a, tmp.path(), "rawfirst", 1_300_000);
    let car_first = push_on_a(&a, tmp.path(), "carfirst", 1_100_000);
    for img in [&raw_first, &car_first] {
        wait_head(&b, img.reference(), &img.manifest, Duration::from_secs(30));
        holds_nothing_of(&b, &img.root);
    }
    let fetch = |node: &TestNode, root: &str, format: &str| {
        let r = get(&node.at(&format!("/ipfs/{root}?format={format}")));
        r.expect_status(200);
        r.body
    };
    for (img, order) in [(&raw_first, ["raw", "car"]), (&car_first, ["car", "raw"])] {
        for format in order {
            let from_b = fetch(&b, &img.root, format);
            let from_a = fetch(&a, &img.root, format);
            assert!(
                from_b == from_a,
                "B's {format} answer for {} differs from A's ({} and {} bytes)",
                img.root,
                from_b.len(),
                from_a.len()
            );
        }
    }
}
