//! Progress bars for the commands that move whole images (`add`, `push`, `pull`, `car`).
//! They draw on stderr only when stderr is a terminal, so scripts and pipes see clean output,
//! and stay hidden for small files, where a bar would only flicker.

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Files smaller than this get no progress bar.
const MIN_BYTES: u64 = 16 * 1024 * 1024;

/// Whether bars are drawn at all. `SHUBNET_PROGRESS=always` forces them (for a terminal
/// multiplexer that hides the tty, and for tests), `never` turns them off.
fn enabled() -> bool {
    match std::env::var("SHUBNET_PROGRESS").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => std::io::stderr().is_terminal(),
    }
}

fn styled(pb: ProgressBar, template: &str, what: &str) -> ProgressBar {
    pb.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// A bar for a transfer of `len` bytes; hidden when not on a terminal or when `len` is small.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !enabled() || len < MIN_BYTES {
        return ProgressBar::hidden();
    }
    styled(
        ProgressBar::new(len),
        "{msg} {bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        what,
    )
}

/// A byte counter for a transfer of unknown length (a CAR export).
pub fn counter(what: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    styled(
        ProgressBar::no_length(),
        "{spinner} {msg} {bytes} {bytes_per_sec}",
        what,
    )
}

/// Streams a file as a request body, advancing `pb` as the bytes leave.
pub fn file_body(file: std::fs::File, pb: ProgressBar) -> reqwest::Body {
    let file = tokio::fs::File::from_std(file);
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).inspect(move |chunk| {
        if let Ok(c) = chunk {
            pb.inc(c.len() as u64);
        }
    });
    reqwest::Body::wrap_stream(stream)
}
