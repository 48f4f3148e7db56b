//! Request timeouts that `axum::serve` does not provide: a client must send a request's head
//! within [`Timeouts::header`], and an upload whose body stalls for [`Timeouts::body_idle`] is
//! cut.
//!
//! - **Head** ([`TimeoutListener`]): every connection's reads are watched until the blank line
//!   that ends the request head (`\r\n\r\n`) has been read. The clock starts when the
//!   connection opens and again when the first byte of a next (keep-alive) request arrives, so
//!   a slowloris client that trickles header bytes, or one that connects and sends nothing, is
//!   disconnected after `header` at most. While the server writes a response the clock is
//!   held, so a long download is never cut by it.
//! - **Body** ([`idle_body`]): a request body that yields nothing for `body_idle` while its
//!   handler waits for it ends with an error. Upload handlers treat that like any broken
//!   upload: the store removes what it had written, and the client (if still there) gets an
//!   error. The clock runs only while the handler asks for more bytes, so a handler that is
//!   busy writing to disk is never the one cut.
//!
//! Non-goals: a deadline on the whole request (uploads of 20 GB are legitimately long) and
//! HTTP/2 (the gateway speaks HTTP/1.1 only).

use axum::body::Body;
use axum::serve::Listener;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The timeouts of [`TimeoutListener`] and [`idle_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest a client may take to send a request head (default 30 s).
    pub header: Duration,
    /// Longest a request body may stall while its handler waits (default 60 s).
    pub body_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(30),
            body_idle: Duration::from_secs(60),
        }
    }
}

/// A listener whose connections are cut when a request head takes longer than `header`.
pub struct TimeoutListener<L> {
    inner: L,
    header: Duration,
}

impl<L> TimeoutListener<L> {
    /// Wraps `inner`.
    pub fn new(inner: L, header: Duration) -> Self {
        Self { inner, header }
    }
}

impl<L: Listener> Listener for TimeoutListener<L> {
    type Io = HeadDeadline<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (HeadDeadline::new(io, self.header), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Where a connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head; `started` once its first byte arrived.
    Head { started: bool },
    /// The head was read; the handler and the response run without this clock.
    Served,
}

/// A connection that fails its reads once a request head is overdue.
pub struct HeadDeadline<T> {
    inner: T,
    limit: Duration,
    phase: Phase,
    /// The last three bytes read in the head phase, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
    deadline: Pin<Box<Sleep>>,
}

impl<T> HeadDeadline<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Head { started: false },
            tail: [0; 3],
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn restart_clock(&mut self) {
        let at = Instant::now() + self.limit;
        self.deadline.as_mut().reset(at);
    }

    /// A response is going out: the next bytes read start the next request. Until they do,
    /// each write holds the clock back, so a long download is never cut by it.
    fn wrote(&mut self, n: usize) {
        if n > 0 {
            self.phase = Phase::Head { started: false };
            self.tail = [0; 3];
            self.restart_clock();
        }
    }

    /// Scans newly read head bytes; true when they complete the head.
    fn head_done(&mut self, new: &[u8]) -> bool {
        let all = [&self.tail[..], new].concat();
        let done = all.windows(4).any(|w| w == b"\r\n\r\n");
        if let Some(last) = all.get(all.len() - 3..) {
            self.tail.copy_from_slice(last);
        }
        done
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Phase::Head { started } = this.phase {
                    let new = buf.filled().get(before..).unwrap_or_default().to_vec();
                    if !new.is_empty() && !started {
                        this.restart_clock();
                    }
                    if this.head_done(&new) {
                        this.phase = Phase::Served;
                    } else if !new.is_empty() {
                        this.phase = Phase::Head { started: true };
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if matches!(this.phase, Phase::Head { .. })
                    && this.deadline.as_mut().poll(cx).is_ready()
                {
                    tracing::debug!("closing a connection whose request head is overdue");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head took too long",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Middleware: gives every request body the `body_idle` limit (see the module doc).
pub async fn idle_body(
    idle: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Requests without a body (downloads, manifests) skip the wrapper.
    if axum::body::HttpBody::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let req = req.map(|body| Body::from_stream(IdleStream::new(body.into_data_stream(), idle)));
    next.run(req).await
}

/// A body stream that fails when its next chunk takes longer than `idle`.
struct IdleStream<S> {
    inner: S,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl<S> IdleStream<S> {
    fn new(inner: S, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: None,
            failed: false,
        }
    }
}

impl<S> Stream for IdleStream<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(item) => {
                // The clock runs only while waiting: drop it once something arrived.
                this.timer = None;
                Poll::Ready(item.map(|r| r.map_err(io::Error::other)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.failed = true;
                    tracing::info!(?idle, "request body stalled; cutting the upload");
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the request body sent nothing for {} s", idle.as_secs()),
                    ))));
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_overdue_head_fails_the_read_and_a_complete_one_stops_the_clock() {
        let (client, server) = tokio::io::duplex(1024);
        let mut conn = HeadDeadline::new(server, Duration::from_millis(200));
        let (rd, mut wr) = tokio::io::split(client);
        wr.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 256];
        let n = conn.read(&mut buf).await.expect("first bytes");
        assert!(n > 0);
        // Nothing more: the read fails once the head is overdue.
        let e = conn.read(&mut buf).await.expect_err("overdue head");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let (client, server) = tokio::io::duplex(1024);
        let mut conn = HeadDeadline::new(server, Duration::from_millis(200));
        let (_rd2, mut wr) = tokio::io::split(client);
        // The terminator split across two reads still ends the head.
        wr.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r")
            .await
            .expect("write");
        let _ = conn.read(&mut buf).await.expect("read");
        wr.write_all(b"\n").await.expect("write");
        let _ = conn.read(&mut buf).await.expect("read");
        assert_eq!(conn.phase, Phase::Served);
        // Served: a long wait for more bytes is not this clock's business.
        let waited = tokio::time::timeout(Duration::from_millis(600), conn.read(&mut buf)).await;
        assert!(waited.is_err(), "the read should still be pending");
        drop(rd);
    }

    #[tokio::test]
    async fn a_stalled_body_ends_with_an_error() {
        let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, axum::Error>>(1);
        let mut s = IdleStream::new(rx, Duration::from_millis(200));
        let mut tx = tx;
        futures::SinkExt::send(&mut tx, Ok(Bytes::from_static(b"abc")))
            .await
            .expect("send");
        assert_eq!(
            s.next().await.and_then(Result::ok),
            Some(Bytes::from_static(b"abc"))
        );
        let e = s.next().await.expect("an item").expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(s.next().await.is_none());
        drop(tx);
    }
}
