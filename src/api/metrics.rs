//! `GET /metrics`: the daemon's counters in Prometheus' text format, for a scraper.

use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::params::Params;
use super::{ApiError, AppState};

/// The text exposition format's media type (version 0.0.4).
pub const CONTENT: &str = "text/plain; version=0.0.4";

pub async fn metrics(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    Params::parse(raw.as_deref(), &[])?;
    let text = state.metrics.render(state.live.followers());
    Ok(([(CONTENT_TYPE, CONTENT)], text))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::CONTENT;
    use crate::api::testing::{bad_request, get, line, state_with};
    use crate::metrics::Ingested;

    #[tokio::test]
    async fn the_text_format_with_searches_timed() {
        let (_dir, state) = state_with(vec![line("duck", "2026-11-22T10:00:00Z", "a", 0)]);
        state
            .metrics
            .add_ingested([("duck", Ingested { lines: 1, bytes: 1 })]);
        let (status, _, _) = get(&state, "/api/search?q=a").await;
        assert_eq!(status, StatusCode::OK);
        let (status, ctype, body) = get(&state, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype, CONTENT);
        assert_eq!(body, state.metrics.render(0));
        let lines: Vec<&str> = body.lines().collect();
        for want in [
            "logagg_lines_ingested_total{service=\"duck\"} 1",
            "logagg_bytes_ingested_total{service=\"duck\"} 1",
            "logagg_rotations_total 0",
            "logagg_search_seconds_count 1",
            "logagg_search_seconds_bucket{le=\"+Inf\"} 1",
            "logagg_index_commit_seconds_count 0",
            "logagg_followers 0",
        ] {
            assert!(lines.contains(&want), "{want} not in:\n{body}");
        }
        // A live follower is counted while it is connected.
        let (follower, _) = state.live.subscribe();
        let (_, _, body) = get(&state, "/metrics").await;
        assert!(body.ends_with("logagg_followers 1\n"), "{body}");
        drop(follower);
    }

    #[tokio::test]
    async fn parameters_are_refused() {
        let (_dir, state) = state_with(vec![]);
        assert_eq!(
            bad_request(&state, "/metrics?name=x").await,
            "unknown parameter \"name\" (this route takes none)"
        );
    }
}
