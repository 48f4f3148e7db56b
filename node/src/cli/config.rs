//! `shubnet config check|reference`: validate a config file before a restart, and print the
//! option reference the docs are generated from.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use crate::config::{check, schema};
use crate::paths::{DATA_DIR_ENV, DataDir};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;

/// `shubnet config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file: unknown keys, wrong types, bad addresses and patterns, each
    /// reported with its line. Exits non-zero if anything is wrong.
    Check {
        /// The file [default: DATA_DIR/config.toml].
        file: Option<PathBuf>,
        /// Data directory whose config.toml to check [default: ~/.local/share/shubnet].
        #[arg(long, env = DATA_DIR_ENV, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print every option (key, type, default, environment variable, flag) as Markdown.
    Reference,
}

/// Runs `config ...`.
pub fn config(c: ConfigCommand) -> Result<()> {
    match c {
        ConfigCommand::Check { file, data_dir } => {
            let path = file.unwrap_or_else(|| {
                DataDir::new(data_dir.unwrap_or_else(DataDir::default_location)).config()
            });
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let problems = check::check_text(&text);
            if problems.is_empty() {
                println!("{}: ok", path.display());
                return Ok(());
            }
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            bail!(
                "{} problem(s) in {}; see `shubnet config reference` for every option",
                problems.len(),
                path.display()
            )
        }
        ConfigCommand::Reference => {
            print!("{}", schema::reference_markdown());
            Ok(())
        }
    }
}
