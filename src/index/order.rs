//! The first matches in timeline order without ranking every match. Every segment is
//! cut into blocks of documents whose oldest and newest timestamps are known; blocks are
//! read best first (newest first, or oldest first for ascending order) and the walk stops
//! as soon as no unread block can beat the hits already kept. A `limit` of 100 over a
//! word found a million times reads a few blocks, not a million documents.
//!
//! Blocks rather than whole segments, because tantivy merges segments in no particular
//! order: a merged segment holds runs of documents from different times. The bounds are
//! read once per segment from the `ts` column and cached by segment id (segments never
//! change; the cache forgets the ones merged away).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tantivy::columnar::ColumnValues;
use tantivy::index::SegmentId;
use tantivy::query::{AllQuery, BooleanQuery, EnableScoring, Occur, Query, TermQuery, Weight};
use tantivy::{DocAddress, DocId, DocSet, Searcher, SegmentReader, TERMINATED};

use super::cores;
use super::schema;
use super::search::{Order, SortKey};

/// How a walk is cut up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walk {
    /// Documents per block (per pair of bounds).
    pub block: u32,
    /// Documents in the first round of blocks; each next round takes twice as many,
    /// up to `max_window` once the page is full.
    pub first_window: u32,
    /// Most documents in one round: a round is read to its end even when its first
    /// blocks already gave better matches than the rest can, so unbounded doubling
    /// would read up to twice the blocks needed.
    pub max_window: u32,
    /// Matches a scan gathers by timestamp before it cuts them and reads their keys (at
    /// least; four times the limit when that is more): [`Batch`].
    pub batch: usize,
    /// Documents a walk's round or count must reach before two threads share it: below
    /// it, handing work to the helper thread costs more than it saves.
    pub parallel: u64,
    /// Tests: the count's helper share is done before the walk starts (on this thread),
    /// so the walk meets blocks counted already (else a matter of timing).
    pub helper_first: bool,
}

impl Walk {
    pub const DEFAULT: Walk = Walk {
        block: 4096,
        first_window: 16 * 4096,
        max_window: 64 * 4096,
        batch: 1024,
        parallel: 1 << 20,
        helper_first: false,
    };
}

/// A time span, `lo` included, `hi` excluded, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    lo: i64,
    hi: i64,
}

impl Span {
    pub const ALL: Span = Span {
        lo: i64::MIN,
        hi: i64::MAX,
    };

    /// This span from `lo` on (never wider than it was).
    pub fn since(self, lo: i64) -> Span {
        Span {
            lo: self.lo.max(lo),
            ..self
        }
    }

    /// This span before `hi` (never wider than it was).
    pub fn until(self, hi: i64) -> Span {
        Span {
            hi: self.hi.min(hi),
            ..self
        }
    }

    fn is_all(self) -> bool {
        self == Span::ALL
    }

    fn contains(self, ts: i64) -> bool {
        // i64::MAX itself is a timestamp no record has (year 294,247).
        ts >= self.lo && (ts < self.hi || self.hi == i64::MAX)
    }

    /// The part of `oldest..=newest` inside the span, if any.
    fn clip(self, oldest: i64, newest: i64) -> Option<(i64, i64)> {
        let lo = oldest.max(self.lo);
        let hi = if self.hi == i64::MAX {
            newest
        } else {
            newest.min(self.hi - 1)
        };
        (lo <= hi).then_some((lo, hi))
    }
}

/// What searches learn once per segment, shared by every search of a timeline: the
/// per-block timestamp bounds, the opened sort-key columns, and the exact number of
/// matches of the queries whose count had to visit every match. Segments never change
/// (only their deletes grow, which is part of a count's key), so neither do these.
/// Opening a column is not free: the timestamp and offset columns deserialize the
/// parameters of every 512-document block (about 20,000 of them in a segment of 10 M
/// lines), which was a sixth of a selective query's time when done per query. A count
/// is what a phrase over a merged index spends most of its time on (checking the word
/// positions of every match), and a search is asked again as a page is turned, a limit
/// changed or a view refreshed, while most of the index sits in segments that will not
/// change until a merge.
#[derive(Default)]
pub struct SegmentCache {
    segments: Mutex<HashMap<(SegmentId, u32), Arc<Bounds>>>,
    columns: Mutex<HashMap<SegmentId, Arc<Columns>>>,
    counts: Mutex<HashMap<CountKey, u64>>,
}

/// A query (as [`SearchRequest`](super::search::SearchRequest)'s filters spell it,
/// without time), a segment, and how many of its documents were deleted when counted.
type CountKey = (Arc<str>, SegmentId, u32);

/// Most counts kept: a few hundred queries over a merged index's few dozen segments.
const MAX_COUNTS: usize = 8192;

/// The oldest and newest timestamp of each block of documents (block `b` holds documents
/// `b * block ..`). Deleted documents are counted in: a bound may be loose, never wrong.
struct Bounds {
    oldest: Vec<i64>,
    newest: Vec<i64>,
}

