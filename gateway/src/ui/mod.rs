//! The web UI: server-rendered HTML pages for people, with no JavaScript and no build step.
//!
//! | path | page |
//! |---|---|
//! | `/` | collections, with a search box |
//! | `/ui/collections/{c}` | a collection's images |
//! | `/ui/images/{c}/{n}/{t}` | one image: metadata, definition file, usage, pull commands |
//! | `/ui/search?q=&label=` | search over every public image the node knows |
//! | `/ui/federation` | members, peers, and each image's holders versus its target |
//! | `/ui/style.css` | the one stylesheet (cached for a day) |
//!
//! Every page is rendered with `maud`, which escapes all interpolated text, so labels and
//! definition files from manifests cannot inject markup. Lists come from the node's search
//! index ([`Backend::search`]), so no page scans manifests; only the image page decodes one
//! (its own). Private collections never appear; their image pages answer 403.

mod pages;

use crate::SharedState;
use crate::search::SearchQuery;
use crate::tokens::TokenBackend;
use crate::visibility::{self, Visibility};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;
use shubnet_protocol::manifest::Manifest;

/// The stylesheet, small enough to cache once and forget.
const STYLE: &str = include_str!("style.css");

/// What the web UI needs from a node.
pub trait UiBackend:
    crate::RegistryBackend
    + crate::UsageBackend
    + crate::LifecycleBackend
    + crate::VisibilityBackend
    + TokenBackend
{
}
impl<T> UiBackend for T where
    T: crate::RegistryBackend
        + crate::UsageBackend
        + crate::LifecycleBackend
        + crate::VisibilityBackend
        + TokenBackend
{
}

/// The UI routes.
pub fn router<B: UiBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/", get(home::<B>))
        .route("/ui", get(home::<B>))
        .route("/ui/", get(home::<B>))
        .route("/ui/style.css", get(style))
        .route("/ui/search", get(search::<B>))
        .route("/ui/federation", get(federation::<B>))
        .route("/ui/collections/{c}", get(collection::<B>))
        .route("/ui/images/{c}/{n}/{t}", get(image::<B>))
        .route("/ui/images/{c}/{n}/{t}/star", post(star::<B>))
}

/// An HTML response with the headers every page carries.
fn html(status: StatusCode, body: Markup) -> Response {
    let mut resp = (status, body.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; form-action 'self'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html(status, pages::error(status, message))
}

fn backend_error(e: &crate::BackendError) -> Response {
    let status = crate::error::backend_status(e);
    if status.is_server_error() {
        tracing::error!(error = %e, "web UI");
        return error_page(status, "the node could not answer; see its log");
    }
    error_page(status, &e.to_string())
}

async fn style() -> Response {
    let mut resp = STYLE.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    resp
}

/// Scheme and host the client used, for the copy-paste commands.
fn base(headers: &HeaderMap, tls: bool) -> String {
    crate::shub::external_base(headers, tls).unwrap_or_else(|_| "http://localhost".into())
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(default)]
    page: usize,
}

async fn home<B: UiBackend>(State(state): State<SharedState<B>>) -> Response {
    match visibility::public_summaries(&state.backend).await {
        Ok(list) => html(StatusCode::OK, pages::home(&list)),
        Err(e) => backend_error(&e),
    }
}

/// Page size of image lists.
const PER_PAGE: usize = 50;

async fn collection<B: UiBackend>(
    State(state): State<SharedState<B>>,
    Path(c): Path<String>,
    Query(p): Query<PageQuery>,
) -> Response {
    let q = SearchQuery {
        collection: Some(c.clone()),
        offset: p.page * PER_PAGE,
        limit: PER_PAGE,
        ..SearchQuery::default()
    };
    match visibility::search_public(&state.backend, q).await {
        Ok(found) if found.total == 0 => {
            error_page(StatusCode::NOT_FOUND, &format!("no public collection {c}"))
        }
        Ok(found) => html(
            StatusCode::OK,
            pages::collection(&c, &found, p.page, PER_PAGE),
        ),
        Err(e) => backend_error(&e),
    }
}

/// `?q=words&label=key=value&page=N`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchForm {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub page: usize,
}

