//! The first matches in timeline order without ranking every match. Segments, and windows
//! of documents inside a large segment, are visited newest first (oldest first for
//! ascending order); the walk stops as soon as nothing left unvisited can beat the hits
//! already kept. Records are indexed roughly in time order, so a `limit` of 100 over a
//! word found a million times reads a few thousand documents, not a million.
//!
//! What makes stopping safe is a bound per block of documents: the newest and oldest
//! timestamp in the block, read once per segment from the `ts` column and cached by
//! segment id (segments never change; the cache forgets the ones merged away).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use tantivy::columnar::ColumnValues;
use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::{DocAddress, DocId, DocSet, Searcher, SegmentReader, TERMINATED};

use super::schema;
use super::search::{Order, SortKey};

/// Where a walk may stop, in documents: windows are whole blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walk {
    /// Documents per bound.
    pub block: u32,
    /// The first window of a segment; each next one is twice as large, so a query that
    /// must read everything (a rare word) opens few scorers.
    pub first_window: u32,
}

impl Walk {
    pub const DEFAULT: Walk = Walk {
        block: 4096,
        first_window: 16 * 4096,
    };
}

/// Per-block timestamp bounds of the segments seen, shared by every search of a timeline.
#[derive(Default)]
pub struct BoundsCache {
    segments: Mutex<HashMap<(SegmentId, u32), Arc<Bounds>>>,
}

/// For block `b` (documents `b * block ..`): the newest timestamp in blocks `0..=b`, and
/// the oldest in blocks `b..`. Deleted documents are counted in: a bound may be loose,
/// never wrong.
struct Bounds {
    newest_up_to: Vec<i64>,
    oldest_from: Vec<i64>,
}

impl Bounds {
    fn of(ts: &dyn ColumnValues<i64>, max_doc: u32, block: u32) -> Bounds {
        let blocks = max_doc.div_ceil(block) as usize;
        let mut newest = Vec::with_capacity(blocks);
        let mut oldest = Vec::with_capacity(blocks);
        let mut values = vec![0i64; block as usize];
        for b in 0..blocks as u32 {
            let start = b * block;
            let n = (max_doc - start).min(block) as usize;
            ts.get_range(u64::from(start), &mut values[..n]);
            let (lo, hi) = values[..n]
                .iter()
                .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            newest.push(hi);
            oldest.push(lo);
        }
        for b in 1..newest.len() {
            newest[b] = newest[b].max(newest[b - 1]);
        }
        for b in (0..oldest.len().saturating_sub(1)).rev() {
            oldest[b] = oldest[b].min(oldest[b + 1]);
        }
        Bounds {
            newest_up_to: newest,
            oldest_from: oldest,
        }
    }
}

impl BoundsCache {
    fn get(
        &self,
        searcher: &Searcher,
        reader: &SegmentReader,
        ts: &dyn ColumnValues<i64>,
        block: u32,
    ) -> Arc<Bounds> {
        let id = (reader.segment_id(), block);
        if let Some(b) = self.lock().get(&id) {
            return b.clone();
        }
        let bounds = Arc::new(Bounds::of(ts, reader.max_doc(), block));
        let mut segments = self.lock();
        let live: Vec<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id())
            .collect();
        segments.retain(|(seg, _), _| live.contains(seg));
        segments.insert(id, bounds.clone());
        bounds
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(SegmentId, u32), Arc<Bounds>>> {
        // The map is only ever a cache: a panic elsewhere cannot leave it wrong.
        self.segments.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A key turned so that "better" is always "greater": the key itself when newest comes
/// first, every field bit-flipped (which reverses the order) when oldest comes first.
fn rank(order: Order, key: SortKey) -> SortKey {
    match order {
        Order::Desc => key,
        Order::Asc => SortKey {
            ts: !key.ts,
            file_ord: !key.file_ord,
            offset: !key.offset,
            sub: !key.sub,
        },
    }
}

/// The best rank any document with a timestamp in `oldest..=newest` can have.
fn best_in(order: Order, oldest: i64, newest: i64) -> SortKey {
    let edge = |ts| SortKey {
        ts,
        file_ord: u64::MAX,
        offset: u64::MAX,
        sub: u64::MAX,
    };
    match order {
        Order::Desc => edge(newest),
        Order::Asc => edge(!oldest),
    }
}

/// The `limit` best hits kept so far, worst on top.
struct Kept {
    limit: usize,
    heap: BinaryHeap<Reverse<(SortKey, u32, DocId)>>,
}

impl Kept {
    /// Whether a region whose best possible rank is `best` can still add a hit.
    fn wants(&self, best: SortKey) -> bool {
        self.heap.len() < self.limit || self.heap.peek().is_some_and(|w| best > w.0 .0)
    }

    fn offer(&mut self, ranked: SortKey, segment: u32, doc: DocId) {
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((ranked, segment, doc)));
        } else if self.wants(ranked) {
            self.heap.pop();
            self.heap.push(Reverse((ranked, segment, doc)));
        }
    }
}