impl Bounds {
    fn of(ts: &dyn ColumnValues<i64>, max_doc: u32, block: u32) -> Bounds {
        let blocks = max_doc.div_ceil(block) as usize;
        let mut oldest = Vec::with_capacity(blocks);
        let mut newest = Vec::with_capacity(blocks);
        let mut values = vec![0i64; block as usize];
        for b in 0..blocks as u32 {
            let start = b * block;
            let n = (max_doc - start).min(block) as usize;
            ts.get_range(u64::from(start), &mut values[..n]);
            let (lo, hi) = values[..n]
                .iter()
                .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            oldest.push(lo);
            newest.push(hi);
        }
        Bounds { oldest, newest }
    }
}

impl SegmentCache {
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

    /// The sort-key columns of `reader`'s segment, opened once. Columns of segments the
    /// searcher no longer has are let go as soon as a search sees fewer segments than
    /// are cached, so a merged-away segment's files are not held open for long.
    fn columns(&self, searcher: &Searcher, reader: &SegmentReader) -> Option<Arc<Columns>> {
        let id = reader.segment_id();
        let lock = || self.columns.lock().unwrap_or_else(|e| e.into_inner());
        let cached = lock().get(&id).cloned();
        let cols = match cached {
            Some(c) => c,
            None => {
                // Opened without the lock: another search may open it too, harmlessly.
                let opened = Arc::new(Columns::of(reader)?);
                lock().insert(id, opened.clone());
                opened
            }
        };
        let mut map = lock();
        if map.len() > searcher.segment_readers().len() {
            let live: Vec<SegmentId> = searcher
                .segment_readers()
                .iter()
                .map(|r| r.segment_id())
                .collect();
            map.retain(|seg, _| live.contains(seg));
        }
        Some(cols)
    }

