//! From a parsed SIF to the [`Metadata`] a manifest carries.
//!
//! Field by field:
//! - `arch`: [`Sif::arch`];
//! - `deffile`: the `Deffile` object; else `inspect-metadata.json`'s `deffile`; else the squashfs
//!   `/.singularity.d/Singularity`;
//! - `labels`, `runscript`, `extra["help"]` (Apptainer's `helpfile`): from
//!   `inspect-metadata.json`, else the squashfs `labels.json`, `runscript`, `runscript.help`;
//! - `environment`: Apptainer records a map from script path to text (`90-environment.sh` for
//!   `%environment`, `91-environment.sh` for `$SINGULARITY_ENVIRONMENT`); shubnet renders it as
//!   one text, `apptainer inspect -e` style: for each script in path order a line
//!   `=== /.singularity.d/env/NAME ===` followed by the script, blocks joined by `\n`. The
//!   squashfs fallback reads the same scripts (`env/*environment.sh`) and renders them alike.
//!
//! Then [`fit_metadata`] trims it so the signed manifest stays under its size cap.
//!
//! It must not hold the image in memory: every object is read through the parent's capped
//! readers and the squashfs window.

use super::squashfs::{self, SINGULARITY_D};
use super::{DataType, INSPECT_METADATA_NAME, MAX_OBJECT_SIZE, Sif, SifError};
use crate::manifest::{MAX_LABELS, Metadata, cbor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Seek};

/// Longest definition file kept in a manifest, in bytes.
pub const MAX_DEFFILE: usize = 24 * 1024;
/// Longest runscript kept.
pub const MAX_RUNSCRIPT: usize = 8 * 1024;
/// Longest environment text kept.
pub const MAX_ENVIRONMENT: usize = 8 * 1024;
/// Longest help text kept.
pub const MAX_HELP: usize = 4 * 1024;
/// Bytes of label keys and values kept, all labels together.
pub const MAX_LABEL_BYTES: usize = 12 * 1024;
/// Longest label key kept; longer keys are dropped.
pub const MAX_LABEL_KEY: usize = 256;
/// Longest label value kept.
pub const MAX_LABEL_VALUE: usize = 1024;
/// The `extra` key for the help text.
pub const HELP_KEY: &str = "help";
/// The `extra` key listing the fields [`fit_metadata`] shortened.
pub const TRUNCATED_KEY: &str = "truncated";

/// Where the labels, environment and runscript came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// Not a SIF, or a SIF with neither source.
    None,
    /// The generic JSON object `inspect-metadata.json`.
    InspectMetadataJson,
    /// Files under `/.singularity.d` in the squashfs primary partition.
    Squashfs,
}

/// What [`inspect`] learned about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// False for a file that is not a SIF: an opaque image, with empty metadata.
    pub sif: bool,
    /// The metadata, already trimmed by [`fit_metadata`].
    pub metadata: Metadata,
    /// Where labels, environment and runscript came from.
    pub source: MetadataSource,
    /// Why the squashfs fallback found nothing when it was tried and failed (unsupported
    /// compression, a corrupt filesystem); the rest of the metadata is still good.
    pub fallback_error: Option<String>,
}

impl Inspection {
    fn opaque() -> Self {
        Self {
            sif: false,
            metadata: Metadata::default(),
            source: MetadataSource::None,
            fallback_error: None,
        }
    }
}

/// Inspects a file: opaque when it is not a SIF, metadata when it is, an error when it claims
/// to be a SIF but is truncated or lies. Never reads more than the header, the descriptor table,
/// the small objects (each ≤ [`MAX_OBJECT_SIZE`]) and, for the fallback, the squashfs tables and
/// the few files it needs.
pub fn inspect<R: Read + Seek + Send>(mut r: R) -> Result<Inspection, SifError> {
    let Some((sif, mut out)) = inspect_objects(&mut r)? else {
        return Ok(Inspection::opaque());
    };
    if out.source == MetadataSource::None
        && let Some((d, p)) = sif.primary_partition()
        && p.fs_type == super::FS_SQUASH
    {
        match squashfs::read_singularity_d(&mut r, d.offset, d.size) {
            Ok(files) => {
                apply_singularity_d(&mut out.metadata, files.files)?;
                out.source = MetadataSource::Squashfs;
            }
            Err(e) => out.fallback_error = Some(e.to_string()),
        }
    }
    out.metadata = fit_metadata(out.metadata);
    Ok(out)
}

