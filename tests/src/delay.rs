//! A WAN emulator for loopback: a TCP proxy on 127.0.0.1 that holds every chunk it reads for a
//! fixed one-way delay before forwarding it, in each direction, as a link between two
//! institutions would. This kernel has no netem, so latency between local processes comes from
//! here.
//!
//! Each direction reads as fast as the sender writes, stamps each chunk with the time it is
//! due, and a second thread writes chunks out when due: throughput is not limited by the delay
//! (the queue holds up to rate × delay bytes), only by `rate` when one is given. TCP between
//! each end and the proxy still runs at loopback speed, so what the delay exposes is
//! application-level flow control (how many bytes a protocol keeps in flight), which is what
//! it is for. It owns no knowledge of what passes through it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes read per chunk; a chunk is the unit of delay.
const CHUNK: usize = 256 * 1024;

/// How a [`DelayProxy`] shapes each direction.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Added to every byte in each direction; a round trip gains twice this.
    pub one_way: Duration,
    /// Bytes per second per direction per connection; `None` leaves the rate unlimited.
    pub rate: Option<u64>,
}

impl Link {
    /// A link with round-trip time `rtt` (split evenly between the directions) and no rate cap.
    pub fn rtt(rtt: Duration) -> Self {
        Self {
            one_way: rtt / 2,
            rate: None,
        }
    }
}

/// A running delay proxy; stops accepting when dropped (open connections run to their end).
pub struct DelayProxy {
    addr: SocketAddr,
    down: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on `listen` (an ephemeral port of 127.0.0.1 when the port is 0) and forwards
    /// each accepted connection to `upstream` through `link`.
    pub fn start_on(listen: SocketAddr, upstream: SocketAddr, link: Link) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let down = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (down.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        let _ = splice(client, server, link, d.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self { addr, down, stop })
    }

    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream` through `link`.
    pub fn start(upstream: SocketAddr, link: Link) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(any, upstream, link).expect("binding the delay proxy")
    }

    /// The address to dial instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes delivered from upstream to the connecting side so far.
    pub fn downstream_bytes(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Joins `client` and `server` through two delayed directions.
fn splice(
    client: TcpStream,
    server: TcpStream,
    link: Link,
    down: Arc<AtomicU64>,
) -> std::io::Result<()> {
    for s in [&client, &server] {
        s.set_nodelay(true)?;
    }
    let up_counter = Arc::new(AtomicU64::new(0));
    direction(client.try_clone()?, server.try_clone()?, link, up_counter)?;
    direction(server, client, link, down)?;
    Ok(())
}

/// One delayed direction: a reader thread stamping chunks, a writer thread releasing them.
fn direction(
    mut from: TcpStream,
    mut to: TcpStream,
    link: Link,
    count: Arc<AtomicU64>,
) -> std::io::Result<()> {
    // `None` marks the end of the stream, delayed like data so a close does not overtake it.
    // Chunks are `(buffer, length)`; spent buffers go back to the reader, since a fresh
    // 256 KiB allocation per chunk (page faults, zeroing) would cost more than the copy.
    let (tx, rx) = mpsc::channel::<(Instant, Option<(Vec<u8>, usize)>)>();
    let (spent_tx, spent_rx) = mpsc::channel::<Vec<u8>>();
    let from_w = from.try_clone()?;
    std::thread::spawn(move || {
        loop {
            let mut buf = spent_rx.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now() + link.one_way, None));
                    break;
                }
                Ok(n) => {
                    if tx
                        .send((Instant::now() + link.one_way, Some((buf, n))))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        // With a rate cap, `paced` is when the bytes sent so far may have left.
        let mut paced = Instant::now();
        while let Ok((due, chunk)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let Some((buf, n)) = chunk else {
                break;
            };
            if let Some(rate) = link.rate.filter(|r| *r > 0) {
                paced = paced.max(due) + Duration::from_secs_f64(n as f64 / rate as f64);
                let now = Instant::now();
                if paced > now {
                    std::thread::sleep(paced - now);
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            count.fetch_add(n as u64, Ordering::Relaxed);
            let _ = spent_tx.send(buf);
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from_w.shutdown(Shutdown::Read);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        addr
    }

    /// A server that sends `len` bytes to each connection and closes it.
    fn source(len: u64) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                std::thread::spawn(move || {
                    let buf = vec![7u8; 1 << 20];
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(buf.len() as u64) as usize;
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                });
            }
        });
        addr
    }

    fn round_trip(addr: SocketAddr) -> Duration {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 1];
        // The first exchange includes connection set-up on the far side.
        s.write_all(b"x").unwrap();
        s.read_exact(&mut b).unwrap();
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            s.write_all(b"x").unwrap();
            s.read_exact(&mut b).unwrap();
            best = best.min(t.elapsed());
        }
        best
    }

    /// Bytes per second of reading everything `addr` sends, the best of three (the machine is
    /// shared, so single runs are noise).
    fn drain(addr: SocketAddr, len: u64) -> f64 {
        (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                let t = Instant::now();
                let n = std::io::copy(&mut s, &mut std::io::sink()).unwrap();
                assert_eq!(n, len);
                len as f64 / t.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn adds_the_delay_to_a_round_trip() {
        let up = echo();
        let direct = round_trip(up);
        let p = DelayProxy::start(up, Link::rtt(Duration::from_millis(40)));
        let rtt = round_trip(p.addr());
        assert!(
            rtt >= Duration::from_millis(40) && rtt < Duration::from_millis(60) + direct,
            "round trip {rtt:?} through a 40 ms proxy (direct {direct:?})"
        );
    }

    #[test]
    fn does_not_limit_throughput_at_40_ms() {
        let len = 256 << 20;
        let up = source(len);
        let direct = drain(up, len);
        let zero = DelayProxy::start(up, Link::rtt(Duration::ZERO));
        let undelayed = drain(zero.addr(), len);
        let p = DelayProxy::start(up, Link::rtt(Duration::from_millis(40)));
        let delayed = drain(p.addr(), len);
        eprintln!(
            "plain TCP: {:.0} MB/s direct, {:.0} MB/s through the proxy at 0 ms, {:.0} MB/s at \
             40 ms RTT ({:.2}x direct, {:.2}x the proxy at 0 ms)",
            direct / 1e6,
            undelayed / 1e6,
            delayed / 1e6,
            delayed / direct,
            delayed / undelayed
        );
        // A ratio, not a rate: the machine is shared. The delay adds 20 ms to a transfer of a
        // few hundred ms, so the ratio should be near 1 (between 0.5 and 1.2 on two loaded
        // cores); a proxy that limited bytes in flight to a window would be far below (1 MiB
        // per 40 ms is 26 MB/s).
        assert!(
            delayed > 0.4 * undelayed,
            "{:.0} MB/s at 40 ms RTT against {:.0} MB/s at 0 ms",
            delayed / 1e6,
            undelayed / 1e6
        );
        assert_eq!(p.downstream_bytes(), 3 * len);
    }

    #[test]
    fn caps_the_rate_when_asked() {
        let len = 20 << 20;
        let up = source(len);
        let link = Link {
            one_way: Duration::from_millis(5),
            rate: Some(50_000_000),
        };
        let p = DelayProxy::start(up, link);
        let r = drain(p.addr(), len);
        assert!(
            r < 60e6 && r > 30e6,
            "{:.0} MB/s under a 50 MB/s cap",
            r / 1e6
        );
    }
}