    /// The number of live matches in `reader`'s segment of the query `key`, when counted
    /// before with the same deletes.
    fn count(&self, key: &Arc<str>, reader: &SegmentReader) -> Option<u64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let id = (key.clone(), reader.segment_id(), reader.num_deleted_docs());
        counts.get(&id).copied()
    }

    /// Keeps the count of `key` in `reader`'s segment; counts of segments `searcher`
    /// no longer has are let go, and all of them when there are too many.
    fn keep_count(&self, searcher: &Searcher, key: &Arc<str>, reader: &SegmentReader, n: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_COUNTS {
            let readers = searcher.segment_readers();
            counts.retain(|(_, seg, deleted), _| {
                readers
                    .iter()
                    .any(|r| r.segment_id() == *seg && r.num_deleted_docs() == *deleted)
            });
            if counts.len() >= MAX_COUNTS {
                counts.clear();
            }
        }
        let id = (key.clone(), reader.segment_id(), reader.num_deleted_docs());
        counts.insert(id, n);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub(crate) fn columns_len(&self) -> usize {
        self.columns.lock().map_or(0, |m| m.len())
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

/// The `limit` best hits kept so far. Offered hits go into a buffer that is cut back to
/// the best `limit` whenever it holds twice as many (a selection, not a sort): in an
/// index written in time order nearly every match of a block read newest first beats
/// the worst one kept, and a heap paid a pop for each (a tenth of a phrase search's
/// samples, `Kept::offer` a seventh of a common word's).
struct Kept {
    limit: usize,
    hits: Vec<(SortKey, u32, DocId)>,
    /// The worst of the best `limit` at the last cut: nothing at or below it is wanted.
    cut: Option<SortKey>,
    /// Nothing at or below this rank is wanted, even before `limit` hits are kept (a
    /// helper's, started from the main one's worst).
    floor: Option<SortKey>,
}

impl Kept {
    fn new(limit: usize, floor: Option<SortKey>) -> Kept {
        let limit = limit.max(1);
        Kept {
            limit,
            hits: Vec::with_capacity(2 * limit),
            cut: None,
            floor,
        }
    }

    /// The rank a hit must beat to be kept, if any; exact after [`Kept::settle`], a
    /// lower bound between (more hits are let in than will stay, never fewer).
    fn worst(&self) -> Option<SortKey> {
        self.cut.or(self.floor)
    }

    fn is_full(&self) -> bool {
        self.hits.len() >= self.limit
    }

    /// Whether a region whose best possible rank is `best` can still add a hit.
    fn wants(&self, best: SortKey) -> bool {
        self.worst().is_none_or(|w| best > w)
    }

    fn offer(&mut self, ranked: SortKey, segment: u32, doc: DocId) {
        if self.wants(ranked) {
            self.hits.push((ranked, segment, doc));
            if self.hits.len() >= 2 * self.limit {
                self.settle();
            }
        }
    }

    /// Cuts the buffer back to the best `limit`, whose worst then bounds what is wanted.
    fn settle(&mut self) {
        if self.hits.len() >= self.limit {
            let nth = self.limit - 1;
            self.hits.select_nth_unstable_by(nth, |a, b| b.0.cmp(&a.0));
            self.hits.truncate(self.limit);
            self.cut = Some(self.hits[nth].0);
        }
    }

    fn absorb(&mut self, other: Kept) {
        for (ranked, segment, doc) in other.hits {
            self.offer(ranked, segment, doc);
        }
        self.settle();
    }
}

/// Runs `each` on every item with an accumulator from `start`: on this thread, or,
/// when there is more than `parallel` documents of work (`docs` of each item) and a second
/// core, on two threads that take the items from one queue, largest first, until none
/// is left. Searches are short and few on a developer's machine: the second core would
/// otherwise sit idle while one query runs. A queue, not halves decided up front: what
/// an item costs is its matches, not its documents (a phrase's matches sit in a few
/// runs of blocks), and halves by documents left one thread with most of the work.
fn on_two_cores<T: Sync, A: Send>(
    parallel: u64,
    items: &[T],
    docs: impl Fn(&T) -> u64,
    start: impl Fn() -> A + Sync,
    each: impl Fn(&mut A, &T) -> tantivy::Result<()> + Sync,
) -> tantivy::Result<Vec<A>> {
    let total: u64 = items.iter().map(&docs).sum();
    if !worth_sharing(total, parallel) || items.len() < 2 {
        let mut acc = start();
        for item in items {
            each(&mut acc, item)?;
        }
        return Ok(vec![acc]);
    }
    let mut queue: Vec<&T> = items.iter().collect();
    queue.sort_by_key(|t| Reverse(docs(t)));
    let next = AtomicUsize::new(0);
    let drain = || {
        let mut acc = start();
        while let Some(item) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Err(e) = each(&mut acc, item) {
                // The other thread finds the queue empty and stops too.
                next.store(queue.len(), Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(acc)
    };
    let (mine, theirs) = cores::beside(drain, drain);
    Ok(vec![mine?, helped(theirs)?])
}

/// Whether `docs` documents of work are worth a second thread: a second core, and at
/// least `parallel` of them (below, handing work over costs more than it saves).
fn worth_sharing(docs: u64, parallel: u64) -> bool {
    cores::two() && docs >= parallel
}

/// A helper thread's result, its panic an error.
fn helped<A>(theirs: std::thread::Result<tantivy::Result<A>>) -> tantivy::Result<A> {
    theirs.map_err(|_| tantivy::TantivyError::InternalError("a search thread panicked".into()))?
}

/// Below this many matches (when the caller knows the count) every segment is read in
/// one pass: cheaper than opening scorers for rounds of blocks.
const ONE_PASS_MATCHES: u64 = 20_000;

/// The weight of `query` that a search's count and walk share, its words looked up
/// once per segment whatever the number of scorers opened (`index::lookups`).
pub(crate) fn weight_of(
    searcher: &Searcher,
    query: &dyn Query,
) -> tantivy::Result<Box<dyn Weight>> {
    super::lookups::once_per_segment(query).weight(EnableScoring::disabled_from_searcher(searcher))
}

/// The first `limit` matches of `weight`'s query within `span` in `order`, strictly
/// after `after` when given, with their keys, best first. `matches`, the number of
/// matches when known, picks the cheaper way to walk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn top_in_order(
    searcher: &Searcher,
    cache: &SegmentCache,
    weight: &dyn Weight,
    span: Span,
    limit: usize,
    order: Order,
    after: Option<SortKey>,
    matches: Option<u64>,
    walk: Walk,
) -> tantivy::Result<Vec<(SortKey, DocAddress)>> {
    if matches.is_some_and(|n| n <= ONE_PASS_MATCHES) {
        let cursor = after.map(|a| rank(order, a));
        let mut kept = Kept::new(limit, None);
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let Some(cols) = cache.columns(searcher, reader) else {
                continue;
            };
            let all = std::iter::once((0..reader.max_doc(), Tally::No));
            let to = Scan {
                ord: ord as u32,
                order,
                span,
                cursor,
                batch: walk.batch,
            };
            scan_ranges(weight, reader, &cols, all, to, None, &mut kept)?;
        }
        return Ok(best_first(kept, order));
    }
    let (_, hits) = walk_blocks(
        searcher, cache, weight, None, span, limit, order, after, walk,
    )?;
    Ok(hits)
}

/// The number of live matches of `query` within `span`, and the first `limit` of them in
/// `order` within `page` (a part of `span`) strictly after `after`, best first. For
/// queries whose exact count must visit every match (a phrase, several words, a time
/// span): the walk that finds the page counts the matches of the blocks it reads, and
/// the blocks it leaves are only counted, so every match is visited once. With `key`
/// (the query spelled without its time span), the count of a segment lying wholly
/// within `span` is kept, and the next search with that key takes it from there.
#[allow(clippy::too_many_arguments)]
pub(crate) fn count_and_top(
    searcher: &Searcher,
    cache: &SegmentCache,
    weight: &dyn Weight,
    key: Option<Arc<str>>,
    span: Span,
    page: Span,
    limit: usize,
    order: Order,
    after: Option<SortKey>,
    walk: Walk,
) -> tantivy::Result<(u64, Vec<(SortKey, DocAddress)>)> {
    let count = Count { span, key };
    walk_blocks(
        searcher,
        cache,
        weight,
        Some(&count),
        page,
        limit,
        order,
        after,
        walk,
    )
}

/// What a walk counts: the matches within `span`, and under which key whole segments'
/// counts are kept.
struct Count {
    span: Span,
    key: Option<Arc<str>>,
}

/// Whether the matches of a block count toward the total.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tally {
    /// No: the block is read only for the page (its segment's count is known).
    No,
    /// Yes, each: the block lies wholly within the counted span.
    Whole,
    /// Those whose timestamp is within the counted span.
    InSpan,
}

/// One block of one segment in a walk.
#[derive(Clone, Copy)]
struct Step {
    /// The best key the block could give the page; None when it can give none.
    best: Option<SortKey>,
    /// Index into the walk's segments.
    seg: u32,
    block: u32,
    tally: Tally,
}

/// The walk behind [`top_in_order`] and [`count_and_top`]: blocks best first, in rounds,
/// until no unread block can beat the kept hits; with `count`, the matches within its
/// span are counted on the way and in the blocks left over, except in segments whose
/// count is kept.
#[allow(clippy::too_many_arguments)]
fn walk_blocks(
    searcher: &Searcher,
    cache: &SegmentCache,
    weight: &dyn Weight,
    count: Option<&Count>,
    page: Span,
    limit: usize,
    order: Order,
    after: Option<SortKey>,
    walk: Walk,
) -> tantivy::Result<(u64, Vec<(SortKey, DocAddress)>)> {
    let cursor = after.map(|a| rank(order, a));
    let mut kept = Kept::new(limit, None);
    let mut total = 0u64;
    // Every block of every segment that can give the page or must be counted, best
    // first by what its timestamps allow (blocks that can give nothing last).
    let mut segments = Vec::new();
    // Segments counted whole under the count's key, whose count is to be kept.
    let mut to_keep = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        if reader.num_docs() == 0 {
            continue;
        }
        let Some(cols) = cache.columns(searcher, reader) else {
            continue;
        };
        let bounds = cache.get(searcher, reader, &*cols.ts, walk.block);
        let seg = segments.len() as u32;
        let tally_of = |lo: i64, hi: i64| match count {
            Some(c) if c.span.contains(lo) && c.span.contains(hi) => Tally::Whole,
            Some(c) if c.span.clip(lo, hi).is_some() => Tally::InSpan,
            _ => Tally::No,
        };
        let blocks = || bounds.oldest.iter().zip(&bounds.newest);
        let mut known = false;
        if let Some(key) = count.and_then(|c| c.key.as_ref()) {
            if blocks().all(|(&lo, &hi)| tally_of(lo, hi) == Tally::Whole) {
                match cache.count(key, reader) {
                    Some(n) => {
                        total += n;
                        known = true;
                    }
                    None => to_keep.push(seg),
                }
            }
        }
        for (b, (&lo, &hi)) in blocks().enumerate() {
            let best = page.clip(lo, hi).map(|(lo, hi)| best_in(order, lo, hi));
            let tally = if known { Tally::No } else { tally_of(lo, hi) };
            if best.is_some() || tally != Tally::No {
                steps.push(Step {
                    best,
                    seg,
                    block: b as u32,
                    tally,
                });
            }
        }
        segments.push((ord as u32, reader, cols));
    }
    steps.sort_unstable_by_key(|s| Reverse(s.best));
    let docs = |step: &Step| {
        let max_doc = segments[step.seg as usize].1.max_doc();
        let start = step.block * walk.block;
        start..start.saturating_add(walk.block).min(max_doc)
    };
    // The steps of a slice by segment, each segment's in document order: one scorer
    // per segment reads them (scorers only move forward).
    let by_segment = |mut chosen: Vec<Step>| {
        chosen.sort_unstable_by_key(|s| (s.seg, s.block));
        chosen
    };
    let wanted = |kept: &Kept, step: &Step| step.best.is_some_and(|b| kept.wants(b));
    let span = count.map(|c| c.span);
    // Matches counted per segment, for the counts to keep.
    let mut counted = vec![0u64; segments.len()];

    // Rounds of twice as many blocks each: a common word stops after the first round, a
    // rare one costs a few scorers per segment, not one per block. Once `limit` hits are
    // kept, a round is at most `max_window` (it is read to its end even when its first
    // blocks already beat the rest) and ends at the first block that cannot beat them.
    let mut round = (walk.first_window / walk.block).max(1) as usize;
    let max_round = (walk.max_window / walk.block).max(1) as usize;
    let mut next = 0;

    // The blocks a count must visit (the steps with a tally), sorted by segment and block
    // and grouped by segment: the order the blocks the walk leaves are counted in. Each
    // step is claimed once, by whichever thread gets to it first; only its claimer
    // counts it.
    let claimed: Vec<AtomicBool> = steps.iter().map(|_| AtomicBool::new(false)).collect();
    let mut to_count: Vec<u32> = (0..steps.len() as u32)
        .filter(|&i| steps[i as usize].tally != Tally::No)
        .collect();
    to_count.sort_unstable_by_key(|&i| (steps[i as usize].seg, steps[i as usize].block));
    let count_segments: Vec<&[u32]> = to_count
        .chunk_by(|&x, &y| steps[x as usize].seg == steps[y as usize].seg)
        .collect();
    // Counts the unclaimed steps of `segments_left`, as (segment, matches): one scorer per
    // segment, each step claimed only as the scorer gets to it, so two threads counting
    // one segment share it block by block. Not a scorer per run of blocks: a phrase's
    // scorer looks its words up in the term dictionary each time it is made.
    let count_left =
        |segments_left: &mut dyn Iterator<Item = &&[u32]>| -> tantivy::Result<Vec<(u32, u64)>> {
            let Some(span) = span else {
                return Ok(Vec::new());
            };
            let mut n = Vec::new();
            for seg_steps in segments_left {
                let mut mine = seg_steps
                    .iter()
                    .filter(|&&i| !claimed[i as usize].swap(true, Ordering::AcqRel))
                    .map(|&i| steps[i as usize])
                    .peekable();
                let Some(seg) = mine.peek().map(|s| s.seg) else {
                    continue;
                };
                let (_, reader, cols) = &segments[seg as usize];
                let ranges = mine.map(|s| (docs(&s), s.tally));
                let mut c = 0u64;
                for_each_match(weight, reader, ranges, |doc, &tally| {
                    if tally == Tally::Whole
                        || (tally == Tally::InSpan && span.contains(cols.ts.get_val(doc)))
                    {
                        c += 1;
                    }
                })?;
                n.push((seg, c));
            }
            Ok(n)
        };
    // With enough to count and a second core, a helper counts from the start: the blocks
    // least likely to be read for the page first (in document order for the newest
    // first, the other way for the oldest first), while this thread walks the best
    // blocks and then counts from the other end. A count started only once the walk was
    // done left that walk alone on one core.
    let to_count_docs: u64 = to_count
        .iter()
        .map(|&i| docs(&steps[i as usize]).len() as u64)
        .sum();
    let shared_count = span.is_some() && worth_sharing(to_count_docs, walk.parallel);
    let worst_first = order == Order::Desc;

    // On an error, every block is marked claimed: the other thread, finding nothing left
    // to count, stops at the end of its block instead of counting on for nothing.
    let give_up = |r: tantivy::Result<Vec<(u32, u64)>>| {
        if r.is_err() {
            for c in &claimed {
                c.store(true, Ordering::Release);
            }
        }
        r
    };
    // The helper's share: from the end of the count the walk reaches last.
    let helper_count = || {
        give_up(if worst_first {
            count_left(&mut count_segments.iter())
        } else {
            count_left(&mut count_segments.iter().rev())
        })
    };
    let mut walk_then_count_or_fail = || -> tantivy::Result<Vec<(u32, u64)>> {
        while next < steps.len() && wanted(&kept, &steps[next]) {
            let end = next
                + steps[next..(next + round).min(steps.len())]
                    .partition_point(|s| wanted(&kept, s));
            // A block the helper counted already is read for the page only.
            let chosen = by_segment(
                (next..end)
                    .map(|i| {
                        let mut step = steps[i];
                        if step.tally != Tally::No && claimed[i].swap(true, Ordering::AcqRel) {
                            step.tally = Tally::No;
                        }
                        step
                    })
                    .collect(),
            );
            // With the helper counting, or a round too small to share, this thread walks
            // alone, a scorer per segment.
            let alone = shared_count
                || !worth_sharing(chosen.len() as u64 * u64::from(walk.block), walk.parallel);
            let runs = runs_of(&chosen, if alone { usize::MAX } else { RUN_BLOCKS });
            let floor = kept.worst();
            let parallel = if alone { u64::MAX } else { walk.parallel };
            let found = on_two_cores(
                parallel,
                &runs,
                |run| run.len() as u64 * u64::from(walk.block),
                || (Vec::new(), Kept::new(limit, floor)),
                |(n, mine), run| {
                    let (ord, reader, cols) = &segments[run[0].seg as usize];
                    let to = Scan {
                        ord: *ord,
                        order,
                        span: page,
                        cursor,
                        batch: walk.batch,
                    };
                    let ranges = run.iter().map(|s| (docs(s), s.tally));
                    let c = scan_ranges(weight, reader, cols, ranges, to, span, mine)?;
                    n.push((run[0].seg, c));
                    Ok(())
                },
            )?;
            for (n, part) in found {
                for (seg, c) in n {
                    counted[seg as usize] += c;
                }
                kept.absorb(part);
            }
            next = end;
            round = round.saturating_mul(2);
            if kept.is_full() {
                round = round.min(max_round);
            }
        }

        // What the walk left cannot give the page: only counted, from the end the helper
        // did not start at.
        if worst_first {
            count_left(&mut count_segments.iter().rev())
        } else {
            count_left(&mut count_segments.iter())
        }
    };
    let mut walk_then_count = || give_up(walk_then_count_or_fail());
    let (mine, theirs) = if !shared_count {
        (walk_then_count()?, Vec::new())
    } else if walk.helper_first {
        let theirs = helper_count()?;
        (walk_then_count()?, theirs)
    } else {
        let (mine, theirs) = cores::beside(helper_count, walk_then_count);
        (mine?, helped(theirs)?)
    };
    for (seg, c) in mine.into_iter().chain(theirs) {
        counted[seg as usize] += c;
    }
    if let Some(key) = count.and_then(|c| c.key.as_ref()) {
        for seg in to_keep {
            cache.keep_count(
                searcher,
                key,
                segments[seg as usize].1,
                counted[seg as usize],
            );
        }
    }
    total += counted.iter().sum::<u64>();
    Ok((total, best_first(kept, order)))
}

