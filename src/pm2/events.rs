//! PM2's bus events turned into timeline records: a marker a person can read at every
//! crash, restart, stop, start and reload, and the stack trace of an uncaught exception
//! in the service's `err` stream.
//!
//! PM2 does not say "crashed": it sends `exit` and then, if it restarts the app,
//! `online`; a `pm2 restart` sends `exit`, `exit`, `online`, `restart`; a `pm2 stop`
//! `exit`, `exit`, `stop` (see `../shared/PM2_NOTES.md`). So a [`Translator`] keeps a
//! little state per process: an `exit` waits until what follows says what it was. The
//! first `exit` of a stop or restart carries the status `stopping`; an `exit` without it,
//! followed by `online`, is a crash and its restart, told as one marker
//! (`duck crashed (exit code 3); restarted, restart #4`). A crash not followed by
//! `online` within [`CRASH_WINDOW`] is told alone.
//!
//! Every event's `process` object is the app's `pm2_env`, which holds the app's whole
//! environment, secrets included. Only the fields of [`Proc`] are read from it; nothing
//! else is kept, returned, or put in an error.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::naming::sanitize_name;
use crate::record::{Kind, Level, MarkerInfo, Record, Stream, TsSource};

/// How long an unexplained `exit` waits for the `online` of its restart before it is
/// told as a crash on its own.
pub const CRASH_WINDOW: Duration = Duration::from_secs(2);

/// The service name of markers about PM2 itself.
pub const PM2_SERVICE: &str = "pm2";

/// Processes remembered as crashed without a restart; far above any real PM2's count.
const MAX_TRACKED: usize = 10_000;

/// An exception's stack is cut here, so one event cannot make a huge record.
const MAX_STACK_BYTES: usize = 64 * 1024;

/// Why an event gave no records; says nothing about the event's contents beyond the
/// topic, which is PM2's own vocabulary.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unknown bus topic")]
    UnknownTopic,
    #[error("malformed `{topic}` event: {what}")]
    Malformed {
        topic: &'static str,
        what: &'static str,
    },
}

/// The allow-list: everything logagg reads from an event's `process` object.
#[derive(Clone, Debug, PartialEq)]
pub struct Proc {
    /// The service name as logagg's file names give it (PM2's sanitising applied).
    pub service: String,
    pub pm_id: u32,
    /// A cluster worker being replaced by a reload (`pm_id` `"_old_6"`).
    pub old: bool,
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_time: Option<u64>,
    pub unstable_restarts: Option<u64>,
}

impl Proc {
    /// Picks the allowed fields out of `process`; `None` without a name or an id.
    pub fn from_value(process: &Value) -> Option<Proc> {
        let name = process.get("name")?.as_str()?;
        let (pm_id, old) = match process.get("pm_id")? {
            Value::Number(n) => (u32::try_from(n.as_u64()?).ok()?, false),
            Value::String(s) => (s.strip_prefix("_old_")?.parse().ok()?, true),
            _ => return None,
        };
        Some(Proc {
            service: sanitize_name(name),
            pm_id,
            old,
            status: process
                .get("status")
                .and_then(Value::as_str)
                .map(|s| s.chars().take(32).collect()),
            exit_code: process.get("exit_code").and_then(Value::as_i64),
            restart_time: process.get("restart_time").and_then(Value::as_u64),
            unstable_restarts: process.get("unstable_restarts").and_then(Value::as_u64),
        })
    }

    fn key(&self) -> (String, u32) {
        (self.service.clone(), self.pm_id)
    }
}

/// An `exit` (or `restart overlimit`) waiting for what follows it.
#[derive(Debug)]
struct Pending {
    at: DateTime<Utc>,
    arrived: DateTime<Utc>,
    exit_code: Option<i64>,
    /// Part of a stop, restart or reload someone asked for.
    stopping: bool,
    /// PM2 gave up restarting (`restart overlimit`); `unstable_restarts` then.
    overlimit: Option<u64>,
    restart_count: Option<u64>,
}

