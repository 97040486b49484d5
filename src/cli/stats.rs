//! `logagg stats`: lines per time bucket and service from `/api/histogram`, drawn as one
//! sparkline row per service (one column per bucket), then the markers of the range.

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Local};

use super::format::{self, write_out};
use crate::api::histogram::Histogram;
use crate::client::{Client, Endpoint};
use crate::units::format_duration;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// From this time on (default: an hour before --until): RFC 3339, a duration back
    /// from now (1h, 30m) or "10 min ago".
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (default: now); same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this service; repeat for several.
    #[arg(long = "service", short = 's', value_name = "NAME")]
    pub services: Vec<String>,
    /// Width of a column (10s, 1m, 5m ...); default: a round one giving at most 120.
    #[arg(long)]
    pub interval: Option<String>,
    /// Count only the lines matching this query (as `logagg search`).
    #[arg(long, short = 'q')]
    pub q: Option<String>,
    /// The API's JSON instead of a chart.
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 when the range holds lines or markers, 1 when it holds nothing.
pub fn run(args: &StatsArgs, endpoint: &Endpoint) -> Result<u8> {
    let client = Client::new(endpoint);
    let mut query: Vec<(&str, String)> = args
        .services
        .iter()
        .map(|s| ("service", s.clone()))
        .collect();
    for (k, v) in [
        ("since", &args.since),
        ("until", &args.until),
        ("interval", &args.interval),
        ("q", &args.q),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let h: Histogram = client.get_json("/api/histogram", &query)?;
    if args.json {
        write_out(&format!("{:#}\n", serde_json::to_value(&h)?))?;
    } else {
        write_out(&chart(&h))?;
    }
    Ok(if h.total == 0 && h.markers.is_empty() {
        1
    } else {
        0
    })
}

/// Eighths of a block: the taller, the more lines, relative to the busiest bucket of
/// the chart (so rows of different services compare).
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// An empty bucket: a dot, so a quiet stretch is visible and lines never end in blanks.
const EMPTY: char = '·';

/// The chart as text: a header, one row per service, a total, and the markers.
pub fn chart(h: &Histogram) -> String {
    let max = h
        .buckets
        .iter()
        .flat_map(|b| b.counts.values())
        .copied()
        .max()
        .unwrap_or(0);
    let name_width = h
        .services
        .iter()
        .map(|s| s.chars().count())
        .chain(["total".len()])
        .max()
        .unwrap_or(0);
    let totals: Vec<u64> = h
        .services
        .iter()
        .map(|s| h.buckets.iter().filter_map(|b| b.counts.get(s)).sum())
        .collect();
    let count_width = totals
        .iter()
        .chain([&h.total])
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(1);
    let mut out = format!(
        "lines per {} from {} to {}\n",
        format_duration(Duration::from_secs(h.interval_s)),
        local(&h.since),
        local(&h.until)
    );
    for (service, total) in h.services.iter().zip(&totals) {
        let bars: String = h
            .buckets
            .iter()
            .map(|b| bar(b.counts.get(service).copied().unwrap_or(0), max))
            .collect();
        out.push_str(&format!(
            "{service:<name_width$}  {total:>count_width$}  {bars}\n"
        ));
    }
    out.push_str(&format!(
        "{:<name_width$}  {:>count_width$}\n",
        "total", h.total
    ));
    if !h.markers.is_empty() {
        let n = h.markers.len();
        out.push_str(&format!("{n} marker{}:\n", if n == 1 { "" } else { "s" }));
        for m in &h.markers {
            out.push_str(&format::line(m));
            out.push('\n');
        }
    }
    out
}

fn bar(count: u64, max: u64) -> char {
    if count == 0 || max == 0 {
        return EMPTY;
    }
    // Rounded up, so one line in a busy chart still shows.
    let eighths = (count * 8).div_ceil(max).clamp(1, 8);
    BARS[eighths as usize - 1]
}

fn local(ts: &str) -> String {
    DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_bucket() {
        assert_eq!(bar(0, 10), '·');
        assert_eq!(bar(1, 100), '▁');
        assert_eq!(bar(50, 100), '▄');
        assert_eq!(bar(51, 100), '▅');
        assert_eq!(bar(100, 100), '█');
    }
}
