//! Queries over the timeline: tantivy's query syntax on the message, filters on service,
//! stream, level, kind and time, an exact total, and hits in timeline order (timestamp,
//! then file, then position in the file) with a cursor to page on.

use std::ops::Bound;
use tantivy::query_grammar::{Occur as GrammarOccur, UserInputAst, UserInputLeaf};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery, Weight,
};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, Searcher, TantivyDocument, Term};

use super::order;
use super::schema::{self, Fields};
use super::Timeline;
use crate::record::{Kind, Level, Record, Stream};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    Asc,
}

/// Where a hit sits in the timeline; also the paging cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    pub ts: i64,
    pub file_ord: u64,
    pub offset: u64,
    pub sub: u64,
}

impl SortKey {
    pub fn encode(&self) -> String {
        format!(
            "{}.{:x}.{:x}.{:x}",
            self.ts, self.file_ord, self.offset, self.sub
        )
    }

    /// Where `rec` sits in the timeline (the same key the index gives it).
    pub fn of(rec: &Record) -> SortKey {
        SortKey {
            ts: rec.ts.timestamp_micros(),
            file_ord: schema::file_ord(&rec.file),
            offset: rec.offset,
            sub: u64::from(rec.sub),
        }
    }

    pub fn decode(s: &str) -> Option<SortKey> {
        let mut it = s.split('.');
        let key = SortKey {
            ts: it.next()?.parse().ok()?,
            file_ord: u64::from_str_radix(it.next()?, 16).ok()?,
            offset: u64::from_str_radix(it.next()?, 16).ok()?,
            sub: u64::from_str_radix(it.next()?, 16).ok()?,
        };
        it.next().is_none().then_some(key)
    }
}

#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub q: String,
    pub services: Vec<String>,
    pub stream: Option<Stream>,
    /// This level and anything more severe (as `journalctl -p`).
    pub level: Option<Level>,
    pub kind: Option<Kind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: usize,
    pub order: Order,
    /// Only hits after this one in the chosen order (the `next` of a previous page).
    pub after: Option<SortKey>,
    /// Count every match afresh rather than take the counts of whole segments kept from
    /// earlier searches (`cache=false`: what a benchmark of the first search measures).
    pub fresh: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hit {
    pub ts: String,
    pub ts_source: String,
    pub service: String,
    pub stream: String,
    pub instance: Option<u64>,
    pub level: Option<String>,
    pub kind: String,
    pub message: String,
    pub file: String,
    pub offset: u64,
    pub split: bool,
    /// Marker fields: only on markers from PM2's bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<bool>,
}

