//! A small blocking client for PM2's control socket, `$PM2_HOME/rpc.sock`, so that
//! rotation can ask PM2 to reopen its log files (`reloadLogs`) right after renaming
//! them, and so logagg can learn where every app's files are (`getMonitorData`) instead
//! of guessing from names.
//!
//! The socket speaks axon req/rep over [amp](super::amp) frames. A request is
//! `[j:{"type":"call","method":M,"args":[...]}, s:<id>]`; PM2 answers
//! `[j:{"args":[...]}, s:<id>]`, or `[j:{"error":...}, s:<id>]` when the method failed,
//! with the request's id, which is how a reply is told from a late answer to an earlier
//! call that timed out.
//!
//! Blocking on purpose: calls are rare (one per rotation, one per rescan), each is bounded
//! by a timeout, and the async side runs them on a blocking thread.
//!
//! PM2's process descriptions carry each app's whole environment (secrets included).
//! Nothing here keeps, logs or puts in an error any part of a reply beyond the fields it
//! is asked for.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::amp::{self, Arg, Decoder};

/// The socket's file name under `$PM2_HOME`.
pub const RPC_SOCKET: &str = "rpc.sock";

/// The paths PM2 uses to mean "discard this stream" (`Utility.checkPathIsNull`).
const NULL_PATHS: [&str; 3] = ["/dev/null", "NULL", r"\\.\NUL"];

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No PM2 daemon listens: the socket file is missing, or it is left over from a
    /// daemon that is gone (connection refused).
    #[error("PM2 is not running (nothing listens on {})", socket.display())]
    NotRunning { socket: PathBuf },
    /// PM2 did not answer (or take the request) within the client's timeout.
    #[error("PM2 did not answer `{method}` within {after:?}")]
    Timeout { method: String, after: Duration },
    /// PM2 sent something that is not a well-formed reply. The message never quotes
    /// the reply itself.
    #[error("unexpected reply from PM2: {0}")]
    Protocol(String),
    /// PM2 ran the method and it failed (`{"error": ...}`); PM2's message.
    #[error("PM2 answered with an error: {0}")]
    Remote(String),
    /// Any other failure of the socket, such as PM2 closing the connection mid-call.
    #[error("PM2 RPC socket: {0}")]
    Io(#[from] io::Error),
}

/// Where one PM2 process (one `pm_id`) writes its logs, from `getMonitorData`.
///
/// The paths are PM2's own, already resolved: for an app with `merge_logs` off (always
/// so in cluster mode, and in fork mode with `instances`), PM2 has replaced a trailing
/// `.log` or `-<digits>.log` with `-<pm_id>.log`. Seen with PM2 7.0.4, a cluster app
/// `api` with 2 instances (pm_id 0 and 1) and default paths gets
/// `$PM2_HOME/logs/api-out-0.log` / `api-error-0.log` and `api-out-1.log` /
/// `api-error-1.log`; with `out_file: "/var/log/o.log"` the files are `/var/log/o-0.log`
/// and `/var/log/o-1.log`. A configured path that does not end in `.log`
/// (`error_file: "e.txt"`) gets no suffix, so every instance then shares one file.
/// With `merge_logs: true` all instances share the unsuffixed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pm2LogFile {
    pub name: String,
    pub pm_id: u32,
    /// `pm_out_log_path`; `None` when PM2 discards the stream (`/dev/null`).
    pub out: Option<PathBuf>,
    /// `pm_err_log_path`; `None` when PM2 discards the stream.
    pub err: Option<PathBuf>,
    /// `pm_log_path`, the combined file: only set when the app has a `log_file`.
    pub combined: Option<PathBuf>,
    /// `exec_mode` is `cluster_mode`: the worker itself holds its log files open, and
    /// its `reloadLogs` destroys the old stream with writes in flight (measured: one
    /// 60-line chunk lost, `ERR_STREAM_DESTROYED`, at 6,000 lines/s), so logagg rotates
    /// such files without asking PM2.
    pub cluster: bool,
}

/// One connection to a PM2 daemon's RPC socket.
#[derive(Debug)]
pub struct RpcClient {
    socket: PathBuf,
    /// `None` after a failure that may have left a frame half read or written; the
    /// next call connects again.
    stream: Option<UnixStream>,
    decoder: Decoder,
    timeout: Duration,
    id_prefix: String,
    next_id: u64,
}

