//! The HTTP API: `fn router(state) -> Router`, so tests can drive it without a port, and
//! one [`ApiError`] that every handler returns, mapped to a status and `{"error": ...}`.

mod error;
mod params;
mod search;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub use error::ApiError;

use crate::index::Timeline;

#[derive(Clone)]
pub struct AppState {
    pub timeline: Timeline,
    /// Set once the daemon has opened the index and started reading.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/search", get(search::search))
        .fallback(not_found)
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.ready.load(Ordering::Acquire) {
        Ok(Json(json!({"status": "ok"})))
    } else {
        Err(ApiError::NotReady)
    }
}

async fn not_found(uri: axum::http::Uri) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no such route: {}", uri.path())})),
    )
}
