//! `GET /api/histogram`: how many lines per time bucket and service, and the markers
//! (crashes, restarts, ...) of the same range, for a chart of activity.
//!
//! Parameters: `service` (repeatable), `q` (as in `/api/search`, filters the lines),
//! `since` (default one hour before `until`), `until` (default now), `interval` (a
//! duration of whole seconds; by default the roundest one giving at most
//! [`TARGET_BUCKETS`] buckets). Buckets start at multiples of the interval since the
//! epoch, so two charts of overlapping ranges share their buckets. Markers are filtered
//! by service and time, not by `q`: they explain the lines around them.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::params::Params;
use super::{ApiError, AppState};
use crate::index::histogram::{line_histogram, Buckets};
use crate::index::search::{self, format_ts, Order, SearchRequest};
use crate::index::{Hit, SearchError};
use crate::record::Kind;
use crate::units::parse_duration;

pub(super) const KNOWN: &[&str] = &["service", "q", "since", "until", "interval"];
/// What an interval chosen by the daemon aims at: a chart's width in bars.
pub const TARGET_BUCKETS: u64 = 120;
/// More buckets than this are refused: nobody reads them, and the answer would be big.
pub const MAX_BUCKETS: usize = 2_000;
/// Markers returned at most (the oldest ones).
pub const MAX_MARKERS: usize = 1_000;
/// The intervals the daemon picks from, in seconds.
const ROUND_INTERVALS: [u64; 11] = [1, 5, 10, 30, 60, 300, 600, 1_800, 3_600, 21_600, 86_400];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    /// The bucket's start.
    pub ts: String,
    /// Lines per service; services without lines in the bucket are absent.
    pub counts: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub since: String,
    pub until: String,
    pub interval_s: u64,
    /// The services asked for, and every service with lines in the range, by name.
    pub services: Vec<String>,
    pub buckets: Vec<Bucket>,
    pub markers: Vec<Hit>,
    /// Lines counted in all buckets.
    pub total: u64,
}

