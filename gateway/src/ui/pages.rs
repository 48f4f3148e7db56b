//! The HTML of each page. Every interpolation goes through maud, which escapes it.
//!
//! It must not fetch data: the handlers in `ui/mod.rs` pass what each page shows.

use super::SearchForm;
use crate::backend::{ImageStatus, Status};
use crate::search::{CollectionSummary, ImageHit, SearchPage, Usage};
use crate::shub::time::rfc3339;
use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use shubnet_protocol::manifest::Manifest;
use shubnet_protocol::roster::Roster;
use std::collections::HashSet;

/// Percent-encodes one path segment (references are ASCII by grammar; be safe anyway).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link to an image page.
pub(super) fn image_href(c: &str, n: &str, t: &str) -> String {
    format!("/ui/images/{}/{}/{}", seg(c), seg(n), seg(t))
}

fn collection_href(c: &str) -> String {
    format!("/ui/collections/{}", seg(c))
}

/// Bytes in binary units.
pub(super) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn date(t: u64) -> String {
    rfc3339(t).get(..10).unwrap_or_default().to_owned()
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · shubnet" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    nav {
                        a.brand href="/" { "shubnet" }
                        a href="/" { "Collections" }
                        a href="/ui/search" { "Search" }
                        a href="/ui/federation" { "Federation" }
                    }
                    form.top action="/ui/search" method="get" role="search" {
                        label.sr for="top-q" { "Search images" }
                        input #top-q type="search" name="q" placeholder="Search images, labels, definition files";
                    }
                }
                main { (body) }
                footer {
                    "A federated registry for Apptainer/Singularity images. "
                    a href="/metrics" { "Metrics" }
                }
            }
        }
    }
}

/// A 4xx/5xx page.
pub(super) fn error(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.notice { (message) }
            p { a href="/" { "Back to the collections" } }
        },
    )
}

