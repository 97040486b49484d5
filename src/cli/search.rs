//! `logagg search`: one query against the daemon, printed as lines or JSON.

use std::io::Write;

use anyhow::Result;
use serde::Deserialize;

use super::format;
use crate::client::{Client, Endpoint};
use crate::index::Hit;

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// Query over the message: words (ANDed), "a phrase", OR, NOT, -word, prefix*.
    pub query: String,
    /// Only this service; repeat for several.
    #[arg(long = "service", short = 's', value_name = "NAME")]
    pub services: Vec<String>,
    /// Only this stream: out (stdout) or err (stderr).
    #[arg(long, value_parser = ["out", "err"])]
    pub stream: Option<String>,
    /// This level or more severe.
    #[arg(long, value_parser = ["trace", "debug", "info", "warn", "error"])]
    pub level: Option<String>,
    /// From this time on: RFC 3339, a duration back from now (1h, 30m) or "10 min ago".
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (exclusive); same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many hits (the daemon caps it at 10000).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub limit: usize,
    /// Oldest first (default: newest first).
    #[arg(long)]
    pub asc: bool,
    /// One JSON object per hit.
    #[arg(long)]
    pub json: bool,
}

#[derive(Deserialize)]
struct Answer {
    hits: Vec<Hit>,
}

pub fn run(args: &SearchArgs, endpoint: &Endpoint) -> Result<u8> {
    let client = Client::new(endpoint);
    let mut query: Vec<(&str, String)> = vec![
        ("q", args.query.clone()),
        ("limit", args.limit.to_string()),
        ("order", if args.asc { "asc" } else { "desc" }.to_string()),
    ];
    for s in &args.services {
        query.push(("service", s.clone()));
    }
    for (k, v) in [
        ("stream", &args.stream),
        ("level", &args.level),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let answer: Answer = client.get_json("/api/search", &query)?;
    let mut out = std::io::stdout().lock();
    for hit in &answer.hits {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(hit)?)?;
        } else {
            writeln!(out, "{}", format::line(hit))?;
        }
    }
    out.flush()?;
    Ok(if answer.hits.is_empty() { 1 } else { 0 })
}
