//! `GET /api/search`: the timeline's query endpoint.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::Utc;

use super::params::Params;
use super::{ApiError, AppState};
use crate::index::search::{
    self, Order, SearchRequest, SearchResult, SortKey, DEFAULT_LIMIT, MAX_LIMIT,
};
use crate::index::SearchError;
use crate::record::{Kind, Level, Stream};

pub(super) const KNOWN: &[&str] = &[
    "q", "service", "stream", "level", "kind", "since", "until", "limit", "order", "cursor",
    "cache",
];

pub async fn search(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchResult>, ApiError> {
    let req = request_from(&Params::parse(raw.as_deref(), KNOWN)?)?;
    let timeline = state.timeline.clone();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || search::search(&timeline, &req))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state.metrics.observe_search(started.elapsed());
    match result {
        Ok(r) => Ok(Json(r)),
        Err(SearchError::Query(e)) => Err(ApiError::BadRequest(format!("parameter \"q\": {e}"))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Turns the query string into a search request, refusing anything malformed.
pub fn request_from(p: &Params) -> Result<SearchRequest, ApiError> {
    let order = p.parsed("order", choice(&["asc", "desc"]))?;
    let cache = p.parsed("cache", choice(&["true", "false"]))?;
    let limit = p.limit(MAX_LIMIT)?;
    let after = p.parsed("cursor", |v| {
        SortKey::decode(v).ok_or_else(|| format!("\"{v}\" is not a cursor from a previous page"))
    })?;
    Ok(SearchRequest {
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        order: if order.as_deref() == Some("asc") {
            Order::Asc
        } else {
            Order::Desc
        },
        after,
        fresh: cache.as_deref() == Some("false"),
        ..filters_from(p)?
    })
}

/// The filters `/api/search` and `/api/tail` share: `q`, `service`, `stream`, `level`,
/// `kind`, `since`, `until`.
pub fn filters_from(p: &Params) -> Result<SearchRequest, ApiError> {
    let stream = p.parsed("stream", choice(&["out", "err", "event"]))?;
    let level = p.parsed(
        "level",
        choice(&["trace", "debug", "info", "warn", "error"]),
    )?;
    let kind = p.parsed("kind", choice(&["line", "marker"]))?;
    let (since, until) = p.time_range(Utc::now())?;
    Ok(SearchRequest {
        q: p.one("q")?.unwrap_or_default().to_string(),
        services: p.all("service"),
        stream: stream.as_deref().and_then(Stream::parse),
        level: level.as_deref().and_then(Level::parse),
        kind: kind.as_deref().and_then(Kind::parse),
        since,
        until,
        ..SearchRequest::default()
    })
}

/// A parser for a parameter that must be one of `allowed`.
fn choice(allowed: &'static [&'static str]) -> impl Fn(&str) -> Result<String, String> {
    move |v: &str| {
        if allowed.contains(&v) {
            Ok(v.to_string())
        } else {
            Err(format!("\"{v}\" is not one of {}", allowed.join(", ")))
        }
    }
}