/// The first `limit` matches of `query` in `order`, strictly after `after` when given,
/// with their keys, best first.
pub(crate) fn top_in_order(
    searcher: &Searcher,
    cache: &BoundsCache,
    query: &dyn Query,
    limit: usize,
    order: Order,
    after: Option<SortKey>,
    walk: Walk,
) -> tantivy::Result<Vec<(SortKey, DocAddress)>> {
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let cursor = after.map(|a| rank(order, a));
    let mut kept = Kept {
        limit: limit.max(1),
        heap: BinaryHeap::with_capacity(limit.max(1) + 1),
    };

    struct Seg<'a> {
        ord: u32,
        reader: &'a SegmentReader,
        cols: Columns,
        best: SortKey,
    }
    let mut segments = Vec::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        if reader.num_docs() == 0 {
            continue;
        }
        let Some(cols) = Columns::of(reader) else {
            continue;
        };
        let best = best_in(order, cols.ts.min_value(), cols.ts.max_value());
        segments.push(Seg {
            ord: ord as u32,
            reader,
            cols,
            best,
        });
    }
    segments.sort_by(|a, b| b.best.cmp(&a.best));

    for seg in &segments {
        if !kept.wants(seg.best) {
            break;
        }
        let max_doc = seg.reader.max_doc();
        let scan = |kept: &mut Kept, docs: std::ops::Range<DocId>| {
            scan_window(&*weight, seg.reader, &seg.cols, docs, |doc, key| {
                let ranked = rank(order, key);
                if cursor.is_none_or(|c| ranked < c) {
                    kept.offer(ranked, seg.ord, doc);
                }
            })
        };
        if max_doc <= walk.first_window {
            scan(&mut kept, 0..max_doc)?;
            continue;
        }
        let bounds = cache.get(searcher, seg.reader, &*seg.cols.ts, walk.block);
        let mut size = walk.first_window;
        match order {
            Order::Desc => {
                let mut end = max_doc;
                while end > 0 {
                    let newest = bounds.newest_up_to[((end - 1) / walk.block) as usize];
                    if !kept.wants(best_in(order, i64::MIN, newest)) {
                        break;
                    }
                    // Window edges fall on block edges, so the next bound is exact.
                    let start = end.saturating_sub(size) / walk.block * walk.block;
                    scan(&mut kept, start..end)?;
                    end = start;
                    size = size.saturating_mul(2);
                }
            }
            Order::Asc => {
                let mut start = 0;
                while start < max_doc {
                    let oldest = bounds.oldest_from[(start / walk.block) as usize];
                    if !kept.wants(best_in(order, oldest, i64::MAX)) {
                        break;
                    }
                    let end = start.saturating_add(size).min(max_doc);
                    scan(&mut kept, start..end)?;
                    start = end;
                    size = size.saturating_mul(2);
                }
            }
        }
    }

    let mut hits: Vec<(SortKey, DocAddress)> = kept
        .heap
        .into_iter()
        .map(|Reverse((ranked, seg, doc))| (rank(order, ranked), DocAddress::new(seg, doc)))
        .collect();
    hits.sort_by_key(|(key, _)| Reverse(rank(order, *key)));
    Ok(hits)
}

/// The sort-key columns of one segment.
struct Columns {
    ts: Arc<dyn ColumnValues<i64>>,
    file_ord: Arc<dyn ColumnValues<u64>>,
    offset: Arc<dyn ColumnValues<u64>>,
    sub: Arc<dyn ColumnValues<u64>>,
}

impl Columns {
    /// None for a segment without them (never written by this schema).
    fn of(reader: &SegmentReader) -> Option<Columns> {
        let ff = reader.fast_fields();
        Some(Columns {
            ts: ff.i64(schema::TS).ok()?.first_or_default_col(0),
            file_ord: ff.u64(schema::FILE_ORD).ok()?.first_or_default_col(0),
            offset: ff.u64(schema::OFFSET).ok()?.first_or_default_col(0),
            sub: ff.u64(schema::SUB).ok()?.first_or_default_col(0),
        })
    }

    fn key(&self, doc: DocId) -> SortKey {
        SortKey {
            ts: self.ts.get_val(doc),
            file_ord: self.file_ord.get_val(doc),
            offset: self.offset.get_val(doc),
            sub: self.sub.get_val(doc),
        }
    }
}

