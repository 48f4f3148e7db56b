//! SIF tests on real images built at test time with `siftool` and `mksquashfs` (Debian packages
//! `siftool` and `squashfs-tools`), in the layout Apptainer writes, plus corrupted copies.

use super::squashfs::Window;
use super::*;
use crate::manifest::{MAX_MANIFEST_SIZE, Metadata, UnsignedManifest};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;

const DEF: &str = "Bootstrap: docker\nFrom: alpine:3.20\n\n%labels\n    maintainer lab-a\n";
const SQ_DEF: &str = "Bootstrap: docker\nFrom: alpine:3.19\n";
const LABELS_JSON: &str =
    "{\n\t\"maintainer\": \"squash-lab\",\n\t\"org.label-schema.schema-version\": \"1.0\"\n}";
const RUNSCRIPT: &str = "#!/bin/sh\n\nexec blastn \"$@\"\n";
const ENV90: &str = "#!/bin/sh\n# Custom environment shell code should follow\n\nexport A=1\n";
const ENV91: &str = "export B=\"two\"\n";
const HELP: &str = "Runs blastn.\n";

fn run(cmd: &mut Command, package: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?} ({e}); install the Debian package: apt-get install -y {package}",
            cmd.get_program()
        )
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// What goes into a test SIF.
struct Layout {
    deffile: bool,
    inspect_json: Option<String>,
    runscript_help: bool,
}

/// Builds a SIF like `apptainer build` does: Deffile, `inspect-metadata.json`, then a squashfs
/// primary system partition (amd64) holding `/.singularity.d`.
fn build_sif(dir: &Path, l: &Layout) -> Vec<u8> {
    let root = dir.join("root");
    write(&root, ".singularity.d/Singularity", SQ_DEF);
    write(&root, ".singularity.d/labels.json", LABELS_JSON);
    write(&root, ".singularity.d/runscript", RUNSCRIPT);
    write(
        &root,
        ".singularity.d/env/01-base.sh",
        "# base, not user environment\n",
    );
    write(&root, ".singularity.d/env/90-environment.sh", ENV90);
    write(&root, ".singularity.d/env/91-environment.sh", ENV91);
    write(&root, ".singularity.d/env/99-runtimevars.sh", "# runtime\n");
    if l.runscript_help {
        write(&root, ".singularity.d/runscript.help", HELP);
    }
    write(&root, "bin/tool", "payload that is not metadata\n");
    let fs = dir.join("rootfs.squashfs");
    run(
        Command::new("mksquashfs")
            .arg(&root)
            .arg(&fs)
            .args(["-noappend", "-all-root", "-quiet"]),
        "squashfs-tools",
    );
    let sif = dir.join("image.sif");
    run(Command::new("siftool").arg("new").arg(&sif), "siftool");
    if l.deffile {
        write(dir, "recipe.def", DEF);
        run(
            Command::new("siftool")
                .args(["add", "--datatype", "1", "--groupid", "1"])
                .arg(&sif)
                .arg(dir.join("recipe.def")),
            "siftool",
        );
    }
    if let Some(json) = &l.inspect_json {
        write(dir, "meta.json", json);
        run(
            Command::new("siftool")
                .args(["add", "--datatype", "6", "--groupid", "1"])
                .args(["--filename", INSPECT_METADATA_NAME])
                .arg(&sif)
                .arg(dir.join("meta.json")),
            "siftool",
        );
    }
    run(
        Command::new("siftool")
            .args(["add", "--datatype", "4", "--groupid", "1"])
            .args(["--partfs", "1", "--parttype", "2", "--partarch", "2"])
            .arg(&sif)
            .arg(&fs),
        "siftool",
    );
    std::fs::read(&sif).expect("read sif")
}