/// Most blocks one scorer reads in a walk's round or count: a merged index is a few
/// large segments, and work split by whole segments left one core with most of it (a
/// phrase over 7 segments, one of them 59% of the documents). Small enough that the
/// queue of [`on_two_cores`] ends with both threads busy (a phrase's matches sit in a
/// few runs), large enough that opening a scorer per run (a term-dictionary lookup per
/// word) stays a small part: ~80 runs over 10 M documents.
const RUN_BLOCKS: usize = 32;

/// Steps sorted by segment and block, cut into runs of one segment each, at most `most`
/// blocks long: the pieces of work two threads share.
fn runs_of(steps: &[Step], most: usize) -> Vec<&[Step]> {
    steps
        .chunk_by(|x, y| x.seg == y.seg)
        .flat_map(|run| run.chunks(most))
        .collect()
}

fn best_first(mut kept: Kept, order: Order) -> Vec<(SortKey, DocAddress)> {
    kept.settle();
    let mut hits: Vec<(SortKey, DocAddress)> = kept
        .hits
        .into_iter()
        .map(|(ranked, seg, doc)| (rank(order, ranked), DocAddress::new(seg, doc)))
        .collect();
    hits.sort_by_key(|(key, _)| Reverse(rank(order, *key)));
    hits
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

    /// The key of `doc`, whose timestamp `ts` is already read.
    fn key(&self, doc: DocId, ts: i64) -> SortKey {
        SortKey {
            ts,
            file_ord: self.file_ord.get_val(doc),
            offset: self.offset.get_val(doc),
            sub: self.sub.get_val(doc),
        }
    }
}