impl From<&Record> for Hit {
    fn from(rec: &Record) -> Hit {
        let marker = rec.marker.as_ref();
        Hit {
            ts: format_ts(rec.ts.timestamp_micros()),
            ts_source: rec.ts_source.as_str().to_string(),
            service: rec.service.clone(),
            stream: rec.stream.as_str().to_string(),
            instance: rec.instance.map(u64::from),
            level: rec.level.map(|l| l.as_str().to_string()),
            kind: rec.kind.as_str().to_string(),
            message: rec.message.clone(),
            file: rec.file.clone(),
            offset: rec.offset,
            split: rec.split,
            event: marker.map(|m| m.event.clone()),
            exit_code: marker.and_then(|m| m.exit_code),
            restart_count: marker.and_then(|m| m.restart_count),
            manual: marker.and_then(|m| m.manual),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchResult {
    /// Every match of the query and filters (the cursor does not change it).
    pub total: u64,
    pub hits: Vec<Hit>,
    /// Cursor for the next page, when this page is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub took_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("invalid query: {0}")]
    Query(String),
    #[error("search failed: {0}")]
    Index(#[from] tantivy::TantivyError),
}

/// RFC 3339 in UTC with microseconds, the one timestamp shape of the API.
pub fn format_ts(micros: i64) -> String {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn search(timeline: &Timeline, req: &SearchRequest) -> Result<SearchResult, SearchError> {
    let started = std::time::Instant::now();
    let searcher = timeline.reader.searcher();
    let (query, span) = query_and_span(timeline, req)?;
    let limit = req.limit.clamp(1, MAX_LIMIT);
    let weight = order::weight_of(&searcher, &*query)?;
    let (total, keyed) = if let Some(total) = order::count_without_visiting(
        &searcher,
        &*query,
        &*weight,
        span,
        &[timeline.fields.stream, timeline.fields.kind],
    )? {
        (
            total,
            page(&searcher, timeline, &*weight, span, req, Some(total))?,
        )
    } else {
        // The count visits every match: the page comes from the same pass.
        let (total, top) = order::count_and_top(
            &searcher,
            &timeline.segments,
            &*weight,
            (!req.fresh).then(|| count_key(req)),
            span,
            page_span(span, req),
            limit,
            req.order,
            req.after,
            order::Walk::DEFAULT,
        )?;
        (total, fetch(&searcher, &timeline.fields, top)?)
    };
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        total,
        hits = keyed.len(),
        "search"
    );
    let next = (keyed.len() == limit)
        .then(|| keyed.last().map(|(k, _)| k.encode()))
        .flatten();
    Ok(SearchResult {
        total,
        hits: keyed.into_iter().map(|(_, h)| h).collect(),
        next,
        took_ms: (started.elapsed().as_micros() as f64) / 1000.0,
    })
}

/// The request's query as the count cache knows it (`order::SegmentCache`): everything
/// that chooses the matches but their time span, which the walk applies per segment.
pub(crate) fn count_key(req: &SearchRequest) -> std::sync::Arc<str> {
    let SearchRequest {
        q,
        services,
        stream,
        level,
        kind,
        since: _,
        until: _,
        limit: _,
        order: _,
        after: _,
        fresh: _,
    } = req;
    format!("{:?} {services:?} {stream:?} {level:?} {kind:?}", q.trim()).into()
}

/// One page of hits with their keys, from a given searcher (a follow pins the one it
/// started with, so what it reads from the index and from the live ring fit together).
pub fn hits_in(
    searcher: &Searcher,
    timeline: &Timeline,
    req: &SearchRequest,
) -> Result<Vec<(SortKey, Hit)>, SearchError> {
    let (query, span) = query_and_span(timeline, req)?;
    let weight = order::weight_of(searcher, &*query)?;
    page(searcher, timeline, &*weight, span, req, None)
}

/// Checks a query without running it: the error `/api/search` would give.
pub fn check_query(timeline: &Timeline, q: &str) -> Result<(), SearchError> {
    let req = SearchRequest {
        q: q.to_string(),
        ..SearchRequest::default()
    };
    build_query(timeline, &req).map(|_| ())
}

fn page(
    searcher: &Searcher,
    timeline: &Timeline,
    weight: &dyn Weight,
    span: order::Span,
    req: &SearchRequest,
    matches: Option<u64>,
) -> Result<Vec<(SortKey, Hit)>, SearchError> {
    let keyed = order::top_in_order(
        searcher,
        &timeline.segments,
        weight,
        page_span(span, req),
        req.limit.clamp(1, MAX_LIMIT),
        req.order,
        req.after,
        matches,
        order::Walk::DEFAULT,
    )?;
    fetch(searcher, &timeline.fields, keyed)
}

/// The part of `span` a page can come from: the cursor narrows it, so pages deep in a
/// large index stay cheap; ties on the timestamp are sorted out by the full key.
fn page_span(span: order::Span, req: &SearchRequest) -> order::Span {
    match (req.after, req.order) {
        (None, _) => span,
        (Some(after), Order::Desc) => span.until(after.ts.saturating_add(1)),
        (Some(after), Order::Asc) => span.since(after.ts),
    }
}

/// The stored documents of the hits, in the order given.
fn fetch(
    searcher: &Searcher,
    f: &Fields,
    keyed: Vec<(SortKey, DocAddress)>,
) -> Result<Vec<(SortKey, Hit)>, SearchError> {
    let mut hits = Vec::with_capacity(keyed.len());
    for (key, addr) in keyed {
        let doc: TantivyDocument = searcher.doc(addr)?;
        hits.push((key, to_hit(f, &doc)));
    }
    Ok(hits)
}

fn ts_term(f: &Fields, micros: i64) -> Term {
    Term::from_field_i64(f.ts, micros)
}

/// `upstream AND NOT timeout`: tantivy matches nothing with a group made only of
/// exclusions (`NOT timeout` on its own), so the whole query would find nothing. A user
/// means "everything except", so such a group gets an implicit "all" to exclude from (the
/// live matcher, `live::matcher`, reads it the same way).
fn with_negations_completed(ast: UserInputAst) -> UserInputAst {
    match ast {
        UserInputAst::Clause(clauses) => {
            let mut clauses: Vec<_> = clauses
                .into_iter()
                .map(|(occur, sub)| (occur, with_negations_completed(sub)))
                .collect();
            if !clauses.is_empty()
                && clauses
                    .iter()
                    .all(|(o, _)| *o == Some(GrammarOccur::MustNot))
            {
                clauses.push((
                    Some(GrammarOccur::Must),
                    UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
                ));
            }
            UserInputAst::Clause(clauses)
        }
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(with_negations_completed(*inner)), boost)
        }
        leaf => leaf,
    }
}

/// The whole request as one tantivy query, time range included.
pub(crate) fn build_query(
    timeline: &Timeline,
    req: &SearchRequest,
) -> Result<Box<dyn Query>, SearchError> {
    build(timeline, req, true)
}

/// The request as a query without its time range, and that range: the search walks
/// blocks of documents by their timestamps (`index::order`), which answers a time range
/// far faster than tantivy's range query over the whole `ts` column.
pub(crate) fn query_and_span(
    timeline: &Timeline,
    req: &SearchRequest,
) -> Result<(Box<dyn Query>, order::Span), SearchError> {
    let mut span = order::Span::ALL;
    if let Some(t) = req.since {
        span = span.since(t.timestamp_micros());
    }
    if let Some(t) = req.until {
        span = span.until(t.timestamp_micros());
    }
    Ok((build(timeline, req, false)?, span))
}

fn build(
    timeline: &Timeline,
    req: &SearchRequest,
    with_time: bool,
) -> Result<Box<dyn Query>, SearchError> {
    let f = &timeline.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let q = req.q.trim();
    if !q.is_empty() {
        let mut parser = QueryParser::for_index(&timeline.index, vec![f.message]);
        // `timeout upstream` means both words, as in grep pipelines and logcli; OR must
        // be written out.
        parser.set_conjunction_by_default();
        let ast = tantivy::query_grammar::parse_query(q).map_err(|_| {
            SearchError::Query(
                tantivy::query::QueryParserError::SyntaxError(q.to_string()).to_string(),
            )
        })?;
        let parsed = parser
            .build_query_from_user_input_ast(with_negations_completed(ast))
            .map_err(|e| SearchError::Query(e.to_string()))?;
        clauses.push((Occur::Must, parsed));
    }
    if !req.services.is_empty() {
        clauses.push((
            Occur::Must,
            any_of(f.service, req.services.iter().map(String::as_str)),
        ));
    }
    if let Some(stream) = req.stream {
        let all = Stream::ALL.map(Stream::as_str);
        let query = with_default(f.stream, stream.as_str(), schema::DEFAULT_STREAM, &all);
        clauses.push((Occur::Must, query));
    }
    if let Some(level) = req.level {
        let levels = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ];
        let wanted = levels.iter().filter(|l| **l >= level).map(|l| l.as_str());
        clauses.push((Occur::Must, any_of(f.level, wanted)));
    }
    if let Some(kind) = req.kind {
        let all = Kind::ALL.map(Kind::as_str);
        let query = with_default(f.kind, kind.as_str(), schema::DEFAULT_KIND, &all);
        clauses.push((Occur::Must, query));
    }
    if with_time && (req.since.is_some() || req.until.is_some()) {
        let lower = req.since.map_or(Bound::Unbounded, |t| {
            Bound::Included(ts_term(f, t.timestamp_micros()))
        });
        let upper = req.until.map_or(Bound::Unbounded, |t| {
            Bound::Excluded(ts_term(f, t.timestamp_micros()))
        });
        clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
    }
    // A lone query stays itself rather than a group of one: tantivy counts a lone term
    // from its document frequency, and a group of one by visiting every match.
    Ok(match clauses.len() {
        0 => Box::new(AllQuery),
        1 => single(clauses.remove(0).1),
        _ => Box::new(BooleanQuery::new(clauses)),
    })
}

/// A query parsed from `word` alone comes back as a group holding one required
/// clause: unwrapped, for the same reason as above.
fn single(query: Box<dyn Query>) -> Box<dyn Query> {
    if let Some(group) = query.downcast_ref::<BooleanQuery>() {
        if let [(Occur::Must | Occur::Should, inner)] = group.clauses() {
            return inner.box_clone();
        }
    }
    query
}

/// Documents whose `field` is `value`, where documents leave out the field's `default`
/// (schema::DEFAULT_STREAM): the default is every document without one of the other
/// values in `all`.
pub(crate) fn with_default(
    field: tantivy::schema::Field,
    value: &str,
    default: &str,
    all: &[&str],
) -> Box<dyn Query> {
    if value != default {
        return term_query(field, value);
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(AllQuery))];
    clauses.extend(
        all.iter()
            .filter(|v| **v != value)
            .map(|v| (Occur::MustNot, term_query(field, v))),
    );
    Box::new(BooleanQuery::new(clauses))
}

