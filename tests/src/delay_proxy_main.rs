//! `shubnet-delay-proxy`: the WAN emulator of [`shubnet_tests::delay`] as a command, for the
//! bench scripts. It prints the address it listens on (one line, then flushes) and forwards
//! until killed. It must not be pointed at anything but loopback or a namespace the caller made.

use clap::Parser;
use shubnet_tests::delay::{DelayProxy, Link};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// Forward TCP connections to one upstream, adding a fixed delay in each direction without
/// limiting throughput: a long, fat link between two institutions, on one machine.
#[derive(Parser)]
#[command(name = "shubnet-delay-proxy")]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address every accepted connection is forwarded to.
    #[arg(long)]
    upstream: SocketAddr,
    /// One-way delay in milliseconds, added in each direction (the round trip gains twice
    /// this).
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// Cap in bytes per second per direction per connection; 0 leaves it unlimited.
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let link = Link {
        one_way: Duration::from_millis(a.delay_ms),
        rate: (a.rate > 0).then_some(a.rate),
    };
    let p = DelayProxy::start_on(a.listen, a.upstream, link)?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", p.addr())?;
    out.flush()?;
    loop {
        std::thread::park();
    }
}
