//! A TCP proxy on 127.0.0.1 that forwards to one upstream address, counts the bytes going back
//! to the connecting side (downstream), and cuts every connection each time another `cut_every`
//! downstream bytes have passed: a flaky network between two nodes, with an exact byte count.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream`; `cut_every` = 0
    /// never cuts.
    pub fn start(upstream: SocketAddr, cut_every: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let down = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, c, s) = (down.clone(), cuts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        pipe(client, server, d.clone(), c.clone(), cut_every);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            down,
            cuts,
            stop,
        }
    }

    /// The address to dial instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes sent from upstream to the connecting side so far.
    pub fn downstream_bytes(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pipe(
    client: TcpStream,
    server: TcpStream,
    down: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    every: u64,
) {
    let (c2, s2) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    // Upstream direction: plain copy.
    let (c3, s3) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    std::thread::spawn(move || copy(c2, s2, None));
    std::thread::spawn(move || {
        copy(s3, c3, Some((down, cuts, every)));
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    });
}

type Counter = (Arc<AtomicU64>, Arc<AtomicU64>, u64);

fn copy(mut from: TcpStream, mut to: TcpStream, count: Option<Counter>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some((down, cuts, every)) = &count {
            let before = down.fetch_add(n as u64, Ordering::Relaxed);
            if *every > 0 && (before + n as u64) / every > before / every {
                cuts.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
