//! A minimal HTTP/1.1 client over `std::net::TcpStream`: one request per connection
//! (`Connection: close`), with the status, headers and body exactly as the server sent them, so
//! tests can check framing (`Content-Length`, chunking) as well as content.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a read may stall before the request fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The request line, for messages.
    pub request: String,
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body: de-chunked if the server chunked it, empty for HEAD.
    pub body: Vec<u8>,
    /// Whether the body was sent with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "request: {}", self.request)?;
        writeln!(f, "status:  {}", self.status)?;
        for (k, v) in &self.headers {
            writeln!(f, "  {k}: {v}")?;
        }
        let show = self.body.len().min(600);
        write!(
            f,
            "body ({} bytes): {}",
            self.body.len(),
            String::from_utf8_lossy(&self.body[..show])
        )
    }
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Length` as a number.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    /// Panics unless the status is `want`, showing the whole response.
    #[track_caller]
    pub fn expect_status(&self, want: u16) -> &Self {
        assert_eq!(self.status, want, "unexpected status\n{self}");
        self
    }

    /// Panics unless a body that was not chunked has exactly `Content-Length` bytes.
    #[track_caller]
    pub fn expect_framed(&self) -> &Self {
        if !self.chunked {
            let cl = self.content_length();
            assert_eq!(
                cl,
                Some(self.body.len() as u64),
                "Content-Length does not match the body\n{self}"
            );
        }
        self
    }
}

fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs are supported, got {url:?}"));
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// Sends `METHOD url` with extra `headers` and no body; reads the whole response.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
    let (host, path) = split_url(url);
    let line = format!("{method} {url}");
    let mut s = TcpStream::connect(&host).unwrap_or_else(|e| panic!("{line}: connect: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT)).expect("set timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{line}: send: {e}"));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{line}: read after {} bytes: {e}", raw.len()));
    parse(line, method == "HEAD", &raw)
}

/// Sends `METHOD url` with extra `headers` and `body` (its `Content-Length` added); reads the
/// whole response.
pub fn request_body(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let (host, path) = split_url(url);
    let line = format!("{method} {url}");
    let mut s = TcpStream::connect(&host).unwrap_or_else(|e| panic!("{line}: connect: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT)).expect("set timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{line}: send: {e}"));
    // The server may answer (and close, even reset) before reading a refused body: keep
    // whatever answer arrived.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw)
        && raw.is_empty()
    {
        panic!("{line}: no answer: {e}");
    }
    parse(line, method == "HEAD", &raw)
}

/// Sends `POST url` with `headers`, declaring `Content-Length: declared` but writing only
/// `body` (an upload that is truncated, or lies about its size), then, if `leave`, closes the
/// write side as a client that went away. Returns the node's status line, or `""` if it
/// answered nothing. Never panics on a cut connection: that is often the point.
pub fn raw_post(
    url: &str,
    headers: &[(&str, &str)],
    declared: u64,
    body: &[u8],
    leave: bool,
) -> String {
    raw_send("POST", url, headers, declared, body, leave)
}

/// [`raw_post`] with another method (a `PATCH` cut short).
pub fn raw_send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    declared: u64,
    body: &[u8],
    leave: bool,
) -> String {
    let (host, path) = split_url(url);
    let mut s =
        TcpStream::connect(&host).unwrap_or_else(|e| panic!("{method} {url}: connect: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT)).expect("set timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {declared}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    if leave {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `GET url`.
pub fn get(url: &str) -> Response {
    request("GET", url, &[])
}

/// `GET url` with `Range: bytes=SPEC`.
pub fn get_range(url: &str, spec: &str) -> Response {
    request("GET", url, &[("Range", &format!("bytes={spec}"))])
}

/// `HEAD url`.
pub fn head(url: &str) -> Response {
    request("HEAD", url, &[])
}

fn parse(request: String, head: bool, raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{request}: no end of headers in {} bytes: {:?}",
                raw.len(),
                String::from_utf8_lossy(&raw[..raw.len().min(400)])
            )
        });
    let head_text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{request}: bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if head {
        assert!(
            rest.is_empty(),
            "{request}: a HEAD response carried {} body bytes",
            rest.len()
        );
        Vec::new()
    } else if chunked {
        dechunk(&request, rest)
    } else {
        rest.to_vec()
    };
    Response {
        request,
        status,
        headers,
        body,
        chunked,
    }
}

fn dechunk(request: &str, mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("{request}: truncated chunked body"));
        let size_text = String::from_utf8_lossy(&rest[..nl]).into_owned();
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("{request}: bad chunk size {size_text:?}"));
        rest = &rest[nl + 2..];
        if size == 0 {
            return out;
        }
        assert!(
            rest.len() >= size + 2,
            "{request}: chunk of {size} bytes cut short"
        );
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
