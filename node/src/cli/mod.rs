//! Every `shubnet` subcommand. Argument parsing is plain data (clap derive); each command is a
//! function in its own module. Commands that change a node go through its admin API over HTTP,
//! so the CLI never opens the store of a running node.

mod backup;
mod client;
mod config;
mod content;
mod duration;
mod inspect;
mod keys;
mod leave;
mod progress;
mod registry;
mod serve;
mod status;
mod tokens;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The default node URL: the default `serve --http` address.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:8080";

/// shubnet: a federated registry for Apptainer/Singularity images.
#[derive(Debug, Parser)]
#[command(name = "shubnet", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where a command finds the node it talks to.
#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    /// URL of the node's HTTP API [default: the URL the node wrote to DATA_DIR/api.url, else
    /// http://127.0.0.1:8080].
    #[arg(long = "node", env = "SHUBNET_NODE", value_name = "URL")]
    pub url: Option<String>,
    /// Data directory of that node, where its admin token is read from
    /// [default: ~/.local/share/shubnet].
    #[arg(long, env = crate::paths::DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin token to present instead of reading `DATA_DIR/keys/admin.token`.
    #[arg(
        long,
        env = "SHUBNET_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

impl NodeArgs {
    /// The node's URL: `--node`/`SHUBNET_NODE`, else what the running node wrote to
    /// `DATA_DIR/api.url` (so a node on another port needs no flag), else the default.
    pub fn base_url(&self) -> String {
        if let Some(u) = &self.url {
            return u.clone();
        }
        let dir = crate::paths::DataDir::new(
            self.data_dir
                .clone()
                .unwrap_or_else(crate::paths::DataDir::default_location),
        );
        std::fs::read_to_string(dir.api_file())
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| t.starts_with("http"))
            .unwrap_or_else(|| DEFAULT_NODE_URL.to_string())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: the content store and its HTTP gateway.
    Serve(Box<serve::ServeArgs>),
    /// Create the data directory, node keys, admin token and config.toml (serve does this on
    /// first start).
    Init(keys::DirArgs),
    /// Show this node's keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print the root CID a file would get (same as `ipfs add --cid-version=1`); stores nothing.
    Cid(content::CidArgs),
    /// Store and pin a file in the running node; prints its root CID.
    Add(content::AddArgs),
    /// Write the bytes of a CID to stdout.
    Cat(content::CatArgs),
    /// Fetch a CID from IPFS peers over Bitswap into the running node, verifying every block,
    /// and pin it; prints the root CID.
    Fetch(content::FetchArgs),
    /// Export or import CAR v1 archives.
    #[command(subcommand)]
    Car(content::CarCommand),
    /// List, add or remove pins.
    #[command(subcommand)]
    Pin(content::PinCommand),
    /// Create, join, inspect and govern the federation.
    #[command(subcommand)]
    Federation(registry::FederationCommand),
    /// Store an image and publish it under collection/name:tag with a signed manifest.
    Push(registry::PushArgs),
    /// Fetch an image from any gateway, verifying roster, manifest signature and content hash.
    Pull(registry::PullArgs),
    /// Delete a tag by publishing a signed tombstone.
    Delete(registry::DeleteArgs),
    /// Show an image's metadata (arch, labels, definition file, runscript, environment) from
    /// its tag's signed manifest.
    Inspect(inspect::InspectArgs),
    /// List tags, optionally under a collection or collection/name.
    Tags(registry::TagsArgs),
    /// Create, list and revoke user tokens (for sregistry and library clients).
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Make collections private or public.
    #[command(subcommand)]
    Collection(tokens::CollectionCommand),
    /// Remove all content that is not pinned.
    Gc(content::NodeOnly),
    /// Check every blob against its CID and rebuild the index from blobs/.
    Repair(content::NodeOnly),
    /// Re-hash every stored blob against its CIDs now, while the node serves. Blobs are hashed
    /// when they arrive, not each time they are served, so this (and the background scrub,
    /// `[scrub]` in config.toml) is what finds disk damage. A damaged blob is moved to
    /// quarantine/, no longer served or listed as held, and fetched again from another member.
    /// Exits non-zero if any blob was damaged.
    Scrub(content::NodeOnly),
    /// Show connected peers, the roster version, and each image's holders against its
    /// replication target (under-replicated images first).
    Status(status::StatusArgs),
    /// Write the node's cold backup (keys, config, manifest/roster log, tokens) to a file.
    /// Content is not included: the federation holds it.
    Backup(backup::BackupArgs),
    /// Recreate a data directory from a backup (then `serve` rebuilds and re-fetches).
    Restore(backup::RestoreArgs),
    /// Hand this node's images to the other members, then leave the roster and stop. Waits
    /// until every image it holds has k holders elsewhere; cancels (losing nothing) on timeout.
    Leave(leave::LeaveArgs),
    /// Stop the running node gracefully (as SIGTERM does) and wait until it has.
    Stop(leave::StopArgs),
    /// Check config.toml, or print the reference of every option.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script, e.g.
    /// `shubnet completions bash > /etc/bash_completion.d/shubnet`.
    Completions(CompletionsArgs),
}

/// `shubnet completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script for `shell` to stdout.
fn completions(a: CompletionsArgs) -> Result<()> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "shubnet", &mut std::io::stdout());
    Ok(())
}

/// The runtime a client command runs its HTTP calls on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs one command to completion.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(a) => serve::run(*a),
        Command::Init(a) => keys::init(a),
        Command::Keys(c) => keys::keys(c),
        Command::Cid(a) => content::cid(a),
        Command::Add(a) => content::add(a),
        Command::Cat(a) => content::cat(a),
        Command::Fetch(a) => content::fetch(a),
        Command::Car(c) => content::car(c),
        Command::Pin(c) => content::pin(c),
        Command::Federation(c) => registry::federation(c),
        Command::Push(a) => registry::push(a),
        Command::Pull(a) => registry::pull(a),
        Command::Delete(a) => registry::delete(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Tags(a) => registry::tags(a),
        Command::Token(c) => tokens::token(c),
        Command::Collection(c) => tokens::collection(c),
        Command::Gc(a) => content::gc(a),
        Command::Repair(a) => content::repair(a),
        Command::Scrub(a) => content::scrub(a),
        Command::Status(a) => status::status(a),
        Command::Config(c) => config::config(c),
        Command::Backup(a) => backup::backup(a),
        Command::Restore(a) => backup::restore(a),
        Command::Completions(a) => completions(a),
        Command::Leave(a) => leave::leave(a),
        Command::Stop(a) => leave::stop(a),
    }
}
