//! `GET /api/tail`: Server-Sent Events. First the last `n` matching records (or, with
//! `after`, every one after that cursor), then live ones as they are read.
//!
//! The backlog comes from the index searcher taken *before* joining the live ring, plus
//! the ring's copy at joining: a record is published before it is committed, so
//! everything is in one or the other (both: shown once), and everything published later
//! comes live. Events:
//! - `record` (id: the record's cursor; data: the search hit's JSON),
//! - `caught-up` once the backlog is sent (data: `{"backlog": N}`),
//! - `dropped` when this follower fell behind the ring (data: `{"dropped": N}`),
//! - `end` when the follow stops by itself (`follow=false` or `until`).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use regex::RegexBuilder;
use serde_json::json;
use tantivy::Searcher;
use tokio::sync::mpsc;

use super::params::Params;
use super::search::filters_from;
use super::{ApiError, AppState};
use crate::index::search::{self, Order, SearchRequest, SortKey, MAX_LIMIT};
use crate::index::{Hit, SearchError, Timeline};
use crate::live::filter::TailFilter;
use crate::live::matcher::QueryMatcher;
use crate::live::{Follower, LiveRecord, Next};

pub(super) const KNOWN: &[&str] = &[
    "q", "service", "stream", "level", "kind", "since", "until", "n", "after", "grep", "follow",
];
pub const DEFAULT_N: usize = 20;
/// Records read from the index per step of a replay after a cursor.
const PAGE: usize = 1000;
/// With `grep`, the index cannot filter: at most this many records are looked at to
/// find the last `n` matches.
const GREP_SCAN: usize = 200_000;
/// Backlog events waiting for the response to take them (live records wait in the
/// ring: a follower that cannot keep up is told later how many it missed).
const QUEUE: usize = 64;
/// Live records taken from the ring at a time.
const LIVE_STEP: usize = 512;
/// Longest regular expression program accepted (a hostile pattern cannot eat memory).
const REGEX_SIZE: usize = 1 << 20;

struct TailSpec {
    req: SearchRequest,
    filter: TailFilter,
    n: usize,
    after: Option<SortKey>,
    follow: bool,
}

pub async fn tail(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let spec = Arc::new(spec_from(
        &Params::parse(raw.as_deref(), KNOWN)?,
        &headers,
        &state,
    )?);
    // In this order: see the module comment.
    let searcher = state.timeline.reader.searcher();
    let (follower, held) = state.live.subscribe();
    let (tx, rx) = mpsc::channel::<Step>(QUEUE);
    tokio::spawn(send_backlog(
        state.timeline.clone(),
        spec.clone(),
        searcher,
        held,
        tx,
    ));
    let phase = Phase::Backlog { rx, follower, spec };
    let events = futures_util::stream::unfold(phase, |phase| async move {
        next_event(phase)
            .await
            .map(|(e, phase)| (Ok::<_, Infallible>(e), phase))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(state.config.api.heartbeat)))
}

/// What the backlog task hands the response: events, then whether to go on live.
enum Step {
    Event(Event),
    Live,
}

/// Where a follow's response stands.
enum Phase {
    Backlog {
        rx: mpsc::Receiver<Step>,
        follower: Follower,
        spec: Arc<TailSpec>,
    },
    Live(LiveFollow),
}

/// The live part of a follow. Records are taken from the ring by the response stream
/// itself, when the connection can take more: no task or queue between the ring and
/// the socket, so a line reaches the client with one wake-up, and a client too slow to
/// read leaves its follower behind the ring (then `dropped`) without anyone waiting on
/// it.
struct LiveFollow {
    follower: Follower,
    spec: Arc<TailSpec>,
    /// Records stay shared with the ring until their turn: an event is built for one
    /// record at a time.
    pending: VecDeque<Arc<LiveRecord>>,
}

impl LiveFollow {
    /// The next event, or None when the daemon stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(r) = self.pending.pop_front() {
                if self.spec.filter.matches(&r) {
                    return Some(record_event(&r.key, r.json()));
                }
            }
            match self.follower.next(LIVE_STEP).await {
                Next::Records(records) => self.pending.extend(records),
                Next::Dropped(n) => {
                    return Some(
                        Event::default()
                            .event("dropped")
                            .data(json!({ "dropped": n }).to_string()),
                    )
                }
                Next::Closed => return None,
            }
        }
    }
}

