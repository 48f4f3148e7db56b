//! `shubnet status`: peers, roster version and replication health of a running node.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::client::NodeClient;
use super::{NodeArgs, runtime};
use anyhow::Result;
use clap::Args;
use shubnet_protocol::admin::Status;

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
    let v: Status = runtime()?.block_on(client.admin(reqwest::Method::GET, "/status", None))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render(&v));
    Ok(())
}

/// The human-readable report: a header, then one line per image, under-replicated first.
fn render(v: &Status) -> String {
    let mut out = String::new();
    out.push_str(&format!("peer id:     {}\n", v.peer_id));
    out.push_str(&format!(
        "federation:  {}\n",
        v.federation.as_deref().unwrap_or("-")
    ));
    out.push_str(&format!(
        "roster:      version {}\n",
        v.roster_version.map_or("-".into(), |n| n.to_string())
    ));
    out.push_str(&format!(
        "peers:       {} connected\n",
        v.connected_peers.len()
    ));
    match &v.not_ready {
        Some(why) => out.push_str(&format!("ready:       NO: {why}\n")),
        None => out.push_str("ready:       yes\n"),
    }
    for p in &v.connected_peers {
        out.push_str(&format!("  {p}\n"));
    }
    let under = v.images.iter().filter(|i| i.under_replicated).count();
    out.push_str(&format!(
        "images:      {} ({under} under-replicated)\n",
        v.images.len()
    ));
    for i in &v.images {
        let flag = if i.under_replicated { "UNDER" } else { "ok" };
        out.push_str(&format!(
            "  {flag:5} {}/{} replicas  {}{}  {}\n",
            i.replicas,
            i.target,
            i.tags.join(", "),
            if i.local { " (held here)" } else { "" },
            i.root,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn render_names_under_replicated_images() {
        use shubnet_protocol::admin::{ImageStatus, Status};
        let v = Status {
            peer_id: "12D3".into(),
            federation: Some("bafy".into()),
            roster_version: Some(3),
            connected_peers: vec!["12D3a".into()],
            images: vec![
                ImageStatus {
                    tags: vec!["lab/x:1".into()],
                    root: "bafyx".into(),
                    replicas: 1,
                    target: 2,
                    under_replicated: true,
                    local: true,
                    ..ImageStatus::default()
                },
                ImageStatus {
                    tags: vec!["lab/y:1".into()],
                    root: "bafyy".into(),
                    replicas: 2,
                    target: 2,
                    ..ImageStatus::default()
                },
            ],
            ..Status::default()
        };
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
        isolated.not_ready = Some("isolated: connected to none".into());
        let text = super::render(&isolated);
        assert!(
            text.contains("ready:       NO: isolated: connected to none"),
            "{text}"
        );
    }
}
