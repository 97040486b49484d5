//! The API test fixture as an object, for the tests of `api::tests`: the state of
//! [`state_configured`], requests with headers, 400 checks, and an SSE reader.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::testing::state_configured;
use super::{router, AppState};
use crate::config::Config;
use crate::live::LiveRecord;
use crate::parse::level::detect_level;
use crate::record::{Record, Stream};

pub struct TestApi {
    pub state: AppState,
    _dir: tempfile::TempDir,
}

/// `2026-11-22T10:00:<sec>Z`.
pub fn at(sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, sec).unwrap()
}

pub fn line(sec: u32, service: &str, stream: Stream, message: &str) -> Record {
    Record {
        stream,
        level: detect_level(message),
        file: format!("/logs/{service}-{}.log", stream.as_str()),
        ..Record::test_line(service, at(sec), message, sec as u64 * 100)
    }
}

impl TestApi {
    /// An API over an index holding `records`, with `config` tweaked by `tweak`.
    pub fn new(records: Vec<Record>, tweak: impl FnOnce(&mut Config)) -> TestApi {
        let (dir, state) = state_configured(records, tweak);
        TestApi { state, _dir: dir }
    }

    /// Records arriving live (as the tailer publishes them).
    pub fn publish(&self, records: &[Record]) {
        self.state.live.publish(
            records
                .iter()
                .map(|r| Arc::new(LiveRecord::new(r)))
                .collect(),
        );
    }

    pub async fn send(&self, req: Request<Body>) -> Response<Body> {
        router(self.state.clone()).oneshot(req).await.unwrap()
    }

    /// GET `uri` with optional extra headers; the status and the body as JSON.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.get_with(uri, &[]).await
    }

    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.send(req.body(Body::empty()).unwrap()).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        });
        (status, body)
    }

    /// Asserts `uri` is a 400 whose error says `says`.
    pub async fn bad(&self, uri: &str, says: &str) {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{uri}: error {error:?} does not say {says:?}"
        );
    }
}

/// One Server-Sent Event: its `event:` name, `id:` and `data:`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads SSE events off a streaming body as frames arrive.
pub struct SseReader {
    body: Body,
    buf: String,
}

impl SseReader {
    pub fn new(resp: Response<Body>) -> SseReader {
        SseReader {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), or `None` when the stream ended or
    /// nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(e) = parse_block(&block) {
                    return Some(e);
                }
                continue;
            }
            let frame = tokio::time::timeout(wait, self.body.frame()).await.ok()??;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// Events until `end`, the stream's end, or `wait` of silence.
    pub async fn until_end(&mut self, wait: Duration) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next(wait).await {
            let end = e.event == "end";
            out.push(e);
            if end {
                break;
            }
        }
        out
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = None;
    let mut id = None;
    let mut data = Vec::new();
    for l in block.lines() {
        if let Some(v) = l.strip_prefix("event:") {
            event = Some(v.trim_start().to_string());
        } else if let Some(v) = l.strip_prefix("id:") {
            id = Some(v.trim_start().to_string());
        } else if let Some(v) = l.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
        }
    }
    (event.is_some() || !data.is_empty()).then(|| SseEvent {
        event: event.unwrap_or_else(|| "message".into()),
        id,
        data: data.join("\n"),
    })
}
