//! Fills a node's registry with many signed tags, fast and honestly, for benchmarks that need a
//! large registry (the shub manifest endpoint in `bench/gateway.sh`; listings, search and the
//! web UI at 100 000 images).
//!
//! Run against a **stopped** node's data directory (the node holds the sled lock while it runs):
//!
//! ```sh
//! shubnet push image.sif lab-a/seed:v1          # a real push: content, SIF metadata, manifest
//! # stop the node, then:
//! cargo run --release -p shubnet-node --example seed_tags -- DATA_DIR 100000 lab-a/seed:v1 \
//!     [--per-name 10] [--name-prefix img]
//! # start the node again: the tags are there (index and log/)
//! ```
//!
//! Every new manifest is a copy of the template tag's head (same content root, size, sha256,
//! media type and SIF metadata) under `COLLECTION/PREFIX<i / per-name>:v<i % per-name>`,
//! signed with the node's own publisher key, and goes through the same path sync uses:
//! [`Registry::accept_manifests`] in batches of 1 000, which verifies each signature against
//! the roster, the namespace and the tag succession, writes `log/` (fsync) and the index. The
//! content is the template's, so the node holds every tagged image and replication has
//! nothing to fetch. Prints the tags stored per second.

use shubnet_node::keys::NodeKeys;
use shubnet_node::paths::DataDir;
use shubnet_node::registry::Registry;
use shubnet_protocol::manifest::{Manifest, UnsignedManifest};
use shubnet_protocol::reference::Reference;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const BATCH: usize = 1000;

fn usage() -> String {
    "usage: seed_tags DATA_DIR COUNT COLLECTION/NAME:TAG [--per-name N] [--name-prefix P]".into()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(count), Some(template)) = (args.first(), args.get(1), args.get(2)) else {
        return Err(usage().into());
    };
    let count: usize = count.parse().map_err(|_| usage())?;
    let mut per_name = 10usize;
    let mut prefix = "img".to_string();
    let mut rest = args[3..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(usage)?;
        match flag.as_str() {
            "--per-name" => per_name = value.parse::<usize>().map_err(|_| usage())?.max(1),
            "--name-prefix" => prefix = value.clone(),
            _ => return Err(usage().into()),
        }
    }

    let dir = DataDir::new(dir);
    let keys = NodeKeys::load(&dir)?;
    let publisher = keys.publisher.clone();
    let db = shubnet_node::db::Index::open(&dir.index())?;
    let reg = Registry::open(dir.clone(), &db, keys)?;
    let t = Reference::parse(template)?;
    let head = reg
        .head(&t.collection, &t.name, &t.tag)?
        .filter(|m| !m.body.tombstone)
        .ok_or_else(|| format!("{template} has no live manifest on this node; push it first"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();

    let started = Instant::now();
    let (mut accepted, mut known) = (0usize, 0usize);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..count {
        let name = format!("{prefix}{}", i / per_name);
        let tag = format!("v{}", i % per_name);
        let prev = reg.head(&head.body.collection, &name, &tag)?;
        let body = UnsignedManifest {
            name,
            tag,
            created: now,
            seq: prev.as_ref().map_or(1, |p| p.body.seq + 1),
            prev: prev.as_ref().map(Manifest::cid),
            frozen: false,
            pushed_by: "seed_tags".into(),
            ..head.body.clone()
        };
        batch.push(body.sign(&publisher)?);
        if batch.len() == BATCH || i + 1 == count {
            let report = reg.accept_manifests(std::mem::take(&mut batch))?;
            if let Some((cid, e)) = report.refused.first() {
                return Err(format!("manifest {cid} refused: {e}").into());
            }
            accepted += report.accepted;
            known += report.known;
        }
    }
    db.flush()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seed_tags: {accepted} tags stored ({known} already known) in {secs:.1} s, {:.0} tags/s",
        accepted as f64 / secs.max(1e-9)
    );
    Ok(())
}
