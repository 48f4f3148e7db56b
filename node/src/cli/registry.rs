//! Federation and publishing commands: `federation ...`, `push`, `pull`, `delete`, `tags`.
//!
//! `pull` trusts no gateway: it fetches the roster chain and the signed manifest, verifies both
//! against the federation id this node trusts (or `--federation`), then streams the content
//! while hashing it, and writes the output file only when the sha256 and the root CID match.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::NodeArgs;
use super::client::NodeClient;
use crate::config::NodeConfig;
use crate::keys::NodeKeys;
use crate::paths::DataDir;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shubnet_protocol::admin::{FederationOutcome, FederationRequest, PushOutcome, RosterChange};
use shubnet_protocol::manifest::Manifest;
use shubnet_protocol::reference::Reference;
use shubnet_protocol::roster::{JoinRequest, SignedRoster, UnsignedJoinRequest, verify_chain};
use shubnet_protocol::unixfs::{Importer, Layout};
use std::io::Write;
use std::path::PathBuf;

/// `shubnet federation create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The federation's display name.
    #[arg(long)]
    name: String,
    /// This institution's id in the roster (lowercase, e.g. `lab-a`) [default: the name].
    #[arg(long)]
    institution: Option<String>,
    /// Collection patterns this institution may publish (`lab-a`, `lab-a-*`, `*`); repeat
    /// for several [default: the institution id].
    #[arg(long = "namespace", value_name = "PATTERN")]
    namespaces: Vec<String>,
    /// Storage this node offers to the federation (e.g. 500G, 2T, or bytes).
    #[arg(long, default_value = "0", value_parser = parse_size)]
    storage: u64,
    /// How many members hold each image besides the publisher's own copy [default: 3].
    /// Members that offer no storage never hold others' images.
    #[arg(long, value_name = "K")]
    replication: Option<u32>,
    /// Fewest distinct institutions among those k holders, when enough offer storage
    /// [default: 2, or k if smaller].
    #[arg(long, value_name = "N")]
    min_institutions: Option<u32>,
    /// This institution's public gateway URL (`https://…`), written into the roster: members
    /// that refuse one of its private images point users there.
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    #[command(flatten)]
    node: NodeArgs,
}

impl CreateArgs {
    /// The admin request, with the defaults filled in: the institution id from the name, and
    /// that id as the only namespace.
    fn into_request(self) -> (NodeArgs, FederationRequest) {
        let institution = self
            .institution
            .unwrap_or_else(|| self.name.to_ascii_lowercase().replace(' ', "-"));
        let req = FederationRequest::Create {
            namespaces: or_own_namespace(self.namespaces, &institution),
            institution,
            name: self.name,
            storage: self.storage,
            replication: self.replication,
            min_institutions: self.min_institutions,
            gateway: self.gateway,
        };
        (self.node, req)
    }
}

