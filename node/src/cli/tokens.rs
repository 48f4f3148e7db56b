//! `shubnet token ...` and `shubnet collection ...`: user tokens and private collections,
//! through the node's admin API.
//!
//! Inputs are checked here with the same rules the node applies, so a typo fails before any
//! request, with a message that lists what is valid.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::NodeArgs;
use super::client::NodeClient;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use shubnet_protocol::access::CAPABILITY_ID_LEN;
use shubnet_protocol::time::utc;
use shubnet_protocol::tokens::{CollectionInfo, CreatedToken, ID_LEN, TokenInfo, TokenRequest};
use std::io::Write;

/// `shubnet token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints only the secret, which is not stored and never shown again. By
    /// default a 40-hex token valid on this node (what sregistry clients need); with
    /// `--federation`, a pull token that every member of the federation accepts.
    Create(CreateArgs),
    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Revoke a token by the id `token list` shows.
    Revoke {
        /// The token id (8 hex digits; 32 for a federation token).
        id: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// `shubnet token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Who the token is for (lowercase letters, digits, '.', '_', '-').
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// Collections it covers: a name (lab-a), all of one collection (lab-a/*), a prefix and
    /// '*' (lab-*), or '*'. Repeat the option, or separate with commas.
    #[arg(
        long = "collection",
        value_name = "PATTERN",
        required = true,
        value_delimiter = ','
    )]
    pub collections: Vec<String>,
    /// What it allows: pull (private collections), push, delete; comma-separated.
    #[arg(long, value_name = "RIGHTS")]
    pub rights: String,
    /// Make a federation pull token: signed with this institution's key, so any member's
    /// gateway checks it offline and serves the collections this institution owns. Revoking it
    /// reaches every member within one sync interval.
    #[arg(long)]
    pub federation: bool,
    /// How long a --federation token stays valid (e.g. 12h, 30d; at most a year).
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = super::duration::parse_duration)]
    pub expires: std::time::Duration,
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet collection ...`.
#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Make a collection private: pulls need a token with the pull right on it.
    SetPrivate {
        /// The collection.
        name: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Make a collection public again (the default).
    SetPublic {
        /// The collection.
        name: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List collections that have settings.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}

use super::runtime;

fn json_body<T: serde::Serialize>(v: &T) -> Result<Option<reqwest::Body>> {
    Ok(Some(
        serde_json::to_vec(v)
            .context("encoding the request")?
            .into(),
    ))
}

/// `shubnet token ...`.
pub fn token(c: TokenCommand) -> Result<()> {
    match c {
        TokenCommand::Create(a) => create(a),
        TokenCommand::List { json, node } => {
            let client = NodeClient::new(&node)?;
            let tokens: Vec<TokenInfo> =
                runtime()?.block_on(client.admin(Method::GET, "/tokens", None))?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &tokens)?;
                writeln!(out)?;
            } else {
                print_tokens(&mut out, &tokens)?;
            }
            Ok(())
        }
        TokenCommand::Revoke { id, node } => {
            let id = id.trim().to_ascii_lowercase();
            let hex = id.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex || (id.len() != ID_LEN && id.len() != CAPABILITY_ID_LEN * 2) {
                bail!(
                    "invalid token id {id:?}: ids are the {ID_LEN} hex digits in the first column \
                     of `shubnet token list` (not the token itself)"
                );
            }
            let client = NodeClient::new(&node)?;
            let info: TokenInfo = runtime()?.block_on(client.admin(
                Method::DELETE,
                &format!("/tokens/{id}"),
                None,
            ))?;
            println!(
                "revoked token {} of {} (at {})",
                info.id,
                info.user,
                info.revoked.map_or_else(|| "?".into(), utc)
            );
            Ok(())
        }
    }
}

fn create(a: CreateArgs) -> Result<()> {
    let req = TokenRequest {
        user: a.user,
        collections: a.collections.iter().map(|c| c.trim().to_owned()).collect(),
        rights: a
            .rights
            .split(',')
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        federation_ttl: a.federation.then_some(a.expires.as_secs()),
    };
    // The node checks again; checking here gives the message without a round trip.
    req.validate()?;
    let client = NodeClient::new(&a.node)?;
    let created: CreatedToken =
        runtime()?.block_on(client.admin(Method::POST, "/tokens", json_body(&req)?))?;
    println!("{}", created.token);
    let scope = if req.federation_ttl.is_some() {
        "every member of the federation accepts it until it expires or is revoked"
    } else {
        "valid on this node"
    };
    eprintln!(
        "shubnet: token {} for {} ({} on {}); {scope}; it is shown only this once",
        created.info.id,
        created.info.user,
        join(&created.info.rights),
        join(&created.info.collections),
    );
    Ok(())
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn print_tokens(out: &mut impl Write, tokens: &[TokenInfo]) -> std::io::Result<()> {
    writeln!(out, "ID\tUSER\tRIGHTS\tCOLLECTIONS\tCREATED\tSTATUS")?;
    for t in tokens {
        let status = match t.revoked {
            Some(at) => format!("revoked {}", utc(at)),
            None => "active".into(),
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            t.id,
            t.user,
            join(&t.rights),
            join(&t.collections),
            utc(t.created),
            status
        )?;
    }
    Ok(())
}

/// `shubnet collection ...`.
pub fn collection(c: CollectionCommand) -> Result<()> {
    let (name, private, node) = match c {
        CollectionCommand::SetPrivate { name, node } => (name, true, node),
        CollectionCommand::SetPublic { name, node } => (name, false, node),
        CollectionCommand::List { json, node } => {
            let client = NodeClient::new(&node)?;
            let list: Vec<CollectionInfo> =
                runtime()?.block_on(client.admin(Method::GET, "/collections", None))?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                for c in list {
                    writeln!(out, "{}\t{}", c.name, visibility(c.private))?;
                }
            }
            return Ok(());
        }
    };
    shubnet_protocol::reference::validate_collection(&name)
        .with_context(|| format!("invalid collection name {name:?}"))?;
    let client = NodeClient::new(&node)?;
    let method = if private { Method::PUT } else { Method::DELETE };
    let info: CollectionInfo =
        runtime()?.block_on(client.admin(method, &format!("/collections/{name}/private"), None))?;
    println!("{}: {}", info.name, visibility(info.private));
    Ok(())
}

fn visibility(private: bool) -> &'static str {
    if private { "private" } else { "public" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shubnet_protocol::tokens::{CollectionPattern, Right};

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn list_shows_status_and_no_secret() {
        let t = TokenInfo {
            id: "0badcafe".into(),
            user: "alice".into(),
            collections: vec![CollectionPattern::parse("lab-a/*").expect("p")],
            rights: vec![Right::Pull, Right::Push],
            created: 0,
            revoked: Some(60),
        };
        let mut out = Vec::new();
        print_tokens(&mut out, &[t]).expect("print");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains("0badcafe\talice\tpull,push\tlab-a/*\t1970-01-01T00:00:00Z\trevoked 1970-01-01T00:01:00Z"),
            "{text}"
        );
    }
}
