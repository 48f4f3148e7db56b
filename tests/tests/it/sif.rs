//! SIF metadata end to end: real SIF images (siftool + mksquashfs) pushed to a real node with
//! `shubnet push`; the metadata is signed into the manifest the verification API serves and
//! shown by `shubnet inspect`. A file that is not a SIF is still accepted, as an opaque image;
//! a file that claims to be a SIF but lies is refused and nothing of it is kept.

use serde_json::{Value, json};
use shubnet_protocol::manifest::{MEDIA_TYPE_SIF, Manifest};
use shubnet_protocol::sif::{MEDIA_TYPE_OPAQUE, help};
use shubnet_tests::fed::{create, json_of, push};
use shubnet_tests::http::get;
use shubnet_tests::sif::{SifSpec, build};
use shubnet_tests::{TestNode, data::kubo_bytes};
use std::collections::BTreeMap;

const DEF: &str = "Bootstrap: docker\nFrom: debian:12\n\n%labels\n    maintainer lab-a\n\n%runscript\n    exec blastn \"$@\"\n";
const RUNSCRIPT: &str = "#!/bin/sh\n\nexec blastn \"$@\"\n";
const ENV90: &str =
    "#!/bin/sh\n# Custom environment shell code should follow\n\nexport BLASTDB=/db\n";

/// The `/.singularity.d` of an Apptainer image, plus 600 kB of incompressible payload so the
/// image spans several UnixFS blocks.
fn rootfs(labels_json: &str) -> Vec<(String, Vec<u8>)> {
    let f = |p: &str, s: &str| (p.to_owned(), s.as_bytes().to_vec());
    vec![
        f(".singularity.d/Singularity", DEF),
        f(".singularity.d/labels.json", labels_json),
        f(".singularity.d/runscript", RUNSCRIPT),
        f(".singularity.d/runscript.help", "Runs blastn.\n"),
        f(".singularity.d/env/01-base.sh", "#!/bin/sh\n"),
        f(".singularity.d/env/90-environment.sh", ENV90),
        f(".singularity.d/env/99-base.sh", "#!/bin/sh\n"),
        ("usr/bin/blastn".into(), kubo_bytes("blastn", 600_000)),
    ]
}

fn inspect_json() -> String {
    json!({
        "data": {"attributes": {
            "labels": {
                "maintainer": "lab-a",
                "org.label-schema.schema-version": "1.0",
                "org.label-schema.usage.singularity.deffile.from": "debian:12",
            },
            "environment": {"/.singularity.d/env/90-environment.sh": ENV90},
            "runscript": RUNSCRIPT,
            "deffile": DEF,
            "helpfile": "Runs blastn.\n",
        }},
        "type": "container",
    })
    .to_string()
}

/// The head manifest of `collection/name/tag`, from the verification API, decoded.
fn served_manifest(node: &TestNode, path: &str) -> Manifest {
    let resp = get(&node.at(&format!("/shubnet/v1/manifests/{path}")));
    resp.expect_status(200);
    Manifest::decode(&resp.body).expect("a canonical manifest")
}

