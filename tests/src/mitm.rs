//! [`Mitm`]: a malicious HTTP gateway for attack tests. It listens on 127.0.0.1 (port 0), forwards
//! every `GET` to a real node with [`crate::http::get`], lets the test rewrite the answer, and
//! sends it back with an honest `Content-Length` and `Connection: close`.
//!
//! With [`Mitm::transparent`] it changes nothing, which lets a test show that a failure through a
//! tampering gateway comes from the tampering and not from the proxy. Every path asked for is
//! recorded ([`Mitm::requests`]), so a test can also show that the tampered answer was fetched.
//!
//! Also here: base64url (no padding), the encoding of rosters in `GET /shubnet/v1/federation`,
//! written out so the tests need no extra dependency.

use crate::http::{Response, get};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Rewrites the upstream answer to `GET path` (path and query, e.g. `/ipfs/bafy…`).
pub type Tamper = dyn Fn(&str, &mut Response) + Send + Sync;

/// Largest request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;

/// A running malicious gateway; stopped on drop.
pub struct Mitm {
    url: String,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    accept: Option<JoinHandle<()>>,
}

impl Mitm {
    /// Starts a gateway in front of `upstream` (a base URL like `http://127.0.0.1:1234`) that
    /// passes each upstream answer through `tamper` before sending it.
    pub fn start(
        upstream: &str,
        tamper: impl Fn(&str, &mut Response) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the malicious gateway");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("local address of the gateway")
        );
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let tamper: Arc<Tamper> = Arc::new(tamper);
        let upstream = upstream.trim_end_matches('/').to_string();
        let accept = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (upstream, tamper, requests) =
                        (upstream.clone(), tamper.clone(), requests.clone());
                    std::thread::spawn(move || serve(conn, &upstream, &*tamper, &requests));
                }
            })
        };
        Self {
            url,
            stop,
            requests,
            accept: Some(accept),
        }
    }

    /// A gateway that forwards everything unchanged.
    pub fn transparent(upstream: &str) -> Self {
        Self::start(upstream, |_, _| {})
    }

    /// The gateway's base URL (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The paths asked for so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// Whether some request path started with `prefix`.
    pub fn was_asked(&self, prefix: &str) -> bool {
        self.requests().iter().any(|p| p.starts_with(prefix))
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(mut conn: TcpStream, upstream: &str, tamper: &Tamper, requests: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_HEAD {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut parts = text.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    requests
        .lock()
        .expect("requests lock")
        .push(path.to_string());
    let mut resp = if method == "GET" {
        get(&format!("{upstream}{path}"))
    } else {
        Response {
            request: format!("{method} {path}"),
            status: 405,
            headers: Vec::new(),
            body: b"the malicious gateway only forwards GET".to_vec(),
            chunked: false,
        }
    };
    tamper(path, &mut resp);
    let mut out = format!("HTTP/1.1 {} Whatever\r\n", resp.status);
    for (k, v) in &resp.headers {
        if !matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        resp.body.len()
    ));
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.write_all(&resp.body);
    let _ = conn.flush();
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
pub fn b64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url without padding; panics on anything else (the input is a node's answer).
pub fn b64url_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = B64URL
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("{c:?} is not a base64url character in {text:?}"))
            as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        // RFC 4648 §10 vectors, in the URL alphabet without padding.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64url_encode(plain.as_bytes()), enc);
            assert_eq!(b64url_decode(enc), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        let e = b64url_encode(&all);
        assert!(!e.contains('+') && !e.contains('/') && !e.contains('='));
        assert_eq!(b64url_decode(&e), all);
    }
}