fn inspect_json() -> String {
    serde_json::json!({
        "data": {"attributes": {
            "labels": {"maintainer": "json-lab", "org.label-schema.usage": "/.singularity.d/runscript.help"},
            "environment": {
                "/.singularity.d/env/91-environment.sh": "export J=\"2\"",
                "/.singularity.d/env/90-environment.sh": "export J=1",
            },
            "runscript": "#!/bin/sh\necho from-json\n",
            "deffile": "ignored: the Deffile object wins",
            "helpfile": "json help",
            "test": "",
        }},
        "type": "container",
    })
    .to_string()
}

fn full(dir: &Path) -> Vec<u8> {
    build_sif(
        dir,
        &Layout {
            deffile: true,
            inspect_json: Some(inspect_json()),
            runscript_help: true,
        },
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn header_and_descriptors_match_siftool() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = full(dir.path());
    let sif = Sif::read(&mut Cursor::new(&bytes)).unwrap().expect("a SIF");
    assert_eq!(sif.header.arch(), Some("amd64"));
    assert_eq!(sif.header.descriptors_total, 48);
    assert_eq!(sif.header.descriptors_offset, 4096);
    assert_eq!(sif.header.data_offset, 4096 + 48 * 585);
    assert_eq!(sif.descriptors.len(), 3);
    let def = &sif.descriptors[0];
    assert_eq!(def.data_type, DataType::Deffile);
    assert_eq!((def.id, def.group), (1, Some(1)));
    assert_eq!(def.offset, 32176);
    assert_eq!(def.size, DEF.len() as u64);
    let json = &sif.descriptors[1];
    assert_eq!(json.data_type, DataType::GenericJson);
    assert_eq!(json.name, INSPECT_METADATA_NAME);
    let (part, p) = sif.primary_partition().expect("primary partition");
    assert_eq!(part.offset % 4096, 0);
    assert_eq!(
        p,
        Partition {
            fs_type: FS_SQUASH,
            part_type: PART_PRIMSYS,
            arch: Some("amd64")
        }
    );
    assert_eq!(sif.arch(), Some("amd64"));
}

#[test]
fn metadata_from_inspect_metadata_json() {
    let dir = tempfile::tempdir().unwrap();
    let got = inspect(Cursor::new(full(dir.path()))).unwrap();
    assert!(got.sif);
    assert_eq!(got.source, MetadataSource::InspectMetadataJson);
    let m = &got.metadata;
    assert_eq!(m.arch.as_deref(), Some("amd64"));
    assert_eq!(m.deffile.as_deref(), Some(DEF));
    assert_eq!(m.runscript.as_deref(), Some("#!/bin/sh\necho from-json\n"));
    assert_eq!(
        m.labels,
        labels(&[
            ("maintainer", "json-lab"),
            ("org.label-schema.usage", "/.singularity.d/runscript.help")
        ])
    );
    assert_eq!(
        m.environment.as_deref(),
        Some(
            "=== /.singularity.d/env/90-environment.sh ===\nexport J=1\n\
             === /.singularity.d/env/91-environment.sh ===\nexport J=\"2\""
        )
    );
    assert_eq!(help(m).as_deref(), Some("json help"));
    assert!(truncated(m).is_empty());
}

#[test]
fn metadata_from_squashfs_when_json_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = build_sif(
        dir.path(),
        &Layout {
            deffile: true,
            inspect_json: None,
            runscript_help: true,
        },
    );
    let got = inspect(Cursor::new(bytes)).unwrap();
    assert_eq!(
        got.source,
        MetadataSource::Squashfs,
        "{:?}",
        got.fallback_error
    );
    let m = &got.metadata;
    assert_eq!(m.arch.as_deref(), Some("amd64"));
    assert_eq!(m.deffile.as_deref(), Some(DEF), "the Deffile object wins");
    assert_eq!(m.runscript.as_deref(), Some(RUNSCRIPT));
    assert_eq!(
        m.labels,
        labels(&[
            ("maintainer", "squash-lab"),
            ("org.label-schema.schema-version", "1.0")
        ])
    );
    assert_eq!(
        m.environment,
        Some(format!(
            "=== /.singularity.d/env/90-environment.sh ===\n{ENV90}\n\
             === /.singularity.d/env/91-environment.sh ===\n{ENV91}"
        ))
    );
    assert_eq!(help(m).as_deref(), Some(HELP));
}