async fn next_event(phase: Phase) -> Option<(Event, Phase)> {
    match phase {
        Phase::Backlog {
            mut rx,
            follower,
            spec,
        } => match rx.recv().await {
            Some(Step::Event(e)) => Some((e, Phase::Backlog { rx, follower, spec })),
            Some(Step::Live) => {
                let mut live = LiveFollow {
                    follower,
                    spec,
                    pending: VecDeque::new(),
                };
                live.next().await.map(|e| (e, Phase::Live(live)))
            }
            // The backlog ended the follow (an error, or no follow asked for).
            None => None,
        },
        Phase::Live(mut live) => live.next().await.map(|e| (e, Phase::Live(live))),
    }
}

fn spec_from(p: &Params, headers: &HeaderMap, state: &AppState) -> Result<TailSpec, ApiError> {
    let mut req = filters_from(p)?;
    let n = p
        .parsed("n", |v| {
            v.parse::<usize>()
                .map(|n| n.min(MAX_LIMIT))
                .map_err(|_| format!("\"{v}\" is not a number"))
        })?
        .unwrap_or(DEFAULT_N);
    // A browser's EventSource sends the last id it saw when it reconnects.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let after = match (p.one("after")?, last_event_id) {
        (Some(v), _) => Some(("after", v)),
        (None, Some(v)) => Some(("Last-Event-ID", v)),
        (None, None) => None,
    };
    let after = after
        .map(|(name, v)| {
            SortKey::decode(v).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} \"{v}\" is not a record id from a previous follow"
                ))
            })
        })
        .transpose()?;
    let follow = p
        .parsed("follow", |v| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("\"{v}\" is not true or false")),
        })?
        .unwrap_or(true)
        && req.until.is_none();
    let grep = p.parsed("grep", |v| {
        RegexBuilder::new(v)
            .size_limit(REGEX_SIZE)
            .build()
            .map_err(|e| format!("not a regular expression: {e}"))
    })?;
    let query = match req.q.trim() {
        "" => None,
        q => {
            search::check_query(&state.timeline, q).map_err(|e| match e {
                SearchError::Query(e) => ApiError::BadRequest(format!("parameter \"q\": {e}")),
                e => ApiError::Internal(e.to_string()),
            })?;
            let analyzer = state
                .timeline
                .index
                .tokenizers()
                .get("default")
                .ok_or_else(|| ApiError::Internal("the default tokenizer is missing".into()))?;
            Some(
                QueryMatcher::new(q, analyzer)
                    .map_err(|e| ApiError::BadRequest(format!("parameter \"q\": {e}")))?,
            )
        }
    };
    let filter = TailFilter {
        services: req.services.clone(),
        stream: req.stream,
        level: req.level,
        kind: req.kind,
        since: req.since,
        until: req.until,
        query,
        grep,
    };
    req.order = Order::Desc;
    Ok(TailSpec {
        req,
        filter,
        n,
        after,
        follow,
    })
}

/// Feeds one follow's events into `tx` until the client goes away or the daemon stops.
/// Sends the backlog, then `caught-up`, then either `end` or the word to go on live.
async fn send_backlog(
    timeline: Timeline,
    spec: Arc<TailSpec>,
    searcher: Searcher,
    held: Vec<Arc<LiveRecord>>,
    tx: mpsc::Sender<Step>,
) {
    let backlog = {
        let (spec, tx) = (spec.clone(), tx.clone());
        tokio::task::spawn_blocking(move || backlog(&timeline, &searcher, &spec, held, &tx)).await
    };
    let sent = match backlog {
        Ok(Ok(sent)) => sent,
        Ok(Err(Stop::Gone)) => return,
        Ok(Err(Stop::Failed(e))) => {
            let _ = tx.send(Step::Event(error_event(&e))).await;
            return;
        }
        Err(e) => {
            let _ = tx.send(Step::Event(error_event(&e.to_string()))).await;
            return;
        }
    };
    let caught_up = Event::default()
        .event("caught-up")
        .data(json!({ "backlog": sent }).to_string());
    if tx.send(Step::Event(caught_up)).await.is_err() {
        return;
    }
    let last = match spec.follow {
        true => Step::Live,
        false => Step::Event(Event::default().event("end").data("{}")),
    };
    let _ = tx.send(last).await;
}

enum Stop {
    /// The client went away.
    Gone,
    /// The index could not be read.
    Failed(String),
}

