//! Federation and registry commands through the real CLI, checked: `keys show`,
//! `federation create|request|admit|join|show`, `push`, `tags`, and the roster chain a gateway
//! serves at `GET /shubnet/v1/federation`.

use crate::TestNode;
use crate::cmd::Run;
use crate::http::get;
use crate::mitm::b64url_decode;
use serde_json::Value;
use std::path::Path;

/// What `shubnet keys show --json` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// libp2p peer id.
    pub peer_id: String,
    /// Publisher public key, hex.
    pub publisher_key: String,
    /// Admin public key, hex.
    pub admin_key: String,
}

/// Parses stdout of `run` as JSON, panicking with the whole run otherwise.
#[track_caller]
pub fn json_of(run: &Run) -> Value {
    serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("the command printed no JSON: {e}\n{run}"))
}

/// `shubnet status --json` on `node`.
#[track_caller]
pub fn status(node: &TestNode) -> Value {
    json_of(&node.cli(&["status", "--json"]).ok())
}

/// The strings of a JSON array (nothing for anything else).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Peer ids `node` has a connection to now (its status, not past log lines).
#[track_caller]
pub fn connected_peers(node: &TestNode) -> Vec<String> {
    strings(&status(node)["connected_peers"])
}

/// `shubnet keys show --json` for `node`'s data directory.
#[track_caller]
pub fn keys(node: &TestNode) -> Keys {
    let r = node.cli(&["keys", "show", "--json"]).ok();
    let v = json_of(&r);
    let field = |k: &str| {
        let s = v[k]
            .as_str()
            .unwrap_or_else(|| panic!("`keys show --json` has no {k:?}\n{r}"))
            .to_string();
        assert!(!s.is_empty(), "`keys show --json` has an empty {k:?}\n{r}");
        s
    };
    Keys {
        peer_id: field("peer_id"),
        publisher_key: field("publisher_key"),
        admin_key: field("admin_key"),
    }
}

/// `shubnet federation create --name NAME --institution INST` on `node`; returns the id.
#[track_caller]
pub fn create(node: &TestNode, name: &str, institution: &str) -> String {
    create_with(node, name, institution, &[])
}

/// [`create`] with extra arguments (`--storage`, `--replication`…).
#[track_caller]
pub fn create_with(node: &TestNode, name: &str, institution: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "federation",
        "create",
        "--name",
        name,
        "--institution",
        institution,
    ];
    args.extend_from_slice(extra);
    let r = node.cli(&args).ok();
    let id = r.out();
    assert!(
        crate::cid::decode(&id).is_some(),
        "`federation create` printed no CID as the federation id\n{r}"
    );
    id
}

/// `node` founds federation `Fed` as institution `lab-a` (publishing `lab-a`), the set-up of
/// every single-node gateway test; returns the federation id.
#[track_caller]
pub fn found(node: &TestNode) -> String {
    create(node, "Fed", "lab-a")
}

/// A fresh node that founded `Fed` as `lab-a` ([`found`]).
#[track_caller]
pub fn founded_node() -> TestNode {
    let node = TestNode::start();
    found(&node);
    node
}

/// `shubnet token create --user USER --collection COLLECTION --rights RIGHTS` on `node`; the
/// token, shown once.
#[track_caller]
pub fn user_token(node: &TestNode, user: &str, collection: &str, rights: &str) -> String {
    node.cli(&[
        "token",
        "create",
        "--user",
        user,
        "--collection",
        collection,
        "--rights",
        rights,
    ])
    .ok()
    .out()
    .trim()
    .to_owned()
}

/// `shubnet token create --federation` on `node`: a pull token on `collection` that every
/// member accepts; the token, shown once.
#[track_caller]
pub fn federation_token(node: &TestNode, user: &str, collection: &str) -> String {
    let r = node
        .cli(&[
            "token",
            "create",
            "--federation",
            "--user",
            user,
            "--collection",
            collection,
            "--rights",
            "pull",
        ])
        .ok();
    let t = r.out().trim().to_owned();
    assert!(
        t.starts_with("shubcap1_"),
        "no federation token printed\n{r}"
    );
    t
}