async fn search<B: UiBackend>(
    State(state): State<SharedState<B>>,
    Query(f): Query<SearchForm>,
) -> Response {
    if f.q.len() > 512 || f.label.len() > 512 {
        return error_page(StatusCode::BAD_REQUEST, "the search is too long");
    }
    let (label_key, label_value) = match f.label.trim() {
        "" => (None, None),
        l => match l.split_once('=') {
            Some((k, v)) => (
                Some(k.trim().to_owned()).filter(|k| !k.is_empty()),
                Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
            ),
            None => (Some(l.to_owned()), None),
        },
    };
    let q = SearchQuery {
        q: f.q.clone(),
        label_key,
        label_value,
        offset: f.page * PER_PAGE,
        limit: PER_PAGE,
        ..SearchQuery::default()
    };
    let searched = !f.q.trim().is_empty() || !f.label.trim().is_empty();
    let found = if searched {
        match visibility::search_public(&state.backend, q).await {
            Ok(found) => Some(found),
            Err(e) => return backend_error(&e),
        }
    } else {
        None
    };
    html(StatusCode::OK, pages::search(&f, found.as_ref(), PER_PAGE))
}

async fn image<B: UiBackend>(
    State(state): State<SharedState<B>>,
    headers: HeaderMap,
    Path((c, n, t)): Path<(String, String, String)>,
) -> Response {
    match visibility::of_collection(&state.backend, &c).await {
        Ok(Visibility::Public) => {}
        Ok(Visibility::Private) => {
            return error_page(
                StatusCode::FORBIDDEN,
                &format!("collection {c} is private; pull it with a token"),
            );
        }
        Err(e) => return backend_error(&e),
    }
    let m = match state.backend.manifest_for_tag(&c, &n, &t).await {
        Ok(Some(bytes)) => match Manifest::decode(&bytes) {
            Ok(m) => m,
            Err(e) => return backend_error(&crate::BackendError::Internal(e.to_string())),
        },
        Ok(None) => return error_page(StatusCode::NOT_FOUND, &format!("no image {c}/{n}:{t}")),
        Err(e) => return backend_error(&e),
    };
    if m.body.tombstone {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("{c}/{n}:{t} has been deleted"),
        );
    }
    let reference = format!("{c}/{n}:{t}");
    let usage = match state.backend.usage(&reference).await {
        Ok(u) => u,
        Err(e) => return backend_error(&e),
    };
    let base = base(&headers, state.config.tls);
    html(StatusCode::OK, pages::image(&m, usage, &base, None))
}

#[derive(Debug, Deserialize)]
struct StarForm {
    token: String,
    #[serde(default)]
    action: String,
}

/// `POST .../star` with a form `token=…&action=star|unstar`: a user with a token stars an image
/// (one star per user), then the browser is sent back to the image page.
async fn star<B: UiBackend>(
    State(state): State<SharedState<B>>,
    Path((c, n, t)): Path<(String, String, String)>,
    Form(f): Form<StarForm>,
) -> Response {
    let user = match state.backend.identify_token(f.token.trim()).await {
        Ok(Ok(info)) => info.user,
        Ok(Err(denied)) => return error_page(StatusCode::FORBIDDEN, &denied.to_string()),
        Err(e) => return backend_error(&e),
    };
    match visibility::of_collection(&state.backend, &c).await {
        Ok(Visibility::Public) => {}
        Ok(Visibility::Private) => return error_page(StatusCode::FORBIDDEN, "private collection"),
        Err(e) => return backend_error(&e),
    }
    let reference = format!("{c}/{n}:{t}");
    match state
        .backend
        .star(&reference, &user, f.action != "unstar")
        .await
    {
        Ok(_) => Redirect::to(&pages::image_href(&c, &n, &t)).into_response(),
        Err(e) => backend_error(&e),
    }
}

async fn federation<B: UiBackend>(State(state): State<SharedState<B>>) -> Response {
    let fed = match state.backend.federation().await {
        Ok(f) => f,
        Err(e) => return backend_error(&e),
    };
    let roster = fed
        .rosters
        .last()
        .and_then(|r| shubnet_protocol::roster::SignedRoster::decode(r).ok())
        .map(|r| r.body);
    // Replication health is best effort: a node without the replicator still shows members.
    let status = state.backend.status().await.ok();
    let hidden = match state.backend.collections().await {
        Ok(list) => list
            .into_iter()
            .filter(|c| c.private)
            .map(|c| c.name)
            .collect(),
        Err(_) => std::collections::HashSet::new(),
    };
    html(
        StatusCode::OK,
        pages::federation(fed.id.as_deref(), roster.as_ref(), status.as_ref(), &hidden),
    )
}