/// What a scan offers its matches to: segment `ord`, `order`, only within `span` and
/// after the `cursor` (a rank).
#[derive(Clone, Copy)]
struct Scan {
    ord: u32,
    order: Order,
    span: Span,
    cursor: Option<SortKey>,
    /// [`Walk::batch`].
    batch: usize,
}

impl Scan {
    /// Whether a match at `ts` may be kept: in the span, and not ruled out by the worst
    /// hit kept from its timestamp alone.
    fn wants(&self, ts: i64, worst: Option<SortKey>) -> bool {
        self.span.contains(ts) && worst.is_none_or(|w| best_in(self.order, ts, ts) > w)
    }

    /// The timestamp as it leads a rank (see [`rank`]); its own inverse.
    fn rank_ts(&self, ts: i64) -> i64 {
        match self.order {
            Order::Desc => ts,
            Order::Asc => !ts,
        }
    }

    /// Whether `doc` at `ts` comes after the cursor: told by the timestamp, unless it is
    /// the cursor's own (then by the whole key).
    fn after_cursor(&self, cols: &Columns, doc: DocId, ts: i64) -> bool {
        self.cursor.is_none_or(|c| {
            let r = self.rank_ts(ts);
            r < c.ts || (r == c.ts && rank(self.order, cols.key(doc, ts)) < c)
        })
    }
}

