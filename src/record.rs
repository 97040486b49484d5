//! The one record type that flows from sources (file tailer, later the PM2 bus) to the
//! index and to live followers. Nothing downstream needs to know where a record came from
//! beyond what is in here.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Which output of a process a record came from. `Event` is for markers from PM2's bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Out,
    Err,
    Event,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Out, Stream::Err, Stream::Event];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
            Stream::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<Stream> {
        match s {
            "out" => Some(Stream::Out),
            "err" => Some(Stream::Err),
            "event" => Some(Stream::Event),
            _ => None,
        }
    }
}

/// A log line, or a marker (restart, crash, ...) placed in the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Line,
    Marker,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Line, Kind::Marker];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Line => "line",
            Kind::Marker => "marker",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "line" => Some(Kind::Line),
            "marker" => Some(Kind::Marker),
            _ => None,
        }
    }
}

/// Severity, when the line says so (a JSON `level` field or a leading token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "trace" => Some(Level::Trace),
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// Where a record's timestamp came from: the line itself, or the moment it was read
/// (a line without any timestamp), or a PM2 bus event's own time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TsSource {
    Line,
    Read,
    Event,
}

impl TsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TsSource::Line => "line",
            TsSource::Read => "read",
            TsSource::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<TsSource> {
        match s {
            "line" => Some(TsSource::Line),
            "read" => Some(TsSource::Read),
            "event" => Some(TsSource::Event),
            _ => None,
        }
    }
}

/// What a marker says beyond its message, as separate fields so they can be filtered
/// and shown without parsing the text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MarkerInfo {
    /// logagg's name for what happened: `crash`, `restart`, `stop`, `start`, `reload`,
    /// `online`, `overlimit`, `pm2-kill`, `pm2-lost`.
    pub event: String,
    pub exit_code: Option<i64>,
    /// PM2's `restart_time` for the process after the event.
    pub restart_count: Option<u64>,
    /// Someone asked for it (`pm2 restart`, `stop`, `reload`, `start`); a crash is not.
    pub manual: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub ts: DateTime<Utc>,
    pub ts_source: TsSource,
    pub service: String,
    pub stream: Stream,
    pub instance: Option<u32>,
    pub level: Option<Level>,
    pub kind: Kind,
    pub message: String,
    /// The path the line was read from (its path when read; files may be renamed later).
    pub file: String,
    /// Byte offset in `file` where the source line starts.
    pub offset: u64,
    /// Position among the records cut from one source line (a PM2 JSON chunk may carry
    /// several lines; an over-long line is cut into pieces). Orders ties after `offset`.
    pub sub: u32,
    /// This record is one piece of a line longer than `sources.max_line_bytes`.
    pub split: bool,
    /// The structured side of a [`Kind::Marker`]; `None` for lines.
    pub marker: Option<MarkerInfo>,
}

#[cfg(test)]
impl Record {
    /// For tests: a line of `service`'s out file (`/logs/<service>-out.log`), no level.
    pub fn test_line(service: &str, ts: DateTime<Utc>, message: &str, offset: u64) -> Record {
        Record {
            ts,
            ts_source: TsSource::Line,
            service: service.into(),
            stream: Stream::Out,
            instance: None,
            level: None,
            kind: Kind::Line,
            message: message.into(),
            file: format!("/logs/{service}-out.log"),
            offset,
            sub: 0,
            split: false,
            marker: None,
        }
    }
}