/// Turns bus messages into records. One lives as long as the subscriber: exits waiting
/// for what follows are settled when a connection ends ([`Translator::disconnected`]),
/// while the processes that crashed without a restart are remembered across reconnects.
/// Records are numbered (`offset`) in the order they are made, which orders markers that
/// share a timestamp.
#[derive(Debug)]
pub struct Translator {
    /// What goes in the records' `file`: where they came from.
    source: String,
    pending: HashMap<(String, u32), Pending>,
    /// Processes whose crash was told without a restart: their next `online` is told.
    crashed: HashSet<(String, u32)>,
    /// `pm2:kill` already told on this connection (PM2 sends it twice).
    killed: bool,
    seq: u64,
}

impl Translator {
    /// `source` is what the records' `file` field says, such as the socket's path.
    pub fn new(source: String) -> Translator {
        Translator {
            source,
            pending: HashMap::new(),
            crashed: HashSet::new(),
            killed: false,
            seq: 0,
        }
    }

    /// A new connection to the bus.
    pub fn connected(&mut self) {
        self.killed = false;
    }

    /// One message `[topic, payload]`, received at `arrived`.
    pub fn handle(
        &mut self,
        topic: &str,
        payload: &Value,
        arrived: DateTime<Utc>,
    ) -> Result<Vec<Record>, EventError> {
        let at = payload
            .get("at")
            .and_then(Value::as_i64)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or(arrived);
        match topic {
            "process:event" => self.process_event(payload, at, arrived),
            "process:exception" => self.exception(payload, at).map(|r| vec![r]),
            "pm2:kill" => Ok(self.pm2_killed(payload, at)),
            // Lines come from the files; the rest is PM2's monitoring chatter.
            t if t.starts_with("log:")
                || t.starts_with("axm:")
                || t.starts_with("human:")
                || t.starts_with("application:")
                || t == "process:msg" =>
            {
                Ok(Vec::new())
            }
            _ => Err(EventError::UnknownTopic),
        }
    }