/// Matches wanted by their timestamp, waiting for their whole keys. The rest of a key
/// (file, offset, sub) is three column reads, and in an index written in time order
/// nearly every match of a block read newest first beats the worst hit kept: reading
/// every key was a quarter of a common word's search. A full batch is cut to its best
/// `limit` by timestamp (ties kept) before any key is read; what is cut cannot be among
/// the best, as the batch alone holds `limit` better ones.
struct Batch {
    /// (rank timestamp, document), each after the cursor.
    items: Vec<(i64, DocId)>,
    limit: usize,
    size: usize,
}

impl Batch {
    fn new(limit: usize, least: usize) -> Batch {
        let limit = limit.max(1);
        Batch {
            // Grown as matches come: most runs of a walk offer few or none.
            items: Vec::new(),
            limit,
            size: (4 * limit).max(least),
        }
    }

    fn is_full(&self) -> bool {
        self.items.len() >= self.size
    }

    /// Offers the batch's best to `kept` with their keys, and empties it.
    fn drain_into(&mut self, kept: &mut Kept, cols: &Columns, to: Scan) {
        if self.items.is_empty() {
            return;
        }
        if self.items.len() > self.limit {
            let nth = self.limit - 1;
            self.items.select_nth_unstable_by(nth, |a, b| b.0.cmp(&a.0));
            let edge = self.items[nth].0;
            self.items.retain(|(r, _)| *r >= edge);
        }
        for (r, doc) in self.items.drain(..) {
            let ts = to.rank_ts(r);
            kept.offer(rank(to.order, cols.key(doc, ts)), to.ord, doc);
        }
        kept.settle();
    }
}

/// Calls `each` with every live match of one segment in `ranges` (ascending, not
/// overlapping) and the tag its range came with, moving one scorer forward through them.
fn for_each_match<T>(
    weight: &dyn Weight,
    reader: &SegmentReader,
    ranges: impl Iterator<Item = (std::ops::Range<DocId>, T)>,
    mut each: impl FnMut(DocId, &T),
) -> tantivy::Result<()> {
    let mut scorer = weight.scorer(reader, 1.0)?;
    let alive = reader.alive_bitset();
    for (docs, tag) in ranges {
        let mut doc = scorer.doc();
        if doc < docs.start {
            doc = scorer.seek(docs.start);
        }
        while doc != TERMINATED && doc < docs.end {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                each(doc, &tag);
            }
            doc = scorer.advance();
        }
        if doc == TERMINATED {
            break;
        }
    }
    Ok(())
}