#[test]
fn deffile_from_squashfs_when_there_is_no_deffile_object() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = build_sif(
        dir.path(),
        &Layout {
            deffile: false,
            inspect_json: None,
            runscript_help: false,
        },
    );
    let got = inspect(Cursor::new(bytes)).unwrap();
    assert_eq!(got.metadata.deffile.as_deref(), Some(SQ_DEF));
    assert_eq!(help(&got.metadata), None);
}

#[test]
fn not_a_sif_is_opaque_with_empty_metadata() {
    for bytes in [
        Vec::new(),
        b"hello".to_vec(),
        vec![0u8; 100_000],
        b"#!/usr/bin/env run-singularity\n\0SIF_MAGIX\0".to_vec(),
    ] {
        let got = inspect(Cursor::new(bytes)).unwrap();
        assert!(!got.sif);
        assert_eq!(got.metadata, Metadata::default());
        assert_eq!(got.source, MetadataSource::None);
    }
}

#[test]
fn truncated_sifs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = full(dir.path());
    for (len, want) in [
        (60, "header"),
        (127, "header"),
        (4096 + 585, "descriptor"),
        (32176 + 5, "outside"),
        (bytes.len() - 1, "outside"),
    ] {
        let err = inspect(Cursor::new(&bytes[..len])).expect_err("truncated");
        assert!(
            err.to_string().contains(want),
            "cut at {len}: {err} should mention {want}"
        );
    }
}

fn patch_i64(bytes: &mut [u8], at: usize, v: i64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Absolute position of field `field` of descriptor slot `slot`.
fn desc(slot: usize, field: usize) -> usize {
    4096 + slot * 585 + field
}

/// A named corruption of a good SIF.
type Patch = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn lying_descriptors_are_errors_not_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let good = full(dir.path());
    let len = good.len() as i64;
    let cases: Vec<(&str, Patch)> = vec![
        (
            "offset past EOF",
            Box::new(move |b| patch_i64(b, desc(0, 17), len + 10)),
        ),
        (
            "huge size",
            Box::new(|b| patch_i64(b, desc(0, 25), i64::MAX)),
        ),
        ("negative size", Box::new(|b| patch_i64(b, desc(1, 25), -1))),
        (
            "negative offset",
            Box::new(|b| patch_i64(b, desc(1, 17), -4096)),
        ),
        (
            "offset in header",
            Box::new(|b| patch_i64(b, desc(0, 17), 10)),
        ),
        (
            "offset in table",
            Box::new(|b| patch_i64(b, desc(0, 17), 5000)),
        ),
        ("huge count", Box::new(|b| patch_i64(b, 88, 1 << 40))),
        ("negative count", Box::new(|b| patch_i64(b, 88, -1))),
        (
            "table past EOF",
            Box::new(move |b| patch_i64(b, 96, len - 100)),
        ),
        ("table in header", Box::new(|b| patch_i64(b, 96, 0))),
        (
            "bad version",
            Box::new(|b| b[42..44].copy_from_slice(b"02")),
        ),
        (
            "overlap",
            Box::new(|b| {
                let off = b[desc(0, 17)..desc(0, 17) + 8].to_vec();
                b[desc(1, 17)..desc(1, 17) + 8].copy_from_slice(&off);
            }),
        ),
    ];
    for (what, patch) in cases {
        let mut bytes = good.clone();
        patch(&mut bytes);
        let err = inspect(Cursor::new(bytes)).expect_err(what);
        let msg = err.to_string();
        assert!(!msg.is_empty(), "{what}");
        match (what, &err) {
            ("huge count" | "negative count", SifError::TooManyDescriptors(_))
            | ("overlap", SifError::Overlap(..))
            | ("bad version", SifError::UnsupportedVersion(_))
            | ("table past EOF", SifError::Truncated(_))
            | ("table in header", SifError::BadHeader(_))
            | (_, SifError::OutOfBounds { .. }) => {}
            _ => panic!("{what}: unexpected error {err:?}"),
        }
    }
}

