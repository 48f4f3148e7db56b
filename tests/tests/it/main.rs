//! shubnet's process-level integration tests: one test binary, one module per concern.
//!
//! Every test runs the real `shubnet` binary (see `shubnet_tests::bin`), so build it first:
//! `cargo build --workspace --bins && cargo test --workspace`. Tests that compare with the
//! JavaScript reference implementations need `tests/js/node_modules` (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// `shubnet cid` against known answers and against `ipfs-unixfs-importer`.
mod cid;

/// CAR export read by `@ipld/car`; CARs written by `CarWriter` imported by shubnet.
mod car;

/// The HTTP gateway end to end: add, cat, GET with ranges, HEAD, errors; and curl.
mod gateway;

/// kill -9 during an upload; losing the index.
mod crash;

/// Blobs on object storage, against a real Garage server: gateway, federation, crash, faults.
mod s3;

/// `/shubnet/fetch/1` through the delay proxy: a 40 ms link keeps most of the loopback speed.
mod wan;

/// Input that must be refused cleanly, leaving the node as it was.
mod bad_input;

/// The real oras-py client: SIF artifacts pushed and pulled through the OCI distribution API.
mod oras;

/// User tokens and private collections: `shubnet token`, `shubnet collection`, `/tokens/check`.
mod tokens;

/// The federation through the CLI with separate nodes: threshold-2 admission, restart, index loss.
mod federation;

/// Attacks through the CLI and a malicious gateway: each refused, nothing stored or written.
mod attacks;

/// `/shubnet/fetch/1` between federation members: gating, malicious holder, on-demand reads,
/// rate limits, resumption.
mod fetch;

/// Damage to a verified blob found by `shubnet scrub` or a fetcher's bad-leaf report:
/// quarantined and fetched again.
mod scrub;

/// Key files readable by others keep the node from starting.
mod key_files;

/// Placement and repair across three institutions: k holders, a lost member, repair.
mod replication;

/// The previous release beside this build in one federation, then upgraded in place.
mod mixed_versions;

/// Deployment files: compose, Kubernetes, systemd, and the Dockerfile's build in CI.
mod deploy;

/// `/readyz` fails while a member is isolated; the federation document lists members.
mod readiness;

/// Members dialled by DNS name across a network namespace, found again after they move.
mod dns;

/// `shubnet config check` and the generated option reference.
mod config;

/// `shubnet backup` and `restore`.
mod backup;

/// `shubnet leave`: a node hands its images over before it departs.
mod leave;

/// SIGTERM drains in-flight uploads within the grace period and loses nothing.
mod shutdown;

/// The operator guide's commands, run word for word by `deploy/e2e.sh`.
mod guide;

/// The web UI in headless Chromium and the Nu HTML checker; search; `/metrics`.
mod ui;

use std::path::{Path, PathBuf};

/// A fresh temporary directory for one test.
pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shubnet-it-")
        .tempdir()
        .expect("creating a temp dir")
}

/// `dir/name`, as a `PathBuf`.
pub fn file_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// `shubnet cid FILE [--chunk-size C --max-links L]`, checked; no node involved.
#[track_caller]
pub fn shubnet_cid(file: &Path, layout: Option<(u64, u64)>) -> String {
    let mut args: Vec<std::ffi::OsString> = vec!["cid".into(), file.as_os_str().to_owned()];
    if let Some((c, l)) = layout {
        args.push("--chunk-size".into());
        args.push(c.to_string().into());
        args.push("--max-links".into());
        args.push(l.to_string().into());
    }
    shubnet_tests::run_cmd(&mut shubnet_tests::bin::shubnet_command(&args))
        .ok()
        .out()
}

/// What a node holds, for "nothing changed" checks: pins, blob files, partial files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdings {
    /// `shubnet pin ls --json`, sorted.
    pub pins: Vec<(String, u64)>,
    /// Files under `DATA_DIR/blobs`.
    pub blobs: Vec<String>,
    /// Files under `DATA_DIR/partial`.
    pub partial: Vec<String>,
}

/// Takes stock of `node`.
pub fn holdings(node: &shubnet_tests::TestNode) -> Holdings {
    Holdings {
        pins: node.pins(),
        blobs: node.files_under("blobs"),
        partial: node.files_under("partial"),
    }
}

/// Private collections: manifests and listings need a user token with the pull right.
mod private;
/// Privacy as federation state: the owner's signed policy and tokens, on every member.
mod private_fed;

/// SIF metadata: extracted at push, signed into the manifest, shown by `shubnet inspect`.
mod sif;

/// Unmodified Helia (tests/js-helia, Node 22) fetching from a node over Bitswap 1.2.0.
mod helia;
/// The federation swarm: gossip, sync catch-up, gating, reconnect.
mod sync;

/// The shub API as Apptainer's `shub://` client uses it.
mod shub;

/// The real `sregistry` client: push, pull, private pulls, delete.
mod sregistry;

/// Apptainer's library client (Go) and the library API.
mod library;

/// Traversal in every path segment; truncated and oversized library uploads.
mod client_bad_input;
/// Every client pull served by a member that did not hold the image (on-demand).
mod gateway_fed;
/// Request-head and body-idle timeouts; library uploads that are never tagged expire.
mod gateway_limits;
/// `serve --tls-cert/--tls-key`: HTTPS with rustls.
mod tls;

/// CLI polish: completions, progress bars, `--json`, errors with a next step.
mod cli;

/// Caching headers, metrics labels, multipart sessions and file modes (issue 13).
mod hardening;
/// Download counts across the federation: gossip, sync on connect, restarts.
mod usage;

/// A non-member js-libp2p peer floods Bitswap with duplicate wants: memory stays bounded and an
/// honest Helia fetch still completes.
mod bitswap_flood;
