//! The web UI, search and `/metrics` against a real node with a real SIF image (siftool +
//! mksquashfs): headless Chromium renders every page and the real content must be there (labels,
//! definition file, pull commands, replication state); every page passes the Nu HTML checker;
//! screenshots land in `test-output/ui`. `/metrics` parses with `prometheus_client`, and a pull
//! moves the right counters.

use serde_json::Value;
use shubnet_tests::browser::{dump_dom, output_dir, parse_metrics, screenshot, validate_html};
use shubnet_tests::fed::{create, push};
use shubnet_tests::http::{get, request};
use shubnet_tests::sif::{SifSpec, build};
use shubnet_tests::{TestNode, data::kubo_bytes};
use std::collections::BTreeMap;
use std::path::PathBuf;

const DEF: &str = "Bootstrap: docker\nFrom: debian:12\n\n%post\n    apt-get install -y ncbi-blast+ <fast>\n\n%labels\n    maintainer lab-a\n";

fn blast_sif(dir: &std::path::Path) -> PathBuf {
    let inspect = serde_json::json!({
        "data": {"attributes": {
            "labels": {
                "maintainer": "lab-a",
                "org.label-schema.usage.singularity.deffile.from": "debian:12",
                "science.field": "genomics",
            },
            "environment": {"/.singularity.d/env/90-environment.sh": "export BLASTDB=/db\n"},
            "runscript": "#!/bin/sh\nexec blastn \"$@\"\n",
            "deffile": DEF,
            "helpfile": "Runs blastn.\n",
        }},
        "type": "container",
    });
    build(
        dir,
        "blast",
        &SifSpec {
            deffile: Some(DEF.into()),
            inspect_json: Some(inspect.to_string()),
            files: vec![("usr/bin/blastn".into(), kubo_bytes("blastn", 400_000))],
        },
    )
}

type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