pub async fn histogram(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Histogram>, ApiError> {
    let p = Params::parse(raw.as_deref(), KNOWN)?;
    let now = Utc::now();
    let (since, until) = p.time_range(now)?;
    let until = until.unwrap_or(now);
    let since = since.unwrap_or_else(|| {
        until
            .checked_sub_signed(chrono::Duration::hours(1))
            .unwrap_or(until)
    });
    if since > until {
        return Err(ApiError::BadRequest(
            "parameter \"since\" is later than \"until\"".into(),
        ));
    }
    let interval_s = match p.parsed("interval", parse_interval)? {
        Some(s) => s,
        None => auto_interval(since, until),
    };
    let buckets = Buckets::covering(since, until, interval_s);
    if buckets.count > MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "parameter \"interval\": {} buckets between since and until; at most {MAX_BUCKETS} \
             (ask for a longer interval or a shorter range)",
            buckets.count
        )));
    }
    let req = SearchRequest {
        q: p.one("q")?.unwrap_or_default().to_string(),
        services: p.all("service"),
        since: Some(since),
        until: Some(until),
        ..SearchRequest::default()
    };
    let timeline = state.timeline.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let counts = line_histogram(&timeline, &req, buckets)?;
        let markers = search::search(
            &timeline,
            &SearchRequest {
                q: String::new(),
                kind: Some(Kind::Marker),
                limit: MAX_MARKERS,
                order: Order::Asc,
                ..req.clone()
            },
        )?;
        Ok::<_, SearchError>((req, counts, markers.hits))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (req, counts, markers) = match answer {
        Ok(a) => a,
        Err(SearchError::Query(e)) => {
            return Err(ApiError::BadRequest(format!("parameter \"q\": {e}")))
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let mut rows: Vec<Bucket> = (0..buckets.count)
        .map(|i| Bucket {
            ts: format_ts(buckets.start(i)),
            counts: BTreeMap::new(),
        })
        .collect();
    let mut services: BTreeSet<String> = req.services.into_iter().collect();
    let mut total = 0;
    for ((i, service), tally) in counts {
        if let Some(row) = rows.get_mut(i as usize) {
            total += tally.count;
            services.insert(service.clone());
            *row.counts.entry(service).or_default() += tally.count;
        }
    }
    Ok(Json(Histogram {
        since: format_ts(since.timestamp_micros()),
        until: format_ts(until.timestamp_micros()),
        interval_s,
        services: services.into_iter().collect(),
        buckets: rows,
        markers,
        total,
    }))
}

/// An interval: a duration of whole seconds, at least one.
pub(super) fn parse_interval(v: &str) -> Result<u64, String> {
    let d = parse_duration(v)?;
    if d.subsec_nanos() != 0 || d.as_secs() == 0 {
        return Err(format!(
            "{v:?} is not a whole number of seconds (at least 1s)"
        ));
    }
    Ok(d.as_secs())
}

/// The roundest interval giving at most [`TARGET_BUCKETS`] buckets; whole days beyond
/// the last round one.
pub fn auto_interval(since: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    let span = (until - since).num_seconds().max(1) as u64;
    ROUND_INTERVALS
        .iter()
        .copied()
        // One bucket more than span/interval, since the first is aligned before `since`.
        .find(|i| span.div_ceil(*i) < TARGET_BUCKETS)
        .unwrap_or_else(|| span.div_ceil(TARGET_BUCKETS - 1).div_ceil(86_400) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_chosen_interval_is_round_and_gives_at_most_120_buckets() {
        let at = t("2026-11-22T10:00:00Z");
        let auto = |secs: i64| auto_interval(at, at + chrono::Duration::seconds(secs));
        assert_eq!(auto(0), 1);
        assert_eq!(auto(60), 1);
        assert_eq!(auto(600), 10);
        assert_eq!(auto(3_600), 60);
        assert_eq!(auto(6 * 3_600), 300);
        assert_eq!(auto(24 * 3_600), 1_800);
        assert_eq!(auto(7 * 86_400), 21_600);
        assert_eq!(auto(30 * 86_400), 86_400);
        assert_eq!(auto(365 * 86_400), 4 * 86_400);
        for secs in [1, 59, 119, 3_599, 3_601, 86_399, 86_401, 400 * 86_400 + 7] {
            let i = auto(secs);
            // Worst case: `since` just after an aligned start.
            let b = Buckets::covering(
                at + chrono::Duration::milliseconds(999),
                at + chrono::Duration::seconds(secs),
                i,
            );
            assert!(b.count as u64 <= TARGET_BUCKETS, "{secs}s: {b:?}");
        }
    }

    #[test]
    fn intervals_are_whole_seconds() {
        assert_eq!(parse_interval("1m"), Ok(60));
        assert_eq!(parse_interval("90s"), Ok(90));
        assert!(parse_interval("500ms")
            .unwrap_err()
            .contains("whole number"));
        assert!(parse_interval("0").unwrap_err().contains("whole number"));
        assert!(parse_interval("soon")
            .unwrap_err()
            .contains("invalid duration"));
    }
}

#[cfg(test)]
mod route_tests {
    use serde_json::json;

    use crate::api::testing::{bad_request, get_json, line, marker, state_with};

    fn seeded() -> (tempfile::TempDir, crate::api::AppState) {
        state_with(vec![
            line("duck", "2026-11-22T09:59:59Z", "duck early", 0),
            line("duck", "2026-11-22T10:00:05Z", "duck starting", 1),
            line("duck", "2026-11-22T10:00:50Z", "duck timeout", 2),
            line("duck", "2026-11-22T10:01:10Z", "duck done", 3),
            line("api", "2026-11-22T10:02:30Z", "api timeout", 0),
            line("api", "2026-11-22T10:03:00Z", "api after the range", 1),
            marker("duck", "2026-11-22T10:01:00Z", "crash", 0),
            marker("api", "2026-11-22T10:02:00Z", "start", 1),
        ])
    }

    const RANGE: &str = "since=2026-11-22T10:00:00Z&until=2026-11-22T10:03:00Z";

    #[tokio::test]
    async fn counts_lines_per_bucket_and_service_with_the_markers_of_the_range() {
        let (_dir, state) = seeded();
        let got = get_json(&state, &format!("/api/histogram?{RANGE}&interval=1m")).await;
        let marker = |service: &str, ts: &str, event: &str, offset: u64| {
            json!({
                "ts": ts, "ts_source": "line", "service": service, "stream": "event",
                "instance": null, "level": null, "kind": "marker",
                "message": format!("{service} {event}"), "file": "/pm2/pub.sock",
                "offset": offset, "split": false, "event": event,
            })
        };
        assert_eq!(
            got,
            json!({
                "since": "2026-11-22T10:00:00.000000Z",
                "until": "2026-11-22T10:03:00.000000Z",
                "interval_s": 60,
                "services": ["api", "duck"],
                "buckets": [
                    {"ts": "2026-11-22T10:00:00.000000Z", "counts": {"duck": 2}},
                    {"ts": "2026-11-22T10:01:00.000000Z", "counts": {"duck": 1}},
                    {"ts": "2026-11-22T10:02:00.000000Z", "counts": {"api": 1}},
                ],
                "markers": [
                    marker("duck", "2026-11-22T10:01:00.000000Z", "crash", 0),
                    marker("api", "2026-11-22T10:02:00.000000Z", "start", 1),
                ],
                "total": 4,
            })
        );

        // q filters the lines, not the markers.
        let got = get_json(
            &state,
            &format!("/api/histogram?{RANGE}&interval=1m&q=timeout"),
        )
        .await;
        assert_eq!(
            got["buckets"],
            json!([
                {"ts": "2026-11-22T10:00:00.000000Z", "counts": {"duck": 1}},
                {"ts": "2026-11-22T10:01:00.000000Z", "counts": {}},
                {"ts": "2026-11-22T10:02:00.000000Z", "counts": {"api": 1}},
            ])
        );
        assert_eq!(got["total"], 2);
        assert_eq!(got["markers"].as_array().unwrap().len(), 2);

        // Services filter both; a service asked for is listed even without lines.
        let got = get_json(
            &state,
            &format!("/api/histogram?{RANGE}&interval=1m&service=api&service=nobody"),
        )
        .await;
        assert_eq!(got["services"], json!(["api", "nobody"]));
        assert_eq!(got["total"], 1);
        assert_eq!(got["markers"][0]["message"], "api start");
        assert_eq!(got["markers"].as_array().unwrap().len(), 1);

        // Buckets are aligned to the interval, whatever `since` is.
        let got = get_json(
            &state,
            "/api/histogram?since=2026-11-22T10:00:30Z&until=2026-11-22T10:02:01Z&interval=1m",
        )
        .await;
        let starts: Vec<&str> = got["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["ts"].as_str().unwrap())
            .collect();
        assert_eq!(
            starts,
            [
                "2026-11-22T10:00:00.000000Z",
                "2026-11-22T10:01:00.000000Z",
                "2026-11-22T10:02:00.000000Z"
            ]
        );
        // Only lines within [since, until) count: 10:00:05 is before since.
        assert_eq!(got["total"], 2);
    }

    #[tokio::test]
    async fn without_an_interval_a_round_one_is_chosen() {
        let (_dir, state) = seeded();
        let got = get_json(&state, &format!("/api/histogram?{RANGE}")).await;
        assert_eq!(got["interval_s"], 5);
        assert_eq!(got["buckets"].as_array().unwrap().len(), 36);
        assert_eq!(got["total"], 4);
        // The default range is the last hour: these lines are older.
        let got = get_json(&state, "/api/histogram").await;
        assert_eq!(got["interval_s"], 60);
        let n = got["buckets"].as_array().unwrap().len();
        assert!(n == 60 || n == 61, "{n} buckets");
        assert_eq!(got["total"], 0);
        assert_eq!(got["markers"], json!([]));
        // 246,000 years back: whole days, still at most 120 buckets.
        let got = get_json(&state, "/api/histogram?since=90000000d").await;
        assert_eq!(got["interval_s"].as_u64().unwrap() % 86_400, 0);
        assert!(got["buckets"].as_array().unwrap().len() <= 120);
        assert_eq!(got["total"], 6, "every line");
    }

    #[tokio::test]
    async fn malformed_parameters_are_400s_naming_them() {
        let (_dir, state) = seeded();
        for (query, says) in [
            (
                "foo=1",
                "unknown parameter \"foo\" (known: service, q, since, until, interval)",
            ),
            (
                "interval=soon",
                "parameter \"interval\": invalid duration \"soon\"",
            ),
            (
                "interval=500ms",
                "parameter \"interval\": \"500ms\" is not a whole number of seconds (at least 1s)",
            ),
            (
                "interval=1m&interval=5m",
                "parameter \"interval\" may be given only once",
            ),
            (
                "since=2026-11-21T00:00:00Z&until=2026-11-22T00:00:00Z&interval=10s",
                "parameter \"interval\": 8640 buckets between since and until; at most 2000",
            ),
            ("since=yesterdayish", "parameter \"since\": invalid time"),
            ("until=never", "parameter \"until\": invalid time"),
            (
                "since=2026-11-22T11:00:00Z&until=2026-11-22T10:00:00Z",
                "parameter \"since\" is later than \"until\"",
            ),
            // Only since, in the future: later than the default until (now).
            (
                "since=2999-01-01T00:00:00Z",
                "parameter \"since\" is later than \"until\"",
            ),
            ("q=timeout AND (", "parameter \"q\": Syntax Error"),
            ("q=a&q=b", "parameter \"q\" may be given only once"),
            // The ends of the calendar do not overflow anything.
            (
                "since=90000000d&interval=1s",
                "parameter \"interval\": 77760",
            ),
        ] {
            let err = bad_request(
                &state,
                &format!("/api/histogram?{}", query.replace(' ', "%20")),
            )
            .await;
            assert!(err.starts_with(says), "{query}: {err}");
        }
    }
}
