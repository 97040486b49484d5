//! The API through `router(state)`: every route, every 400, the token, and live follows
//! (a slow follower is told what it missed; ingest and other followers go on).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::testkit::{at, line, SseEvent, SseReader, TestApi};
use crate::record::{Kind, MarkerInfo, Record, Stream};

const WAIT: Duration = Duration::from_secs(5);

fn timeline() -> Vec<Record> {
    let mut marker = line(5, "duck", Stream::Event, "duck crashed (exit code 1)");
    marker.kind = Kind::Marker;
    marker.marker = Some(MarkerInfo {
        event: "crash".into(),
        exit_code: Some(1),
        restart_count: Some(1),
        manual: Some(false),
    });
    vec![
        line(1, "duck", Stream::Out, "quack 1"),
        line(2, "api", Stream::Out, "GET /users 200"),
        line(3, "duck", Stream::Err, "ERROR upstream timeout"),
        line(4, "api", Stream::Out, "GET /orders 504 upstream timeout"),
        marker,
        line(6, "duck", Stream::Out, "quack 2"),
    ]
}

fn messages(body: &Value) -> Vec<&str> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"].as_str().unwrap())
        .collect()
}

fn record_messages(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "record")
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            v["message"].as_str().unwrap().to_string()
        })
        .collect()
}

