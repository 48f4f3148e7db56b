//! The one test over a real socket: what hyper actually writes for HEAD, streamed CARs, a CAR
//! cut short, and the loopback check with real `ConnectInfo`.

use crate::mem::MemBackend;
use crate::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sends one HTTP/1.1 request with `Connection: close` and returns everything the server wrote.
async fn exchange(addr: SocketAddr, head: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out));
    // A server that aborts the connection may end it with a reset; keep what arrived.
    let _ = read
        .await
        .expect("the server closes the connection in time");
    out
}

fn split(resp: &[u8]) -> (String, &[u8]) {
    let at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    (
        String::from_utf8_lossy(&resp[..at]).to_ascii_lowercase(),
        &resp[at + 4..],
    )
}

#[tokio::test]
async fn what_goes_over_the_wire() {
    let backend = MemBackend::new(Layout::new(1024, 174).expect("layout"));
    let file = backend.import(&distinct_data(3000));
    // Reversed, so it shares no leaf with `file`.
    let broken = backend.import(&distinct_data(3000).into_iter().rev().collect::<Vec<_>>());
    backend.remove_block(&broken.leaves[1].0);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = app(&backend).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });

    let req = |method: &str, path: &str, extra: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
    };

    // HEAD of a plain file announces the length and sends nothing.
    let raw = exchange(addr, &req("HEAD", &format!("/ipfs/{}", file.root), "")).await;
    let (head, body) = split(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 3000"), "{head}");
    assert!(body.is_empty());

    // GET of a plain file: exactly the bytes, with their length.
    let raw = exchange(addr, &req("GET", &format!("/ipfs/{}", file.root), "")).await;
    let (head, body) = split(&raw);
    assert!(head.contains("content-length: 3000"), "{head}");
    assert_eq!(body, file.data.as_slice());

    // HEAD of a CAR: no length (it is streamed), no body.
    let raw = exchange(
        addr,
        &req("HEAD", &format!("/ipfs/{}?format=car", file.root), ""),
    )
    .await;
    let (head, body) = split(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(body.is_empty());

    // A complete CAR ends with the terminating chunk; a broken one does not.
    let raw = exchange(
        addr,
        &req("GET", &format!("/ipfs/{}?format=car", file.root), ""),
    )
    .await;
    let (head, body) = split(&raw);
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(body.ends_with(b"0\r\n\r\n"));
    let raw = exchange(
        addr,
        &req("GET", &format!("/ipfs/{}?format=car", broken.root), ""),
    )
    .await;
    // hyper may not even have flushed the status line when the stream fails; either way the
    // client must not see a complete chunked body.
    assert!(
        !raw.ends_with(b"0\r\n\r\n"),
        "a cut CAR must not end cleanly"
    );
    if !raw.is_empty() {
        assert!(raw.starts_with(b"HTTP/1.1 200"));
    }

    // The admin API from 127.0.0.1 with real ConnectInfo.
    let raw = exchange(
        addr,
        &req(
            "GET",
            "/admin/v1/pins",
            "Authorization: Bearer secret-admin-token\r\n",
        ),
    )
    .await;
    let (head, body) = split(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"[]");

    server.abort();
}
