//! Which records a follow wants: the same filters as `/api/search` (services, stream,
//! level and up, kind, time range, query) plus a regular expression on the message,
//! checked on records in memory.

use chrono::{DateTime, Utc};
use regex::Regex;

use super::matcher::QueryMatcher;
use super::LiveRecord;
use crate::record::{Kind, Level, Stream};

#[derive(Default)]
pub struct TailFilter {
    pub services: Vec<String>,
    pub stream: Option<Stream>,
    pub level: Option<Level>,
    pub kind: Option<Kind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub query: Option<QueryMatcher>,
    pub grep: Option<Regex>,
}

impl TailFilter {
    pub fn matches(&self, rec: &LiveRecord) -> bool {
        let hit = &rec.hit;
        (self.services.is_empty() || self.services.contains(&hit.service))
            && self.stream.is_none_or(|s| s.as_str() == hit.stream)
            && self.kind.is_none_or(|k| k.as_str() == hit.kind)
            && self.level.is_none_or(|wanted| {
                hit.level
                    .as_deref()
                    .and_then(Level::parse)
                    .is_some_and(|l| l >= wanted)
            })
            && self
                .since
                .is_none_or(|t| rec.key.ts >= t.timestamp_micros())
            && self.until.is_none_or(|t| rec.key.ts < t.timestamp_micros())
            && self
                .grep
                .as_ref()
                .is_none_or(|re| re.is_match(&hit.message))
            && self.query.as_ref().is_none_or(|q| q.matches(hit))
    }

    /// Whether only the regular expression is beyond what the index can filter.
    pub fn has_grep(&self) -> bool {
        self.grep.is_some()
    }
}
