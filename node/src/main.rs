//! The `shubnet` command: parses arguments and hands off to the library. This is the only place
//! `anyhow` errors are turned into exit codes.
//!
//! Exit codes: 0 success, 1 the command failed (the message says why), 2 bad usage (clap).

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the gateway allocates many small, short-lived buffers
/// per request on every worker thread, and glibc's arena locking and chunk consolidation showed
/// up as a fifth of a manifest request's CPU in `perf` (bench/gateway.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = <shubnet_node::cli::Cli as clap::Parser>::parse();
    match shubnet_node::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shubnet: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