impl RpcClient {
    /// Connects to `pm2_home/rpc.sock`. `timeout` bounds each later call as a whole
    /// (sending the request and waiting for its reply).
    pub fn connect(pm2_home: &Path, timeout: Duration) -> Result<RpcClient, RpcError> {
        let socket = pm2_home.join(RPC_SOCKET);
        // A zero timeout means "block forever" to the socket API; nobody wants that.
        let timeout = timeout.max(Duration::from_millis(1));
        let stream = open(&socket, timeout)?;
        Ok(RpcClient {
            socket,
            stream: Some(stream),
            decoder: Decoder::new(),
            timeout,
            id_prefix: format!("logagg-{}", std::process::id()),
            next_id: 0,
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Calls `method` and returns its result: the first value PM2's method passed to its
    /// callback after the error (`Null` when it passed none). `args` is the argument
    /// list; a value that is not an array is sent as the only argument, which is what
    /// every PM2 daemon method takes (`call("reloadLogs", json!({}))`).
    pub fn call(&mut self, method: &str, args: Value) -> Result<Value, RpcError> {
        let args = match args {
            Value::Array(list) => Value::Array(list),
            one => Value::Array(vec![one]),
        };
        let id = format!("{}:{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        let request = amp::encode(&[
            Arg::Json(json!({"type": "call", "method": method, "args": args})),
            Arg::Str(id.clone()),
        ]);
        let deadline = Instant::now() + self.timeout;
        let result = self.exchange(method, &request, &id, deadline);
        if let Err(e) = &result {
            // A timeout leaves the stream in step (a late reply is skipped by its id);
            // anything else may have cut a frame in half.
            if !matches!(e, RpcError::Timeout { .. } | RpcError::Remote(_)) {
                self.stream = None;
                self.decoder = Decoder::new();
            }
        }
        result
    }

    /// Checks that the daemon answers.
    pub fn ping(&mut self) -> Result<(), RpcError> {
        let reply = self.call("ping", json!({}))?;
        if reply.get("msg").and_then(Value::as_str) == Some("pong") {
            Ok(())
        } else {
            Err(RpcError::Protocol(
                "`ping` was not answered with pong".into(),
            ))
        }
    }

    /// Asks PM2 to close and reopen every app's log files at their configured paths
    /// (what `pm2 reloadLogs` does). A file renamed before this call stops growing and
    /// a new one appears at the old path.
    pub fn reload_logs(&mut self) -> Result<(), RpcError> {
        self.call("reloadLogs", json!({})).map(drop)
    }

    /// Every PM2 process and the files it writes, in PM2's order (by `pm_id`).
    pub fn log_files(&mut self) -> Result<Vec<Pm2LogFile>, RpcError> {
        let reply = self.call("getMonitorData", json!({}))?;
        let Value::Array(processes) = reply else {
            return Err(RpcError::Protocol(
                "`getMonitorData` did not return a list".into(),
            ));
        };
        processes.iter().map(log_file_of).collect()
    }

    fn exchange(
        &mut self,
        method: &str,
        request: &[u8],
        id: &str,
        deadline: Instant,
    ) -> Result<Value, RpcError> {
        let timed_out = || RpcError::Timeout {
            method: method.to_string(),
            after: self.timeout,
        };
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self.stream.insert(open(&self.socket, self.timeout)?),
        };
        stream.set_write_timeout(Some(remaining(deadline).ok_or_else(timed_out)?))?;
        stream
            .write_all(request)
            .map_err(|e| io_error(e, timed_out))?;

        let mut buf = [0u8; 64 * 1024];
        loop {
            while let Some(frame) = self
                .decoder
                .next_frame()
                .map_err(|e| RpcError::Protocol(e.to_string()))?
            {
                if let Some(result) = reply_for(frame, id)? {
                    return Ok(result);
                }
            }
            stream.set_read_timeout(Some(remaining(deadline).ok_or_else(timed_out)?))?;
            let n = match stream.read(&mut buf) {
                Ok(0) => {
                    return Err(RpcError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "PM2 closed the connection before replying",
                    )))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, timed_out)),
            };
            self.decoder.push(&buf[..n]);
        }
    }
}

