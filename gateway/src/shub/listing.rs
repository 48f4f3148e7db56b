//! Listings and search of the shub API, in the shapes the `sregistry` client reads
//! (`sregistry search`, `sregistry labels`; client-protocols.md §1.1 rows 5–11).
//!
//! Only public collections are listed: a private collection's images are reachable by name with
//! a token, never enumerable. Lists are DRF `LimitOffsetPagination` pages
//! (`{"count","next","previous","results"}`) where sregistry paginates, plain JSON elsewhere.

use super::ShubBackend;
use super::{ShubError, decode_all, external_base, time};
use crate::SharedState;
use crate::search::{ImageHit, MAX_LIMIT, SearchQuery};
use crate::visibility;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shubnet_protocol::manifest::Manifest;
use std::collections::BTreeMap;

/// DRF's default page size in sregistry.
const PAGE_SIZE: usize = 10;
/// Largest page a client may ask for.
const MAX_PAGE: usize = 1000;

pub(super) fn router<B: ShubBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/api/containers", get(containers::<B>))
        .route("/api/containers/", get(containers::<B>))
        .route("/api/collections", get(collections::<B>))
        .route("/api/collections/", get(collections::<B>))
        .route("/api/collection/search/{q}", get(collection_search::<B>))
        .route("/api/collection/{name}", get(collection::<B>))
        .route("/api/labels/search", get(labels_all::<B>))
        .route("/api/labels/search/{k}/key", get(labels_key::<B>))
        .route(
            "/api/labels/search/{k}/key/{v}/value",
            get(labels_key_value::<B>),
        )
        .route("/api/labels/search/{v}/value", get(labels_value::<B>))
        .route("/api/registry/identity", get(identity::<B>))
}

/// `?limit=&offset=`.
#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

/// Every live image of a public collection, sorted by collection, name, tag.
async fn public_images<B: ShubBackend>(
    state: &SharedState<B>,
    prefix: &str,
) -> Result<Vec<Manifest>, ShubError> {
    let all = decode_all(state.backend.tag_heads(prefix).await?);
    let mut memo = visibility::Memo::default();
    let mut out = Vec::new();
    for m in all {
        if m.body.tombstone || m.body.root.is_none() {
            continue;
        }
        if memo.is_public(&state.backend, &m.body.collection).await? {
            out.push(m);
        }
    }
    out.sort_by(|a, b| {
        (&a.body.collection, &a.body.name, &a.body.tag).cmp(&(
            &b.body.collection,
            &b.body.name,
            &b.body.tag,
        ))
    });
    Ok(out)
}

/// A container as listings show it.
fn summary(base: &str, m: &Manifest) -> Value {
    let b = &m.body;
    json!({
        "id": m.cid().to_string(),
        "name": b.name,
        "tag": b.tag,
        "collection": b.collection,
        "uri": format!("{}/{}:{}", b.collection, b.name, b.tag),
        "detail": format!("{base}/api/container/{}/{}:{}", b.collection, b.name, b.tag),
        "version": format!("sha256.{}", hex::encode(b.sha256)),
        "frozen": b.frozen,
        "add_date": time::rfc3339(b.created),
        "size": b.size,
    })
}

fn paginate(base: &str, path: &str, items: Vec<Value>, page: &Page) -> Value {
    let limit = page.limit.unwrap_or(PAGE_SIZE).clamp(1, MAX_PAGE);
    let offset = page.offset.unwrap_or(0);
    let count = items.len();
    let link = |o: usize| format!("{base}{path}?limit={limit}&offset={o}");
    let next = (offset + limit < count).then(|| link(offset + limit));
    let previous = (offset > 0).then(|| link(offset.saturating_sub(limit)));
    let results: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    json!({ "count": count, "next": next, "previous": previous, "results": results })
}

/// A paginated listing of every public image, shaped by `shape`.
async fn listing<B: ShubBackend>(
    state: &SharedState<B>,
    headers: &HeaderMap,
    page: &Page,
    path: &str,
    shape: fn(&str, &[Manifest]) -> Vec<Value>,
) -> Result<Response, ShubError> {
    let base = external_base(headers, state.config.tls)?;
    let images = public_images(state, "").await?;
    let items = shape(&base, &images);
    Ok(Json(paginate(&base, path, items, page)).into_response())
}

fn summaries(base: &str, images: &[Manifest]) -> Vec<Value> {
    images.iter().map(|m| summary(base, m)).collect()
}

async fn containers<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Result<Response, ShubError> {
    listing(&state, &headers, &page, "/api/containers/", summaries).await
}

