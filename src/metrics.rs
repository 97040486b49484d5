//! The daemon's own counters for `GET /metrics`, in Prometheus' text format. Each number
//! is counted by the thread that owns the event (the indexer counts what it indexes and
//! how long commits take, the rotator its rotations, the bus task its reconnections,
//! the search handler its latency) through a cloned [`Metrics`] handle: atomics, plus
//! one small map of services that is locked once per batch, not once per line.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms: from a 1 ms search to a commit
/// that has to wait on a slow disk.
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What was indexed for one service since the daemon started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Records of kind `line` added to the index.
    pub lines: u64,
    /// The UTF-8 bytes of those lines' messages (timestamps and newlines stripped).
    pub bytes: u64,
}

#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    ingested: Mutex<BTreeMap<String, Ingested>>,
    rotations: AtomicU64,
    bus_reconnects: AtomicU64,
    early_lines: AtomicU64,
    early_reshown: AtomicU64,
    reload_put_back: AtomicU64,
    commit: Histogram,
    search: Histogram,
}

/// A latency histogram; buckets hold counts per bound (made cumulative when written).
struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Above the last bound only `+Inf` (the count) holds it.
        if let Some(i) = LATENCY_BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BOUNDS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

impl Metrics {
    /// Adds one batch's worth of indexed lines, per service.
    pub fn add_ingested<'a>(&self, batch: impl IntoIterator<Item = (&'a str, Ingested)>) {
        let Ok(mut map) = self.inner.ingested.lock() else {
            return;
        };
        for (service, add) in batch {
            let entry = match map.get_mut(service) {
                Some(e) => e,
                None => map.entry(service.to_string()).or_default(),
            };
            entry.lines += add.lines;
            entry.bytes += add.bytes;
        }
    }

    /// What was indexed for `service` since the daemon started.
    pub fn ingested(&self, service: &str) -> Ingested {
        self.inner
            .ingested
            .lock()
            .ok()
            .and_then(|m| m.get(service).copied())
            .unwrap_or_default()
    }

    pub fn rotated(&self) {
        self.inner.rotations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bus_reconnected(&self) {
        self.inner.bus_reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Lines shown to followers from PM2's bus before their file had them.
    pub fn early_shown(&self, lines: u64) {
        self.inner.early_lines.fetch_add(lines, Ordering::Relaxed);
    }

    /// A line shown early whose file copy came at another place (so shown twice).
    pub fn early_reshown(&self) {
        self.inner.early_reshown.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes PM2 dropped at `reloadLogs` and logagg wrote back from its bus.
    pub fn reload_put_back(&self, bytes: u64) {
        self.inner
            .reload_put_back
            .fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn observe_commit(&self, d: Duration) {
        self.inner.commit.observe(d);
    }

    pub fn observe_search(&self, d: Duration) {
        self.inner.search.observe(d);
    }

    /// The exposition text (format 0.0.4). `followers` is read by the caller at scrape
    /// time: it is a gauge of the live ring, not something counted here.
    pub fn render(&self, followers: usize) -> String {
        let mut out = String::new();
        let ingested = self
            .inner
            .ingested
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        for (name, help, pick) in [
            (
                "logagg_lines_ingested_total",
                "Lines added to the index since the daemon started.",
                (|i: &Ingested| i.lines) as fn(&Ingested) -> u64,
            ),
            (
                "logagg_bytes_ingested_total",
                "Message bytes of the lines added to the index since the daemon started.",
                |i: &Ingested| i.bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (service, i) in &ingested {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{}\"}} {}",
                    escape_label(service),
                    pick(i)
                );
            }
        }
        for (name, help, value) in [
            (
                "logagg_rotations_total",
                "Live files rotated since the daemon started.",
                &self.inner.rotations,
            ),
            (
                "logagg_bus_reconnects_total",
                "Connections to PM2's bus made again after the first one.",
                &self.inner.bus_reconnects,
            ),
            (
                "logagg_early_lines_total",
                "PM2 app lines shown to followers from PM2's bus before their log file had them.",
                &self.inner.early_lines,
            ),
            (
                "logagg_early_lines_reshown_total",
                "Lines shown early whose file copy came at another place, so followers saw them twice.",
                &self.inner.early_reshown,
            ),
            (
                "logagg_reload_put_back_bytes_total",
                "Bytes PM2 dropped at reloadLogs (writes it still queued for the renamed file) that logagg wrote back from PM2's bus.",
                &self.inner.reload_put_back,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        self.inner.commit.write(
            &mut out,
            "logagg_index_commit_seconds",
            "Time taken by index commits.",
        );
        self.inner.search.write(
            &mut out,
            "logagg_search_seconds",
            "Time taken by /api/search queries.",
        );
        let _ = writeln!(
            out,
            "# HELP logagg_followers Live tail followers connected now."
        );
        let _ = writeln!(out, "# TYPE logagg_followers gauge");
        let _ = writeln!(out, "logagg_followers {followers}");
        out
    }
}

/// A label value as the text format wants it: backslash, double quote and newline
/// escaped. Service names come from file names and PM2, so anything can be in them.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("duck"), "duck");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_exposition_text_of_a_small_state() {
        let m = Metrics::default();
        m.add_ingested([
            (
                "duck",
                Ingested {
                    lines: 2,
                    bytes: 10,
                },
            ),
            ("a\"pi", Ingested { lines: 1, bytes: 3 }),
        ]);
        m.add_ingested([("duck", Ingested { lines: 1, bytes: 5 })]);
        m.rotated();
        m.bus_reconnected();
        m.bus_reconnected();
        m.early_shown(2);
        m.early_shown(3);
        m.early_reshown();
        m.reload_put_back(31);
        m.observe_commit(Duration::from_millis(20));
        m.observe_commit(Duration::from_millis(300));
        m.observe_search(Duration::from_secs(11));
        assert_eq!(
            m.ingested("duck"),
            Ingested {
                lines: 3,
                bytes: 15
            }
        );
        let expected = r#"# HELP logagg_lines_ingested_total Lines added to the index since the daemon started.
# TYPE logagg_lines_ingested_total counter
logagg_lines_ingested_total{service="a\"pi"} 1
logagg_lines_ingested_total{service="duck"} 3
# HELP logagg_bytes_ingested_total Message bytes of the lines added to the index since the daemon started.
# TYPE logagg_bytes_ingested_total counter
logagg_bytes_ingested_total{service="a\"pi"} 3
logagg_bytes_ingested_total{service="duck"} 15
# HELP logagg_rotations_total Live files rotated since the daemon started.
# TYPE logagg_rotations_total counter
logagg_rotations_total 1
# HELP logagg_bus_reconnects_total Connections to PM2's bus made again after the first one.
# TYPE logagg_bus_reconnects_total counter
logagg_bus_reconnects_total 2
# HELP logagg_early_lines_total PM2 app lines shown to followers from PM2's bus before their log file had them.
# TYPE logagg_early_lines_total counter
logagg_early_lines_total 5
# HELP logagg_early_lines_reshown_total Lines shown early whose file copy came at another place, so followers saw them twice.
# TYPE logagg_early_lines_reshown_total counter
logagg_early_lines_reshown_total 1
# HELP logagg_reload_put_back_bytes_total Bytes PM2 dropped at reloadLogs (writes it still queued for the renamed file) that logagg wrote back from PM2's bus.
# TYPE logagg_reload_put_back_bytes_total counter
logagg_reload_put_back_bytes_total 31
# HELP logagg_index_commit_seconds Time taken by index commits.
# TYPE logagg_index_commit_seconds histogram
logagg_index_commit_seconds_bucket{le="0.001"} 0
logagg_index_commit_seconds_bucket{le="0.005"} 0
logagg_index_commit_seconds_bucket{le="0.01"} 0
logagg_index_commit_seconds_bucket{le="0.025"} 1
logagg_index_commit_seconds_bucket{le="0.05"} 1
logagg_index_commit_seconds_bucket{le="0.1"} 1
logagg_index_commit_seconds_bucket{le="0.25"} 1
logagg_index_commit_seconds_bucket{le="0.5"} 2
logagg_index_commit_seconds_bucket{le="1"} 2
logagg_index_commit_seconds_bucket{le="2.5"} 2
logagg_index_commit_seconds_bucket{le="5"} 2
logagg_index_commit_seconds_bucket{le="10"} 2
logagg_index_commit_seconds_bucket{le="+Inf"} 2
logagg_index_commit_seconds_sum 0.32
logagg_index_commit_seconds_count 2
# HELP logagg_search_seconds Time taken by /api/search queries.
# TYPE logagg_search_seconds histogram
logagg_search_seconds_bucket{le="0.001"} 0
logagg_search_seconds_bucket{le="0.005"} 0
logagg_search_seconds_bucket{le="0.01"} 0
logagg_search_seconds_bucket{le="0.025"} 0
logagg_search_seconds_bucket{le="0.05"} 0
logagg_search_seconds_bucket{le="0.1"} 0
logagg_search_seconds_bucket{le="0.25"} 0
logagg_search_seconds_bucket{le="0.5"} 0
logagg_search_seconds_bucket{le="1"} 0
logagg_search_seconds_bucket{le="2.5"} 0
logagg_search_seconds_bucket{le="5"} 0
logagg_search_seconds_bucket{le="10"} 0
logagg_search_seconds_bucket{le="+Inf"} 1
logagg_search_seconds_sum 11
logagg_search_seconds_count 1
# HELP logagg_followers Live tail followers connected now.
# TYPE logagg_followers gauge
logagg_followers 4
"#;
        assert_eq!(m.render(4), expected);
    }
}