/// Calls `each` with every live match in `docs` of one segment and its key.
fn scan_window(
    weight: &dyn Weight,
    reader: &SegmentReader,
    cols: &Columns,
    docs: std::ops::Range<DocId>,
    mut each: impl FnMut(DocId, SortKey),
) -> tantivy::Result<()> {
    let mut scorer = weight.scorer(reader, 1.0)?;
    let mut doc = scorer.doc();
    if doc < docs.start {
        doc = scorer.seek(docs.start);
    }
    let alive = reader.alive_bitset();
    while doc != TERMINATED && doc < docs.end {
        if alive.is_none_or(|a| a.is_alive(doc)) {
            each(doc, cols.key(doc));
        }
        doc = scorer.advance();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};
    use tantivy::collector::DocSetCollector;

    use super::*;
    use crate::index::search::{build_query, SearchRequest};
    use crate::index::writer::index_for_tests;
    use crate::index::Timeline;
    use crate::record::Record;

    /// Every match, keyed and sorted the slow way: what the walk must agree with.
    fn everything_sorted(
        searcher: &Searcher,
        query: &dyn Query,
        order: Order,
        after: Option<SortKey>,
    ) -> Vec<(SortKey, DocAddress)> {
        let mut all: Vec<(SortKey, DocAddress)> = searcher
            .search(query, &DocSetCollector)
            .unwrap()
            .into_iter()
            .map(|addr| {
                let reader = searcher.segment_reader(addr.segment_ord);
                (Columns::of(reader).unwrap().key(addr.doc_id), addr)
            })
            .filter(|(key, _)| match (after, order) {
                (None, _) => true,
                (Some(a), Order::Desc) => *key < a,
                (Some(a), Order::Asc) => *key > a,
            })
            .collect();
        all.sort_by_key(|(key, _)| *key);
        if order == Order::Desc {
            all.reverse();
        }
        all
    }

    /// Segments written out of time order, with ties on the timestamp, searched with
    /// windows of a few documents: the walk stops early and still finds exactly what
    /// sorting every match finds, for every order, limit and cursor.
    #[test]
    fn walk_finds_what_sorting_everything_finds() {
        let dir = tempfile::TempDir::new().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        let t0 = DateTime::<Utc>::from_timestamp(1_772_000_000, 0).unwrap();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut offset = 0u64;
        // Batch 1 in order; batch 2 reaching before and after it; batch 3 at random.
        for (batch, n) in [(0u64, 500u64), (1, 300), (2, 200)] {
            let mut records = Vec::new();
            for i in 0..n {
                let secs = match batch {
                    0 => i as i64 / 3,
                    1 => i as i64 - 100,
                    _ => (next() % 700) as i64 - 50,
                };
                let mut words = vec!["line"];
                if offset % 3 == 0 {
                    words.push("alpha");
                }
                if offset % 7 == 0 {
                    words.push("beta");
                }
                if offset == 123 || offset == 871 {
                    words.push("gamma");
                }
                let service = ["api", "worker"][(next() % 2) as usize];
                records.push(Record::test_line(
                    service,
                    t0 + TimeDelta::seconds(secs),
                    &format!("{} {offset}", words.join(" ")),
                    offset,
                ));
                offset += 1;
            }
            index_for_tests(&timeline, records);
        }
        timeline.reader.reload().unwrap();
        let searcher = timeline.reader.searcher();
        assert!(searcher.segment_readers().len() >= 2);
        let walk = Walk {
            block: 8,
            first_window: 32,
        };
        let mut compared = 0;
        for q in [
            "",
            "alpha",
            "beta",
            "gamma",
            "alpha AND NOT beta",
            "nothing",
        ] {
            let req = SearchRequest {
                q: q.into(),
                ..SearchRequest::default()
            };
            let query = build_query(&timeline, &req).unwrap();
            for order in [Order::Desc, Order::Asc] {
                let all = everything_sorted(&searcher, &*query, order, None);
                let cursors = [None, all.get(all.len() / 3).map(|(k, _)| *k)];
                for after in cursors {
                    let want_all = everything_sorted(&searcher, &*query, order, after);
                    for limit in [1, 5, 37, 2000] {
                        let got = top_in_order(
                            &searcher,
                            &timeline.bounds,
                            &*query,
                            limit,
                            order,
                            after,
                            walk,
                        )
                        .unwrap();
                        let want: Vec<_> = want_all.iter().copied().take(limit).collect();
                        assert_eq!(got, want, "q={q:?} {order:?} after={after:?} limit={limit}");
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 6 * 2 * 2 * 4);
        // Bounds were built for the segments large enough to walk, and only for those
        // still in the index.
        let walked = searcher
            .segment_readers()
            .iter()
            .filter(|r| r.max_doc() > walk.first_window)
            .count();
        assert!(walked > 0);
        assert_eq!(timeline.bounds.len(), walked);
    }
}
