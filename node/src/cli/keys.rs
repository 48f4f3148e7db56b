//! `shubnet init` and `shubnet keys show`: local commands that need no running node.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use crate::admin_token::AdminToken;
use crate::config::NodeConfig;
use crate::keys::NodeKeys;
use crate::paths::{DATA_DIR_ENV, DataDir};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Options naming the data directory.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Data directory [default: ~/.local/share/shubnet].
    #[arg(long, env = DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DirArgs {
    fn dir(&self) -> DataDir {
        DataDir::new(
            self.data_dir
                .clone()
                .unwrap_or_else(DataDir::default_location),
        )
    }
}

/// `shubnet keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the node's peer id and public keys.
    Show {
        #[command(flatten)]
        dir: DirArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_keys(keys: &NodeKeys, json: bool) -> Result<()> {
    if json {
        let v = serde_json::json!({
            "peer_id": keys.peer_id().to_string(),
            "publisher_key": keys.publisher_hex(),
            "admin_key": keys.admin_hex(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("peer id:        {}", keys.peer_id());
        println!("publisher key:  {}", keys.publisher_hex());
        println!("admin key:      {}", keys.admin_hex());
    }
    Ok(())
}

/// `shubnet init`: creates the data directory, keys, admin token and config.toml. Safe to run
/// again: nothing that exists is replaced.
pub fn init(a: DirArgs) -> Result<()> {
    let dir = a.dir();
    crate::owner_only::restrict_umask();
    crate::owner_only::secure(&dir)
        .with_context(|| format!("creating {}", dir.root().display()))?;
    let (keys, created) = NodeKeys::init(&dir).context("creating the node keys")?;
    AdminToken::load_or_create(&dir.admin_token()).context("creating the admin token")?;
    if !dir.config().exists() {
        NodeConfig::default()
            .save(&dir)
            .context("writing config.toml")?;
    }
    if created {
        println!("initialised {}", dir.root().display());
    } else {
        println!(
            "{} was already initialised; nothing replaced",
            dir.root().display()
        );
    }
    print_keys(&keys, false)
}

/// `shubnet keys ...`.
pub fn keys(c: KeysCommand) -> Result<()> {
    match c {
        KeysCommand::Show { dir, json } => {
            let d = dir.dir();
            let keys = NodeKeys::load(&d).with_context(|| {
                format!(
                    "reading the keys in {} (run `shubnet init` first)",
                    d.root().display()
                )
            })?;
            print_keys(&keys, json)
        }
    }
}