/// Items grouped by collection, as collection objects, collections in name order.
fn group_by<'a, T>(
    items: &'a [T],
    collection: impl Fn(&'a T) -> &'a str,
    created: impl Fn(&T) -> u64,
    show: impl Fn(&T) -> Value,
) -> Vec<Value> {
    let mut by: BTreeMap<&str, Vec<&T>> = BTreeMap::new();
    for item in items {
        by.entry(collection(item)).or_default().push(item);
    }
    by.into_iter()
        .map(|(name, members)| {
            let modified = members.iter().map(|m| created(m)).max().unwrap_or(0);
            let added = members.iter().map(|m| created(m)).min().unwrap_or(0);
            json!({
                "id": name,
                "name": name,
                "private": false,
                "add_date": time::rfc3339(added),
                "modify_date": time::rfc3339(modified),
                "containers": members.iter().map(|m| show(m)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Public images grouped by collection, as collection objects.
fn group(base: &str, images: &[Manifest]) -> Vec<Value> {
    group_by(
        images,
        |m| &m.body.collection,
        |m| m.body.created,
        |m| summary(base, m),
    )
}

async fn collections<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Result<Response, ShubError> {
    listing(&state, &headers, &page, "/api/collections/", group).await
}

async fn collection<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ShubError> {
    let name = name.to_ascii_lowercase();
    shubnet_protocol::reference::validate_collection(&name)
        .map_err(|e| ShubError::bad_request(format!("invalid collection name: {e}")))?;
    let base = external_base(&headers, state.config.tls)?;
    let images = public_images(&state, &name).await?;
    group(&base, &images)
        .into_iter()
        .next()
        .map(|c| Json(c).into_response())
        .ok_or_else(ShubError::not_found)
}

async fn collection_search<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path(q): Path<String>,
) -> Result<Response, ShubError> {
    let base = external_base(&headers, state.config.tls)?;
    let q = q.to_ascii_lowercase();
    // The index narrows by the word; sregistry's rule (collection or name contains it) decides.
    let hits: Vec<ImageHit> = indexed(
        &state,
        SearchQuery {
            q: q.clone(),
            ..SearchQuery::default()
        },
    )
    .await?
    .into_iter()
    .filter(|h| h.collection.contains(&q) || h.name.contains(&q))
    .collect();
    Ok(Json(group_hits(&base, &hits)).into_response())
}

/// Every hit of `q` from the node's search index, page by page.
async fn indexed<B: ShubBackend>(
    state: &SharedState<B>,
    mut q: SearchQuery,
) -> Result<Vec<ImageHit>, ShubError> {
    q.limit = MAX_LIMIT;
    q.offset = 0;
    let mut out = Vec::new();
    loop {
        let page = visibility::search_public(&state.backend, q.clone()).await?;
        let n = page.hits.len();
        out.extend(page.hits);
        if n == 0 || out.len() >= page.total {
            return Ok(out);
        }
        q.offset += n;
    }
}

/// A container as listings show it, from the search index.
fn hit_summary(base: &str, h: &ImageHit) -> Value {
    json!({
        "id": h.manifest,
        "name": h.name,
        "tag": h.tag,
        "collection": h.collection,
        "uri": h.reference,
        "detail": format!("{base}/api/container/{}", h.reference),
        "version": format!("sha256.{}", h.sha256),
        "frozen": h.frozen,
        "add_date": time::rfc3339(h.created),
        "size": h.size,
    })
}

/// Hits grouped by collection, as collection objects.
fn group_hits(base: &str, hits: &[ImageHit]) -> Vec<Value> {
    group_by(
        hits,
        |h| &h.collection,
        |h| h.created,
        |h| hit_summary(base, h),
    )
}

/// `/api/container/search/name/<n>[/tag/<t>]` and
/// `/api/container/search/collection/<c>/name/<n>[/tag/<t>]` (routed from the container path).
pub(super) async fn container_search<B: ShubBackend>(
    state: &SharedState<B>,
    query: &str,
) -> Result<Response, ShubError> {
    let parts: Vec<&str> = query.trim_end_matches('/').split('/').collect();
    let (collection, name, tag) = match parts[..] {
        ["name", n] => (None, n, None),
        ["name", n, "tag", t] => (None, n, Some(t)),
        ["collection", c, "name", n] => (Some(c), n, None),
        ["collection", c, "name", n, "tag", t] => (Some(c), n, Some(t)),
        _ => return Err(ShubError::not_found()),
    };
    let found: Vec<Value> = indexed(
        state,
        SearchQuery {
            collection: collection.map(str::to_owned),
            name: Some(name.to_owned()),
            tag: tag.map(str::to_owned),
            ..SearchQuery::default()
        },
    )
    .await?
    .iter()
    .map(|h| hit_summary("", h))
    .collect();
    Ok(Json(json!({ "containers": found })).into_response())
}

/// Labels of public images, from the search index: `(key, value) → container uris`.
async fn labels_filtered<B: ShubBackend>(
    state: &SharedState<B>,
    key: Option<&str>,
    value: Option<&str>,
) -> Result<Response, ShubError> {
    let q = SearchQuery {
        label_key: key.map(str::to_owned),
        label_value: value.map(str::to_owned),
        ..SearchQuery::default()
    };
    let mut index: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for h in indexed(state, q).await? {
        for (k, v) in &h.labels {
            if key.is_none_or(|q| k.eq_ignore_ascii_case(q))
                && value.is_none_or(|q| v.eq_ignore_ascii_case(q))
            {
                index
                    .entry((k.clone(), v.clone()))
                    .or_default()
                    .push(h.reference.clone());
            }
        }
    }
    let list: Vec<Value> = index
        .into_iter()
        .map(|((k, v), cs)| json!({ "key": k, "value": v, "containers": cs }))
        .collect();
    Ok(Json(list).into_response())
}

async fn labels_all<B: ShubBackend>(
    State(state): State<SharedState<B>>,
) -> Result<Response, ShubError> {
    labels_filtered(&state, None, None).await
}

async fn labels_key<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    Path(k): Path<String>,
) -> Result<Response, ShubError> {
    labels_filtered(&state, Some(&k), None).await
}

async fn labels_value<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    Path(v): Path<String>,
) -> Result<Response, ShubError> {
    labels_filtered(&state, None, Some(&v)).await
}

async fn labels_key_value<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    Path((k, v)): Path<(String, String)>,
) -> Result<Response, ShubError> {
    labels_filtered(&state, Some(&k), Some(&v)).await
}

async fn identity<B: ShubBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
) -> Result<Response, ShubError> {
    let base = external_base(&headers, state.config.tls)?;
    let id = state.backend.federation().await.ok().and_then(|f| f.id);
    Ok(Json(json!({ "name": "shubnet", "id": id, "url": base })).into_response())
}
