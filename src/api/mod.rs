//! The HTTP API: `fn router(state) -> Router`, so tests can drive it without a port, and
//! one [`ApiError`] that every handler returns, mapped to a status and `{"error": ...}`.

mod auth;
mod error;
mod events;
pub mod histogram;
mod metrics;
mod params;
mod rotation;
mod search;
pub mod services;
mod tail;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
mod web;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use error::ApiError;

use crate::config::Config;
use crate::index::Timeline;
use crate::live::Live;
use crate::rotate::{RotateMsg, RotationBoard};
use crate::tail::Followed;

#[derive(Clone)]
pub struct AppState {
    pub timeline: Timeline,
    /// Set once the daemon has opened the index and started reading.
    pub ready: Arc<AtomicBool>,
    pub rotate: std::sync::mpsc::SyncSender<RotateMsg>,
    pub followed: Followed,
    pub board: RotationBoard,
    pub config: Arc<Config>,
    pub live: Live,
    pub metrics: crate::metrics::Metrics,
    pub pm2_status: crate::pm2::status::Pm2Status,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/assets/app.js", get(web::app_js))
        .route("/assets/style.css", get(web::style_css))
        .route("/healthz", get(healthz))
        .route("/api/search", get(search::search))
        .route("/api/events", get(events::events))
        .route("/api/tail", get(tail::tail))
        .route("/api/status", get(rotation::status))
        .route("/api/rotate", post(rotation::rotate))
        .route("/api/services", get(services::services))
        .route("/api/histogram", get(histogram::histogram))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Parses a query string the way the handler of `route` does, without an index or a
/// running daemon: `Err` carries the sentence a 400 would. For the fuzz target and
/// property tests over the parameter parsers (`q` is only checked by the index, so its
/// syntax is not looked at here).
pub fn check_query_string(raw: &str, route: &str) -> Result<(), String> {
    let parse = |known: &[&str]| params::Params::parse(Some(raw), known);
    let checked = match route {
        "/api/search" => parse(search::KNOWN).and_then(|p| search::request_from(&p).map(drop)),
        "/api/events" => parse(events::KNOWN).and_then(|p| events::request_from(&p).map(drop)),
        "/api/tail" => parse(tail::KNOWN).and_then(|p| search::filters_from(&p).map(drop)),
        "/api/histogram" => parse(histogram::KNOWN).and_then(|p| {
            p.time_range(chrono::Utc::now())?;
            p.parsed("interval", histogram::parse_interval).map(drop)
        }),
        "/api/rotate" => parse(&["service"]).and_then(|p| p.one("service").map(drop)),
        "/api/status" | "/api/services" | "/metrics" => parse(&[]).map(drop),
        _ => return Err(format!("no such route: {route}")),
    };
    checked.map_err(|e| e.to_string())
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.ready.load(Ordering::Acquire) {
        Ok(Json(json!({"status": "ok"})))
    } else {
        Err(ApiError::NotReady)
    }
}

async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": format!("{} does not accept {method}", uri.path())})),
    )
}

async fn not_found(uri: axum::http::Uri) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no such route: {}", uri.path())})),
    )
}