/// [`inspect`] without the squashfs fallback: the header, descriptors, `Deffile` and
/// `inspect-metadata.json` only. What the fuzz target exercises.
pub fn inspect_without_squashfs<R: Read + Seek>(mut r: R) -> Result<Inspection, SifError> {
    Ok(match inspect_objects(&mut r)? {
        None => Inspection::opaque(),
        Some((_, mut out)) => {
            out.metadata = fit_metadata(out.metadata);
            out
        }
    })
}

fn inspect_objects<R: Read + Seek>(r: &mut R) -> Result<Option<(Sif, Inspection)>, SifError> {
    let Some(sif) = Sif::read(r)? else {
        return Ok(None);
    };
    let mut m = Metadata {
        arch: sif.arch().map(str::to_owned),
        ..Metadata::default()
    };
    if let Some(d) = sif.find(DataType::Deffile, None) {
        let bytes = sif.read_object(r, d, MAX_OBJECT_SIZE)?;
        m.deffile = Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    let mut source = MetadataSource::None;
    if let Some(d) = sif.find(DataType::GenericJson, Some(INSPECT_METADATA_NAME)) {
        let bytes = sif.read_object(r, d, MAX_OBJECT_SIZE)?;
        apply_inspect_json(&mut m, &bytes)?;
        source = MetadataSource::InspectMetadataJson;
    }
    Ok(Some((
        sif,
        Inspection {
            sif: true,
            metadata: m,
            source,
            fallback_error: None,
        },
    )))
}

fn bad(name: &'static str, reason: impl Into<String>) -> SifError {
    SifError::BadMetadata {
        name,
        reason: reason.into(),
    }
}

/// Applies Apptainer's `{"data":{"attributes":{…}},"type":"container"}`.
fn apply_inspect_json(m: &mut Metadata, bytes: &[u8]) -> Result<(), SifError> {
    const NAME: &str = INSPECT_METADATA_NAME;
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(NAME, e.to_string()))?;
    let attrs = v
        .get("data")
        .and_then(|d| d.get("attributes"))
        .and_then(Value::as_object)
        .ok_or_else(|| bad(NAME, "no data.attributes object"))?;
    let text = |key: &str| -> Result<Option<String>, SifError> {
        match attrs.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(NAME, format!("{key} is not a string"))),
        }
    };
    if m.deffile.is_none() {
        m.deffile = text("deffile")?;
    }
    m.runscript = text("runscript")?;
    if let Some(help) = text("helpfile")? {
        set_help(m, &help);
    }
    if let Some(labels) = attrs.get("labels").filter(|l| !l.is_null()) {
        m.labels = labels_from(labels).ok_or_else(|| bad(NAME, "labels is not an object"))?;
    }
    if let Some(env) = attrs.get("environment").filter(|e| !e.is_null()) {
        let env = env
            .as_object()
            .ok_or_else(|| bad(NAME, "environment is not an object"))?;
        let mut scripts = BTreeMap::new();
        for (path, text) in env {
            let text = text
                .as_str()
                .ok_or_else(|| bad(NAME, "an environment script is not a string"))?;
            scripts.insert(path.clone(), text.to_owned());
        }
        m.environment = render_environment(&scripts);
    }
    Ok(())
}

/// Applies the files the squashfs fallback read.
fn apply_singularity_d(m: &mut Metadata, files: BTreeMap<String, Vec<u8>>) -> Result<(), SifError> {
    let mut scripts = BTreeMap::new();
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match path.strip_prefix(SINGULARITY_D) {
            Some("/labels.json") => {
                let v: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| bad("/.singularity.d/labels.json", e.to_string()))?;
                m.labels = labels_from(&v)
                    .ok_or_else(|| bad("/.singularity.d/labels.json", "not an object"))?;
            }
            Some("/Singularity") if m.deffile.is_none() && !text.is_empty() => {
                m.deffile = Some(text);
            }
            Some("/runscript") if !text.is_empty() => m.runscript = Some(text),
            Some("/runscript.help") if !text.is_empty() => set_help(m, &text),
            Some(rest) if rest.starts_with("/env/") => {
                scripts.insert(path, text);
            }
            _ => {}
        }
    }
    m.environment = render_environment(&scripts);
    Ok(())
}

