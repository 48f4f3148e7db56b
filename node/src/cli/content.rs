//! Content commands: `cid`, `add`, `cat`, `car`, `pin`, `gc`, `repair`, `scrub`.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::NodeArgs;
use super::client::NodeClient;
use super::progress::{self, file_body};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use futures::StreamExt;
use shubnet_protocol::admin::{
    AddOutcome, CarImportOutcome, GcReport, PinInfo, RepairReport, ScrubReport,
};
use shubnet_protocol::unixfs::{Layout, import_reader};
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// `shubnet cid`.
#[derive(Debug, Args)]
pub struct CidArgs {
    /// The file to name.
    pub file: PathBuf,
    /// Chunk size in bytes (testing only; production always uses 262144).
    #[arg(long, hide = true, default_value_t = shubnet_protocol::unixfs::DEFAULT_CHUNK_SIZE)]
    pub chunk_size: usize,
    /// Links per internal node (testing only; production always uses 174).
    #[arg(long, hide = true, default_value_t = shubnet_protocol::unixfs::DEFAULT_MAX_LINKS)]
    pub max_links: usize,
}

/// `shubnet add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The file to store.
    pub file: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// The CID to read.
    pub cid: String,
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The root CID to fetch.
    pub cid: String,
    /// An IPFS peer to fetch from over Bitswap: its libp2p multiaddr ending in `/p2p/PEER_ID`
    /// (repeatable; asked in order when one lacks a block). Without it the image is fetched
    /// over `/shubnet/fetch/1` from the federation's holders and connected members.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    #[command(flatten)]
    node: NodeArgs,
}

