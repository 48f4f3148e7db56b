//! The `shubnet` command: parses arguments and hands off to the library. This is the only place
//! `anyhow` errors are turned into exit codes. It must not hold any command's logic: that lives
//! in `shubnet_node::cli`.
//!
//! Exit codes: 0 success, 1 the command failed (the message says why), 2 bad usage (clap).

use std::process::ExitCode;

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
