//! `shubnet inspect collection/name:tag [--json]`: the image metadata of a tag's head manifest
//! (architecture, labels, definition file, runscript, environment, help), as signed by its
//! publisher. The manifest comes from the node's verification API and is checked against the
//! federation's roster chain before anything is printed.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::NodeArgs;
use super::client::NodeClient;
use super::registry::{VerifyArgs, fetch_chain, urlencode};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use shubnet_protocol::manifest::{MEDIA_TYPE_SIF, Manifest};
use shubnet_protocol::reference::Reference;
use shubnet_protocol::sif::{help, truncated};
use std::io::Write;

/// `shubnet inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// collection/name:tag
    pub reference: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs `shubnet inspect`.
pub fn inspect(a: InspectArgs) -> Result<()> {
    let r = Reference::parse(&a.reference)
        .map_err(|e| anyhow!("{:?} is not collection/name:tag: {e}", a.reference))?;
    let federation = a.verify.federation_id(&a.node)?;
    let client = NodeClient::new(&a.node)?.with_bearer(a.verify.pull_token.clone());
    let m = super::runtime()?.block_on(async {
        let (chain, _) = fetch_chain(&client, &federation).await?;
        let roster = &chain
            .last()
            .ok_or_else(|| anyhow!("empty roster chain"))?
            .body;
        let path = format!(
            "/shubnet/v1/manifests/{}/{}/{}",
            r.collection,
            r.name,
            urlencode(&r.tag)
        );
        let bytes = client
            .get(&path)
            .await?
            .bytes()
            .await
            .context("reading the manifest")?;
        let m = Manifest::decode(&bytes).map_err(|e| anyhow!("manifest rejected: {e}"))?;
        m.verify_against(roster, &federation)
            .map_err(|e| anyhow!("manifest rejected: {e}"))?;
        let b = &m.body;
        if (&b.collection, &b.name, &b.tag) != (&r.collection, &r.name, &r.tag) {
            bail!(
                "manifest rejected: the node answered with {}/{}:{}",
                b.collection,
                b.name,
                b.tag
            );
        }
        Ok::<_, anyhow::Error>(m)
    })?;
    if m.body.tombstone {
        bail!("{} was deleted (manifest {})", r.tag_path(), m.cid());
    }
    let view = view(&m);
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &view)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &view)?;
    }
    Ok(())
}

/// The manifest's metadata as JSON: the `--json` output, and what the text output prints.
fn view(m: &Manifest) -> Value {
    let b = &m.body;
    let md = &b.metadata;
    json!({
        "reference": format!("{}/{}:{}", b.collection, b.name, b.tag),
        "manifest": m.cid().to_string(),
        "sif": b.media_type == MEDIA_TYPE_SIF,
        "media_type": b.media_type,
        "arch": md.arch,
        "labels": md.labels,
        "deffile": md.deffile,
        "runscript": md.runscript,
        "environment": md.environment,
        "help": help(md),
        "truncated": truncated(md),
    })
}

fn print_text(out: &mut impl Write, v: &Value) -> Result<()> {
    writeln!(
        out,
        "reference:  {}",
        v["reference"].as_str().unwrap_or_default()
    )?;
    writeln!(
        out,
        "manifest:   {}",
        v["manifest"].as_str().unwrap_or_default()
    )?;
    if v["sif"] != Value::Bool(true) {
        writeln!(
            out,
            "not a SIF:  opaque image ({}), no metadata",
            v["media_type"].as_str().unwrap_or_default()
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "arch:       {}",
        v["arch"].as_str().unwrap_or("unknown")
    )?;
    writeln!(out, "labels:")?;
    if let Some(labels) = v["labels"].as_object() {
        for (k, val) in labels {
            writeln!(out, "  {k}: {}", val.as_str().unwrap_or_default())?;
        }
    }
    for (title, key) in [
        ("definition file", "deffile"),
        ("runscript", "runscript"),
        ("environment", "environment"),
        ("help", "help"),
    ] {
        let Some(text) = v[key].as_str() else {
            writeln!(out, "{title}: (none)")?;
            continue;
        };
        writeln!(out, "{title}:")?;
        for line in text.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    if let Some(t) = v["truncated"].as_array().filter(|t| !t.is_empty()) {
        let names: Vec<&str> = t.iter().filter_map(Value::as_str).collect();
        writeln!(
            out,
            "truncated:  {} (cut to fit the signed manifest)",
            names.join(", ")
        )?;
    }
    Ok(())
}