/// Labels as Apptainer writes them: string values; any other JSON value is kept as its JSON text.
fn labels_from(v: &Value) -> Option<BTreeMap<String, String>> {
    let obj = v.as_object()?;
    Some(
        obj.iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// `=== PATH ===\nSCRIPT` per script in path order, joined by `\n`; `None` when there are none.
fn render_environment(scripts: &BTreeMap<String, String>) -> Option<String> {
    if scripts.is_empty() {
        return None;
    }
    let blocks: Vec<String> = scripts
        .iter()
        .map(|(path, text)| format!("=== {path} ===\n{text}"))
        .collect();
    Some(blocks.join("\n"))
}

fn set_help(m: &mut Metadata, help: &str) {
    let mut raw = Vec::new();
    cbor::text(&mut raw, help);
    m.extra.insert(HELP_KEY.to_owned(), raw);
}

/// The help text (`extra["help"]`), when present.
pub fn help(m: &Metadata) -> Option<String> {
    let raw = m.extra.get(HELP_KEY)?;
    let mut d = cbor::Decoder::new(raw);
    d.text("metadata.help").ok().map(str::to_owned)
}

/// The fields [`fit_metadata`] shortened (`extra["truncated"]`), empty when none were.
pub fn truncated(m: &Metadata) -> Vec<String> {
    let Some(raw) = m.extra.get(TRUNCATED_KEY) else {
        return Vec::new();
    };
    let mut d = cbor::Decoder::new(raw);
    let Ok(n) = d.array("metadata.truncated", 16) else {
        return Vec::new();
    };
    (0..n)
        .map_while(|_| d.text("metadata.truncated").ok().map(str::to_owned))
        .collect()
}

/// Trims metadata so its manifest stays under [`crate::manifest::MAX_MANIFEST_SIZE`]: each text
/// is cut (at a character boundary) to its cap (`MAX_DEFFILE`, `MAX_RUNSCRIPT`,
/// `MAX_ENVIRONMENT`, `MAX_HELP`), labels beyond `MAX_LABEL_BYTES` or [`MAX_LABELS`] are
/// dropped (keys in order), and `extra["truncated"]` lists the fields that were shortened.
pub fn fit_metadata(mut m: Metadata) -> Metadata {
    let mut cut: Vec<&str> = Vec::new();
    for (name, field, max) in [
        ("deffile", &mut m.deffile, MAX_DEFFILE),
        ("runscript", &mut m.runscript, MAX_RUNSCRIPT),
        ("environment", &mut m.environment, MAX_ENVIRONMENT),
    ] {
        if let Some(s) = field
            && truncate(s, max)
        {
            cut.push(name);
        }
    }
    if let Some(mut h) = help(&m)
        && truncate(&mut h, MAX_HELP)
    {
        set_help(&mut m, &h);
        cut.push(HELP_KEY);
    }
    let mut used = 0;
    let mut labels_cut = false;
    let mut kept = BTreeMap::new();
    for (k, mut v) in std::mem::take(&mut m.labels) {
        labels_cut |= truncate(&mut v, MAX_LABEL_VALUE);
        let cost = k.len() + v.len();
        if k.len() > MAX_LABEL_KEY
            || used + cost > MAX_LABEL_BYTES
            || kept.len() as u64 >= MAX_LABELS
        {
            labels_cut = true;
            continue;
        }
        used += cost;
        kept.insert(k, v);
    }
    if labels_cut {
        cut.push("labels");
    }
    m.labels = kept;
    if !cut.is_empty() {
        let mut raw = Vec::new();
        cbor::array(&mut raw, cut.len());
        for name in &cut {
            cbor::text(&mut raw, name);
        }
        m.extra.insert(TRUNCATED_KEY.to_owned(), raw);
    }
    m
}

/// Cuts `s` to at most `max` bytes at a character boundary; true when it cut.
fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}
