//! What the API's tests share: an [`AppState`] over a temporary index seeded with given
//! records, and a request through [`router`](super::router) without opening a port.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{router, AppState};
use crate::config::Config;
use crate::index::writer::index_for_tests;
use crate::index::Timeline;
use crate::live::{Live, LiveLimits};
use crate::record::{Kind, MarkerInfo, Record, Stream};

/// An API over an index holding `records` (committed); the directory lives as long as
/// the first value.
pub fn state_with(records: Vec<Record>) -> (tempfile::TempDir, AppState) {
    state_configured(records, |_| {})
}

/// [`state_with`] on the default configuration changed by `tweak`.
pub fn state_configured(
    records: Vec<Record>,
    tweak: impl FnOnce(&mut Config),
) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults(dir.path());
    tweak(&mut config);
    let timeline = Timeline::open(&dir.path().join("index")).unwrap();
    index_for_tests(&timeline, records);
    // Nothing rotates in these tests: the receiver is dropped.
    let (rotate, _) = std::sync::mpsc::sync_channel(1);
    let state = AppState {
        timeline,
        ready: Arc::new(AtomicBool::new(true)),
        rotate,
        followed: Default::default(),
        board: Default::default(),
        live: Live::new(LiveLimits {
            records: config.api.live_buffer as usize,
            bytes: 64 << 20,
        }),
        config: Arc::new(config),
        metrics: Default::default(),
        pm2_status: Default::default(),
    };
    (dir, state)
}

/// `GET uri` → (status, content type, body).
pub async fn get(state: &AppState, uri: &str) -> (StatusCode, String, String) {
    let resp = router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

/// `GET uri`, which must answer 200 with JSON.
pub async fn get_json(state: &AppState, uri: &str) -> serde_json::Value {
    let (status, _, body) = get(state, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The `{"error"}` of a 400 answer to `GET uri`.
pub async fn bad_request(state: &AppState, uri: &str) -> String {
    let (status, _, body) = get(state, uri).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["error"].as_str().unwrap().to_string()
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A line of `service`'s out file.
pub fn line(service: &str, ts: &str, message: &str, offset: u64) -> Record {
    Record::test_line(service, t(ts), message, offset)
}

/// A marker from PM2's bus.
pub fn marker(service: &str, ts: &str, event: &str, offset: u64) -> Record {
    Record {
        stream: Stream::Event,
        kind: Kind::Marker,
        file: "/pm2/pub.sock".into(),
        marker: Some(MarkerInfo {
            event: event.into(),
            ..MarkerInfo::default()
        }),
        ..line(service, ts, &format!("{service} {event}"), offset)
    }
}