    /// Whether an exit waits for its restart: [`Translator::tick`] has work to do.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Tells the crashes whose restart did not come within [`CRASH_WINDOW`]; call it
    /// now and then (while [`Translator::waiting`]).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Record> {
        let window = chrono::Duration::from_std(CRASH_WINDOW).unwrap_or_default();
        let due: Vec<(String, u32)> = self
            .pending
            .iter()
            .filter(|(_, p)| now - p.arrived >= window)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in due {
            if let Some(p) = self.pending.remove(&key) {
                out.extend(self.settle(key, p));
            }
        }
        out
    }

    /// The connection to PM2 ended (`now`): what waited is told, and when PM2 went
    /// away (`peer_gone`, rather than logagg hanging up on bytes it could not read)
    /// without saying it was being killed, a marker says so.
    pub fn disconnected(&mut self, now: DateTime<Utc>, peer_gone: bool) -> Vec<Record> {
        let keys: Vec<(String, u32)> = self.pending.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            if let Some(p) = self.pending.remove(&key) {
                out.extend(self.settle(key, p));
            }
        }
        if peer_gone && !self.killed {
            out.push(self.marker(
                now,
                PM2_SERVICE,
                None,
                Some(Level::Warn),
                "lost the connection to PM2's bus: PM2 stopped or was killed".into(),
                MarkerInfo {
                    event: "pm2-lost".into(),
                    ..MarkerInfo::default()
                },
            ));
        }
        self.killed = false;
        out
    }

    /// A pending exit that nothing explained: a crash, unless it was part of a stop.
    fn settle(&mut self, key: (String, u32), p: Pending) -> Option<Record> {
        if let Some(unstable) = p.overlimit {
            return Some(self.overlimit(&key, &p, unstable));
        }
        if p.stopping {
            return None;
        }
        let message = format!("{} crashed ({})", key.0, exit_text(p.exit_code));
        // Bounded whatever the peer sends: forgetting costs at most one "back online".
        if self.crashed.len() >= MAX_TRACKED {
            self.crashed.clear();
        }
        self.crashed.insert(key.clone());
        Some(self.marker(
            p.at,
            &key.0,
            Some(key.1),
            Some(Level::Error),
            message,
            MarkerInfo {
                event: "crash".into(),
                exit_code: p.exit_code,
                restart_count: p.restart_count,
                manual: Some(false),
            },
        ))
    }

    fn overlimit(&mut self, key: &(String, u32), p: &Pending, unstable: u64) -> Record {
        let message = format!(
            "{} crashed ({}); {unstable} unstable restarts, PM2 gave up restarting it",
            key.0,
            exit_text(p.exit_code)
        );
        self.marker(
            p.at,
            &key.0,
            Some(key.1),
            Some(Level::Error),
            message,
            MarkerInfo {
                event: "overlimit".into(),
                exit_code: p.exit_code,
                restart_count: p.restart_count,
                manual: Some(false),
            },
        )
    }

    fn process_event(
        &mut self,
        payload: &Value,
        at: DateTime<Utc>,
        arrived: DateTime<Utc>,
    ) -> Result<Vec<Record>, EventError> {
        let malformed = |what| EventError::Malformed {
            topic: "process:event",
            what,
        };
        let event = payload
            .get("event")
            .and_then(Value::as_str)
            .ok_or(malformed("no `event`"))?;
        let proc = payload
            .get("process")
            .and_then(Proc::from_value)
            .ok_or(malformed("no `process` with a name and an id"))?;
        let manually = payload.get("manually").and_then(Value::as_bool);
        if proc.old {
            // The worker a reload replaces; the `reload` event tells it.
            return Ok(Vec::new());
        }
        let key = proc.key();
        let svc = proc.service.clone();
        let restarts = proc.restart_time;
        let info = |event: &str, exit_code, manual| MarkerInfo {
            event: event.into(),
            exit_code,
            restart_count: restarts,
            manual,
        };
        let mut out = Vec::new();
        match event {
            "exit" => {
                let p = self.pending.entry(key.clone()).or_insert(Pending {
                    at,
                    arrived,
                    exit_code: None,
                    stopping: false,
                    overlimit: None,
                    restart_count: None,
                });
                p.arrived = arrived;
                p.exit_code = proc.exit_code.or(p.exit_code);
                p.restart_count = restarts.or(p.restart_count);
                p.stopping |= proc.status.as_deref() == Some("stopping");
                if let Some(unstable) = p.overlimit {
                    if let Some(p) = self.pending.remove(&key) {
                        out.push(self.overlimit(&key, &p, unstable));
                    }
                }
            }
            "restart overlimit" => {
                let p = self.pending.entry(key).or_insert(Pending {
                    at,
                    arrived,
                    exit_code: None,
                    stopping: false,
                    overlimit: None,
                    restart_count: None,
                });
                p.arrived = arrived;
                p.overlimit = Some(proc.unstable_restarts.unwrap_or(0));
                p.restart_count = restarts;
            }
            "online" => match self.pending.remove(&key) {
                Some(p) if !p.stopping && p.overlimit.is_none() => {
                    let message = format!(
                        "{svc} crashed ({}); restarted, restart #{}",
                        exit_text(p.exit_code),
                        count_text(restarts)
                    );
                    out.push(self.marker(
                        p.at,
                        &svc,
                        Some(proc.pm_id),
                        Some(Level::Error),
                        message,
                        info("crash", p.exit_code, Some(false)),
                    ));
                }
                Some(p) => {
                    // A stop or restart in progress: its own event follows.
                    self.pending.insert(key, p);
                }
                None if self.crashed.remove(&key) => {
                    let message = format!(
                        "{svc} back online after a crash, restart #{}",
                        count_text(restarts)
                    );
                    out.push(self.marker(
                        at,
                        &svc,
                        Some(proc.pm_id),
                        None,
                        message,
                        info("online", None, Some(false)),
                    ));
                }
                None => {}
            },
            "restart" | "reload" | "stop" | "start" => {
                let exit_code = self.pending.remove(&key).and_then(|p| p.exit_code);
                self.crashed.remove(&key);
                let message = match event {
                    "restart" => format!("{svc} restarted, restart #{}", count_text(restarts)),
                    "reload" => format!("{svc} reloaded, restart #{}", count_text(restarts)),
                    "stop" => format!("{svc} stopped"),
                    _ => format!("{svc} started"),
                };
                let exit_code = if event == "start" { None } else { exit_code };
                out.push(self.marker(
                    at,
                    &svc,
                    Some(proc.pm_id),
                    None,
                    message,
                    info(event, exit_code, manually),
                ));
            }
            // `delete`, `exception` and others add nothing the timeline needs.
            _ => {}
        }
        Ok(out)
    }

    fn exception(&mut self, payload: &Value, at: DateTime<Utc>) -> Result<Record, EventError> {
        let malformed = |what| EventError::Malformed {
            topic: "process:exception",
            what,
        };
        let proc = payload
            .get("process")
            .and_then(Proc::from_value)
            .ok_or(malformed("no `process` with a name and an id"))?;
        let data = payload.get("data").ok_or(malformed("no `data`"))?;
        let text = ["stack", "message"]
            .iter()
            .find_map(|k| data.get(*k).and_then(Value::as_str))
            .or_else(|| data.as_str())
            .ok_or(malformed("no `stack` or `message`"))?;
        let mut message = text.trim_end().to_string();
        if message.len() > MAX_STACK_BYTES {
            let mut cut = MAX_STACK_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        self.seq += 1;
        Ok(Record {
            ts: at,
            ts_source: TsSource::Event,
            service: proc.service,
            stream: Stream::Err,
            instance: Some(proc.pm_id),
            level: Some(Level::Error),
            kind: Kind::Line,
            message,
            file: self.source.clone(),
            offset: self.seq,
            sub: 0,
            split: false,
            marker: None,
        })
    }

    fn pm2_killed(&mut self, payload: &Value, at: DateTime<Utc>) -> Vec<Record> {
        if self.killed {
            return Vec::new();
        }
        self.killed = true;
        // PM2's own two sentences, recognised rather than copied.
        let how = match payload.get("msg").and_then(Value::as_str) {
            Some(m) if m.contains("via CLI") => " (pm2 kill)",
            Some(m) if m.contains("SIGNAL") => " (by a signal)",
            _ => "",
        };
        vec![self.marker(
            at,
            PM2_SERVICE,
            None,
            Some(Level::Warn),
            format!("PM2 was killed{how}"),
            MarkerInfo {
                event: "pm2-kill".into(),
                manual: match how {
                    "" => None,
                    h => Some(h == " (pm2 kill)"),
                },
                ..MarkerInfo::default()
            },
        )]
    }

    fn marker(
        &mut self,
        ts: DateTime<Utc>,
        service: &str,
        instance: Option<u32>,
        level: Option<Level>,
        message: String,
        info: MarkerInfo,
    ) -> Record {
        self.seq += 1;
        Record {
            ts,
            ts_source: TsSource::Event,
            service: service.to_string(),
            stream: Stream::Event,
            instance,
            level,
            kind: Kind::Marker,
            message,
            file: self.source.clone(),
            offset: self.seq,
            sub: 0,
            split: false,
            marker: Some(info),
        }
    }
}

