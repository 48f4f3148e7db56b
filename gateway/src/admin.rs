//! Placeholder; being written.
use crate::{Backend, SharedState};
use axum::Router;
/// Routes under `/admin/v1`.
pub fn router<B: Backend>() -> Router<SharedState<B>> {
    Router::new()
}
