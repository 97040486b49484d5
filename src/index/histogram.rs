//! Counting records without reading them: per time bucket and service for
//! `/api/histogram`, per service for `/api/services`. A custom collector reads only the
//! `ts` and `service` fast columns of the matching documents, so counting a million
//! lines costs a column lookup each, never a stored document.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::schema;
use super::search::{any_of, build_query, term_query, with_default, SearchError, SearchRequest};
use super::Timeline;
use crate::record::Kind;

/// Equal time slices: bucket `i` holds `[first + i*width, first + (i+1)*width)`,
/// in microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    pub first: i64,
    pub width: i64,
    pub count: usize,
}

impl Buckets {
    /// The buckets of width `width_s` seconds, aligned to multiples of it since the
    /// epoch, that cover `[since, until)`.
    pub fn covering(since: DateTime<Utc>, until: DateTime<Utc>, width_s: u64) -> Buckets {
        // i128: a range near the ends of chrono's calendar and a long interval must not
        // overflow on the way.
        let width = (i128::from(width_s.max(1)) * 1_000_000).min(i128::from(i64::MAX));
        let since = i128::from(since.timestamp_micros());
        let first = since.div_euclid(width) * width;
        let span = (i128::from(until.timestamp_micros()) - first).max(0);
        // Ceiling: a range ending inside a bucket still needs that bucket.
        let count = usize::try_from((span + width - 1) / width).unwrap_or(usize::MAX);
        Buckets {
            first: i64::try_from(first).unwrap_or(i64::MIN),
            width: width as i64,
            count,
        }
    }

    /// The start of bucket `i`, in microseconds.
    pub fn start(&self, i: usize) -> i64 {
        self.first.saturating_add(
            self.width
                .saturating_mul(i64::try_from(i).unwrap_or(i64::MAX)),
        )
    }

    fn index_of(&self, ts: i64) -> Option<u32> {
        let since_first = ts.checked_sub(self.first).filter(|d| *d >= 0)?;
        let i = since_first / self.width;
        (i < self.count as i64).then_some(i as u32)
    }
}

/// How many records matched, and the newest one's timestamp (microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub last_ts: i64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.count += other.count;
        self.last_ts = self.last_ts.max(other.last_ts);
    }
}

/// Counts per `(bucket, service)`: with `buckets` None every record is in bucket 0.
/// Records outside the buckets are not counted.
pub struct PerService {
    pub buckets: Option<Buckets>,
}

pub type Counts = BTreeMap<(u32, String), Tally>;

pub struct PerServiceSegment {
    buckets: Option<Buckets>,
    ts: std::sync::Arc<dyn ColumnValues<i64>>,
    service: Option<StrColumn>,
    /// Keyed by the segment's term ordinal; names are looked up once, at harvest.
    counts: HashMap<(u32, u64), Tally>,
}