fn exit_text(code: Option<i64>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "no exit code".to_string(),
    }
}

fn count_text(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_string(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pm2::amp::{Arg, Decoder};
    use serde_json::json;

    const T0: i64 = 1_795_314_995_000;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(T0 + ms).unwrap()
    }

    /// A `process:event` as PM2 sends it, the app's environment (a secret) included.
    fn event(event: &str, pm_id: Value, status: &str, exit: Value, restarts: u64) -> Value {
        json!({
            "event": event,
            "manually": matches!(event, "restart" | "stop" | "reload" | "start"),
            "at": T0,
            "process": {
                "name": "duck", "pm_id": pm_id, "status": status, "exit_code": exit,
                "restart_time": restarts, "unstable_restarts": 0,
                "SECRET_TOKEN": "hunter2-xyz", "env": {"SECRET_TOKEN": "hunter2-xyz"},
                "pm_exec_path": "/srv/hunter2-xyz/duck.js",
            },
        })
    }

    /// Feeds `(topic, payload, ms after T0)` and ticks at the end, far enough that every
    /// pending exit is settled.
    fn run(tr: &mut Translator, msgs: &[(&str, Value, i64)]) -> Vec<Record> {
        let mut out = Vec::new();
        for (topic, payload, ms) in msgs {
            out.extend(tr.handle(topic, payload, t(*ms)).unwrap());
            out.extend(tr.tick(t(*ms)));
        }
        out.extend(tr.tick(t(60_000)));
        let shown = format!("{out:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        out
    }

    /// (event, message, exit code, restart count, manual) of each record.
    type Summary = (String, String, Option<i64>, Option<u64>, Option<bool>);

    fn summary(out: &[Record]) -> Vec<Summary> {
        out.iter()
            .map(|r| {
                let m = r.marker.clone().unwrap_or_default();
                (
                    m.event,
                    r.message.clone(),
                    m.exit_code,
                    m.restart_count,
                    m.manual,
                )
            })
            .collect()
    }

    fn tr() -> Translator {
        Translator::new("/pm2/pub.sock".into())
    }

    #[test]
    fn a_crash_and_its_restart_are_one_marker() {
        let mut tr = tr();
        let out = run(
            &mut tr,
            &[
                (
                    "process:event",
                    event("exit", json!(0), "stopped", json!(3), 3),
                    0,
                ),
                (
                    "process:event",
                    event("online", json!(0), "online", json!(3), 4),
                    5,
                ),
            ],
        );
        assert_eq!(
            summary(&out),
            vec![(
                "crash".into(),
                "duck crashed (exit code 3); restarted, restart #4".into(),
                Some(3),
                Some(4),
                Some(false)
            )]
        );
        let r = &out[0];
        assert_eq!(r.ts, t(0));
        assert_eq!(
            (r.kind, r.stream, r.ts_source),
            (Kind::Marker, Stream::Event, TsSource::Event)
        );
        assert_eq!(
            (r.service.as_str(), r.instance, r.level),
            ("duck", Some(0), Some(Level::Error))
        );
        assert_eq!(r.file, "/pm2/pub.sock");
    }

    #[test]
    fn a_crash_without_restart_is_told_after_the_window_and_its_late_restart_too() {
        let mut tr = tr();
        let exit = event("exit", json!(0), "stopped", json!(3), 1);
        assert_eq!(tr.handle("process:event", &exit, t(0)).unwrap(), vec![]);
        assert_eq!(tr.tick(t(1_000)), vec![]);
        let out = tr.tick(t(2_100));
        assert_eq!(
            summary(&out),
            vec![(
                "crash".into(),
                "duck crashed (exit code 3)".into(),
                Some(3),
                Some(1),
                Some(false)
            )]
        );
        let out = run(
            &mut tr,
            &[(
                "process:event",
                event("online", json!(0), "online", json!(3), 2),
                9_000,
            )],
        );
        assert_eq!(
            summary(&out),
            vec![(
                "online".into(),
                "duck back online after a crash, restart #2".into(),
                None,
                Some(2),
                Some(false)
            )]
        );
    }

    #[test]
    fn manual_restart_stop_start_and_reload() {
        let mut tr = tr();
        let ev = |e, id: Value, status, restarts| {
            (
                "process:event",
                event(e, id, status, json!(null), restarts),
                0,
            )
        };
        let out = run(
            &mut tr,
            &[
                ev("online", json!(0), "online", 0),
                ev("start", json!(0), "online", 0),
                // pm2 restart
                ev("exit", json!(0), "stopping", 0),
                ev("exit", json!(0), "stopped", 0),
                ev("online", json!(0), "online", 1),
                ev("restart", json!(0), "online", 1),
                // pm2 stop
                ev("exit", json!(0), "stopping", 1),
                ev("exit", json!(0), "stopped", 1),
                ev("stop", json!(0), "stopped", 1),
                // cluster pm2 reload: the old worker's id is a string
                ev("exit", json!("_old_0"), "stopped", 1),
                ev("online", json!(0), "online", 2),
                ev("reload", json!(0), "online", 2),
            ],
        );
        assert_eq!(
            summary(&out),
            vec![
                (
                    "start".into(),
                    "duck started".into(),
                    None,
                    Some(0),
                    Some(true)
                ),
                (
                    "restart".into(),
                    "duck restarted, restart #1".into(),
                    None,
                    Some(1),
                    Some(true)
                ),
                (
                    "stop".into(),
                    "duck stopped".into(),
                    None,
                    Some(1),
                    Some(true)
                ),
                (
                    "reload".into(),
                    "duck reloaded, restart #2".into(),
                    None,
                    Some(2),
                    Some(true)
                ),
            ]
        );
    }

    #[test]
    fn restart_overlimit_is_told_with_the_exit_code() {
        let mut tr = tr();
        let mut over = event("restart overlimit", json!(2), "errored", json!(3), 15);
        over["process"]["unstable_restarts"] = json!(16);
        let out = run(
            &mut tr,
            &[
                ("process:event", over, 0),
                (
                    "process:event",
                    event("exit", json!(2), "errored", json!(1), 15),
                    1,
                ),
            ],
        );
        assert_eq!(
            summary(&out),
            vec![(
                "overlimit".into(),
                "duck crashed (exit code 1); 16 unstable restarts, PM2 gave up restarting it"
                    .into(),
                Some(1),
                Some(15),
                Some(false)
            )]
        );
        assert_eq!(out[0].instance, Some(2));
    }

    #[test]
    fn pm2_killed_once_then_a_lost_connection_only_without_it() {
        let mut tr = tr();
        let kill = json!({"status": "killed", "msg": "pm2 has been killed via CLI"});
        let out = run(
            &mut tr,
            &[("pm2:kill", kill.clone(), 0), ("pm2:kill", kill, 1)],
        );
        assert_eq!(
            summary(&out),
            vec![(
                "pm2-kill".into(),
                "PM2 was killed (pm2 kill)".into(),
                None,
                None,
                Some(true)
            )]
        );
        assert_eq!(out[0].service, PM2_SERVICE);
        // A stop in progress when the connection ends is not a crash.
        tr.handle(
            "process:event",
            &event("exit", json!(0), "stopping", json!(null), 0),
            t(2),
        )
        .unwrap();
        assert_eq!(tr.disconnected(t(3), true), vec![]);
        tr.connected();
        assert_eq!(tr.disconnected(t(4), false), vec![]);
        let out = tr.disconnected(t(4), true);
        assert_eq!(
            summary(&out),
            vec![(
                "pm2-lost".into(),
                "lost the connection to PM2's bus: PM2 stopped or was killed".into(),
                None,
                None,
                None
            )]
        );
    }

    #[test]
    fn an_exception_is_an_err_line_with_its_stack() {
        let mut tr = tr();
        let payload = json!({
            "at": T0,
            "data": {"message": "boom", "stack": "Error: boom\n    at Timeout._onTimeout (/a.js:3:9)\n",
                     "__error_callsites": [], "SECRET_TOKEN": "hunter2-xyz"},
            "process": {"name": "my_app", "pm_id": 3, "SECRET_TOKEN": "hunter2-xyz"},
        });
        let out = run(&mut tr, &[("process:exception", payload, 0)]);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(
            r.message,
            "Error: boom\n    at Timeout._onTimeout (/a.js:3:9)"
        );
        assert_eq!((r.service.as_str(), r.instance), ("my-app", Some(3)));
        assert_eq!(
            (r.stream, r.kind, r.level),
            (Stream::Err, Kind::Line, Some(Level::Error))
        );
        assert_eq!(r.marker, None);
    }

    #[test]
    fn malformed_and_unknown_messages_are_refused_without_quoting_them() {
        let mut tr = tr();
        let now = t(0);
        assert_eq!(
            tr.handle("hunter2:topic", &json!({}), now).unwrap_err(),
            EventError::UnknownTopic
        );
        for payload in [
            json!({"process": {"name": "a", "pm_id": 0}}),
            json!({"event": "exit"}),
            json!({"event": "exit", "process": {"name": "a", "pm_id": "hunter2"}}),
            json!({"event": "exit", "process": {"pm_id": 0, "x": "hunter2"}}),
            json!("hunter2"),
        ] {
            let err = tr.handle("process:event", &payload, now).unwrap_err();
            assert!(matches!(err, EventError::Malformed { .. }), "{payload}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        for topic in [
            "log:out",
            "log:err",
            "log:PM2",
            "axm:monitor",
            "process:msg",
        ] {
            assert_eq!(
                tr.handle(topic, &json!({"data": "x"}), now).unwrap(),
                vec![]
            );
        }
    }

    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// What a real PM2 sent while an app started and printed two lines
    /// (tests/fixtures/README.md): one `start` marker, nothing else.
    #[test]
    fn the_recorded_bus_stream_gives_one_start_marker() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bus-stream.hex");
        let bytes = unhex(&std::fs::read_to_string(path).unwrap());
        let mut decoder = Decoder::new();
        decoder.push(&bytes);
        let mut tr = tr();
        let mut out = Vec::new();
        let mut topics = Vec::new();
        let mut start_at = None;
        while let Some(frame) = decoder.next_frame().unwrap() {
            let [Arg::Str(topic), Arg::Json(payload)] = &frame[..] else {
                panic!("not a [topic, payload] frame");
            };
            topics.push(topic.clone());
            if payload["event"] == "start" {
                start_at = payload["at"].as_i64();
            }
            out.extend(tr.handle(topic, payload, Utc::now()).unwrap());
        }
        out.extend(tr.tick(Utc::now() + chrono::Duration::seconds(60)));
        assert!(topics.iter().any(|t| t == "process:event"), "{topics:?}");
        assert_eq!(
            summary(&out),
            vec![(
                "start".into(),
                "fixture started".into(),
                None,
                Some(0),
                Some(true)
            )]
        );
        assert_eq!(out[0].instance, Some(0));
        // The recorded event's own time, not the time it was read.
        assert_eq!(out[0].ts_source, TsSource::Event);
        assert_eq!(Some(out[0].ts.timestamp_millis()), start_at);
        // The recorder's environment (PATH, HOME) is in the payload but not the record.
        let shown = format!("{out:?}");
        assert!(
            !shown.contains("/usr/bin") && !shown.contains("PM2_HOME"),
            "{shown}"
        );
    }

    /// A real PM2's bus through a crash loop, a restart, a stop, a cluster reload, an
    /// uncaught exception and `pm2 kill` (tests/fixtures/record-events.js), each message
    /// arriving at its own `at`.
    #[test]
    fn the_recorded_event_sequences_give_these_markers() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bus-events.hex");
        let bytes = unhex(&std::fs::read_to_string(path).unwrap());
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        assert!(raw.contains("fixture-secret-42"), "PM2 sends the app's env");
        let mut decoder = Decoder::new();
        decoder.push(&bytes);
        let mut tr = tr();
        let mut out = Vec::new();
        let mut last = Utc::now();
        while let Some(frame) = decoder.next_frame().unwrap() {
            let [Arg::Str(topic), Arg::Json(payload)] = &frame[..] else {
                panic!("not a [topic, payload] frame");
            };
            if let Some(at) = payload["at"].as_i64() {
                last = Utc.timestamp_millis_opt(at).unwrap();
            }
            out.extend(tr.handle(topic, payload, last).unwrap());
            out.extend(tr.tick(last));
        }
        out.extend(tr.disconnected(last + chrono::Duration::seconds(10), true));
        let shown = format!("{out:?}");
        assert!(!shown.contains("fixture-secret"), "{shown}");
        assert!(!shown.contains("SECRET_TOKEN"), "{shown}");
        let got: Vec<(String, Option<u32>, Stream, String)> = out
            .iter()
            .map(|r| (r.service.clone(), r.instance, r.stream, r.message.clone()))
            .collect();
        let ev = |svc: &str, id, msg: &str| (svc.to_string(), id, Stream::Event, msg.to_string());
        let expected = vec![
            ev("crasher", Some(0), "crasher started"),
            ev(
                "crasher",
                Some(0),
                "crasher crashed (exit code 3); restarted, restart #1",
            ),
            ev(
                "crasher",
                Some(0),
                "crasher crashed (exit code 3); restarted, restart #2",
            ),
            ev("duck", Some(0), "duck started"),
            ev("duck", Some(0), "duck restarted, restart #1"),
            ev("duck", Some(0), "duck stopped"),
            ev("api", Some(1), "api started"),
            ev("api", Some(2), "api started"),
            ev("api", Some(1), "api reloaded, restart #1"),
            ev("api", Some(2), "api reloaded, restart #1"),
            ev("thrower", Some(3), "thrower started"),
        ];
        assert_eq!(got[..expected.len()], expected[..], "{got:#?}");
        let rest = &got[expected.len()..];
        assert_eq!(rest.len(), 3, "{rest:#?}");
        assert_eq!((rest[0].0.as_str(), rest[0].2), ("thrower", Stream::Err));
        assert!(rest[0].3.starts_with("Error: kaboom\n    at "), "{rest:#?}");
        assert_eq!(rest[1], ev("pm2", None, "PM2 was killed (pm2 kill)"));
        assert_eq!(
            rest[2],
            ev("thrower", Some(3), "thrower crashed (exit code 1)")
        );
    }
}