#[test]
fn objects_over_the_cap_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = full(dir.path());
    let mut r = Cursor::new(&bytes);
    let sif = Sif::read(&mut r).unwrap().expect("a SIF");
    let def = sif.find(DataType::Deffile, None).expect("deffile");
    let err = sif.read_object(&mut r, def, 4).expect_err("too large");
    assert!(matches!(err, SifError::ObjectTooLarge { size, .. } if size == DEF.len() as u64));
}

#[test]
fn invalid_inspect_metadata_json_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = build_sif(
        dir.path(),
        &Layout {
            deffile: true,
            inspect_json: Some("{\"data\": [1, 2]}".into()),
            runscript_help: false,
        },
    );
    let err = inspect(Cursor::new(bytes)).expect_err("bad json");
    assert!(matches!(err, SifError::BadMetadata { .. }), "{err:?}");
}

#[test]
fn corrupt_squashfs_gives_no_fallback_metadata_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = build_sif(
        dir.path(),
        &Layout {
            deffile: true,
            inspect_json: None,
            runscript_help: false,
        },
    );
    let sif = Sif::read(&mut Cursor::new(&bytes)).unwrap().expect("a SIF");
    let (part, _) = sif.primary_partition().expect("partition");
    let (start, end) = (part.offset as usize, (part.offset + part.size) as usize);
    for (i, b) in bytes[start + 96..end].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    let got = inspect(Cursor::new(bytes)).unwrap();
    assert_eq!(got.source, MetadataSource::None);
    assert!(got.fallback_error.is_some());
    assert_eq!(got.metadata.deffile.as_deref(), Some(DEF));
    assert!(got.metadata.labels.is_empty());
}

#[test]
fn window_reads_and_seeks_only_inside_its_bounds() {
    let data: Vec<u8> = (0u8..100).collect();
    let mut w = Window::new(Cursor::new(&data), 10, 20).unwrap();
    let mut all = Vec::new();
    w.read_to_end(&mut all).unwrap();
    assert_eq!(all, (10u8..30).collect::<Vec<_>>());
    assert_eq!(w.seek(SeekFrom::End(-5)).unwrap(), 15);
    let mut b = [0u8; 10];
    assert_eq!(w.read(&mut b).unwrap(), 5);
    assert_eq!(&b[..5], &[25, 26, 27, 28, 29]);
    assert_eq!(w.seek(SeekFrom::Start(1000)).unwrap(), 1000);
    assert_eq!(w.read(&mut b).unwrap(), 0);
    assert!(w.seek(SeekFrom::Current(-2000)).is_err());
}