/// `shubnet federation ...`.
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Found a federation: this node becomes its first admin and member. Prints the id.
    Create(CreateArgs),
    /// Print a join request (one line, safe to paste into an email) for an admin to admit.
    Request {
        /// This institution's id in the roster (lowercase, e.g. `lab-b`).
        #[arg(long)]
        institution: String,
        /// Display name [default: the institution id].
        #[arg(long)]
        name: Option<String>,
        /// Collection patterns to own; repeat for several [default: the institution id].
        #[arg(long = "namespace", value_name = "PATTERN")]
        namespaces: Vec<String>,
        /// Data directory whose keys sign the request [default: ~/.local/share/shubnet].
        #[arg(long, env = crate::paths::DATA_DIR_ENV, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Admit a join request (admins only). Prints the new roster version, or a line for the
    /// other admins to `sign` when more signatures are needed.
    Admit {
        /// The line `federation request` printed.
        request: String,
        /// Storage the newcomer offers (e.g. 500G).
        #[arg(long, default_value = "0", value_parser = parse_size)]
        storage: u64,
        /// The newcomer's public gateway URL (`https://…`), written into the roster.
        #[arg(long, value_name = "URL")]
        gateway: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Add or remove federation admins, or change how many must sign a roster version
    /// (admins only). Admin keys are what `shubnet keys show` prints as "admin key".
    Admins {
        /// Admin public key (hex) to add; repeat for several.
        #[arg(long = "add", value_name = "KEY")]
        add: Vec<String>,
        /// Admin public key (hex) to remove; repeat for several.
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
        /// Signatures a new roster version needs.
        #[arg(long)]
        threshold: Option<u32>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Co-sign a pending roster version (admins only).
    Sign {
        /// The roster line `federation admit` printed.
        roster: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Remove a node from the roster after it ran `shubnet leave` (admins only). Its
    /// institution stays a member, so the images it published stay valid.
    RemoveNode {
        /// The node's peer id (`shubnet leave` prints this command for the admin).
        peer_id: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Trust federation ID and copy its roster chain from a member's gateway (also brings an
    /// existing member up to date).
    Join {
        /// The federation id.
        id: String,
        /// A member gateway URL to copy the roster from.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Print the current roster.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// `shubnet push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image file.
    pub file: PathBuf,
    /// Where to publish it: collection/name:tag.
    pub reference: String,
    /// Freeze the tag: it can never move or be deleted afterwards.
    #[arg(long)]
    pub freeze: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// collection/name:tag
    pub reference: String,
    /// Output file [default: NAME_TAG.sif].
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Gateway to pull from [default: --node].
    #[arg(long)]
    pub from: Option<String>,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// collection/name:tag
    pub reference: String,
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// Only tags under `collection` or `collection/name`.
    pub prefix: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Why a size argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The suffix is not one of K, M, G, T, P (with optional B or iB).
    #[error("unknown size unit in {0:?}; use K, M, G, T or P")]
    Unit(String),
    /// The number part is not a whole number.
    #[error("{0:?} is not a size like 500G")]
    NotSize(String),
    /// The size does not fit in 64 bits.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses `500G`, `2T`, `10M`, `1024` (bytes; binary units).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_uppercase();
            let m: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                "P" => 1 << 50,
                _ => {
                    return Err(SizeError::Unit(text.to_string()));
                }
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| SizeError::NotSize(text.to_string()))?;
    n.checked_mul(mult)
        .ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

use super::runtime;

pub(super) fn data_dir(node: &NodeArgs) -> DataDir {
    DataDir::new(
        node.data_dir
            .clone()
            .unwrap_or_else(DataDir::default_location),
    )
}

/// Prints what a federation admin action did: the line scripts read on stdout, the advice on
/// stderr.
pub(super) fn print_outcome(o: &FederationOutcome) {
    match o {
        FederationOutcome::Created { id } => println!("{id}"),
        FederationOutcome::Joined { id, version } => {
            println!("joined {id} at roster version {version}")
        }
        FederationOutcome::Roster(RosterChange::Pending {
            version,
            signatures,
            needed,
            roster,
        }) => {
            eprintln!(
                "roster version {version} needs {needed} admin signatures and has {signatures}; ask another admin to run:\n  shubnet federation sign <the line below>"
            );
            println!("{roster}");
        }
        FederationOutcome::Roster(RosterChange::Accepted { version, .. }) => {
            println!("roster version {version} accepted")
        }
    }
}

/// What a pulled manifest is checked against, and the token that may read a private one.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Federation id to verify against [default: the one in this node's config.toml].
    #[arg(long)]
    pub federation: Option<String>,
    /// A user token with the pull right, for private collections.
    #[arg(
        long,
        env = "SHUBNET_PULL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub pull_token: Option<String>,
}

impl VerifyArgs {
    /// `--federation`, else the federation this node's config names: the chain of trust starts
    /// from an id the user already holds, never from the gateway being checked.
    pub fn federation_id(&self, node: &NodeArgs) -> Result<String> {
        match &self.federation {
            Some(id) => Ok(id.clone()),
            None => NodeConfig::load(&data_dir(node))
                .map_err(|e| anyhow!("{e}"))?
                .federation
                .id
                .ok_or_else(|| {
                    anyhow!("no federation to verify against: pass --federation ID, or join one")
                }),
        }
    }
}

/// Fetches and verifies a gateway's roster chain against `id`.
pub(super) async fn fetch_chain(
    client: &NodeClient,
    id: &str,
) -> Result<(Vec<SignedRoster>, Vec<String>)> {
    let v: Value = client.get("/shubnet/v1/federation").await?.json().await?;
    let encoded: Vec<String> = v["rosters"]
        .as_array()
        .ok_or_else(|| anyhow!("the gateway sent no roster chain"))?
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let chain = encoded
        .iter()
        .map(|r| {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(r)
                .context("roster is not base64url")?;
            SignedRoster::decode(&bytes).map_err(|e| anyhow!("roster rejected: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    verify_chain(id, &chain).map_err(|e| anyhow!("roster chain rejected: {e}"))?;
    Ok((chain, encoded))
}

/// `shubnet federation ...`: every subcommand but `request` and `show` becomes one
/// [`FederationRequest`] to the node's admin API.
pub fn federation(c: FederationCommand) -> Result<()> {
    let rt = runtime()?;
    let (node, req) = match c {
        FederationCommand::Create(args) => args.into_request(),
        FederationCommand::Request {
            institution,
            name,
            namespaces,
            data_dir,
        } => return join_request(institution, name, namespaces, data_dir),
        FederationCommand::Admit {
            request,
            storage,
            gateway,
            node,
        } => (
            node,
            FederationRequest::Admit {
                request,
                storage,
                gateway,
            },
        ),
        FederationCommand::Admins {
            add,
            remove,
            threshold,
            node,
        } => {
            let req = FederationRequest::Admins {
                add,
                remove,
                threshold,
            };
            (node, req)
        }
        FederationCommand::Sign { roster, node } => (node, FederationRequest::Sign { roster }),
        FederationCommand::RemoveNode { peer_id, node } => {
            (node, FederationRequest::RemoveNode { peer_id })
        }
        FederationCommand::Join { id, from, node } => {
            let remote = NodeClient::new(&NodeArgs {
                url: Some(from),
                ..node.clone()
            })?;
            let (_, rosters) = rt.block_on(fetch_chain(&remote, &id))?;
            (node, FederationRequest::Join { id, rosters })
        }
        FederationCommand::Show { json, node } => return show_federation(json, &node),
    };
    let client = NodeClient::new(&node)?;
    let outcome: FederationOutcome = rt.block_on(client.admin_json("/federation", &req))?;
    print_outcome(&outcome);
    Ok(())
}

/// The namespaces an institution publishes: its own id when none are named.
fn or_own_namespace(namespaces: Vec<String>, institution: &str) -> Vec<String> {
    if namespaces.is_empty() {
        vec![institution.to_owned()]
    } else {
        namespaces
    }
}

/// `shubnet federation request`: signs a join request with this node's keys, offline.
fn join_request(
    institution: String,
    name: Option<String>,
    namespaces: Vec<String>,
    data_dir: Option<PathBuf>,
) -> Result<()> {
    let dir = DataDir::new(data_dir.unwrap_or_else(DataDir::default_location));
    let (keys, _) = NodeKeys::init(&dir).context("loading this node's keys")?;
    let namespaces = or_own_namespace(namespaces, &institution);
    let req: JoinRequest = UnsignedJoinRequest {
        name: name.unwrap_or_else(|| institution.clone()),
        institution,
        peer_id: keys.peer_id().to_string(),
        namespaces,
        created: crate::clock::unix_now(),
    }
    .sign(&keys.publisher)
    .map_err(|e| anyhow!("cannot make the request: {e}"))?;
    println!("{}", req.to_line());
    Ok(())
}

/// `shubnet federation show`: the verified roster, as text or JSON.
fn show_federation(json: bool, node: &NodeArgs) -> Result<()> {
    let rt = runtime()?;
    let client = NodeClient::new(node)?;
    let v: Value = rt.block_on(async {
        Ok::<_, anyhow::Error>(client.get("/shubnet/v1/federation").await?.json().await?)
    })?;
    let Some(id) = v["id"].as_str() else {
        bail!("this node is not in a federation")
    };
    let (chain, _) = rt.block_on(fetch_chain(&client, id))?;
    let latest = chain.last().ok_or_else(|| anyhow!("empty roster chain"))?;
    let r = &latest.body;
    if json {
        let members: Vec<Value> = r
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "name": m.name, "peer_ids": m.peer_ids,
                    "publisher_keys": m.publisher_keys.iter().map(hex::encode).collect::<Vec<_>>(),
                    "namespaces": m.namespaces, "storage_bytes": m.storage_bytes,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "id": id, "name": r.name, "version": r.version, "threshold": r.threshold,
                "admins": r.admins.iter().map(hex::encode).collect::<Vec<_>>(),
                "replication": {"k": r.replication.k, "min_institutions": r.replication.min_institutions},
                "members": members,
            }))?
        );
    } else {
        println!("federation {} ({id})", r.name);
        println!(
            "roster version {}, {} admin(s), threshold {}",
            r.version,
            r.admins.len(),
            r.threshold
        );
        for m in &r.members {
            println!(
                "  {}\t{}\tnamespaces: {}\tstorage: {}",
                m.id,
                m.peer_ids.join(","),
                m.namespaces.join(","),
                m.storage_bytes
            );
        }
    }
    Ok(())
}

/// `shubnet push`.
pub fn push(a: PushArgs) -> Result<()> {
    let meta =
        std::fs::metadata(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", a.file.display());
    }
    Reference::parse(&a.reference)
        .map_err(|e| anyhow!("{:?} is not collection/name:tag: {e}", a.reference))?;
    let f = std::fs::File::open(&a.file)
        .with_context(|| format!("cannot open {}", a.file.display()))?;
    let client = NodeClient::new(&a.node)?;
    let path = format!(
        "/push?reference={}&freeze={}",
        urlencode(&a.reference),
        a.freeze
    );
    let pb = super::progress::bar(meta.len(), "pushing");
    let body = super::progress::file_body(f, pb.clone());
    let check = format!("/push?reference={}&check=true", urlencode(&a.reference));
    let out: Result<PushOutcome> = runtime()?.block_on(async {
        // Ask first, so a refused push fails before the upload rather than after it.
        let _: PushOutcome = client.admin(reqwest::Method::POST, &check, None).await?;
        client.admin(reqwest::Method::POST, &path, Some(body)).await
    });
    pb.finish_and_clear();
    println!("{}", out?.manifest);
    Ok(())
}

/// `shubnet delete`.
pub fn delete(a: DeleteArgs) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let path = format!("/delete?reference={}", urlencode(&a.reference));
    let out: PushOutcome = runtime()?.block_on(client.admin(reqwest::Method::POST, &path, None))?;
    println!("{}", out.manifest);
    Ok(())
}

/// `shubnet tags`.
pub fn tags(a: TagsArgs) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let prefix = a.prefix.unwrap_or_default();
    let list: Vec<Value> = runtime()?.block_on(async {
        Ok::<_, anyhow::Error>(
            client
                .get(&format!("/shubnet/v1/tags?prefix={}", urlencode(&prefix)))
                .await?
                .json()
                .await?,
        )
    })?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    for t in list {
        let state = if t["deleted"].as_bool() == Some(true) {
            "deleted".to_string()
        } else {
            t["root"].as_str().unwrap_or_default().to_string()
        };
        let frozen = if t["frozen"].as_bool() == Some(true) {
            " frozen"
        } else {
            ""
        };
        writeln!(
            out,
            "{}\t{}\tseq {}{}",
            t["reference"].as_str().unwrap_or_default(),
            state,
            t["seq"],
            frozen
        )?;
    }
    Ok(())
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `shubnet pull`.
pub fn pull(a: PullArgs) -> Result<()> {
    let r = Reference::parse(&a.reference)
        .map_err(|e| anyhow!("{:?} is not collection/name:tag: {e}", a.reference))?;
    let federation = a.verify.federation_id(&a.node)?;
    let url = a.from.clone().unwrap_or_else(|| a.node.base_url());
    let client = NodeClient::new(&NodeArgs {
        url: Some(url),
        ..a.node.clone()
    })?
    .with_bearer(a.verify.pull_token.clone());
    let out_path = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}_{}.sif", r.name, r.tag)));
    runtime()?.block_on(async {
        let (chain, _) = fetch_chain(&client, &federation).await?;
        let roster = &chain.last().ok_or_else(|| anyhow!("empty roster chain"))?.body;
        let path = format!("/shubnet/v1/manifests/{}/{}/{}", r.collection, r.name, urlencode(&r.tag));
        let bytes = client.get(&path).await?.bytes().await.context("reading the manifest")?;
        let m = Manifest::decode(&bytes).map_err(|e| anyhow!("manifest rejected: {e}"))?;
        m.verify_against(roster, &federation).map_err(|e| anyhow!("manifest rejected: {e}"))?;
        let b = &m.body;
        if (&b.collection, &b.name, &b.tag) != (&r.collection, &r.name, &r.tag) {
            bail!("manifest rejected: the gateway answered with {}/{}:{}", b.collection, b.name, b.tag);
        }
        // Freshness: a gateway can replay an older, validly signed manifest. When pulling from
        // another gateway, ask this node (which the user trusts to have synced) for the tag's
        // head and refuse anything older. Without a reachable node there is nothing to compare.
        if let Some(known) = local_head(&a, &r, roster, &federation).await
            && (known.body.seq > b.seq || (known.body.seq == b.seq && known.cid() != m.cid()))
        {
            bail!(
                "manifest rejected: the gateway sent {} seq {} but this node knows seq {} ({}); a replayed or conflicting manifest",
                r.tag_path(),
                b.seq,
                known.body.seq,
                known.cid()
            );
        }
        if b.tombstone {
            bail!("{} was deleted (manifest {})", r.tag_path(), m.cid());
        }
        let root = b.root.ok_or_else(|| anyhow!("manifest has no content"))?;
        let resp = client.get(&format!("/ipfs/{root}")).await?;
        let dir = out_path.parent().filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let mut tmp = tempfile_in(&dir)?;
        let pb = super::progress::bar(b.size, "pulling");
        let result = async {
            let mut sha = Sha256::new();
            let mut imp = Importer::new(Layout::default()).without_file_hash();
            let mut size = 0u64;
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.context("the transfer was interrupted")?;
                pb.inc(chunk.len() as u64);
                size += chunk.len() as u64;
                if size > b.size {
                    bail!("content rejected: the gateway sent more than the manifest's {} bytes", b.size);
                }
                sha.update(&chunk);
                imp.update(&chunk);
                imp.take_blocks().for_each(drop);
                tmp.1.write_all(&chunk).context("writing the output")?;
            }
            let digest: [u8; 32] = sha.finalize().into();
            let cid = imp.finish().1.root;
            if size != b.size || digest != b.sha256 {
                bail!("content rejected: sha256 {} ({size} bytes) does not match the signed manifest's {} ({} bytes)", hex::encode(digest), hex::encode(b.sha256), b.size);
            }
            if cid != root {
                bail!("content rejected: it hashes to {cid}, not the signed root {root}");
            }
            tmp.1.sync_all().context("syncing the output")?;
            Ok(())
        }
        .await;
        pb.finish_and_clear();
        match result {
            Ok(()) => crate::durable::commit(&tmp.0, &out_path)
                .with_context(|| format!("writing {}", out_path.display())),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp.0);
                Err(e)
            }
        }
    })?;
    println!("{}", out_path.display());
    Ok(())
}

/// The tag's head as the local node (`--node`) knows it, verified; `None` when pulling from the
/// local node itself or when it cannot say.
async fn local_head(
    a: &PullArgs,
    r: &Reference,
    roster: &shubnet_protocol::roster::Roster,
    federation: &str,
) -> Option<Manifest> {
    let from = a.from.as_deref()?;
    if from.trim_end_matches('/') == a.node.base_url().trim_end_matches('/') {
        return None;
    }
    let local = NodeClient::new(&a.node)
        .ok()?
        .with_bearer(a.verify.pull_token.clone());
    let path = format!(
        "/shubnet/v1/manifests/{}/{}/{}",
        r.collection,
        r.name,
        urlencode(&r.tag)
    );
    let bytes = local.get(&path).await.ok()?.bytes().await.ok()?;
    let m = Manifest::decode(&bytes).ok()?;
    m.verify_against(roster, federation).ok()?;
    Some(m)
}

fn tempfile_in(dir: &std::path::Path) -> Result<(PathBuf, std::fs::File)> {
    for i in 0..100u32 {
        let p = dir.join(format!(".shubnet-pull-{}-{i}.partial", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating a file in {}", dir.display()));
            }
        }
    }
    bail!("cannot create a temporary file in {}", dir.display())
}