impl Collector for PerService {
    type Fruit = Counts;
    type Child = PerServiceSegment;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<PerServiceSegment> {
        let ff = segment.fast_fields();
        Ok(PerServiceSegment {
            buckets: self.buckets,
            ts: ff.i64(schema::TS)?.first_or_default_col(0),
            service: ff.str(schema::SERVICE)?,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Counts>) -> tantivy::Result<Counts> {
        let mut all = Counts::new();
        for fruit in fruits {
            for (key, tally) in fruit {
                all.entry(key).and_modify(|t| t.add(tally)).or_insert(tally);
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for PerServiceSegment {
    type Fruit = Counts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let ts = self.ts.get_val(doc);
        let bucket = match &self.buckets {
            Some(b) => match b.index_of(ts) {
                Some(i) => i,
                None => return,
            },
            None => 0,
        };
        let ord = self
            .service
            .as_ref()
            .and_then(|s| s.ords().first(doc))
            .unwrap_or(u64::MAX);
        let t = self.counts.entry((bucket, ord)).or_insert(Tally {
            count: 0,
            last_ts: i64::MIN,
        });
        t.count += 1;
        t.last_ts = t.last_ts.max(ts);
    }

    fn harvest(self) -> Counts {
        let mut out = Counts::new();
        let mut name = String::new();
        for ((bucket, ord), tally) in self.counts {
            name.clear();
            let known = match &self.service {
                Some(s) if ord != u64::MAX => s.ord_to_str(ord, &mut name).unwrap_or(false),
                _ => false,
            };
            let service = if known { name.clone() } else { String::new() };
            out.entry((bucket, service))
                .and_modify(|t| t.add(tally))
                .or_insert(tally);
        }
        out
    }
}

/// Line counts per bucket and service for the lines matching `req` (its `q`, services
/// and time range; its kind is ignored: only lines are counted).
pub fn line_histogram(
    timeline: &Timeline,
    req: &SearchRequest,
    buckets: Buckets,
) -> Result<Counts, SearchError> {
    let req = SearchRequest {
        kind: Some(Kind::Line),
        ..req.clone()
    };
    let query = build_query(timeline, &req)?;
    let searcher = timeline.reader.searcher();
    Ok(searcher.search(
        &*query,
        &PerService {
            buckets: Some(buckets),
        },
    )?)
}

/// What the index holds per service: its lines (count and newest), its markers
/// (newest), and its restarts (markers of a crash, restart or reload).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTotals {
    pub lines: u64,
    /// Newest record of any kind, microseconds.
    pub last_ts: Option<i64>,
    pub restarts: u64,
}

/// The marker events that count as a restart of the service.
pub const RESTART_EVENTS: &[&str] = &["crash", "restart", "reload"];

pub fn service_totals(timeline: &Timeline) -> Result<BTreeMap<String, ServiceTotals>, SearchError> {
    let f = &timeline.fields;
    let searcher = timeline.reader.searcher();
    let all = PerService { buckets: None };
    let kinds = Kind::ALL.map(Kind::as_str);
    let line = with_default(f.kind, Kind::Line.as_str(), schema::DEFAULT_KIND, &kinds);
    let lines = searcher.search(&*line, &all)?;
    let markers = searcher.search(&*term_query(f.kind, Kind::Marker.as_str()), &all)?;
    let restarts_query = any_of(f.event, RESTART_EVENTS.iter().copied());
    let restarts = searcher.search(&*restarts_query, &all)?;
    let mut out: BTreeMap<String, ServiceTotals> = BTreeMap::new();
    for ((_, service), t) in lines {
        let s = out.entry(service).or_default();
        s.lines = t.count;
        s.last_ts = s.last_ts.max(Some(t.last_ts));
    }
    for ((_, service), t) in markers {
        let s = out.entry(service).or_default();
        s.last_ts = s.last_ts.max(Some(t.last_ts));
    }
    for ((_, service), t) in restarts {
        out.entry(service).or_default().restarts = t.count;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::index::writer::index_for_tests;
    use crate::record::{MarkerInfo, Record, Stream};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn line(service: &str, ts: DateTime<Utc>, message: &str, offset: u64) -> Record {
        Record::test_line(service, ts, message, offset)
    }

    fn marker(service: &str, ts: DateTime<Utc>, event: &str, offset: u64) -> Record {
        Record {
            stream: Stream::Event,
            kind: Kind::Marker,
            file: "pub.sock".into(),
            marker: Some(MarkerInfo {
                event: event.into(),
                ..MarkerInfo::default()
            }),
            ..line(service, ts, &format!("{service} {event}"), offset)
        }
    }

    fn indexed(records: Vec<Record>) -> (tempfile::TempDir, Timeline) {
        let dir = tempfile::tempdir().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        index_for_tests(&timeline, records);
        (dir, timeline)
    }

    #[test]
    fn buckets_are_aligned_to_their_width_and_cover_the_range() {
        let b = Buckets::covering(t("2026-11-22T10:00:30Z"), t("2026-11-22T10:03:00Z"), 60);
        assert_eq!(b.first, t("2026-11-22T10:00:00Z").timestamp_micros());
        assert_eq!(b.count, 3);
        let b = Buckets::covering(t("2026-11-22T10:00:00Z"), t("2026-11-22T10:03:00.5Z"), 60);
        assert_eq!(b.count, 4);
        assert_eq!(
            b.index_of(t("2026-11-22T10:03:59Z").timestamp_micros()),
            Some(3)
        );
        assert_eq!(
            b.index_of(t("2026-11-22T10:04:00Z").timestamp_micros()),
            None
        );
        assert_eq!(
            b.index_of(t("2026-11-22T09:59:59Z").timestamp_micros()),
            None
        );
        let b = Buckets::covering(t("2026-11-22T10:00:00Z"), t("2026-11-22T10:00:00Z"), 60);
        assert_eq!(b.count, 0);
    }

    #[test]
    fn counts_lines_per_bucket_and_service_and_totals_per_service() {
        let base = t("2026-11-22T10:00:00Z");
        let at = |s: i64| base + chrono::Duration::seconds(s);
        let (_dir, timeline) = indexed(vec![
            line("duck", at(0), "duck starting", 0),
            line("duck", at(59), "duck timeout", 1),
            line("duck", at(61), "duck done", 2),
            line("api", at(125), "api timeout", 0),
            marker("duck", at(70), "crash", 0),
            marker("duck", at(90), "restart", 1),
            marker("duck", at(200), "stop", 2),
            marker("api", at(10), "start", 3),
        ]);
        let req = SearchRequest::default();
        let b = Buckets::covering(at(0), at(180), 60);
        let counts = line_histogram(&timeline, &req, b).unwrap();
        let got: Vec<(u32, &str, u64)> = counts
            .iter()
            .map(|((i, s), t)| (*i, s.as_str(), t.count))
            .collect();
        assert_eq!(got, [(0, "duck", 2), (1, "duck", 1), (2, "api", 1)]);
        let req = SearchRequest {
            q: "timeout".into(),
            ..SearchRequest::default()
        };
        let counts = line_histogram(&timeline, &req, b).unwrap();
        assert_eq!(counts.values().map(|t| t.count).sum::<u64>(), 2);

        let totals = service_totals(&timeline).unwrap();
        assert_eq!(
            totals["duck"],
            ServiceTotals {
                lines: 3,
                last_ts: Some(at(200).timestamp_micros()),
                restarts: 2,
            }
        );
        assert_eq!(
            totals["api"],
            ServiceTotals {
                lines: 1,
                last_ts: Some(at(125).timestamp_micros()),
                restarts: 0,
            }
        );
    }

    #[test]
    fn counting_twenty_thousand_lines_is_fast() {
        let base = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let records = (0..20_000u64)
            .map(|i| {
                let service = ["duck", "api", "web"][(i % 3) as usize];
                line(
                    service,
                    base + chrono::Duration::milliseconds(i as i64 * 180),
                    "a line of text",
                    i,
                )
            })
            .collect();
        let (_dir, timeline) = indexed(records);
        let b = Buckets::covering(base, base + chrono::Duration::hours(1), 30);
        let started = std::time::Instant::now();
        let counts = line_histogram(&timeline, &SearchRequest::default(), b).unwrap();
        let took = started.elapsed();
        assert_eq!(counts.values().map(|t| t.count).sum::<u64>(), 20_000);
        // An hour of 30 s buckets; the last line (at 59:59.82) is in the last one.
        assert_eq!(counts.keys().map(|(i, _)| *i).max(), Some(119));
        assert!(took < Duration::from_millis(500), "took {took:?}");
    }
}