/// Offers every live match of one segment in `ranges` that comes after the cursor, and
/// returns how many of them count toward the total within `count`, as each range's
/// tally says. A match whose timestamp alone rules it out costs one column read; the
/// others wait in a [`Batch`] for the rest of their keys.
fn scan_ranges(
    weight: &dyn Weight,
    reader: &SegmentReader,
    cols: &Columns,
    ranges: impl Iterator<Item = (std::ops::Range<DocId>, Tally)>,
    to: Scan,
    count: Option<Span>,
    kept: &mut Kept,
) -> tantivy::Result<u64> {
    let mut worst = kept.worst();
    let mut n = 0u64;
    let mut batch = Batch::new(kept.limit, to.batch);
    for_each_match(weight, reader, ranges, |doc, &tally| {
        let ts = cols.ts.get_val(doc);
        let counts = match tally {
            Tally::No => false,
            Tally::Whole => true,
            Tally::InSpan => count.is_some_and(|s| s.contains(ts)),
        };
        if counts {
            n += 1;
        }
        if to.wants(ts, worst) && to.after_cursor(cols, doc, ts) {
            batch.items.push((to.rank_ts(ts), doc));
            if batch.is_full() {
                batch.drain_into(kept, cols, to);
                worst = kept.worst();
            }
        }
    })?;
    batch.drain_into(kept, cols, to);
    Ok(n)
}