fn open(socket: &Path, timeout: Duration) -> Result<UnixStream, RpcError> {
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => RpcError::NotRunning {
            socket: socket.to_path_buf(),
        },
        _ => RpcError::Io(e),
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Time left before `deadline`, `None` once it has passed.
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn io_error(e: io::Error, timed_out: impl FnOnce() -> RpcError) -> RpcError {
    match e.kind() {
        // What a socket timeout looks like on Unix (EAGAIN), and elsewhere.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
        _ => RpcError::Io(e),
    }
}

/// Reads one reply frame: `Ok(None)` if it answers another request (a late reply to a
/// call that timed out), otherwise this call's result or PM2's error.
fn reply_for(frame: Vec<Arg>, id: &str) -> Result<Option<Value>, RpcError> {
    let mut frame = frame.into_iter();
    let (Some(body), Some(reply_id), None) = (frame.next(), frame.next(), frame.next()) else {
        return Err(RpcError::Protocol(
            "a reply is not two arguments (body, id)".into(),
        ));
    };
    match reply_id.as_str() {
        Some(got) if got == id => {}
        Some(_) => return Ok(None),
        None => return Err(RpcError::Protocol("a reply's id is not a string".into())),
    }
    let Some(Value::Object(mut body)) = body.into_json() else {
        return Err(RpcError::Protocol(
            "a reply's body is not a JSON object".into(),
        ));
    };
    if let Some(error) = body.remove("error") {
        return Err(RpcError::Remote(match error {
            Value::String(s) => s,
            other => other.to_string(),
        }));
    }
    match body.remove("args") {
        Some(Value::Array(args)) => Ok(Some(args.into_iter().next().unwrap_or(Value::Null))),
        _ => Err(RpcError::Protocol(
            "a reply has neither `args` nor `error`".into(),
        )),
    }
}

/// Picks the name, id and log paths out of one `getMonitorData` entry, and nothing else.
fn log_file_of(process: &Value) -> Result<Pm2LogFile, RpcError> {
    let name = process
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::Protocol("a process has no `name`".into()))?;
    let pm_id = process
        .get("pm_id")
        .and_then(Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| RpcError::Protocol(format!("process `{name}` has no numeric `pm_id`")))?;
    let env = process
        .get("pm2_env")
        .filter(|env| env.is_object())
        .ok_or_else(|| RpcError::Protocol(format!("process `{name}` has no `pm2_env`")))?;
    let path = |key: &str| -> Result<Option<PathBuf>, RpcError> {
        match env.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(p)) if p.is_empty() || NULL_PATHS.contains(&p.as_str()) => Ok(None),
            Some(Value::String(p)) => Ok(Some(PathBuf::from(p))),
            Some(_) => Err(RpcError::Protocol(format!(
                "process `{name}`: `{key}` is not a string"
            ))),
        }
    };
    Ok(Pm2LogFile {
        name: name.to_string(),
        pm_id,
        out: path("pm_out_log_path")?,
        err: path("pm_err_log_path")?,
        combined: path("pm_log_path")?,
        cluster: env.get("exec_mode").and_then(Value::as_str) == Some("cluster_mode"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// A fake PM2 that answers each request frame with what `answer` returns (raw frames,
    /// so replies can be late, foreign or broken), in a temp `PM2_HOME`.
    fn fake_pm2(
        answer: impl Fn(Value, String) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (tempfile::TempDir, thread::JoinHandle<()>) {
        let home = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(home.path().join(RPC_SOCKET)).unwrap();
        let handle = thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut decoder = Decoder::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    let mut frame = frame.into_iter();
                    let body = frame.next().and_then(Arg::into_json).unwrap();
                    let id = frame.next().unwrap().as_str().unwrap().to_string();
                    for reply in answer(body, id) {
                        if conn.write_all(&reply).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        (home, handle)
    }

    fn reply(body: Value, id: &str) -> Vec<u8> {
        amp::encode(&[Arg::Json(body), Arg::Str(id.into())])
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn sends_the_request_pm2_expects_and_returns_the_result() {
        let (home, server) = fake_pm2(|body, id| {
            assert_eq!(
                body,
                json!({"type": "call", "method": "getVersion", "args": [{"x": 1}]})
            );
            assert!(id.starts_with("logagg-"), "{id}");
            vec![reply(json!({"args": ["7.0.4"]}), &id)]
        });
        let mut client = RpcClient::connect(home.path(), T).unwrap();
        assert_eq!(
            client.call("getVersion", json!({"x": 1})).unwrap(),
            json!("7.0.4")
        );
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn array_args_are_the_argument_list_and_empty_results_are_null() {
        let (home, _server) = fake_pm2(|body, id| {
            assert_eq!(body["args"], json!([1, 2]));
            vec![reply(json!({"args": []}), &id)]
        });
        let mut client = RpcClient::connect(home.path(), T).unwrap();
        assert_eq!(client.call("m", json!([1, 2])).unwrap(), Value::Null);
    }

    #[test]
    fn skips_replies_to_other_ids_and_takes_split_frames() {
        let (home, _server) = fake_pm2(|_, id| {
            let mine = reply(json!({"args": [{"msg": "pong"}]}), &id);
            let (a, b) = mine.split_at(7);
            vec![
                reply(json!({"args": ["stale"]}), "logagg-1:99"),
                a.to_vec(),
                b.to_vec(),
            ]
        });
        let mut client = RpcClient::connect(home.path(), T).unwrap();
        client.ping().unwrap();
        client.ping().unwrap();
    }

    #[test]
    fn error_replies_are_remote_errors_and_the_connection_stays_usable() {
        let (home, _server) = fake_pm2(|body, id| {
            let answer = match body["method"].as_str().unwrap() {
                "a" => json!({"error": "5555 : id unknown", "stack": "Error: ..."}),
                "b" => json!({"error": {"code": 3}}),
                _ => json!({"args": [{}]}),
            };
            vec![reply(answer, &id)]
        });
        let mut client = RpcClient::connect(home.path(), T).unwrap();
        let err = client.call("a", json!({})).unwrap_err();
        assert!(
            matches!(&err, RpcError::Remote(m) if m == "5555 : id unknown"),
            "{err:?}"
        );
        let err = client.call("b", json!({})).unwrap_err();
        assert!(
            matches!(&err, RpcError::Remote(m) if m == r#"{"code":3}"#),
            "{err:?}"
        );
        client.reload_logs().unwrap();
    }

    #[test]
    fn a_silent_daemon_times_out_then_a_late_reply_is_ignored() {
        let (home, _server) = fake_pm2(|body, id| {
            if body["method"] == "slow" {
                thread::sleep(Duration::from_millis(400));
                vec![reply(json!({"args": ["late"]}), &id)]
            } else {
                vec![reply(json!({"args": ["fast"]}), &id)]
            }
        });
        let mut client = RpcClient::connect(home.path(), Duration::from_millis(150)).unwrap();
        let started = Instant::now();
        let err = client.call("slow", json!({})).unwrap_err();
        assert!(
            matches!(&err, RpcError::Timeout { method, .. } if method == "slow"),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(390),
            "{:?}",
            started.elapsed()
        );
        thread::sleep(Duration::from_millis(400));
        assert_eq!(client.call("fast", json!({})).unwrap(), json!("fast"));
    }

    #[test]
    fn each_malformed_reply_kind_is_refused() {
        for method in ["three", "notobject", "neither", "numid", "badversion"] {
            let (home, _server) = fake_pm2(|body, id| {
                let frame = match body["method"].as_str().unwrap() {
                    "three" => amp::encode(&[
                        Arg::Json(json!({"args": []})),
                        Arg::Str(id.clone()),
                        Arg::Str("x".into()),
                    ]),
                    "notobject" => reply(json!(["SECRET"]), &id),
                    "neither" => reply(json!({"SECRET": 1}), &id),
                    "numid" => amp::encode(&[Arg::Json(json!({"args": []})), Arg::Json(json!(1))]),
                    _ => vec![0x31],
                };
                vec![frame]
            });
            let mut client = RpcClient::connect(home.path(), T).unwrap();
            let err = client.call(method, json!({})).unwrap_err();
            assert!(matches!(err, RpcError::Protocol(_)), "{method}: {err:?}");
            assert!(!err.to_string().contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn a_daemon_that_hangs_up_is_an_io_error_and_the_next_call_reconnects() {
        let home = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(home.path().join(RPC_SOCKET)).unwrap();
        let server = thread::spawn(move || {
            // First connection: read the request, hang up.
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).unwrap();
            drop(conn);
            // Second: answer properly.
            let (mut conn, _) = listener.accept().unwrap();
            let mut decoder = Decoder::new();
            loop {
                let n = conn.read(&mut buf).unwrap();
                decoder.push(&buf[..n]);
                if let Some(frame) = decoder.next_frame().unwrap() {
                    let id = frame[1].as_str().unwrap().to_string();
                    conn.write_all(&reply(json!({"args": [{"msg": "pong"}]}), &id))
                        .unwrap();
                    return;
                }
            }
        });
        let mut client = RpcClient::connect(home.path(), T).unwrap();
        let err = client.ping().unwrap_err();
        assert!(
            matches!(&err, RpcError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        client.ping().unwrap();
        server.join().unwrap();
    }

    #[test]
    fn no_socket_or_a_stale_one_is_not_running() {
        let home = tempfile::tempdir().unwrap();
        let err = RpcClient::connect(home.path(), T).unwrap_err();
        assert!(
            matches!(&err, RpcError::NotRunning { socket } if socket == &home.path().join("rpc.sock")),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("PM2 is not running"), "{err}");
        // A socket file whose listener is gone: what a killed daemon leaves behind.
        drop(UnixListener::bind(home.path().join(RPC_SOCKET)).unwrap());
        let err = RpcClient::connect(home.path(), T).unwrap_err();
        assert!(matches!(err, RpcError::NotRunning { .. }), "{err:?}");
        let err = RpcClient::connect(&home.path().join("missing/dir"), T).unwrap_err();
        assert!(matches!(err, RpcError::NotRunning { .. }), "{err:?}");
    }

    #[test]
    fn log_files_reads_only_names_ids_and_paths() {
        let (home, _server) = fake_pm2(|body, id| {
            assert_eq!(body["method"], "getMonitorData");
            let processes = json!([
                {"pid": 10, "name": "api", "pm_id": 0, "monit": {"memory": 1, "cpu": 0},
                 "pm2_env": {"pm_out_log_path": "/l/api-out-0.log",
                             "pm_err_log_path": "/l/api-error-0.log",
                             "DATABASE_PASSWORD": "hunter2", "env": {"TOKEN": "x"}}},
                {"pid": 11, "name": "quiet", "pm_id": 1,
                 "pm2_env": {"pm_out_log_path": "/dev/null", "pm_err_log_path": "NULL",
                             "pm_log_path": "/l/quiet.log"}},
            ]);
            vec![reply(json!({"args": [processes]}), &id)]
        });
        let mut client = RpcClient::connect(home.path(), T).unwrap();
        let files = client.log_files().unwrap();
        assert_eq!(
            files,
            vec![
                Pm2LogFile {
                    name: "api".into(),
                    pm_id: 0,
                    out: Some("/l/api-out-0.log".into()),
                    err: Some("/l/api-error-0.log".into()),
                    combined: None,
                    cluster: false,
                },
                Pm2LogFile {
                    name: "quiet".into(),
                    pm_id: 1,
                    out: None,
                    err: None,
                    combined: Some("/l/quiet.log".into()),
                    cluster: false,
                },
            ]
        );
        assert!(!format!("{files:?}").contains("hunter2"));
    }

    #[test]
    fn log_files_refuses_malformed_entries_without_quoting_them() {
        for entry in [
            json!({"pm_id": 0, "pm2_env": {}}),
            json!({"name": "a", "pm_id": "_old_0", "pm2_env": {}}),
            json!({"name": "a", "pm_id": 0}),
            json!({"name": "a", "pm_id": 0, "pm2_env": {"pm_out_log_path": 5}}),
        ] {
            let err = log_file_of(&entry).unwrap_err();
            assert!(matches!(err, RpcError::Protocol(_)), "{entry}: {err:?}");
        }
    }
}
