//! `GET /api/services`: every service the daemon knows, from its files (the tailer's
//! view), the index (lines, newest record, restarts), the ingest counters and PM2's bus.
//!
//! What the numbers mean:
//! - `lines`: records of kind `line` in the index for the service, i.e. everything still
//!   within the retention, across daemon restarts;
//! - `bytes`: the message bytes of the lines indexed *since the daemon started* (the
//!   `logagg_bytes_ingested_total` counter); the index keeps no sizes, and reading every
//!   stored message to sum them would cost as much as a full scan;
//! - `last_ts`: the newest record of any kind (line or marker) in the index;
//! - `restarts`: markers of a crash, restart or reload in the index;
//! - `instances`: the PM2 ids in the service's live file names (`api-out-0.log`); empty
//!   when PM2 merges its logs (fork mode's default);
//! - `pm2_status`: the last status PM2's bus gave, None before any event about it.
//!
//! A service appears when it has a live file or records in the index.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::params::Params;
use super::{ApiError, AppState};
use crate::index::histogram::{service_totals, ServiceTotals};
use crate::index::search::format_ts;
use crate::pm2::naming::origin_of;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceFile {
    pub path: String,
    pub stream: String,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Service {
    pub name: String,
    pub files: Vec<ServiceFile>,
    pub instances: Vec<u32>,
    pub lines: u64,
    pub bytes: u64,
    pub last_ts: Option<String>,
    pub restarts: u64,
    pub pm2_status: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Services {
    pub services: Vec<Service>,
}

pub async fn services(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Services>, ApiError> {
    Params::parse(raw.as_deref(), &[])?;
    let mut files: BTreeMap<String, Vec<ServiceFile>> = BTreeMap::new();
    let mut instances: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    if let Ok(followed) = state.followed.lock() {
        for f in followed.values().filter(|f| f.live) {
            let origin = origin_of(&f.path);
            if let Some(i) = origin.instance {
                instances.entry(f.service.clone()).or_default().insert(i);
            }
            files
                .entry(f.service.clone())
                .or_default()
                .push(ServiceFile {
                    path: f.path.to_string_lossy().into_owned(),
                    stream: origin.stream.as_str().to_string(),
                    size: f.size,
                });
        }
    }
    let timeline = state.timeline.clone();
    let totals = tokio::task::spawn_blocking(move || service_totals(&timeline))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let names: BTreeSet<&String> = files.keys().chain(totals.keys()).collect();
    let services = names
        .into_iter()
        .map(|name| {
            let t = totals
                .get(name)
                .cloned()
                .unwrap_or(ServiceTotals::default());
            let mut own = files.get(name).cloned().unwrap_or_default();
            own.sort_by(|a, b| a.path.cmp(&b.path));
            Service {
                name: name.clone(),
                files: own,
                instances: instances
                    .get(name)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default(),
                lines: t.lines,
                bytes: state.metrics.ingested(name).bytes,
                last_ts: t.last_ts.map(format_ts),
                restarts: t.restarts,
                pm2_status: state.pm2_status.get(name),
            }
        })
        .collect();
    Ok(Json(Services { services }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use crate::api::testing::{bad_request, get_json, line, marker, state_with};
    use crate::metrics::Ingested;
    use crate::tail::identity::FileKey;
    use crate::tail::FileState;

    #[tokio::test]
    async fn every_service_with_its_files_counts_restarts_and_pm2_status() {
        let (_dir, state) = state_with(vec![
            line("duck", "2026-11-22T10:00:00Z", "a", 0),
            line("duck", "2026-11-22T10:01:00Z", "b", 1),
            line("duck", "2026-11-22T10:02:00Z", "c", 2),
            marker("duck", "2026-11-22T10:03:00Z", "crash", 0),
            marker("duck", "2026-11-22T10:04:00Z", "restart", 1),
            marker("duck", "2026-11-22T10:05:00Z", "stop", 2),
            line("api", "2026-11-22T09:00:00Z", "x", 0),
            line("gone", "2026-11-21T09:00:00Z", "y", 0),
        ]);
        let files = [
            ("/logs/duck-out.log", "duck", 120, true),
            ("/logs/duck-error.log", "duck", 7, true),
            ("/logs/api-out-1.log", "api", 30, true),
            ("/logs/api-out-0.log", "api", 20, true),
            ("/archive/api-out-0.2026-11-22.log", "api", 99, false),
            ("/logs/quiet-out.log", "quiet", 0, true),
        ];
        {
            let mut followed = state.followed.lock().unwrap();
            for (ino, (path, service, size, live)) in files.into_iter().enumerate() {
                let key = FileKey {
                    dev: 1,
                    ino: ino as u64,
                };
                followed.insert(
                    key,
                    FileState {
                        key,
                        path: PathBuf::from(path),
                        service: service.into(),
                        live,
                        size,
                        read_offset: size,
                        oldest: None,
                    },
                );
            }
        }
        state
            .metrics
            .add_ingested([("duck", Ingested { lines: 3, bytes: 3 })]);
        state.pm2_status.note(
            "process:event",
            &json!({"event": "stop", "process": {"name": "duck", "pm_id": 0, "status": "stopped"}}),
        );
        let got = get_json(&state, "/api/services").await;
        assert_eq!(
            got,
            json!({"services": [
                {
                    "name": "api",
                    "files": [
                        {"path": "/logs/api-out-0.log", "stream": "out", "size": 20},
                        {"path": "/logs/api-out-1.log", "stream": "out", "size": 30},
                    ],
                    "instances": [0, 1],
                    "lines": 1,
                    "bytes": 0,
                    "last_ts": "2026-11-22T09:00:00.000000Z",
                    "restarts": 0,
                    "pm2_status": null,
                },
                {
                    "name": "duck",
                    "files": [
                        {"path": "/logs/duck-error.log", "stream": "err", "size": 7},
                        {"path": "/logs/duck-out.log", "stream": "out", "size": 120},
                    ],
                    "instances": [],
                    "lines": 3,
                    "bytes": 3,
                    "last_ts": "2026-11-22T10:05:00.000000Z",
                    "restarts": 2,
                    "pm2_status": "stopped",
                },
                {
                    "name": "gone",
                    "files": [],
                    "instances": [],
                    "lines": 1,
                    "bytes": 0,
                    "last_ts": "2026-11-21T09:00:00.000000Z",
                    "restarts": 0,
                    "pm2_status": null,
                },
                {
                    "name": "quiet",
                    "files": [{"path": "/logs/quiet-out.log", "stream": "out", "size": 0}],
                    "instances": [],
                    "lines": 0,
                    "bytes": 0,
                    "last_ts": null,
                    "restarts": 0,
                    "pm2_status": null,
                },
            ]})
        );
    }

    #[tokio::test]
    async fn parameters_are_refused() {
        let (_dir, state) = state_with(vec![]);
        assert_eq!(
            get_json(&state, "/api/services").await,
            json!({"services": []})
        );
        assert_eq!(
            bad_request(&state, "/api/services?service=duck").await,
            "unknown parameter \"service\" (this route takes none)"
        );
    }
}