fn scrape(node: &TestNode) -> Samples {
    let resp = get(&node.at("/metrics"));
    resp.expect_status(200);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{resp}"
    );
    parse_metrics(&String::from_utf8_lossy(&resp.body))
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn metrics_parse_and_a_pull_moves_the_right_counters() {
    let node = TestNode::start();
    create(&node, "Fed", "lab-a");
    let dir = tempfile::tempdir().expect("tmp");
    let sif = blast_sif(dir.path());
    let size = std::fs::metadata(&sif).expect("sif").len();
    push(&node, &sif, "lab-a/blast:2.14", false);

    let before = scrape(&node);
    for family in [
        "shubnet_connected_peers",
        "shubnet_images_under_replicated",
        "shubnet_images",
        "shubnet_store_bytes",
    ] {
        assert!(
            before.iter().any(|(n, _, _)| n == family),
            "{family} missing from /metrics"
        );
    }
    assert_eq!(value(&before, "shubnet_images", &[]), 1.0);
    assert!(value(&before, "shubnet_store_bytes", &[]) >= size as f64);
    // One member, k = 2 by default: the only image lacks a second holder.
    assert_eq!(value(&before, "shubnet_images_under_replicated", &[]), 1.0);

    // A pull as `apptainer pull shub://` does it: the container JSON, then the image URL.
    let c = get(&node.at("/api/container/lab-a/blast:2.14"));
    c.expect_status(200);
    let image = serde_json::from_slice::<Value>(&c.body).expect("json")["image"]
        .as_str()
        .expect("image url")
        .to_owned();
    let bytes = get(&image);
    bytes.expect_status(200);
    assert_eq!(bytes.body.len() as u64, size);
    // A request for an unknown image: counted under its route template with status 404.
    get(&node.at("/api/container/lab-a/nothing:1")).expect_status(404);

    let after = scrape(&node);
    let download = [
        ("route", "/containers/{cid}/download/{secret}"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let d = |s: &Samples, l: &[(&str, &str)]| value(s, "shubnet_http_requests_total", l);
    assert_eq!(d(&after, &download) - d(&before, &download), 1.0);
    let missing = [("route", "/api/container/{*rest}"), ("status", "404")];
    assert_eq!(d(&after, &missing) - d(&before, &missing), 1.0);
    assert!(
        !after.iter().any(|(_, l, _)| l
            .get("route")
            .is_some_and(|r| r.contains("blast") || r.contains("nothing"))),
        "raw paths leaked into route labels"
    );
    let sent = [("protocol", "http"), ("direction", "sent")];
    let served = value(&after, "shubnet_transferred_bytes_total", &sent)
        - value(&before, "shubnet_transferred_bytes_total", &sent);
    assert!(
        served >= size as f64,
        "bytes served moved by {served}, less than the image's {size}"
    );
    assert_eq!(
        value(&after, "shubnet_downloads_total", &[])
            - value(&before, "shubnet_downloads_total", &[]),
        1.0
    );
    let lat = [("route", "/containers/{cid}/download/{secret}")];
    assert!(value(&after, "shubnet_http_request_duration_seconds_count", &lat) >= 1.0);

    // A bad token is a rejection by reason.
    let r = request(
        "GET",
        &node.at("/v1/token-status"),
        &[("Authorization", "Bearer not-a-token")],
    );
    assert!(r.status >= 400, "{r}");
    let rejected = scrape(&node);
    assert!(
        value(
            &rejected,
            "shubnet_rejected_total",
            &[("kind", "token"), ("reason", "unknown")]
        ) >= 1.0
    );
}

#[test]
fn web_pages_show_the_image_validate_and_work_without_javascript() {
    let node = TestNode::start();
    create(&node, "Genomics Federation", "lab-a");
    let dir = tempfile::tempdir().expect("tmp");
    let sif = blast_sif(dir.path());
    push(&node, &sif, "lab-a/blast:2.14", false);
    let other = dir.path().join("other.bin");
    std::fs::write(&other, kubo_bytes("other", 10_000)).expect("write");
    push(&node, &other, "lab-a/samtools:1.19", false);
    let root = {
        let tags = get(&node.at("/shubnet/v1/tags?prefix=lab-a/blast"));
        serde_json::from_slice::<Value>(&tags.body).expect("json")[0]["root"]
            .as_str()
            .expect("root")
            .to_owned()
    };
    let host = node.url().trim_start_matches("http://").to_owned();
    let out = output_dir();

    let pages: Vec<(&str, String, Vec<String>)> = vec![
        (
            "collections",
            "/".into(),
            vec!["lab-a".into(), "2 images".into()],
        ),
        (
            "collection",
            "/ui/collections/lab-a".into(),
            vec![
                "blast".into(),
                "samtools".into(),
                "science.field=genomics".into(),
            ],
        ),
        (
            "image",
            "/ui/images/lab-a/blast/2.14".into(),
            vec![
                "science.field".into(),
                "genomics".into(),
                "org.label-schema.usage.singularity.deffile.from".into(),
                // The definition file, escaped by the server and unescaped by the browser.
                "apt-get install -y ncbi-blast+ &lt;fast&gt;".into(),
                "Bootstrap: docker".into(),
                "exec blastn".into(),
                "export BLASTDB=/db".into(),
                "Runs blastn.".into(),
                format!("apptainer pull shub://{host}/lab-a/blast:2.14"),
                format!("apptainer pull library://{host}/lab-a/blast:2.14"),
                format!("ipfs://{root}"),
                format!("IPFS_GATEWAY={}/ipfs/", node.url()),
                format!("shubnet pull lab-a/blast:2.14 --from {}", node.url()),
                root.clone(),
            ],
        ),
        (
            "search",
            "/ui/search?q=genomics".into(),
            vec![
                "1 images found".into(),
                "/ui/images/lab-a/blast/2.14".into(),
            ],
        ),
        (
            "search-deffile",
            "/ui/search?q=ncbi-blast%2B+debian".into(),
            vec![
                "1 images found".into(),
                "/ui/images/lab-a/blast/2.14".into(),
            ],
        ),
        (
            "search-label",
            "/ui/search?label=maintainer%3Dlab-a".into(),
            vec!["1 images found".into()],
        ),
        (
            "federation",
            "/ui/federation".into(),
            vec![
                "Genomics Federation".into(),
                "lab-a".into(),
                "under-replicated".into(),
                "2 of 2 images under-replicated".into(),
                "/ui/images/lab-a/blast/2.14".into(),
                root.clone(),
            ],
        ),
    ];
    let mut files = Vec::new();
    for (name, path, wants) in &pages {
        let dom = dump_dom(&node.at(path));
        for want in wants {
            assert!(
                dom.contains(want.as_str()),
                "page {path} lacks {want:?}; Chromium rendered:\n{dom}"
            );
        }
        assert!(!dom.contains("<script"), "page {path} carries a script");
        let resp = get(&node.at(path));
        resp.expect_status(200);
        let file = out.join(format!("{name}.html"));
        std::fs::write(&file, &resp.body).expect("save page");
        files.push(file);
    }
    // A search that matches nothing says so; a missing image is a 404 page, also valid HTML.
    assert!(dump_dom(&node.at("/ui/search?q=nosuchword")).contains("0 images found"));
    let missing = get(&node.at("/ui/images/lab-a/nothing/1"));
    missing.expect_status(404);
    let file = out.join("not-found.html");
    std::fs::write(&file, &missing.body).expect("save page");
    files.push(file);
    validate_html(&files);

    for (name, path) in [
        ("collections", "/"),
        ("image", "/ui/images/lab-a/blast/2.14"),
        ("search", "/ui/search?q=genomics"),
        ("federation", "/ui/federation"),
    ] {
        screenshot(&node.at(path), &out.join(format!("{name}.png")), 1280, 1100);
    }
    // The narrow (phone) layout of the image page too.
    screenshot(
        &node.at("/ui/images/lab-a/blast/2.14"),
        &out.join("image-narrow.png"),
        420,
        1400,
    );

    // The sregistry-era search endpoints answer from the same index.
    let json = |path: &str| -> Value {
        let r = get(&node.at(path));
        r.expect_status(200);
        serde_json::from_slice(&r.body).expect("json")
    };
    let l = json("/api/labels/search/science.field/key/genomics/value");
    assert_eq!(l[0]["containers"][0], "lab-a/blast:2.14", "{l:#}");
    assert_eq!(l.as_array().map(Vec::len), Some(1), "{l:#}");
    let l = json("/api/labels/search/maintainer/key");
    assert_eq!(l[0]["value"], "lab-a", "{l:#}");
    let c = json("/api/container/search/collection/lab-a/name/sam");
    assert_eq!(c["containers"][0]["uri"], "lab-a/samtools:1.19", "{c:#}");
    assert_eq!(c["containers"].as_array().map(Vec::len), Some(1), "{c:#}");
    let c = json("/api/collection/search/lab");
    assert_eq!(
        c[0]["containers"].as_array().map(Vec::len),
        Some(2),
        "{c:#}"
    );

    // Stars: a user with a token stars the image once, however often they press the button.
    let token = node
        .cli(&[
            "token",
            "create",
            "--user",
            "alice",
            "--collection",
            "lab-a",
            "--rights",
            "pull",
        ])
        .ok()
        .out();
    let token = token.trim().to_owned();
    // A browser form post, as the star button sends it (curl stands in for the button press).
    let star = |body: &str| -> String {
        let run = shubnet_tests::cmd::run_cmd(
            std::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--data",
                    body,
                ])
                .arg(node.at("/ui/images/lab-a/blast/2.14/star")),
        );
        run.out()
    };
    assert_eq!(star(&format!("token={token}&action=star")), "303");
    assert_eq!(star(&format!("token={token}&action=star")), "303");
    assert_eq!(star("token=wrong&action=star"), "403");
    assert!(dump_dom(&node.at("/ui/images/lab-a/blast/2.14")).contains("1 stars"));
}