/// `/`.
pub(super) fn home(list: &[CollectionSummary]) -> Markup {
    let images: usize = list.iter().map(|c| c.images).sum();
    layout(
        "Collections",
        html! {
            h1 { "Collections" }
            p.lead { (list.len()) " collections, " (images) " images across the federation." }
            @if list.is_empty() {
                p.notice { "No public image yet. Push one with " code { "shubnet push FILE collection/name:tag" } "." }
            } @else {
                table {
                    thead { tr { th { "Collection" } th.num { "Images" } th.num { "Size" } th { "Updated" } } }
                    tbody {
                        @for c in list {
                            tr {
                                td { a href=(collection_href(&c.name)) { (c.name) } }
                                td.num { (c.images) }
                                td.num { (human(c.size)) }
                                td { (date(c.updated)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn hits_table(hits: &[ImageHit]) -> Markup {
    html! {
        table {
            thead { tr { th { "Image" } th { "Labels" } th.num { "Size" } th.num { "Downloads" } th.num { "Stars" } th { "Pushed" } } }
            tbody {
                @for h in hits {
                    tr {
                        td {
                            a href=(image_href(&h.collection, &h.name, &h.tag)) {
                                (h.collection) "/" strong { (h.name) } ":" (h.tag)
                            }
                            @if h.frozen { " " span.badge { "frozen" } }
                        }
                        td.labels {
                            @for (k, v) in h.labels.iter().take(3) {
                                span.label { (k) "=" (v) } " "
                            }
                            @if h.labels.len() > 3 { span.more { "+" (h.labels.len() - 3) } }
                        }
                        td.num { (human(h.size)) }
                        td.num { (h.downloads) }
                        td.num { (h.stars) }
                        td { (date(h.created)) }
                    }
                }
            }
        }
    }
}

fn pager(prefix: &str, page: usize, per_page: usize, total: usize) -> Markup {
    let pages = total.div_ceil(per_page.max(1));
    html! {
        @if pages > 1 {
            nav.pager aria-label="pages" {
                @if page > 0 { a href={ (prefix) "page=" (page - 1) } { "← previous" } }
                span { "page " (page + 1) " of " (pages) }
                @if page + 1 < pages { a href={ (prefix) "page=" (page + 1) } { "next →" } }
            }
        }
    }
}

/// `/ui/collections/{c}`.
pub(super) fn collection(c: &str, found: &SearchPage, page: usize, per_page: usize) -> Markup {
    layout(
        c,
        html! {
            p.crumbs { a href="/" { "Collections" } " / " }
            h1 { (c) }
            p.lead { (found.total) " images" }
            (hits_table(&found.hits))
            (pager(&format!("{}?", collection_href(c)), page, per_page, found.total))
        },
    )
}

/// `/ui/search`.
pub(super) fn search(f: &SearchForm, found: Option<&SearchPage>, per_page: usize) -> Markup {
    let prefix = format!("/ui/search?q={}&label={}&", seg(&f.q), seg(&f.label));
    layout(
        "Search",
        html! {
            h1 { "Search" }
            form.search action="/ui/search" method="get" {
                p {
                    label for="q" { "Words" }
                    input #q type="search" name="q" value=(f.q) placeholder="name, tag, label or a word of the definition file";
                }
                p {
                    label for="label" { "Label" }
                    input #label type="text" name="label" value=(f.label) placeholder="key=value, key, or =value";
                }
                p { button type="submit" { "Search" } }
            }
            @if let Some(found) = found {
                p.lead { (found.total) " images found" }
                @if !found.hits.is_empty() {
                    (hits_table(&found.hits))
                    (pager(&prefix, f.page, per_page, found.total))
                }
            }
        },
    )
}

fn copy_block(label: &str, command: &str) -> Markup {
    html! {
        div.cmd {
            span.cmdlabel { (label) }
            pre { code { (command) } }
        }
    }
}

/// `/ui/images/{c}/{n}/{t}`.
pub(super) fn image(m: &Manifest, usage: Usage, base: &str, replication: Option<&str>) -> Markup {
    let b = &m.body;
    let reference = format!("{}/{}:{}", b.collection, b.name, b.tag);
    let host = base.split_once("://").map_or(base, |(_, h)| h).to_owned();
    let root = b.root.map(|c| c.to_string()).unwrap_or_default();
    let md = &b.metadata;
    layout(
        &reference,
        html! {
            p.crumbs {
                a href="/" { "Collections" } " / "
                a href=(collection_href(&b.collection)) { (b.collection) } " / "
            }
            h1 { (b.name) span.tag { ":" (b.tag) } @if b.frozen { " " span.badge { "frozen" } } }
            p.lead {
                (human(b.size)) " · " (usage.downloads) " downloads · " (usage.stars) " stars · pushed "
                (date(b.created)) @if !b.pushed_by.is_empty() { " by " (b.pushed_by) }
            }
            section {
                h2 { "Pull" }
                (copy_block("Apptainer (shub)", &format!("apptainer pull shub://{host}/{reference}")))
                (copy_block("Apptainer (library)", &format!("apptainer pull library://{host}/{reference}")))
                (copy_block("Apptainer (IPFS)", &format!("IPFS_GATEWAY={base}/ipfs/ apptainer pull ipfs://{root}")))
                (copy_block("shubnet (verified end to end)", &format!("shubnet pull {reference} --from {base}")))
            }
            section {
                h2 { "Details" }
                dl.facts {
                    dt { "Reference" } dd { code { (reference) } }
                    dt { "Size" } dd { (human(b.size)) " (" (b.size) " bytes)" }
                    dt { "Root CID" } dd { code { (root) } }
                    dt { "sha256" } dd { code { (hex::encode(b.sha256)) } }
                    dt { "Signer" } dd { code { (hex::encode(m.publisher)) } }
                    dt { "Manifest" } dd { code { (m.cid().to_string()) } " (seq " (b.seq) ")" }
                    dt { "Media type" } dd { (b.media_type) }
                    @if let Some(a) = &md.arch { dt { "Architecture" } dd { (a) } }
                    dt { "Pushed" } dd { (rfc3339(b.created)) }
                    @if let Some(r) = replication { dt { "Replication" } dd { (r) } }
                }
            }
            section {
                h2 { "Labels" }
                @if md.labels.is_empty() {
                    p.muted { "No labels." }
                } @else {
                    table.kv {
                        tbody {
                            @for (k, v) in &md.labels {
                                tr { th { (k) } td { (v) } }
                            }
                        }
                    }
                }
            }
            @if let Some(d) = &md.deffile {
                section { h2 { "Definition file" } pre.file { code { (d) } } }
            }
            @if let Some(r) = &md.runscript {
                section { h2 { "Runscript" } pre.file { code { (r) } } }
            }
            @if let Some(e) = &md.environment {
                section { h2 { "Environment" } pre.file { code { (e) } } }
            }
            @if let Some(h) = shubnet_protocol::sif::help(md) {
                section { h2 { "Help" } pre.file { code { (h) } } }
            }
            section {
                h2 { "Star" }
                form.star action={ (image_href(&b.collection, &b.name, &b.tag)) "/star" } method="post" {
                    label for="token" { "Your token" }
                    input #token type="password" name="token" required autocomplete="off";
                    button type="submit" name="action" value="star" { "★ Star" }
                    button.secondary type="submit" name="action" value="unstar" { "Unstar" }
                }
            }
        },
    )
}

/// `/ui/federation`.
pub(super) fn federation(
    id: Option<&str>,
    roster: Option<&Roster>,
    status: Option<&Status>,
    hidden: &HashSet<String>,
) -> Markup {
    let peers: &[String] = status.map_or(&[], |s| &s.connected_peers);
    let visible: Vec<&ImageStatus> = status
        .map_or(&[][..], |s| &s.images)
        .iter()
        .filter(|i| {
            i.tags
                .iter()
                .any(|t| t.split_once('/').is_some_and(|(c, _)| !hidden.contains(c)))
        })
        .collect();
    let under = visible.iter().filter(|i| i.under_replicated).count();
    let me = status.map_or("", |s| s.peer_id.as_str());
    layout(
        "Federation",
        html! {
            @match roster {
                None => {
                    h1 { "Federation" }
                    p.notice { "This node has not created or joined a federation yet." }
                }
                Some(r) => {
                    h1 { (r.name) }
                    p.lead {
                        "Roster version " (r.version) " · " (r.members.len()) " members · every image on "
                        (r.replication.k) " members (at least " (r.replication.min_institutions) " institutions)"
                    }
                    @if let Some(id) = id { p.muted { "Federation id " code { (id) } } }
                    h2 { "Members" }
                    table {
                        thead { tr { th { "Institution" } th { "Namespaces" } th.num { "Storage offered" } th { "Nodes" } th { "Gateway" } } }
                        tbody {
                            @for m in &r.members {
                                tr {
                                    td { strong { (m.name) } br; span.muted { (m.id) } }
                                    td { @for n in &m.namespaces { code { (n) } " " } }
                                    td.num { (human(m.storage_bytes)) }
                                    td.peers {
                                        @for p in &m.peer_ids {
                                            code { (p) }
                                            @if p == me { " " span.badge { "this node" } }
                                            @else if peers.contains(p) { " " span.ok { "connected" } }
                                            br;
                                        }
                                    }
                                    td { @if let Some(g) = &m.gateway { (g) } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(why) = status.and_then(|s| s.not_ready.as_deref()) {
                p.notice.warn { strong { "Not ready: " } (why) }
            }
            h2 { "Peers" }
            @if peers.is_empty() {
                p.muted { "No peer connected." }
            } @else {
                ul.peers { @for p in peers { li { code { (p) } } } }
            }
            h2 { "Replication health" }
            @if status.is_none() {
                p.muted { "Replication is not running on this node." }
            } @else {
                p.lead {
                    @if under == 0 { span.ok { "All " (visible.len()) " images fully replicated." } }
                    @else { span.warn { (under) " of " (visible.len()) " images under-replicated." } }
                }
                table {
                    thead { tr { th { "Image" } th { "State" } th.num { "Holders" } th.num { "Target" } th.num { "Size" } } }
                    tbody {
                        @for i in visible.iter().take(500) {
                            tr class=(if i.under_replicated { "under" } else { "" }) {
                                td {
                                    @for t in &i.tags { (image_link(t)) br; }
                                    span.muted { code { (i.root) } }
                                }
                                td { @if i.under_replicated { span.warn { "under-replicated" } } @else { span.ok { "replicated" } } }
                                td.num { (i.replicas) }
                                td.num { (i.target) }
                                td.num { (human(i.size)) }
                            }
                        }
                    }
                }
                @if visible.len() > 500 { p.muted { "The first 500 images are shown, under-replicated first; " code { "shubnet status --json" } " lists all." } }
            }
        },
    )
}

fn image_link(reference: &str) -> Markup {
    let parsed = reference
        .split_once('/')
        .and_then(|(c, rest)| rest.split_once(':').map(|(n, t)| (c, n, t)));
    match parsed {
        Some((c, n, t)) => html! { a href=(image_href(c, n, t)) { (reference) } },
        None => html! { (reference) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn text_from_manifests_is_escaped() {
        let page = error(StatusCode::NOT_FOUND, "<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
