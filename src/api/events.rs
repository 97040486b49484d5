//! `GET /api/events`: the markers PM2's bus put in the timeline (crashes, restarts,
//! stops, starts, reloads), newest first, with their structured fields.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::Utc;
use serde::Serialize;

use super::params::Params;
use super::{ApiError, AppState};
use crate::index::search::{self, Hit, Order, SearchRequest, DEFAULT_LIMIT, MAX_LIMIT};
use crate::record::Kind;

pub(super) const KNOWN: &[&str] = &["service", "since", "until", "limit"];

#[derive(Debug, Serialize, PartialEq)]
pub struct Event {
    pub ts: String,
    pub service: String,
    pub instance: Option<u64>,
    pub event: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: Option<u64>,
    pub manual: Option<bool>,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Events {
    pub events: Vec<Event>,
}

impl From<Hit> for Event {
    fn from(h: Hit) -> Event {
        Event {
            ts: h.ts,
            service: h.service,
            instance: h.instance,
            event: h.event,
            exit_code: h.exit_code,
            restart_count: h.restart_count,
            manual: h.manual,
            message: h.message,
        }
    }
}

pub async fn events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Events>, ApiError> {
    let req = request_from(&Params::parse(raw.as_deref(), KNOWN)?)?;
    let timeline = state.timeline.clone();
    let result = tokio::task::spawn_blocking(move || search::search(&timeline, &req))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Events {
        events: result.hits.into_iter().map(Event::from).collect(),
    }))
}

/// The search for markers that the query string asks for, refusing anything malformed.
pub fn request_from(p: &Params) -> Result<SearchRequest, ApiError> {
    let now = Utc::now();
    let limit = p.limit(MAX_LIMIT)?;
    let (since, until) = p.time_range(now)?;
    Ok(SearchRequest {
        services: p.all("service"),
        kind: Some(Kind::Marker),
        since,
        until,
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        order: Order::Desc,
        ..SearchRequest::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> Result<SearchRequest, ApiError> {
        request_from(&Params::parse(Some(q), KNOWN)?)
    }

    #[test]
    fn parameters_are_strict() {
        let r = req("service=duck&service=api&limit=5&since=2026-11-22T10:00:00Z").unwrap();
        assert_eq!(r.services, vec!["duck".to_string(), "api".to_string()]);
        assert_eq!(r.limit, 5);
        assert_eq!(r.kind, Some(Kind::Marker));
        assert_eq!(req("").unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(req("limit=99999999").unwrap().limit, MAX_LIMIT);
        for (bad, says) in [
            ("q=x", "unknown parameter \"q\""),
            ("limit=0", "parameter \"limit\": must be at least 1"),
            ("limit=ten", "parameter \"limit\": \"ten\" is not a number"),
            (
                "limit=1&limit=2",
                "parameter \"limit\" may be given only once",
            ),
            ("since=yesterdayish", "parameter \"since\""),
            (
                "since=2026-11-22T11:00:00Z&until=2026-11-22T10:00:00Z",
                "\"since\" is later than \"until\"",
            ),
        ] {
            let err = req(bad).unwrap_err();
            assert!(
                matches!(&err, ApiError::BadRequest(m) if m.contains(says)),
                "{bad}: {err:?}"
            );
        }
    }
}
