//! `shubnet status`: peers, roster version and replication health of a running node.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::client::NodeClient;
use super::{NodeArgs, runtime};
use anyhow::Result;
use clap::Args;
use serde_json::Value;

/// `shubnet status` options.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the full report as JSON (for scripts and monitoring).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs `status`.
pub fn status(a: StatusArgs) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let v: Value = runtime()?.block_on(client.admin(reqwest::Method::GET, "/status", None))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render(&v));
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// The human-readable report: a header, then one line per image, under-replicated first.
fn render(v: &Value) -> String {
    let mut out = String::new();
    let peers = v["connected_peers"].as_array().map_or(0, Vec::len);
    out.push_str(&format!("peer id:     {}\n", text(&v["peer_id"])));
    out.push_str(&format!("federation:  {}\n", text(&v["federation"])));
    out.push_str(&format!(
        "roster:      version {}\n",
        v["roster_version"]
            .as_u64()
            .map_or("-".into(), |n| n.to_string())
    ));
    out.push_str(&format!("peers:       {peers} connected\n"));
    match v["not_ready"].as_str() {
        Some(why) => out.push_str(&format!("ready:       NO: {why}\n")),
        None => out.push_str("ready:       yes\n"),
    }
    for p in v["connected_peers"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {}\n", text(p)));
    }
    let images = v["images"].as_array().cloned().unwrap_or_default();
    let under = images
        .iter()
        .filter(|i| i["under_replicated"].as_bool() == Some(true))
        .count();
    out.push_str(&format!(
        "images:      {} ({under} under-replicated)\n",
        images.len()
    ));
    for i in &images {
        let tags: Vec<&str> = super::str_list(&i["tags"]);
        let flag = if i["under_replicated"].as_bool() == Some(true) {
            "UNDER"
        } else {
            "ok"
        };
        out.push_str(&format!(
            "  {flag:5} {}/{} replicas  {}{}  {}\n",
            i["replicas"].as_u64().unwrap_or(0),
            i["target"].as_u64().unwrap_or(0),
            tags.join(", "),
            if i["local"].as_bool() == Some(true) {
                " (held here)"
            } else {
                ""
            },
            text(&i["root"]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn render_names_under_replicated_images() {
        let v = serde_json::json!({
            "peer_id": "12D3", "federation": "bafy", "roster_version": 3,
            "connected_peers": ["12D3a"],
            "images": [
                {"tags": ["lab/x:1"], "root": "bafyx", "replicas": 1, "target": 2,
                 "under_replicated": true, "local": true},
                {"tags": ["lab/y:1"], "root": "bafyy", "replicas": 2, "target": 2,
                 "under_replicated": false, "local": false}
            ]
        });
        let text = super::render(&v);
        assert!(text.contains("version 3"), "{text}");
        assert!(text.contains("2 (1 under-replicated)"), "{text}");
        let under = text
            .find("UNDER 1/2 replicas  lab/x:1 (held here)")
            .expect(&text);
        let ok = text.find("ok    2/2 replicas  lab/y:1").expect(&text);
        assert!(under < ok, "{text}");
        assert!(text.contains("ready:       yes"), "{text}");
        let mut isolated = v.clone();
        isolated["not_ready"] = "isolated: connected to none".into();
        let text = super::render(&isolated);
        assert!(
            text.contains("ready:       NO: isolated: connected to none"),
            "{text}"
        );
    }
}