/// Commands that only need to know the node.
#[derive(Debug, Args)]
pub struct NodeOnly {
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet car ...`.
#[derive(Debug, Subcommand)]
pub enum CarCommand {
    /// Write the DAG of a CID as a CAR v1 to stdout.
    Export {
        /// The root CID.
        cid: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Import a CAR v1 file; every block is verified before any is stored.
    Import {
        /// The CAR file.
        file: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// `shubnet pin ...`.
#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// List pinned roots.
    Ls {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Pin a root the node holds.
    Add {
        /// The root CID.
        cid: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Unpin a root; its content goes at the next `shubnet gc`.
    Rm {
        /// The root CID.
        cid: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

use super::runtime;

/// Opens a regular file for reading, with errors that say what is wrong.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!(
            "{} is a directory; shubnet stores single files (images)",
            path.display()
        );
    }
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok((f, meta.len()))
}

fn parse_cid(text: &str) -> Result<shubnet_protocol::Cid> {
    shubnet_protocol::cid::parse(text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `shubnet cid FILE`.
pub fn cid(a: CidArgs) -> Result<()> {
    let layout = Layout::new(a.chunk_size, a.max_links).context("invalid layout")?;
    let (f, _) = open_regular(&a.file)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, f);
    let imported =
        import_reader(reader, layout).with_context(|| format!("reading {}", a.file.display()))?;
    println!("{}", imported.root);
    Ok(())
}

/// `shubnet add FILE`.
pub fn add(a: AddArgs) -> Result<()> {
    let (f, len) = open_regular(&a.file)?;
    let client = NodeClient::new(&a.node)?;
    let pb = progress::bar(len, "adding");
    let out: AddOutcome = runtime()?.block_on(client.admin(
        reqwest::Method::POST,
        "/add",
        Some(file_body(f, pb.clone())),
    ))?;
    pb.finish_and_clear();
    println!("{}", out.cid);
    Ok(())
}

/// Copies a response body to stdout, counting the bytes on `pb`.
async fn copy_to_stdout(resp: reqwest::Response, pb: &indicatif::ProgressBar) -> Result<()> {
    let mut stdout = tokio::io::stdout();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the transfer was interrupted")?;
        pb.inc(chunk.len() as u64);
        stdout
            .write_all(&chunk)
            .await
            .context("writing to stdout")?;
    }
    stdout.flush().await.context("writing to stdout")?;
    Ok(())
}

/// `shubnet cat CID`.
pub fn cat(a: CatArgs) -> Result<()> {
    let cid = parse_cid(&a.cid)?;
    let client = NodeClient::new(&a.node)?;
    runtime()?.block_on(async {
        let resp = client.get(&format!("/ipfs/{cid}")).await?;
        let expected = resp.content_length();
        let mut got = 0u64;
        let mut stdout = tokio::io::stdout();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("the transfer was interrupted")?;
            got += chunk.len() as u64;
            stdout
                .write_all(&chunk)
                .await
                .context("writing to stdout")?;
        }
        stdout.flush().await.context("writing to stdout")?;
        if let Some(n) = expected.filter(|&n| n != got) {
            bail!("the transfer ended after {got} of {n} bytes");
        }
        Ok(())
    })
}

/// `shubnet fetch CID --peer MULTIADDR`.
pub fn fetch(a: FetchArgs) -> Result<()> {
    let cid = parse_cid(&a.cid)?;
    let client = NodeClient::new(&a.node)?;
    let req = shubnet_protocol::admin::FetchRequest {
        cid: cid.to_string(),
        peers: a.peers,
    };
    let out: AddOutcome = runtime()?
        .block_on(client.admin_json("/fetch", &req))
        .with_context(|| format!("fetching {cid}"))?;
    println!("{}", out.cid);
    Ok(())
}

/// `shubnet car ...`.
pub fn car(c: CarCommand) -> Result<()> {
    match c {
        CarCommand::Export { cid, node } => {
            let cid = parse_cid(&cid)?;
            let client = NodeClient::new(&node)?;
            runtime()?.block_on(async {
                let resp = client
                    .get(&format!("/ipfs/{cid}?format=car&dag-scope=all&car-dups=n"))
                    .await?;
                let pb = progress::counter("exporting");
                let done = copy_to_stdout(resp, &pb).await;
                pb.finish_and_clear();
                done
            })
        }
        CarCommand::Import { file, node } => {
            let (f, len) = open_regular(&file)?;
            let client = NodeClient::new(&node)?;
            let pb = progress::bar(len, "importing");
            let out: CarImportOutcome = runtime()?.block_on(client.admin(
                reqwest::Method::POST,
                "/car/import",
                Some(file_body(f, pb.clone())),
            ))?;
            pb.finish_and_clear();
            for root in out.roots {
                println!("{}", root.cid);
            }
            Ok(())
        }
    }
}

/// `shubnet pin ...`.
pub fn pin(c: PinCommand) -> Result<()> {
    let rt = runtime()?;
    match c {
        PinCommand::Ls { json, node } => {
            let client = NodeClient::new(&node)?;
            let pins: Vec<PinInfo> =
                rt.block_on(client.admin(reqwest::Method::GET, "/pins", None))?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &pins)?;
                writeln!(out)?;
            } else {
                for p in pins {
                    writeln!(out, "{}\t{}", p.cid, p.size)?;
                }
            }
            Ok(())
        }
        PinCommand::Add { cid, node } => {
            let cid = parse_cid(&cid)?;
            let client = NodeClient::new(&node)?;
            let _: serde_json::Value =
                rt.block_on(client.admin(reqwest::Method::PUT, &format!("/pins/{cid}"), None))?;
            println!("{cid}");
            Ok(())
        }
        PinCommand::Rm { cid, node } => {
            let cid = parse_cid(&cid)?;
            let client = NodeClient::new(&node)?;
            let _: serde_json::Value =
                rt.block_on(client.admin(reqwest::Method::DELETE, &format!("/pins/{cid}"), None))?;
            println!("{cid}");
            Ok(())
        }
    }
}

/// `shubnet gc`.
pub fn gc(a: NodeOnly) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let r: GcReport = runtime()?.block_on(client.admin(reqwest::Method::POST, "/gc", None))?;
    for cid in &r.removed {
        println!("removed {cid}");
    }
    println!(
        "gc: removed {} root(s), freed {} bytes",
        r.removed.len(),
        r.freed_bytes
    );
    Ok(())
}

/// `shubnet repair`.
pub fn repair(a: NodeOnly) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let r: RepairReport =
        runtime()?.block_on(client.admin(reqwest::Method::POST, "/repair", None))?;
    println!(
        "repair: checked {} blob(s), indexed {} block(s), removed {} partial file(s)",
        r.checked, r.indexed_blocks, r.removed_partials
    );
    if r.is_clean() {
        println!("repair: no damage");
        Ok(())
    } else {
        for d in &r.damaged {
            println!("damaged {d} (moved to quarantine/)");
        }
        bail!("{} damaged blob(s) found", r.damaged.len())
    }
}

/// `shubnet scrub`.
pub fn scrub(a: NodeOnly) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let r: ScrubReport =
        runtime()?.block_on(client.admin(reqwest::Method::POST, "/scrub", None))?;
    println!(
        "scrub: checked {} blob(s), {} leaves, {} bytes",
        r.checked, r.leaves, r.bytes
    );
    if r.is_clean() {
        println!("scrub: no damage");
        return Ok(());
    }
    for d in &r.damaged {
        println!("damaged {d} (moved to quarantine/)");
    }
    for d in &r.refetched {
        println!("refetched {d} from another member");
    }
    for d in &r.not_refetched {
        println!("not refetched yet: {d}");
    }
    bail!("{} damaged blob(s) found", r.damaged.len())
}
