//! Manifest verification and tag lookup benchmark.
//!
//! Run: `cargo run --release -p shubnet-node --example bench_manifests -- [COUNT]`
//! (default 100000). Prints, measured in the same run:
//! - `manifest_verify_vs_bare_ed25519`: manifests fully verified per second (decode, canonical
//!   check, signature, roster membership, namespace) divided by bare `verify_strict` calls per
//!   second on messages of the same size (target >= 0.8);
//! - `tag_lookup_p99_us`: p99 of resolving a tag to its head manifest through the node's
//!   registry index, over COUNT manifests in COUNT/10 tags (target < 1000 µs).
//!
//! The registry is filled through the real acceptance path (log/ with fsync, then the index);
//! its rate is printed as info.

use ed25519_dalek::{Signer, SigningKey};
use shubnet_node::keys::NodeKeys;
use shubnet_node::paths::DataDir;
use shubnet_node::registry::Registry;
use shubnet_protocol::cid::{RAW, cid_for};
use shubnet_protocol::manifest::{Manifest, UnsignedManifest, Verifier};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let per_tag = 10;
    let tmp = tempfile::tempdir()?;
    let dir = DataDir::new(tmp.path());
    let (keys, _) = NodeKeys::init(&dir)?;
    let publisher = keys.publisher.clone();
    let db = shubnet_node::db::Index::open(&dir.index())?;
    let reg = Registry::open(dir.clone(), &db, keys)?;
    let fed = reg.create_federation(
        "bench",
        "bench",
        vec!["*".into()],
        0,
        Default::default(),
        None,
    )?;
    let roster = reg.roster()?.ok_or("no roster")?.body;

    eprintln!("signing {count} manifests...");
    let mut encoded = Vec::with_capacity(count);
    let mut prev: Option<Manifest> = None;
    for i in 0..count {
        let tag = i / per_tag;
        let seq = (i % per_tag) as u64 + 1;
        if seq == 1 {
            prev = None;
        }
        let root = cid_for(RAW, &i.to_le_bytes());
        let m = UnsignedManifest {
            federation: fed.clone(),
            collection: format!("coll{}", tag % 100),
            name: format!("img{tag}"),
            tag: "v1".into(),
            root: Some(root),
            size: 1 << 30,
            sha256: [7; 32],
            media_type: shubnet_protocol::manifest::MEDIA_TYPE_SIF.into(),
            created: 1_700_000_000 + i as u64,
            seq,
            prev: prev.as_ref().map(Manifest::cid),
            pushed_by: "bench".into(),
            ..Default::default()
        }
        .sign(&publisher)?;
        encoded.push(m.encode());
        prev = Some(m);
    }

    // Baseline: bare ed25519 verification of messages of the same size.
    let msg_len = encoded.iter().map(Vec::len).sum::<usize>() / count;
    let base_key = SigningKey::from_bytes(&[9; 32]);
    let msgs: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut m = vec![0u8; msg_len];
            m[..8].copy_from_slice(&(i as u64).to_le_bytes());
            m
        })
        .collect();
    let sigs: Vec<_> = msgs.iter().map(|m| base_key.sign(m)).collect();
    let vk = base_key.verifying_key();
    let t = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs) {
        vk.verify_strict(m, s)?;
    }
    let bare_rate = count as f64 / t.elapsed().as_secs_f64();

    // Full manifest verification, as the registry does it: the roster's keys are decoded once
    // per roster version (Verifier), each manifest is decoded, checked canonical, and verified.
    let t = Instant::now();
    let verifier = Verifier::new(&roster, &fed);
    for bytes in &encoded {
        let m = Manifest::decode(bytes)?;
        verifier.verify(&m)?;
    }
    let verify_rate = count as f64 / t.elapsed().as_secs_f64();

    // Fill the registry through the acceptance path.
    eprintln!("accepting {count} manifests into the registry (log/ + index)...");
    let t = Instant::now();
    for bytes in &encoded {
        reg.accept_manifest(&Manifest::decode(bytes)?)?;
    }
    let accept_rate = count as f64 / t.elapsed().as_secs_f64();

    // Tag lookups, in a scattered order.
    let tags = count / per_tag;
    let mut lat = Vec::with_capacity(tags);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..tags {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let tag = (x % tags as u64) as usize;
        let t = Instant::now();
        let head = reg.head(&format!("coll{}", tag % 100), &format!("img{tag}"), "v1")?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if head.map(|h| h.body.seq) != Some(per_tag as u64) {
            return Err(format!("tag {tag} resolved to the wrong head").into());
        }
    }
    lat.sort_by(f64::total_cmp);
    let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];

    println!("bench_manifests: {count} manifests, {tags} tags, {msg_len}-byte manifests");
    println!(
        "info: bare ed25519 verify_strict: {bare_rate:.0}/s; full manifest verify: {verify_rate:.0}/s"
    );
    println!("info: accept (verify + succession + log fsync + index): {accept_rate:.0}/s");
    let ratio = verify_rate / bare_rate;
    println!(
        "manifest_verify_vs_bare_ed25519: {ratio:.2} (target >= 0.8) {}",
        if ratio >= 0.8 { "ok" } else { "MISSED" }
    );
    println!(
        "tag_lookup_p99_us: {p99:.1} (target < 1000) {}",
        if p99 < 1000.0 { "ok" } else { "MISSED" }
    );
    Ok(())
}
