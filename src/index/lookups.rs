//! Term queries that look their word up once per segment and search, not once per scorer.
//!
//! A walk (`index::order`) opens a scorer for every run of blocks it reads: dozens per
//! segment and search. tantivy's term query looks its term up in the segment's term
//! dictionary for each scorer, and a lookup reads and decodes a block of the dictionary
//! (it also set up a zstd decoder, whose `cpuid` traps to the hypervisor on a VM, until
//! the dictionary was stored plain): a fifth of a one-service, one-hour search's CPU time
//! went there.
//! [`once_per_segment`] rewrites a query's term clauses into [`OnceTermQuery`], whose
//! weight keeps each segment's term info for the life of the search.

use std::collections::HashMap;
use std::sync::Mutex;

use tantivy::index::SegmentId;
use tantivy::postings::{SegmentPostings, TermInfo};
use tantivy::query::{
    BooleanQuery, EmptyScorer, EnableScoring, Explanation, Query, Scorer, TermQuery, Weight,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, Term};

/// `query` with its term clauses, at any depth of boolean groups, made [`OnceTermQuery`];
/// anything else is kept as it is. For searches that do not score (as every search of
/// the timeline orders by time).
pub(crate) fn once_per_segment(query: &dyn Query) -> Box<dyn Query> {
    if let Some(term) = query.downcast_ref::<TermQuery>() {
        return Box::new(OnceTermQuery {
            term: term.term().clone(),
            original: term.clone(),
        });
    }
    if let Some(group) = query.downcast_ref::<BooleanQuery>() {
        let clauses = group
            .clauses()
            .iter()
            .map(|(occur, q)| (*occur, once_per_segment(&**q)))
            .collect();
        return Box::new(BooleanQuery::with_minimum_required_clauses(
            clauses,
            group.get_minimum_number_should_match(),
        ));
    }
    query.box_clone()
}

/// The documents holding one term, as tantivy's `TermQuery` finds them with scoring off.
#[derive(Clone, Debug)]
pub(crate) struct OnceTermQuery {
    term: Term,
    /// The query it stands for: scored, its own weight, with its own postings options
    /// (no search of logagg's scores; a scored search would get tantivy's scores).
    original: TermQuery,
}

impl Query for OnceTermQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        if scoring.is_scoring_enabled() {
            // Scores need tantivy's own scorer (and its statistics).
            return self.original.weight(scoring);
        }
        // The same check as tantivy's: a field that is not indexed is an error.
        let entry = scoring.schema().get_field_entry(self.term.field());
        if !entry.is_indexed() {
            return Err(tantivy::TantivyError::SchemaError(format!(
                "Field {:?} is not indexed.",
                entry.name()
            )));
        }
        Ok(Box::new(OnceTermWeight::new(self.term.clone())))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        visitor(&self.term, false);
    }
}

struct OnceTermWeight {
    term: Term,
    /// Each segment's term info (None: the segment lacks the term), looked up once.
    infos: Mutex<HashMap<SegmentId, Option<TermInfo>>>,
}

impl OnceTermWeight {
    fn new(term: Term) -> OnceTermWeight {
        OnceTermWeight {
            term,
            infos: Mutex::new(HashMap::new()),
        }
    }

    fn info(&self, reader: &SegmentReader) -> tantivy::Result<Option<TermInfo>> {
        let id = reader.segment_id();
        if let Some(info) = self
            .infos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(info.clone());
        }
        // Looked up without the lock held: two threads may both look a segment up once.
        let info = reader
            .inverted_index(self.term.field())?
            .get_term_info(&self.term)?;
        self.infos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, info.clone());
        Ok(info)
    }
}

impl Weight for OnceTermWeight {
    fn scorer(&self, reader: &SegmentReader, _boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let Some(info) = self.info(reader)? else {
            return Ok(Box::new(EmptyScorer));
        };
        let postings = reader
            .inverted_index(self.term.field())?
            .read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
        Ok(Box::new(Postings(postings)))
    }

    fn explain(&self, _reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        Err(tantivy::TantivyError::InvalidArgument(format!(
            "document {doc}: a search that does not score explains no score"
        )))
    }

    fn count(&self, reader: &SegmentReader) -> tantivy::Result<u32> {
        match reader.alive_bitset() {
            None => Ok(self.info(reader)?.map_or(0, |info| info.doc_freq)),
            Some(alive) => Ok(self.scorer(reader, 1.0)?.count(alive)),
        }
    }
}