#[test]
fn fitted_metadata_always_signs_under_the_manifest_cap() {
    let big = "é".repeat(600_000);
    let mut m = Metadata {
        arch: Some("amd64".into()),
        deffile: Some(big.clone()),
        runscript: Some(big.clone()),
        environment: Some(big.clone()),
        labels: (0..5000)
            .map(|i| (format!("label.{i:05}"), "v".repeat(3000)))
            .collect(),
        ..Metadata::default()
    };
    metadata_help_for_test(&mut m, &big);
    let fitted = fit_metadata(m);
    assert!(
        fitted
            .deffile
            .as_ref()
            .is_some_and(|d| d.len() <= 24 * 1024)
    );
    assert!(!fitted.labels.is_empty());
    assert_eq!(
        truncated(&fitted),
        ["deffile", "runscript", "environment", "help", "labels"]
    );
    let roster = crate::roster::Roster::genesis("t", vec![[7; 32]], 1, 1);
    let body = UnsignedManifest {
        federation: roster.federation_id().unwrap(),
        collection: "lab-a".into(),
        name: "big".into(),
        tag: "latest".into(),
        root: Some(crate::cid::cid_for(crate::cid::RAW, b"x")),
        size: 1,
        sha256: [1; 32],
        media_type: crate::manifest::MEDIA_TYPE_SIF.into(),
        metadata: fitted,
        created: 1,
        seq: 1,
        pushed_by: "alice".into(),
        ..UnsignedManifest::default()
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let m = body.sign(&key).expect("fits");
    assert!(m.encode().len() <= MAX_MANIFEST_SIZE);
}

fn metadata_help_for_test(m: &mut Metadata, text: &str) {
    let mut raw = Vec::new();
    crate::manifest::cbor::text(&mut raw, text);
    m.extra.insert(HELP_KEY.into(), raw);
}

/// A squashfs whose inode table is `blocks` zlib blocks of under 32 KiB, each inflating to
/// 31 MiB of zeros: what a decompression bomb looks like to the reader.
fn squashfs_bomb(blocks: usize) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..31 {
        z.write_all(&zeros).expect("compressing");
    }
    let block = z.finish().expect("compressing");
    // The top bit of a metadata block's length marks it uncompressed.
    let block_len = u16::try_from(block.len())
        .ok()
        .filter(|l| *l < 0x8000)
        .expect("a block under 32 KiB");
    let inode_table = 96u64;
    let mut body = Vec::new();
    for _ in 0..blocks {
        body.extend_from_slice(&block_len.to_le_bytes());
        body.extend_from_slice(&block);
    }
    let dir_table = inode_table + body.len() as u64;
    body.extend_from_slice(&(0x8000u16 | 8).to_le_bytes());
    body.extend_from_slice(&[0; 8]);
    let id_table = inode_table + body.len() as u64;
    body.extend_from_slice(&(id_table + 8).to_le_bytes());
    body.extend_from_slice(&(0x8000u16 | 4).to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    let end = inode_table + body.len() as u64;
    let mut sb = Vec::with_capacity(96);
    for v in [0x7371_7368u32, 1, 0, 131_072, 0] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    // gzip, block_log 17, flags, one id, version 4.0.
    for v in [1u16, 17, 0, 1, 4, 0] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    let not_set = u64::MAX;
    for v in [
        0,
        end,
        id_table,
        not_set,
        inode_table,
        dir_table,
        not_set,
        not_set,
    ] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(sb.len(), 96);
    sb.extend_from_slice(&body);
    sb
}

#[test]
fn a_squashfs_bomb_stops_at_the_budget() {
    let bomb = squashfs_bomb(8);
    assert!(bomb.len() < 300_000, "{} bytes", bomb.len());
    let len = bomb.len() as u64;
    let e = squashfs::read_singularity_d(Cursor::new(&bomb), 0, len)
        .expect_err("a bomb has no metadata");
    assert!(
        matches!(e, SifError::OverBudget { budget } if budget == squashfs::DECOMPRESSION_BUDGET),
        "{e:?}"
    );
    // A real image reads within the default budget, and not within a tiny one.
    let tmp = tempfile::tempdir().expect("tmp");
    let sif = build_sif(
        tmp.path(),
        &Layout {
            deffile: false,
            inspect_json: None,
            runscript_help: false,
        },
    );
    let parsed = Sif::read(&mut Cursor::new(&sif))
        .expect("reads")
        .expect("a SIF");
    let (d, _) = parsed.primary_partition().expect("a partition");
    let files = squashfs::read_singularity_d(Cursor::new(&sif), d.offset, d.size).expect("reads");
    assert!(!files.files.is_empty());
    let e = squashfs::read_within(Cursor::new(&sif), d.offset, d.size, 16)
        .expect_err("16 bytes are not enough");
    assert!(matches!(e, SifError::OverBudget { budget: 16 }), "{e:?}");
}