async fn tail(api: &TestApi, query: &str) -> SseReader {
    let resp = api
        .send(
            Request::get(format!("/api/tail?{query}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    SseReader::new(resp)
}

#[tokio::test]
async fn healthz_says_ready_or_starting() {
    let api = TestApi::new(vec![], |_| {});
    assert_eq!(
        api.get("/healthz").await,
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
    api.state
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    let (status, body) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "the daemon is starting");
}

#[tokio::test]
async fn search_answers_in_timeline_order_with_exact_totals() {
    let api = TestApi::new(timeline(), |_| {});
    let (status, body) = api.get("/api/search?q=timeout&order=asc").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 2);
    assert_eq!(
        messages(&body),
        ["ERROR upstream timeout", "GET /orders 504 upstream timeout"]
    );
    assert_eq!(body["hits"][0]["ts"], "2026-11-22T10:00:03.000000Z");
    assert_eq!(body["hits"][0]["stream"], "err");
    assert_eq!(body["hits"][0]["level"], "error");

    // Counted afresh or from the counts kept by the searches before: the same answer.
    for cache in ["true", "false", "true"] {
        let (status, body) = api
            .get(&format!(
                "/api/search?q=%22upstream%20timeout%22&cache={cache}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 2, "cache={cache}");
        assert_eq!(
            messages(&body),
            ["GET /orders 504 upstream timeout", "ERROR upstream timeout"]
        );
    }

    let (_, body) = api.get("/api/search?service=duck&kind=line").await;
    assert_eq!(
        messages(&body),
        ["quack 2", "ERROR upstream timeout", "quack 1"]
    );
    let (_, body) = api
        .get("/api/search?service=duck&service=api&limit=2")
        .await;
    assert_eq!(body["total"], 6);
    assert_eq!(messages(&body), ["quack 2", "duck crashed (exit code 1)"]);
    // A limit above the cap is capped, not refused.
    let (status, body) = api.get("/api/search?limit=99999999").await;
    assert_eq!((status, body["total"].as_u64()), (StatusCode::OK, Some(6)));
    let since = at(4).to_rfc3339();
    let (_, body) = api
        .get(&format!(
            "/api/search?since={}&order=asc",
            since.replace('+', "%2B")
        ))
        .await;
    assert_eq!(
        messages(&body),
        [
            "GET /orders 504 upstream timeout",
            "duck crashed (exit code 1)",
            "quack 2"
        ]
    );
}

#[tokio::test]
async fn search_refuses_each_bad_parameter_by_name() {
    let api = TestApi::new(timeline(), |_| {});
    for (uri, says) in [
        ("/api/search?file=/etc/passwd", "unknown parameter \"file\""),
        (
            "/api/search?q=a&q=b",
            "parameter \"q\" may be given only once",
        ),
        ("/api/search?q=(unclosed", "parameter \"q\""),
        ("/api/search?stream=stdout", "parameter \"stream\""),
        ("/api/search?level=loud", "parameter \"level\""),
        ("/api/search?kind=event", "parameter \"kind\""),
        ("/api/search?since=yesterday-ish", "parameter \"since\""),
        ("/api/search?until=13:00", "parameter \"until\""),
        (
            "/api/search?since=1h&until=2h",
            "\"since\" is later than \"until\"",
        ),
        (
            "/api/search?limit=0",
            "parameter \"limit\": must be at least 1",
        ),
        (
            "/api/search?limit=ten",
            "parameter \"limit\": \"ten\" is not a number",
        ),
        ("/api/search?limit=-1", "parameter \"limit\""),
        ("/api/search?order=random", "parameter \"order\""),
        (
            "/api/search?cache=no",
            "parameter \"cache\": \"no\" is not one of true, false",
        ),
        ("/api/search?cursor=../../etc", "parameter \"cursor\""),
    ] {
        api.bad(uri, says).await;
    }
}

#[tokio::test]
async fn events_lists_markers_and_refuses_bad_parameters() {
    let api = TestApi::new(timeline(), |_| {});
    let (status, body) = api.get("/api/events?service=duck").await;
    assert_eq!(status, StatusCode::OK);
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["event"], "crash");
    assert_eq!(events[0]["exit_code"], 1);
    api.bad("/api/events?q=x", "unknown parameter \"q\"").await;
    api.bad("/api/events?limit=none", "parameter \"limit\"")
        .await;
    api.bad("/api/events?since=soon", "parameter \"since\"")
        .await;
}

#[tokio::test]
async fn status_and_rotate_refuse_bad_parameters() {
    let api = TestApi::new(vec![], |_| {});
    let (status, body) = api.get("/api/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["files"], serde_json::json!([]));
    api.bad("/api/status?path=/etc/shadow", "unknown parameter \"path\"")
        .await;
    let post = |uri: &str| Request::post(uri).body(Body::empty()).unwrap();
    let resp = api.send(post("/api/rotate?service=ghost")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body["error"],
        "parameter \"service\": no live file of a service named \"ghost\""
    );
    let resp = api.send(post("/api/rotate?file=x")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let api = TestApi::new(vec![], |_| {});
    let (status, body) = api.get("/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such route: /api/nothing");
    let resp = api
        .send(Request::delete("/api/search").body(Body::empty()).unwrap())
        .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = api.get("/api/rotate").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn with_a_token_every_data_route_needs_it() {
    let api = TestApi::new(timeline(), |c| c.api.token = Some("s3cret-token".into()));
    for uri in [
        "/api/search",
        "/api/events",
        "/api/status",
        "/api/tail",
        "/api/nothing",
    ] {
        let resp = api
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"logagg\""
        );
        let (_, body) = api.get(uri).await;
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("this daemon needs a token"),
            "{body}"
        );
    }
    let (status, body) = api
        .get_with("/api/search", &[("authorization", "Bearer s3cret-tokeN")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "the bearer token is wrong");
    let (status, body) = api
        .get_with("/api/search", &[("authorization", "Bearer s3cret-token")])
        .await;
    assert_eq!((status, body["total"].as_u64()), (StatusCode::OK, Some(6)));
    // A supervisor's health check needs no token.
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn tail_sends_the_last_n_then_ends_without_follow() {
    let api = TestApi::new(timeline(), |_| {});
    let events = tail(&api, "n=3&follow=false").await.until_end(WAIT).await;
    assert_eq!(
        record_messages(&events),
        [
            "GET /orders 504 upstream timeout",
            "duck crashed (exit code 1)",
            "quack 2"
        ]
    );
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["record", "record", "record", "caught-up", "end"]);
    assert_eq!(events[3].data, r#"{"backlog":3}"#);
    // Each record's id is the cursor to resume after it.
    let after = events[0].id.clone().unwrap();
    let events = tail(&api, &format!("after={after}&follow=false&service=duck"))
        .await
        .until_end(WAIT)
        .await;
    assert_eq!(
        record_messages(&events),
        ["duck crashed (exit code 1)", "quack 2"]
    );
    // A browser's reconnect sends Last-Event-ID instead.
    let resp = api
        .send(
            Request::get("/api/tail?follow=false&kind=line")
                .header("last-event-id", &after)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let events = SseReader::new(resp).until_end(WAIT).await;
    assert_eq!(record_messages(&events), ["quack 2"]);
    // grep is a regex over the message; q the index's query language.
    let events = tail(&api, "grep=%5EGET.*5%5Cd%5Cd&follow=false")
        .await
        .until_end(WAIT)
        .await;
    assert_eq!(
        record_messages(&events),
        ["GET /orders 504 upstream timeout"]
    );
    let events = tail(&api, "q=quack&follow=false")
        .await
        .until_end(WAIT)
        .await;
    assert_eq!(record_messages(&events), ["quack 1", "quack 2"]);
}

#[tokio::test]
async fn tail_refuses_each_bad_parameter_by_name() {
    let api = TestApi::new(timeline(), |_| {});
    for (uri, says) in [
        ("/api/tail?path=/etc/passwd", "unknown parameter \"path\""),
        (
            "/api/tail?n=lots",
            "parameter \"n\": \"lots\" is not a number",
        ),
        ("/api/tail?n=-5", "parameter \"n\""),
        ("/api/tail?follow=maybe", "parameter \"follow\""),
        (
            "/api/tail?grep=(unclosed",
            "parameter \"grep\": not a regular expression",
        ),
        ("/api/tail?grep=a%7B99999999%7D", "parameter \"grep\""),
        ("/api/tail?q=(unclosed", "parameter \"q\""),
        (
            "/api/tail?after=not-a-cursor",
            "after \"not-a-cursor\" is not a record id",
        ),
        ("/api/tail?stream=both", "parameter \"stream\""),
        (
            "/api/tail?since=1h&until=2h",
            "\"since\" is later than \"until\"",
        ),
    ] {
        api.bad(uri, says).await;
    }
    let (status, body) = api
        .get_with("/api/tail", &[("last-event-id", "garbage")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "Last-Event-ID \"garbage\" is not a record id from a previous follow"
    );
}

#[tokio::test]
async fn tail_follows_live_records_with_its_filters() {
    let api = TestApi::new(timeline(), |_| {});
    let mut follow = tail(&api, "n=1&service=duck&stream=err").await;
    let first = follow.next(WAIT).await.unwrap();
    assert_eq!(record_messages(&[first]), ["ERROR upstream timeout"]);
    assert_eq!(follow.next(WAIT).await.unwrap().event, "caught-up");
    api.publish(&[
        line(7, "api", Stream::Err, "ERROR not for this follower"),
        line(8, "duck", Stream::Out, "quack 3"),
        line(9, "duck", Stream::Err, "ERROR live one"),
    ]);
    let next = follow.next(WAIT).await.unwrap();
    assert_eq!(record_messages(&[next]), ["ERROR live one"]);
    assert_eq!(api.state.live.followers(), 1);
}

#[tokio::test]
async fn an_idle_follow_gets_heartbeats() {
    let api = TestApi::new(vec![], |c| c.api.heartbeat = Duration::from_millis(50));
    let resp = api
        .send(Request::get("/api/tail?n=0").body(Body::empty()).unwrap())
        .await;
    let mut body = resp.into_body();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    // caught-up first, then at least two keep-alive comments with nothing else between.
    while seen.matches("\n:").count() + usize::from(seen.starts_with(':')) < 2 {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("no heartbeat within 5 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap()));
    }
    assert!(seen.starts_with("event: caught-up\n"), "{seen:?}");
}

/// A follower that reads nothing while 10,000 records arrive: publishing never waits for
/// it, a follower that reads keeps getting every record, and the slow one is told
/// exactly how many it missed.
#[tokio::test]
async fn a_slow_follower_gets_dropped_without_slowing_ingest_or_others() {
    const TOTAL: u32 = 10_000;
    const BATCH: u32 = 200;
    let api = TestApi::new(vec![], |c| c.api.live_buffer = 1_000);
    let mut slow = tail(&api, "n=0").await;
    let mut fast = tail(&api, "n=0").await;
    assert_eq!(slow.next(WAIT).await.unwrap().event, "caught-up");
    assert_eq!(fast.next(WAIT).await.unwrap().event, "caught-up");

    let mut fast_got = Vec::new();
    for b in 0..TOTAL / BATCH {
        let batch: Vec<Record> = (0..BATCH)
            .map(|i| {
                let n = b * BATCH + i;
                let mut r = line(0, "duck", Stream::Out, &format!("line {n}"));
                r.offset = n as u64;
                r
            })
            .collect();
        // Returns at once whatever the followers do: the ring never waits.
        api.publish(&batch);
        while fast_got.len() < ((b + 1) * BATCH) as usize {
            let e = fast.next(WAIT).await.expect("the reading follower stalled");
            assert_eq!(e.event, "record", "the reading follower was dropped: {e:?}");
            fast_got.push(e);
        }
    }
    let expected: Vec<String> = (0..TOTAL).map(|n| format!("line {n}")).collect();
    assert_eq!(record_messages(&fast_got), expected);

    // Now read the slow one: some records, a `dropped` with the gap, then the rest.
    let mut received = 0u64;
    let mut dropped = 0u64;
    let mut gap = 0u64;
    let mut last_seen: Option<u64> = None;
    while received + dropped < TOTAL as u64 {
        let e = slow.next(WAIT).await.expect("the slow follower stalled");
        match e.event.as_str() {
            "record" => {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                let n: u64 = v["message"].as_str().unwrap()["line ".len()..]
                    .parse()
                    .unwrap();
                // In order, and every gap is exactly what `dropped` said it was.
                assert_eq!(n, last_seen.map_or(0, |l| l + 1) + gap, "{e:?}");
                last_seen = Some(n);
                gap = 0;
                received += 1;
            }
            "dropped" => {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                let n = v["dropped"].as_u64().unwrap();
                dropped += n;
                gap += n;
            }
            other => panic!("unexpected event {other}: {e:?}"),
        }
    }
    assert_eq!(received + dropped, TOTAL as u64);
    assert!(dropped > 0, "the slow follower was never dropped");
    assert_eq!(last_seen, Some(TOTAL as u64 - 1));
}

/// A live follow with `q` shows exactly what `/api/search` with that `q` returns once
/// the records are indexed: the in-memory matcher and tantivy agree.
#[tokio::test]
async fn live_query_matching_agrees_with_the_index() {
    let texts = [
        "GET /users 200 in 12ms",
        "GET /orders 504 upstream timeout",
        "ERROR upstream timeout after 30s",
        "WARN retrying upstream (attempt 2)",
        "quack quack",
        "Timeout while connecting to db-01",
        "timeouts are configured per route",
        "user 42 logged in from 10.0.0.7",
        "payment failed: card_declined",
        "café crème served",
        "upstream healthy again",
        "",
    ];
    let records: Vec<Record> = texts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let service = if i % 2 == 0 { "duck" } else { "api" };
            line(i as u32, service, Stream::Out, m)
        })
        .collect();
    let api = TestApi::new(records.clone(), |_| {});
    let queries = [
        "timeout",
        "timeout AND upstream",
        "timeout upstream",
        "timeout OR quack",
        "upstream -timeout",
        "upstream AND NOT timeout",
        "\"upstream timeout\"",
        "\"timeout upstream\"",
        "time*",
        "GET",
        "get /users",
        "card_declined",
        "café",
        "10.0.0.7",
        "service:api AND upstream",
        "level:error",
        "(quack OR users) AND -orders",
        "*",
    ];
    for q in queries {
        let enc: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let (status, body) = api
            .get(&format!("/api/search?q={enc}&order=asc&limit=100"))
            .await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        let indexed: Vec<String> = messages(&body).iter().map(|m| m.to_string()).collect();

        let mut follow = tail(&api, &format!("q={enc}&n=0")).await;
        assert_eq!(follow.next(WAIT).await.unwrap().event, "caught-up");
        // The same records again, live (different offsets: new records), then a
        // sentinel every query lets through last.
        let live: Vec<Record> = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.offset += 1_000_000;
                r
            })
            .collect();
        api.publish(&live);
        let mut shown = Vec::new();
        while shown.len() < indexed.len() {
            match follow.next(Duration::from_millis(500)).await {
                Some(e) => shown.extend(record_messages(&[e])),
                None => break,
            }
        }
        // Nothing more than the index gave.
        if let Some(e) = follow.next(Duration::from_millis(100)).await {
            shown.extend(record_messages(&[e]));
        }
        assert_eq!(shown, indexed, "query {q:?}: live vs index");
        if q == "upstream AND NOT timeout" {
            // A group of exclusions alone means "everything except" (tantivy alone
            // would match nothing there).
            assert_eq!(
                indexed,
                [
                    "WARN retrying upstream (attempt 2)",
                    "upstream healthy again"
                ]
            );
        }
    }
}