fn inspect(node: &TestNode, reference: &str) -> Value {
    json_of(&node.cli(&["inspect", reference, "--json"]).ok())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn pushed_sif_metadata_is_signed_into_the_manifest_and_shown_by_inspect() {
    let node = TestNode::start();
    create(&node, "Fed", "lab-a");
    let dir = tempfile::tempdir().expect("tempdir");
    let want_env = format!("=== /.singularity.d/env/90-environment.sh ===\n{ENV90}");

    // With inspect-metadata.json, as Apptainer ≥ 1.0 writes it.
    let sif = build(
        dir.path(),
        "json",
        &SifSpec {
            deffile: Some(DEF.into()),
            inspect_json: Some(inspect_json()),
            files: rootfs("{\n\t\"maintainer\": \"from-squashfs\"\n}"),
        },
    );
    let cid = push(&node, &sif, "lab-a/blast:2.14", false);
    let m = served_manifest(&node, "lab-a/blast/2.14");
    assert_eq!(m.cid().to_string(), cid);
    assert_eq!(m.body.media_type, MEDIA_TYPE_SIF);
    let md = &m.body.metadata;
    assert_eq!(md.arch.as_deref(), Some("amd64"));
    assert_eq!(md.deffile.as_deref(), Some(DEF));
    assert_eq!(md.runscript.as_deref(), Some(RUNSCRIPT));
    assert_eq!(md.environment.as_deref(), Some(want_env.as_str()));
    assert_eq!(help(md).as_deref(), Some("Runs blastn.\n"));
    assert_eq!(
        md.labels,
        labels(&[
            ("maintainer", "lab-a"),
            ("org.label-schema.schema-version", "1.0"),
            (
                "org.label-schema.usage.singularity.deffile.from",
                "debian:12"
            ),
        ]),
        "labels come from inspect-metadata.json, not the squashfs"
    );

    let v = inspect(&node, "lab-a/blast:2.14");
    assert_eq!(v["sif"], true);
    assert_eq!(v["manifest"], cid.as_str());
    assert_eq!(v["arch"], "amd64");
    assert_eq!(v["deffile"], DEF);
    assert_eq!(v["runscript"], RUNSCRIPT);
    assert_eq!(v["environment"], want_env.as_str());
    assert_eq!(v["help"], "Runs blastn.\n");
    assert_eq!(v["labels"]["maintainer"], "lab-a");
    // The shub API's `metadata` carries the same signed summary (what `sregistry` and web
    // clients show), and the library image object its architecture.
    let r = shubnet_tests::http::get(&node.at("/api/container/lab-a/blast:2.14"));
    r.expect_status(200);
    let shub: Value = serde_json::from_slice(&r.body).expect("shub JSON");
    let sm = &shub["metadata"];
    assert_eq!(sm["arch"], "amd64", "{shub:#}");
    assert_eq!(sm["deffile"], DEF, "{shub:#}");
    assert_eq!(sm["runscript"], RUNSCRIPT, "{shub:#}");
    assert_eq!(sm["environment"], want_env.as_str(), "{shub:#}");
    assert_eq!(sm["help"], "Runs blastn.\n", "{shub:#}");
    assert_eq!(sm["media_type"], MEDIA_TYPE_SIF, "{shub:#}");
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, String>>(sm["labels"].clone()).expect("labels"),
        md.labels,
        "{shub:#}"
    );
    assert_eq!(sm["manifest"], cid.as_str(), "{shub:#}");
    let r = shubnet_tests::http::get(&node.at("/v1/images/lab-a/blast:2.14"));
    r.expect_status(200);
    let lib: Value = serde_json::from_slice(&r.body).expect("library JSON");
    assert_eq!(lib["data"]["arch"], "amd64", "{lib:#}");
    let text = node.cli(&["inspect", "lab-a/blast:2.14"]).ok().out();
    for needle in [
        "arch:       amd64",
        "  maintainer: lab-a",
        "definition file:\n  Bootstrap: docker\n  From: debian:12",
        "runscript:\n  #!/bin/sh",
        "  export BLASTDB=/db",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }

    // Without inspect-metadata.json: the squashfs fallback, as for images built before 2020.
    let sif = build(
        dir.path(),
        "squash",
        &SifSpec {
            deffile: None,
            inspect_json: None,
            files: rootfs("{\n\t\"maintainer\": \"from-squashfs\"\n}"),
        },
    );
    push(&node, &sif, "lab-a/blast:old", false);
    let md = served_manifest(&node, "lab-a/blast/old").body.metadata;
    assert_eq!(md.labels, labels(&[("maintainer", "from-squashfs")]));
    assert_eq!(
        md.deffile.as_deref(),
        Some(DEF),
        "from /.singularity.d/Singularity"
    );
    assert_eq!(md.runscript.as_deref(), Some(RUNSCRIPT));
    assert_eq!(md.environment.as_deref(), Some(want_env.as_str()));
    let v = inspect(&node, "lab-a/blast:old");
    assert_eq!(v["labels"], json!({"maintainer": "from-squashfs"}));
}

#[test]
fn a_file_that_is_not_a_sif_is_accepted_as_opaque_with_empty_metadata() {
    let node = TestNode::start();
    create(&node, "Fed", "lab-a");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("data.bin");
    std::fs::write(&file, kubo_bytes("opaque", 300_000)).expect("write");
    let cid = push(&node, &file, "lab-a/blob:1", false);
    let m = served_manifest(&node, "lab-a/blob/1");
    assert_eq!(m.cid().to_string(), cid);
    assert_eq!(m.body.media_type, MEDIA_TYPE_OPAQUE);
    assert_eq!(m.body.metadata, Default::default());
    let v = inspect(&node, "lab-a/blob:1");
    assert_eq!(v["sif"], false);
    assert_eq!(v["labels"], json!({}));
    assert_eq!(v["deffile"], Value::Null);
    let text = node.cli(&["inspect", "lab-a/blob:1"]).ok().out();
    assert!(text.contains("not a SIF"), "{text}");
}

#[test]
fn a_sif_with_lying_descriptors_is_refused_and_nothing_is_kept() {
    let node = TestNode::start();
    create(&node, "Fed", "lab-a");
    let dir = tempfile::tempdir().expect("tempdir");
    let sif = build(
        dir.path(),
        "good",
        &SifSpec {
            deffile: Some(DEF.into()),
            inspect_json: Some(inspect_json()),
            files: rootfs("{}"),
        },
    );
    let mut bytes = std::fs::read(&sif).expect("read");
    // Descriptor 1's size (at 4096 + 25) claims far more than the file holds.
    bytes[4096 + 25..4096 + 33].copy_from_slice(&(1i64 << 50).to_le_bytes());
    let bad = dir.path().join("lying.sif");
    std::fs::write(&bad, &bytes).expect("write");
    let before = crate::holdings(&node);
    node.cli(&["push", bad.to_str().expect("utf8"), "lab-a/blast:bad"])
        .fails()
        .stderr_mentions("not a valid");
    assert_eq!(
        crate::holdings(&node),
        before,
        "the refused upload left content behind"
    );
    get(&node.at("/shubnet/v1/manifests/lab-a/blast/bad")).expect_status(404);
    // The node still takes the honest image afterwards.
    push(&node, &sif, "lab-a/blast:good", false);
}