impl From<SearchError> for Stop {
    fn from(e: SearchError) -> Stop {
        Stop::Failed(e.to_string())
    }
}

/// Sends the backlog in timeline order; returns how many records it sent.
fn backlog(
    timeline: &Timeline,
    searcher: &Searcher,
    spec: &TailSpec,
    held: Vec<Arc<LiveRecord>>,
    tx: &mpsc::Sender<Step>,
) -> Result<usize, Stop> {
    let send = |key: &SortKey, json: &str| {
        tx.blocking_send(Step::Event(record_event(key, json)))
            .map_err(|_| Stop::Gone)
    };
    let held: BTreeMap<SortKey, Arc<LiveRecord>> = held
        .into_iter()
        .filter(|r| spec.filter.matches(r) && spec.after.is_none_or(|a| r.key > a))
        .map(|r| (r.key, r))
        .collect();
    let mut sent = 0;
    match spec.after {
        None => {
            // The newest n of index and ring together.
            let mut newest: BTreeMap<SortKey, Arc<LiveRecord>> = held;
            for (key, hit) in last_from_index(timeline, searcher, spec)? {
                newest
                    .entry(key)
                    .or_insert_with(|| Arc::new(LiveRecord::from_hit(key, hit)));
            }
            let skip = newest.len().saturating_sub(spec.n);
            for (key, rec) in newest.into_iter().skip(skip) {
                send(&key, rec.json())?;
                sent += 1;
            }
        }
        Some(after) => {
            // Everything after the cursor, index pages and ring merged by key.
            let mut ring = held.into_iter().peekable();
            let mut cursor = after;
            loop {
                let page = page_after(timeline, searcher, spec, cursor)?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                cursor = *last;
                let full = page.len() == PAGE;
                for (key, hit) in page {
                    while let Some((k, rec)) = ring.next_if(|(k, _)| *k < key) {
                        send(&k, rec.json())?;
                        sent += 1;
                    }
                    // In both: sent once, from the index.
                    let _ = ring.next_if(|(k, _)| *k == key);
                    if spec
                        .filter
                        .grep
                        .as_ref()
                        .is_none_or(|re| re.is_match(&hit.message))
                    {
                        let json = serde_json::to_string(&hit).unwrap_or_default();
                        send(&key, &json)?;
                        sent += 1;
                    }
                }
                if !full {
                    break;
                }
            }
            for (key, rec) in ring {
                send(&key, rec.json())?;
                sent += 1;
            }
        }
    }
    Ok(sent)
}

/// The newest `n` matching records of the index, oldest first. With `grep`, pages back
/// through the index until `n` match or [`GREP_SCAN`] records were looked at.
fn last_from_index(
    timeline: &Timeline,
    searcher: &Searcher,
    spec: &TailSpec,
) -> Result<Vec<(SortKey, Hit)>, SearchError> {
    if spec.n == 0 {
        return Ok(Vec::new());
    }
    let Some(re) = &spec.filter.grep else {
        let req = SearchRequest {
            limit: spec.n,
            ..spec.req.clone()
        };
        return search::hits_in(searcher, timeline, &req);
    };
    let mut found = Vec::new();
    let mut scanned = 0;
    let mut after = None;
    while found.len() < spec.n && scanned < GREP_SCAN {
        let req = SearchRequest {
            limit: PAGE,
            after,
            ..spec.req.clone()
        };
        let page = search::hits_in(searcher, timeline, &req)?;
        scanned += page.len();
        after = page.last().map(|(k, _)| *k);
        let full = page.len() == PAGE;
        found.extend(page.into_iter().filter(|(_, h)| re.is_match(&h.message)));
        if !full {
            break;
        }
    }
    found.truncate(spec.n);
    Ok(found)
}

fn page_after(
    timeline: &Timeline,
    searcher: &Searcher,
    spec: &TailSpec,
    after: SortKey,
) -> Result<Vec<(SortKey, Hit)>, SearchError> {
    let req = SearchRequest {
        limit: PAGE,
        order: Order::Asc,
        after: Some(after),
        ..spec.req.clone()
    };
    search::hits_in(searcher, timeline, &req)
}

fn record_event(key: &SortKey, json: &str) -> Event {
    Event::default().event("record").id(key.encode()).data(json)
}

fn error_event(message: &str) -> Event {
    Event::default()
        .event("error")
        .data(json!({ "error": message }).to_string())
}
