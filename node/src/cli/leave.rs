//! `shubnet leave`: hand this node's images to the other members, then depart.
//!
//! The node announces that it is leaving, so every member's placement skips it and the next
//! nodes copy its images from it. The command waits until every image the node holds has k
//! holders among the other live members, then removes the node from the roster (if its admin
//! key may) or prints the command an admin runs, and stops the node. On a timeout, or when k
//! cannot be met without this node, it cancels the leave and says what to do: the node keeps
//! serving and holding everything, so nothing is ever left below k.
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::client::NodeClient;
use super::duration::parse_duration;
use super::registry::print_outcome;
use super::{NodeArgs, runtime};
use anyhow::{Context, Result, bail};
use clap::Args;
use shubnet_protocol::admin::{FederationOutcome, FederationRequest, LeaveProgress};
use std::time::{Duration, Instant};

/// `shubnet leave` options.
#[derive(Debug, Args)]
pub struct LeaveArgs {
    /// Give up (and cancel the leave) if the hand-over takes longer, e.g. `30m`, `2h`, `90s`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    timeout: Duration,
    /// Keep the node running when the hand-over is done (it holds its copies but takes no new
    /// ones); by default it is stopped.
    #[arg(long)]
    keep_running: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// The images still waiting, one line each (at most `max`).
fn pending_lines(p: &LeaveProgress, max: usize) -> String {
    let mut out = String::new();
    let waiting: Vec<_> = p.images.iter().filter(|i| !i.ready).collect();
    for i in waiting.iter().take(max) {
        out.push_str(&format!(
            "  {}  {}  {}/{} holders elsewhere\n",
            i.tags.join(","),
            i.root,
            i.other_holders.len(),
            p.target,
        ));
    }
    if waiting.len() > max {
        out.push_str(&format!("  … and {} more\n", waiting.len() - max));
    }
    out
}

/// Runs `leave`.
pub fn leave(a: LeaveArgs) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let rt = runtime()?;
    let progress = |method: reqwest::Method| -> Result<LeaveProgress> {
        rt.block_on(client.admin(method, "/leave", None))
    };
    let mut p = progress(reqwest::Method::POST).context("starting the leave")?;
    let peer = p.peer_id.clone();
    let target = p.target;
    let total = p.images.len();
    if target == 0 {
        eprintln!("leave: this node is in no federation; there is nothing to hand over");
    } else {
        eprintln!(
            "leave: announced; the other members now copy this node's {total} image(s) until each has {target} holders elsewhere"
        );
    }
    if p.impossible > 0 {
        let _ = progress(reqwest::Method::DELETE);
        bail!(
            "cannot leave: {} image(s) cannot keep {target} holders without this node, because too few other nodes offer storage:\n{}\
             Admit another member that offers storage (`shubnet federation admit REQUEST --storage SIZE`), then run `shubnet leave` again.\n\
             The leave is cancelled; this node keeps serving and holding every image.",
            p.impossible,
            pending_lines(&p, 10)
        );
    }
    let start = Instant::now();
    let mut last_pending = usize::MAX;
    let mut last_print = Instant::now();
    while !p.done {
        let pending = p.pending;
        if pending != last_pending || last_print.elapsed() >= Duration::from_secs(15) {
            eprintln!(
                "leave: {}/{total} image(s) have {target} holders elsewhere; waiting for {pending} ({}s)",
                total - pending.min(total),
                start.elapsed().as_secs()
            );
            eprint!("{}", pending_lines(&p, 5));
            last_pending = pending;
            last_print = Instant::now();
        }
        if start.elapsed() >= a.timeout {
            let _ = progress(reqwest::Method::DELETE);
            bail!(
                "leave timed out after {}s with {pending} image(s) below {target} holders on other nodes:\n{}\
                 The leave is cancelled; this node keeps serving and holding every image.\n\
                 Check `shubnet status` on the other members (are they connected, do they offer storage, is their disk full?), \
                 then run `shubnet leave` again, with a longer --timeout for large images.",
                start.elapsed().as_secs(),
                pending_lines(&p, 10)
            );
        }
        std::thread::sleep(Duration::from_secs(1));
        p = progress(reqwest::Method::GET).context("reading the leave's progress")?;
    }
    eprintln!(
        "leave: done in {}s: every image this node holds ({total}) has {target} holders on other nodes",
        start.elapsed().as_secs()
    );
    if target > 0 {
        if p.admin {
            eprintln!("leave: this node's admin key removes it from the roster");
            let v: FederationOutcome = rt.block_on(client.admin_json(
                "/federation",
                &FederationRequest::RemoveNode {
                    peer_id: peer.clone(),
                },
            ))?;
            print_outcome(&v);
        } else {
            eprintln!(
                "leave: an admin of the federation must now remove this node from the roster by running:"
            );
            println!("shubnet federation remove-node {peer}");
        }
    }
    if a.keep_running {
        eprintln!("leave: the node keeps running (--keep-running); stop it when you like");
    } else {
        rt.block_on(stop_node(&client, Duration::from_secs(600)))?;
        eprintln!(
            "leave: the node has stopped. The federation no longer needs its data directory; keep the admin key if it holds one"
        );
    }
    Ok(())
}

/// `shubnet stop` options.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Give up waiting after this long (the node keeps draining), e.g. `90s`, `5m`.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs `stop`: the admin API's graceful shutdown, then waits until the node is gone.
pub fn stop(a: StopArgs) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    runtime()?.block_on(stop_node(&client, a.timeout))?;
    eprintln!("stop: the node has stopped");
    Ok(())
}

/// Asks the node to stop as SIGTERM would (it finishes in-flight requests within its
/// shutdown grace) and waits until its HTTP port no longer answers.
async fn stop_node(client: &NodeClient, timeout: Duration) -> Result<()> {
    let _: serde_json::Value = client
        .admin(reqwest::Method::POST, "/shutdown", None)
        .await
        .context("asking the node to stop")?;
    let start = Instant::now();
    while client.get("/healthz").await.is_ok() {
        if start.elapsed() >= timeout {
            bail!(
                "the node still answers {}s after it was asked to stop; it may be finishing long transfers (see `[http] shutdown_grace_secs`)",
                start.elapsed().as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::duration::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