/// Waits up to 30 s until `node` lists `collection` as private (its owner's policy arrived).
#[track_caller]
pub fn wait_private_on(node: &TestNode, collection: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = json_of(&node.cli(&["collection", "list", "--json"]).ok());
        let private = v.as_array().into_iter().flatten().any(|c| {
            c["name"].as_str() == Some(collection) && c["private"].as_bool() == Some(true)
        });
        if private {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{collection} never became private on {}: {v:#}",
            node.url()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `shubnet federation request --institution INST` with `node`'s keys; returns the line.
#[track_caller]
pub fn request(node: &TestNode, institution: &str) -> String {
    let r = node
        .cli(&["federation", "request", "--institution", institution])
        .ok();
    let line = r.out();
    assert!(
        line.starts_with("shubnet-join-v1.") && !line.contains(char::is_whitespace),
        "`federation request` did not print one `shubnet-join-v1.` line\n{r}"
    );
    line
}

/// `shubnet federation join ID --from URL` on `node`, checked.
#[track_caller]
pub fn join(node: &TestNode, federation: &str, from: &str) -> Run {
    node.cli(&["federation", "join", federation, "--from", from])
        .ok()
}

/// `shubnet federation show --json` on `node`.
#[track_caller]
pub fn show(node: &TestNode) -> Value {
    json_of(&node.cli(&["federation", "show", "--json"]).ok())
}

/// The roster version in `show`.
#[track_caller]
pub fn version(roster: &Value) -> u64 {
    roster["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version in {roster:#}"))
}

/// The member institution ids in `show`, in roster order.
#[track_caller]
pub fn member_ids(roster: &Value) -> Vec<String> {
    roster["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {roster:#}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `shubnet push FILE REF [--freeze]`, checked; returns the manifest CID it printed.
#[track_caller]
pub fn push(node: &TestNode, file: &Path, reference: &str, freeze: bool) -> String {
    let mut args = vec!["push".as_ref(), file.as_os_str(), reference.as_ref()];
    if freeze {
        args.push("--freeze".as_ref());
    }
    let r = node.cli(&args).ok();
    let cid = r.out();
    assert!(
        crate::cid::decode(&cid).is_some(),
        "`shubnet push` printed no manifest CID\n{r}"
    );
    cid
}

/// `shubnet tags --json` on `node` (everything).
#[track_caller]
pub fn tags(node: &TestNode) -> Value {
    json_of(&node.cli(&["tags", "--json"]).ok())
}

/// The JSON of `GET BASE/shubnet/v1/federation`.
#[track_caller]
pub fn federation_doc(base: &str) -> Value {
    let r = get(&format!("{base}/shubnet/v1/federation"));
    r.expect_status(200);
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON: {e}\n{r}"))
}

/// The signed roster encodings a gateway serves, oldest first.
#[track_caller]
pub fn roster_chain(base: &str) -> Vec<Vec<u8>> {
    let v = federation_doc(base);
    v["rosters"]
        .as_array()
        .unwrap_or_else(|| panic!("no rosters array in {v:#}"))
        .iter()
        .map(|r| b64url_decode(r.as_str().expect("roster as a string")))
        .collect()
}

/// Two nodes in one federation: A (`lab-a`, the only admin, threshold 1) founded it and admitted
/// B (`lab-b`), which then joined from A's gateway. Roster version 2 on both.
pub struct TwoMembers {
    /// The founder, admin, institution `lab-a`.
    pub a: TestNode,
    /// Member `lab-b`.
    pub b: TestNode,
    /// The federation id.
    pub id: String,
}

impl TwoMembers {
    /// Starts both nodes and forms the federation through the CLI.
    #[track_caller]
    pub fn start() -> Self {
        let a = TestNode::start();
        let b = TestNode::start();
        let id = create(&a, "Fed", "lab-a");
        let line = request(&b, "lab-b");
        let r = a.cli(&["federation", "admit", &line]).ok();
        assert_eq!(r.out(), "roster version 2 accepted", "{r}");
        join(&b, &id, a.url());
        for n in [&a, &b] {
            let roster = show(n);
            assert_eq!(version(&roster), 2, "{roster:#}");
            assert_eq!(member_ids(&roster), ["lab-a", "lab-b"], "{roster:#}");
        }
        Self { a, b, id }
    }

    /// [`TwoMembers::start`], then B restarted dialling A (`--bootstrap`) with a 2 s sync
    /// interval, and waited for until it serves A's roster: B learns A's tags by gossip and sync
    /// and can fetch A's content over `/shubnet/fetch/1`. B offers no storage, so placement
    /// never gives it A's images: it holds one only after serving it.
    #[track_caller]
    pub fn connected() -> Self {
        let mut fed = Self::start();
        let a_addr = fed.a.p2p_addr();
        fed.b
            .set_serve_args(&["--bootstrap", &a_addr, "--sync-interval", "2"], &[]);
        fed.b.restart();
        fed
    }
}

/// Three institutions on three nodes (lab-a founds the federation with k = 2 and 1G of storage
/// each; B and C bootstrap from A, are admitted and join), every node started with `config`
/// and a 2 s sync interval. Returns the nodes A, B and C.
pub fn three_institutions_k2(config: &str) -> (TestNode, TestNode, TestNode) {
    let a = TestNode::start_configured(&["--sync-interval", "2"], config);
    let a_addr = a.p2p_addr();
    let boot = ["--sync-interval", "2", "--bootstrap", &a_addr];
    let b = TestNode::start_configured(&boot, config);
    let c = TestNode::start_configured(&boot, config);
    let fed = create_with(
        &a,
        "Fed",
        "lab-a",
        &["--storage", "1G", "--replication", "2"],
    );
    for (n, inst) in [(&b, "lab-b"), (&c, "lab-c")] {
        let line = request(n, inst);
        a.cli(&["federation", "admit", &line, "--storage", "1G"])
            .ok();
    }
    join(&b, &fed, a.url());
    join(&c, &fed, a.url());
    (a, b, c)
}
