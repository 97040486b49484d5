//! `logagg tail`: the merged timeline of every service, its last records then new ones,
//! from the daemon's `/api/tail`. When the daemon restarts under a follow, it reconnects
//! and goes on from the last record it printed, without repeating or skipping any.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::time::Duration;

use anyhow::{bail, Result};

use super::format::Painter;
use crate::client::sse::SseReader;
use crate::client::{Client, ClientError, Endpoint};
use crate::index::search::SortKey;
use crate::index::Hit;

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// Only this service; repeat for several.
    #[arg(long = "service", short = 's', value_name = "NAME")]
    pub services: Vec<String>,
    /// Records shown before following (the daemon caps it at 10000).
    #[arg(short = 'n', long = "lines", default_value_t = 20, value_name = "N")]
    pub n: usize,
    /// Print the last records and exit instead of following.
    #[arg(long)]
    pub no_follow: bool,
    /// From this time on: RFC 3339, a duration back from now (1h, 30m) or "10 min ago".
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (exclusive); same forms as --since. Implies --no-follow.
    #[arg(long)]
    pub until: Option<String>,
    /// Only messages matching this regular expression; case-insensitive unless it has a
    /// capital letter.
    #[arg(long, short = 'g', value_name = "REGEX")]
    pub grep: Option<String>,
    /// Only records matching this search query (the syntax of `logagg search`).
    #[arg(long, short = 'q', value_name = "QUERY")]
    pub query: Option<String>,
    /// Only this stream: out (stdout) or err (stderr).
    #[arg(long, value_parser = ["out", "err"])]
    pub stream: Option<String>,
    /// This level or more severe.
    #[arg(long, value_parser = ["trace", "debug", "info", "warn", "error"])]
    pub level: Option<String>,
    /// One JSON object per record, the shape of a search hit.
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// The message only.
    #[arg(long)]
    pub raw: bool,
    /// No colours, even on a terminal (as does NO_COLOR).
    #[arg(long)]
    pub no_color: bool,
}

/// How far back a reconnection asks again, to catch records that reached the daemon
/// after newer ones (files are read one after another); repeats are filtered out.
const RESUME_WINDOW_MICROS: i64 = 10_000_000;
/// Keys remembered for filtering repeats, before the ones outside the window are shed.
const SEEN_MAX: usize = 100_000;
const RETRY_EVERY: Duration = Duration::from_millis(200);

pub fn run(args: &TailArgs, endpoint: &Endpoint) -> Result<u8> {
    let follow = !args.no_follow && args.until.is_none();
    exit_quietly_on_interrupt();
    let client = Client::streaming(endpoint);
    let mut out = Output {
        painter: Painter::for_stdout(args.no_color),
        json: args.json,
        raw: args.raw,
        w: BufWriter::new(std::io::stdout().lock()),
    };
    let mut resume = Resume::new();
    let mut body = client.get_stream("/api/tail", &params(args, follow, None))?;
    if follow {
        exit_when_stdout_closes();
    }
    loop {
        match print_events(body, &mut out, &mut resume)? {
            Ended::End => return Ok(0),
            Ended::Lost if !follow => {
                bail!(
                    "the daemon at {} went away before sending every record",
                    endpoint.addr
                )
            }
            Ended::Lost => {
                eprintln!(
                    "logagg: the daemon at {} went away; reconnecting",
                    endpoint.addr
                );
                body = reconnect(&client, args, resume.cursor())?;
                eprintln!("logagg: reconnected to {}", endpoint.addr);
            }
        }
    }
}

/// Waits for the daemon to come back, then resumes after `cursor`.
fn reconnect(
    client: &Client,
    args: &TailArgs,
    cursor: SortKey,
) -> Result<ureq::BodyReader<'static>> {
    loop {
        match client.get_stream("/api/tail", &params(args, true, Some(cursor))) {
            Ok(body) => return Ok(body),
            Err(ClientError::Unreachable { .. }) => std::thread::sleep(RETRY_EVERY),
            // Starting up (the index not open yet) answers 503.
            Err(ClientError::Api(_)) => std::thread::sleep(RETRY_EVERY),
            Err(e) => return Err(e.into()),
        }
    }
}