/// A term's postings as a scorer that does not score.
struct Postings(SegmentPostings);

impl DocSet for Postings {
    fn advance(&mut self) -> DocId {
        self.0.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.0.seek(target)
    }

    fn doc(&self) -> DocId {
        self.0.doc()
    }

    fn size_hint(&self) -> u32 {
        self.0.size_hint()
    }
}

impl Scorer for Postings {
    fn score(&mut self) -> Score {
        1.0
    }
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

    /// Every query shape a search builds finds the same documents and counts as tantivy's
    /// own term queries, before and after deletes, and a term is looked up once per
    /// segment however many scorers are opened.
    #[test]
    fn finds_what_tantivys_term_queries_find() {
        let dir = tempfile::TempDir::new().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        let t0 = DateTime::<Utc>::from_timestamp(1_772_000_000, 0).unwrap();
        let mut offset = 0u64;
        for batch in 0..3 {
            let records = (0..200)
                .map(|i| {
                    let mut words = vec!["line"];
                    for (every, word) in [(2, "alpha"), (3, "beta"), (5, "gamma")] {
                        if (i + batch) % every == 0 {
                            words.push(word);
                        }
                    }
                    offset += 1;
                    let service = ["api", "worker", "web"][i % 3];
                    let ts = t0 + TimeDelta::seconds(offset as i64);
                    Record::test_line(service, ts, &words.join(" "), offset)
                })
                .collect();
            index_for_tests(&timeline, records);
        }
        let cases = [
            ("alpha", vec![]),
            ("alpha beta", vec!["worker"]),
            ("alpha OR gamma", vec!["api", "web"]),
            ("alpha AND NOT beta", vec![]),
            ("(alpha OR beta) AND NOT gamma", vec!["worker"]),
            ("\"line alpha\"", vec![]),
            ("nothing", vec![]),
            ("", vec!["web"]),
        ];
        for pass in ["as written", "after deletes"] {
            if pass == "after deletes" {
                let mut writer: tantivy::IndexWriter = timeline.index.writer(15 << 20).unwrap();
                writer.set_merge_policy(Box::new(tantivy::merge_policy::NoMergePolicy));
                writer.delete_term(Term::from_field_text(timeline.fields.message, "gamma"));
                writer.commit().unwrap();
            }
            timeline.reader.reload().unwrap();
            let searcher = timeline.reader.searcher();
            assert_eq!(searcher.segment_readers().len(), 3, "{pass}");
            if pass == "after deletes" {
                assert!(searcher.segment_readers().iter().all(|r| r.has_deletes()));
            }
            for (q, services) in &cases {
                let req = SearchRequest {
                    q: q.to_string(),
                    services: services.iter().map(|s| s.to_string()).collect(),
                    ..SearchRequest::default()
                };
                let theirs = build_query(&timeline, &req).unwrap();
                let ours = once_per_segment(&*theirs);
                let want = searcher.search(&*theirs, &DocSetCollector).unwrap();
                assert!(!want.is_empty() || *q == "nothing", "{q:?} {pass}");
                let got = searcher.search(&*ours, &DocSetCollector).unwrap();
                assert_eq!(got, want, "{q:?} {services:?} {pass}");
                let count = ours.count(&searcher).unwrap();
                assert_eq!(count, want.len(), "{q:?} {services:?} {pass}");
            }

            // Scorers opened again and again look the word up once per segment: what
            // is kept is what they use (planted: "not in this segment").
            let word = Term::from_field_text(timeline.fields.message, "beta");
            let want = TermQuery::new(word.clone(), IndexRecordOption::Basic)
                .count(&searcher)
                .unwrap();
            let weight = OnceTermWeight::new(word);
            for _ in 0..3 {
                for reader in searcher.segment_readers() {
                    weight.scorer(reader, 1.0).unwrap();
                }
            }
            let counts: Vec<u32> = searcher
                .segment_readers()
                .iter()
                .map(|r| weight.count(r).unwrap())
                .collect();
            assert_eq!(counts.iter().sum::<u32>() as usize, want, "{pass}");
            assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
            let mut infos = weight.infos.lock().unwrap();
            assert_eq!(infos.len(), 3);
            infos.values_mut().for_each(|info| *info = None);
            drop(infos);
            for reader in searcher.segment_readers() {
                assert_eq!(weight.count(reader).unwrap(), 0, "{pass}");
                assert_eq!(
                    weight.scorer(reader, 1.0).unwrap().doc(),
                    tantivy::TERMINATED
                );
            }
        }
    }
}