/// Documents holding any of `values` in `field`.
pub(crate) fn any_of<'a>(
    field: tantivy::schema::Field,
    values: impl IntoIterator<Item = &'a str>,
) -> Box<dyn Query> {
    let terms = values
        .into_iter()
        .map(|v| (Occur::Should, term_query(field, v)))
        .collect();
    Box::new(BooleanQuery::new(terms))
}

/// Documents holding `value` in the string field `field`.
pub(crate) fn term_query(field: tantivy::schema::Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn to_hit(f: &Fields, doc: &TantivyDocument) -> Hit {
    // Documents leave the default values out (schema::DEFAULT_STREAM).
    let text_or = |field, default: &str| {
        doc.get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    let text = |field| text_or(field, "");
    let u64_of = |field| doc.get_first(field).and_then(|v| v.as_u64());
    Hit {
        ts: format_ts(
            doc.get_first(f.ts)
                .and_then(|v| v.as_i64())
                .unwrap_or_default(),
        ),
        ts_source: text(f.ts_source),
        service: text(f.service),
        stream: text_or(f.stream, schema::DEFAULT_STREAM),
        instance: u64_of(f.instance),
        level: doc
            .get_first(f.level)
            .and_then(|v| v.as_str())
            .map(str::to_string),
        kind: text_or(f.kind, schema::DEFAULT_KIND),
        message: text(f.message),
        file: text(f.file),
        offset: u64_of(f.offset).unwrap_or_default(),
        split: doc
            .get_first(f.split)
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        event: doc
            .get_first(f.event)
            .and_then(|v| v.as_str())
            .map(str::to_string),
        exit_code: doc.get_first(f.exit_code).and_then(|v| v.as_i64()),
        restart_count: u64_of(f.restart_count),
        manual: doc.get_first(f.manual).and_then(|v| v.as_bool()),
    }
}

/// For tests: the messages of the first 100 hits of `q`, sorted.
#[cfg(test)]
pub(crate) fn sorted_messages(timeline: &Timeline, q: &str) -> Vec<String> {
    let req = SearchRequest {
        q: q.into(),
        limit: 100,
        ..SearchRequest::default()
    };
    let mut got: Vec<String> = search(timeline, &req)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.message)
        .collect();
    got.sort();
    got
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::index::writer::index_for_tests;
    use crate::record::MarkerInfo;

    /// Documents leave the default stream and kind out; documents written before stated
    /// them. Filters on either value, counted alone (without a visit) or with a word,
    /// find both kinds of document, and hits read back the values.
    #[test]
    fn filters_on_default_values_find_old_and_new_documents() {
        let dir = tempfile::TempDir::new().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        let f = timeline.fields;
        let t0 = DateTime::<Utc>::from_timestamp(1_772_000_000, 0).unwrap();
        // Written as before: every value stated.
        {
            let mut writer: tantivy::IndexWriter = timeline.index.writer(15 << 20).unwrap();
            for (i, stream) in ["out", "err"].into_iter().enumerate() {
                let mut doc = TantivyDocument::default();
                doc.add_i64(f.ts, (t0 + TimeDelta::seconds(i as i64)).timestamp_micros());
                doc.add_text(f.ts_source, "line");
                doc.add_text(f.service, "api");
                doc.add_text(f.stream, stream);
                doc.add_text(f.kind, "line");
                doc.add_text(f.message, format!("old {stream}"));
                doc.add_text(f.file, format!("/logs/api-{stream}.log"));
                doc.add_u64(f.file_ord, i as u64);
                doc.add_u64(f.offset, 0);
                doc.add_u64(f.sub, 0);
                doc.add_bool(f.split, false);
                writer.add_document(doc).unwrap();
            }
            writer.commit().unwrap();
        }
        // Written now.
        let at = |s: i64| t0 + TimeDelta::seconds(10 + s);
        let out = Record::test_line("api", at(0), "new out", 0);
        let err = Record {
            stream: Stream::Err,
            ..Record::test_line("api", at(1), "new err", 0)
        };
        let marker = Record {
            stream: Stream::Event,
            kind: Kind::Marker,
            marker: Some(MarkerInfo {
                event: "restart".into(),
                ..MarkerInfo::default()
            }),
            ..Record::test_line("api", at(2), "new marker", 0)
        };
        index_for_tests(&timeline, vec![out, err, marker]);
        timeline.reader.reload().unwrap();

        let found = |q: &str, stream: Option<Stream>, kind: Option<Kind>| {
            let req = SearchRequest {
                q: q.into(),
                stream,
                kind,
                limit: 100,
                order: Order::Asc,
                ..SearchRequest::default()
            };
            let result = search(&timeline, &req).unwrap();
            let hits: Vec<String> = result
                .hits
                .iter()
                .map(|h| format!("{} {} {}", h.message, h.stream, h.kind))
                .collect();
            assert_eq!(result.total, hits.len() as u64, "{q:?} {stream:?} {kind:?}");
            hits
        };
        let out = Some(Stream::Out);
        assert_eq!(
            found("", out, None),
            ["old out out line", "new out out line"]
        );
        assert_eq!(
            found("new", out, None),
            ["new out out line"],
            "with a word, counted by visiting"
        );
        assert_eq!(
            found("", Some(Stream::Err), None),
            ["old err err line", "new err err line"]
        );
        assert_eq!(
            found("", None, Some(Kind::Line)),
            [
                "old out out line",
                "old err err line",
                "new out out line",
                "new err err line"
            ]
        );
        assert_eq!(
            found("", None, Some(Kind::Marker)),
            ["new marker event marker"]
        );
        assert_eq!(found("", out, Some(Kind::Marker)), Vec::<String>::new());
        assert_eq!(found("", None, None).len(), 5);
        // `* -new -err`: words of a message overlap, so everything but two words is not
        // the documents minus each one's count.
        assert_eq!(
            found("* -new -err", None, None),
            ["old out out line"],
            "a negated word is counted by visiting"
        );
    }
}