/// The count of `query` within `span` when it needs no visit of its matches, over all
/// time: a lone word (counted from its document frequency, through `weight`, the
/// search's own), everything, or everything but some values of one field (a filter on
/// a value that documents leave out, `search::with_default`): the documents minus those
/// with the other values. That subtraction holds only for a field with one value per
/// document, one of `single_valued` (words of a message overlap: `-foo -bar` is
/// visited). None: the count is [`count_and_top`]'s.
pub(crate) fn count_without_visiting(
    searcher: &Searcher,
    query: &dyn Query,
    weight: &dyn Weight,
    span: Span,
    single_valued: &[tantivy::schema::Field],
) -> tantivy::Result<Option<u64>> {
    if !span.is_all() {
        return Ok(None);
    }
    if query.downcast_ref::<TermQuery>().is_some() || query.downcast_ref::<AllQuery>().is_some() {
        // Through the weight the walk for the page uses next: its word is then looked
        // up once per segment for both.
        let mut n = 0u64;
        for reader in searcher.segment_readers() {
            n += u64::from(weight.count(reader)?);
        }
        return Ok(Some(n));
    }
    let Some(group) = query.downcast_ref::<BooleanQuery>() else {
        return Ok(None);
    };
    let [(Occur::Must, all), others @ ..] = group.clauses() else {
        return Ok(None);
    };
    let all_but_terms = all.downcast_ref::<AllQuery>().is_some()
        && !others.is_empty()
        && others.iter().all(|(o, q)| {
            *o == Occur::MustNot
                && q.downcast_ref::<TermQuery>()
                    .is_some_and(|t| single_valued.contains(&t.term().field()))
        });
    if !all_but_terms {
        return Ok(None);
    }
    // A document holds one value of the field at most, so the others' counts add up.
    let mut n = searcher.num_docs();
    for (_, q) in others {
        n = n.saturating_sub(q.count(searcher)? as u64);
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};
    use tantivy::collector::DocSetCollector;

    use super::*;
    use crate::index::search::{build_query, query_and_span, SearchRequest};
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
                {
                    let cols = Columns::of(reader).unwrap();
                    (cols.key(addr.doc_id, cols.ts.get_val(addr.doc_id)), addr)
                }
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
        // Batches of a few matches: most scans cut theirs by timestamp several times.
        let walk = Walk {
            block: 8,
            first_window: 32,
            max_window: 64,
            batch: 4,
            // Every round and count of more than two blocks on two threads.
            parallel: 16,
            helper_first: false,
        };
        let mut compared = 0;
        let mut one_pass = 0;
        for pass in ["as written", "after deletes"] {
            if pass == "after deletes" {
                // Retention deletes documents: deleted ones are neither found nor counted.
                let mut writer: tantivy::IndexWriter = timeline.index.writer(15 << 20).unwrap();
                writer.set_merge_policy(Box::new(tantivy::merge_policy::NoMergePolicy));
                let worker = tantivy::Term::from_field_text(timeline.fields.service, "worker");
                writer.delete_term(worker);
                writer.commit().unwrap();
                timeline.reader.reload().unwrap();
            }
            let searcher = timeline.reader.searcher();
            if pass == "after deletes" {
                assert!(searcher.segment_readers().iter().all(|r| r.has_deletes()));
            }
            for q in [
                "",
                "alpha",
                "beta",
                "gamma",
                "alpha AND NOT beta",
                "nothing",
            ] {
                for (since, until) in [(None, None), (Some(100), Some(300)), (Some(-20), None)] {
                    let req = SearchRequest {
                        q: q.into(),
                        since: since.map(|s| t0 + TimeDelta::seconds(s)),
                        until: until.map(|s| t0 + TimeDelta::seconds(s)),
                        ..SearchRequest::default()
                    };
                    // The brute force runs tantivy's own range query; the walk, the span.
                    let query = build_query(&timeline, &req).unwrap();
                    let (unranged, span) = query_and_span(&timeline, &req).unwrap();
                    let weight = weight_of(&searcher, &*unranged).unwrap();
                    let counted = query.count(&searcher).unwrap() as u64;
                    for order in [Order::Desc, Order::Asc] {
                        let all = everything_sorted(&searcher, &*query, order, None);
                        let cursors = [None, all.get(all.len() / 3).map(|(k, _)| *k)];
                        for after in cursors {
                            let want_all = everything_sorted(&searcher, &*query, order, after);
                            for (limit, matches) in [1, 5, 37, 2000]
                                .into_iter()
                                .flat_map(|l| [(l, None), (l, Some(want_all.len() as u64))])
                            {
                                let got = top_in_order(
                                    &searcher,
                                    &timeline.segments,
                                    &*weight,
                                    span,
                                    limit,
                                    order,
                                    after,
                                    matches,
                                    walk,
                                )
                                .unwrap();
                                let want: Vec<_> = want_all.iter().copied().take(limit).collect();
                                assert_eq!(
                            got, want,
                            "q={q:?} {order:?} after={after:?} limit={limit} matches={matches:?}"
                        );
                                compared += 1;
                                if matches.is_none() {
                                    // Counting on the walk agrees with both, with the
                                    // page's span narrowed by the cursor as search does.
                                    let page = match (after, order) {
                                        (None, _) => span,
                                        (Some(a), Order::Desc) => span.until(a.ts + 1),
                                        (Some(a), Order::Asc) => span.since(a.ts),
                                    };
                                    // Under the key `q`: the first call of a
                                    // query counts whole segments and keeps the
                                    // counts, the calls after take them (until the
                                    // deletes change them). Then counted afresh
                                    // with the helper thread done first: the walk
                                    // then reads blocks it counted.
                                    let helper_first = Walk {
                                        helper_first: true,
                                        ..walk
                                    };
                                    for (pass, key, walk) in [
                                        ("kept under q", Some(q.into()), walk),
                                        ("helper first", None, helper_first),
                                    ] {
                                        let (n, top) = count_and_top(
                                            &searcher,
                                            &timeline.segments,
                                            &*weight,
                                            key,
                                            span,
                                            page,
                                            limit,
                                            order,
                                            after,
                                            walk,
                                        )
                                        .unwrap();
                                        assert_eq!(n, counted, "{pass}: q={q:?} {span:?}");
                                        assert_eq!(
                                            top, want,
                                            "{pass}: q={q:?} {order:?} after={after:?}"
                                        );
                                    }
                                    one_pass += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 6 * 3 * 2 * 2 * 4 * 2);
        assert_eq!(one_pass, 2 * 6 * 3 * 2 * 2 * 4);
        // Bounds were built and columns opened for every segment (at the walk's one block
        // size here), and are kept only for segments still in the index.
        let segments = timeline.reader.searcher().segment_readers().len();
        assert_eq!(timeline.segments.len(), segments);
        assert_eq!(timeline.segments.columns_len(), segments);

        // Merged into one segment: what was kept for the others is let go by the next
        // search, which opens the new segment's columns.
        let mut writer: tantivy::IndexWriter = timeline.index.writer(15 << 20).unwrap();
        let ids = timeline.index.searchable_segment_ids().unwrap();
        writer.merge(&ids).wait().unwrap();
        writer.wait_merging_threads().unwrap();
        timeline.reader.reload().unwrap();
        assert_eq!(timeline.reader.searcher().segment_readers().len(), 1);
        let req = crate::index::search::SearchRequest {
            q: "alpha AND NOT beta".into(),
            limit: 10,
            ..Default::default()
        };
        let found = crate::index::search::search(&timeline, &req).unwrap();
        assert!(found.total > 0);
        assert_eq!(timeline.segments.len(), 1);
        assert_eq!(timeline.segments.columns_len(), 1);

        // The count of the one segment is kept, and the next search takes it from there
        // without visiting a match: a count planted under its key is what it reports.
        let searcher = timeline.reader.searcher();
        let reader = &searcher.segment_readers()[0];
        let key = super::super::search::count_key(&req);
        assert_eq!(timeline.segments.count(&key, reader), Some(found.total));
        let again = crate::index::search::search(&timeline, &req).unwrap();
        assert_eq!((again.total, &again.hits), (found.total, &found.hits));
        timeline
            .segments
            .keep_count(&searcher, &key, reader, 999_999);
        let planted = crate::index::search::search(&timeline, &req).unwrap();
        assert_eq!((planted.total, &planted.hits), (999_999, &found.hits));
        // A time span that leaves part of the segment out counts it afresh.
        let since = DateTime::<Utc>::from_timestamp(1_772_000_000 + 300, 0).unwrap();
        let spanned = SearchRequest {
            since: Some(since),
            ..req.clone()
        };
        let query = build_query(&timeline, &spanned).unwrap();
        let want = query.count(&searcher).unwrap() as u64;
        let got = crate::index::search::search(&timeline, &spanned).unwrap();
        assert_eq!(got.total, want);
        assert!(want < found.total, "{want} of {}", found.total);
    }
}
