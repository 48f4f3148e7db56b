//! `/healthz` and `/readyz` for load balancers and orchestrators (Docker, Kubernetes, systemd
//! watchdogs). Liveness says only that the process answers; readiness asks the backend whether
//! it can serve (store open, index readable), so traffic is withheld while it cannot.
//!
//! It must not judge health by work of its own: the backend answers.

use crate::{LifecycleBackend, SharedState};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// The health routes.
pub fn router<B: LifecycleBackend>() -> Router<SharedState<B>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<B>))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz<B: LifecycleBackend>(State(state): State<SharedState<B>>) -> (StatusCode, String) {
    match state.backend.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}