fn params(args: &TailArgs, follow: bool, after: Option<SortKey>) -> Vec<(&'static str, String)> {
    let mut q: Vec<(&str, String)> = vec![("follow", follow.to_string())];
    match after {
        Some(after) => q.push(("after", after.encode())),
        None => q.push(("n", args.n.to_string())),
    }
    for s in &args.services {
        q.push(("service", s.clone()));
    }
    for (k, v) in [
        ("stream", &args.stream),
        ("level", &args.level),
        ("since", &args.since),
        ("until", &args.until),
        ("q", &args.query),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    if let Some(re) = &args.grep {
        q.push(("grep", smart_case(re)));
    }
    q
}

/// ripgrep's and less's rule: a pattern in lower case matches either case.
fn smart_case(re: &str) -> String {
    if re.chars().any(char::is_uppercase) {
        re.to_string()
    } else {
        format!("(?i){re}")
    }
}

enum Ended {
    /// The daemon said the follow is over (`--no-follow`, `--until`).
    End,
    /// The connection ended without that: the daemon stopped or died.
    Lost,
}

struct Output<W: Write> {
    painter: Painter,
    json: bool,
    raw: bool,
    w: W,
}

impl<W: Write> Output<W> {
    fn record(&mut self, hit: &Hit, data: &str) -> std::io::Result<()> {
        if self.json {
            writeln!(self.w, "{data}")
        } else if self.raw {
            writeln!(self.w, "{}", hit.message)
        } else {
            writeln!(self.w, "{}", self.painter.record(hit))
        }
    }
}

fn print_events<W: Write>(
    body: impl std::io::Read,
    out: &mut Output<W>,
    resume: &mut Resume,
) -> Result<Ended> {
    let mut events = SseReader::new(body);
    loop {
        let ev = match events.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) | Err(_) => {
                out.w.flush()?;
                return Ok(Ended::Lost);
            }
        };
        match ev.event.as_str() {
            "record" => {
                let key = ev.id.as_deref().and_then(SortKey::decode);
                let hit: Hit = serde_json::from_str(&ev.data)
                    .map_err(|e| anyhow::anyhow!("the daemon sent a record I cannot read: {e}"))?;
                if key.is_none_or(|k| resume.is_new(k)) {
                    out.record(&hit, &ev.data)?;
                }
            }
            "dropped" => {
                out.w.flush()?;
                let n = serde_json::from_str::<serde_json::Value>(&ev.data)
                    .ok()
                    .and_then(|v| v["dropped"].as_u64())
                    .unwrap_or(0);
                eprintln!(
                    "logagg: {n} records skipped: this output was read too slowly to keep up"
                );
            }
            "end" => {
                out.w.flush()?;
                return Ok(Ended::End);
            }
            "error" => {
                out.w.flush()?;
                let text = serde_json::from_str::<serde_json::Value>(&ev.data)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(ev.data);
                bail!("the daemon failed: {text}");
            }
            _ => {}
        }
        // Flushing when nothing more has arrived keeps a backlog fast and live lines
        // immediate.
        if !events.has_buffered() {
            out.w.flush()?;
        }
    }
}

/// What was printed lately, so a reconnection neither repeats nor skips.
struct Resume {
    seen: HashSet<SortKey>,
    newest: i64,
}

impl Resume {
    fn new() -> Resume {
        Resume {
            seen: HashSet::new(),
            newest: chrono::Utc::now().timestamp_micros(),
        }
    }

    fn is_new(&mut self, key: SortKey) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.newest = self.newest.max(key.ts);
        if self.seen.len() > SEEN_MAX {
            let horizon = self.newest - RESUME_WINDOW_MICROS;
            self.seen.retain(|k| k.ts >= horizon);
        }
        true
    }

    /// Where to ask again from: a window before the newest record printed (or before
    /// the follow started, when nothing was printed).
    fn cursor(&self) -> SortKey {
        SortKey {
            ts: self.newest - RESUME_WINDOW_MICROS,
            file_ord: 0,
            offset: 0,
            sub: 0,
        }
    }
}

/// Ctrl-C ends a follow the way `tail -f` users expect from a pager-like tool: exit 0.
/// Output is flushed as it is written, so nothing is lost by not unwinding.
fn exit_quietly_on_interrupt() {
    extern "C" fn on_interrupt(_: libc::c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// `logagg tail | head -3`: once the reader is gone, a follow waiting for new records
/// would only notice at its next write, which may never come. A pipe whose reader
/// closed reports an error on poll, so exit then (0: a closed pipe is not an error).
fn exit_when_stdout_closes() {
    std::thread::spawn(|| loop {
        let mut fd = libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut fd, 1, -1) };
        if rc > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            // SAFETY: _exit ends the process without running anything else.
            unsafe { libc::_exit(0) }
        }
        if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
        if rc > 0 && fd.revents & libc::POLLNVAL != 0 {
            return;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_case_follows_capitals() {
        assert_eq!(smart_case("timeout"), "(?i)timeout");
        assert_eq!(smart_case("Timeout"), "Timeout");
    }

    #[test]
    fn a_record_seen_before_a_reconnection_is_not_printed_twice() {
        let mut r = Resume::new();
        let k = |ts| SortKey {
            ts,
            file_ord: 1,
            offset: 2,
            sub: 0,
        };
        let now = r.newest;
        assert!(r.is_new(k(now + 5)));
        assert!(!r.is_new(k(now + 5)));
        assert!(r.is_new(k(now + 1)));
        assert_eq!(r.cursor().ts, now + 5 - RESUME_WINDOW_MICROS);
    }
}
