//! `shubnet backup` and `shubnet restore`: the cold backup of what the federation cannot give
//! back (keys, config, log, tokens). See [`crate::backup`].
//!
//! It must not implement node behaviour: it parses arguments, asks the node (its admin API, or
//! the library function it names) and prints the answer.

use super::client::NodeClient;
use super::{NodeArgs, runtime};
use crate::paths::DataDir;
use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use std::io::Write;
use std::path::PathBuf;

/// `shubnet backup` options.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the archive (created 0600; it holds the node's secret keys — keep it
    /// offline, like the admin key).
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// `shubnet restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `shubnet backup` wrote.
    archive: PathBuf,
    /// The data directory to create; it must not hold node keys yet.
    #[arg(long, env = crate::paths::DATA_DIR_ENV, value_name = "DIR")]
    data_dir: PathBuf,
}

/// Runs `backup`: streams the running node's archive to `--out`, then renames it into place.
pub fn backup(a: BackupArgs) -> Result<()> {
    let client = NodeClient::new(&a.node)?;
    let tmp = a.out.with_extension("partial");
    let written = runtime()?.block_on(async {
        let resp = client.admin_stream("/backup").await?;
        let mut f = crate::secrets::create_streamed(&tmp)?;
        let mut body = resp.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("the node stopped sending the backup")?;
            f.write_all(&chunk)
                .with_context(|| format!("writing {}", tmp.display()))?;
            n += chunk.len() as u64;
        }
        f.sync_all().context("syncing the backup")?;
        anyhow::Ok(n)
    });
    let n = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // Check it before calling it a backup.
    let check = std::fs::File::open(&tmp).context("reopening the backup")?;
    let entries = tar::Archive::new(check)
        .entries()
        .map(|e| e.count())
        .unwrap_or(0);
    if entries < 2 {
        let _ = std::fs::remove_file(&tmp);
        bail!("the node sent an incomplete backup ({n} bytes); see its log");
    }
    crate::durable::commit(&tmp, &a.out)
        .with_context(|| format!("renaming to {}", a.out.display()))?;
    println!("backup written to {} ({n} bytes)", a.out.display());
    Ok(())
}

/// Runs `restore`.
pub fn restore(a: RestoreArgs) -> Result<()> {
    let f = std::fs::File::open(&a.archive)
        .with_context(|| format!("opening {}", a.archive.display()))?;
    let dir = DataDir::new(&a.data_dir);
    let s = crate::backup::restore(std::io::BufReader::new(f), &dir)
        .with_context(|| format!("restoring into {}", a.data_dir.display()))?;
    println!(
        "restored {} key file(s), {} log entries, {} token/collection record(s){} into {}",
        s.keys,
        s.log_entries,
        s.accounts,
        if s.config { ", config.toml" } else { "" },
        a.data_dir.display()
    );
    println!(
        "start it with `shubnet serve --data-dir {}`: it rebuilds its index from the log \
         and fetches its placements from the federation",
        a.data_dir.display()
    );
    Ok(())
}
