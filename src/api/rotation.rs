//! `GET /api/status` (per live file: size, rotations, archives, bytes possibly lost) and
//! `POST /api/rotate?service=S` (rotate now).

use std::collections::BTreeMap;
use std::path::Path;

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::params::Params;
use super::{ApiError, AppState};
use crate::rotate::archive::parse_archive_name;
use crate::rotate::rotator::stem_of;
use crate::rotate::{RotateMsg, Rotated};

#[derive(Serialize)]
pub struct FileStatus {
    pub path: String,
    pub service: String,
    pub size: u64,
    /// Bytes of the live file already read.
    pub read_offset: u64,
    pub archives: usize,
    pub archive_bytes: u64,
    pub rotations: u64,
    pub last_rotation: Option<DateTime<Utc>>,
    pub last_method: Option<&'static str>,
    pub copytruncate_lost_bytes: u64,
    pub last_error: Option<String>,
}

#[derive(Serialize)]
pub struct Status {
    pub files: Vec<FileStatus>,
    pub rotations: u64,
    pub copytruncate_lost_bytes: u64,
}

pub async fn status(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Status>, ApiError> {
    Params::parse(raw.as_deref(), &[])?;
    let followed: Vec<_> = state
        .followed
        .lock()
        .map(|f| f.values().filter(|s| s.live).cloned().collect())
        .unwrap_or_default();
    let board = state.board.lock().map(|b| b.clone()).unwrap_or_default();
    let rotations = board.values().map(|r| r.rotations).sum();
    let lost = board.values().map(|r| r.copytruncate_lost_bytes).sum();
    let config = state.config.clone();
    let files = tokio::task::spawn_blocking(move || {
        let mut rows = BTreeMap::new();
        for f in followed {
            let policy = config.policy_for(&f.service);
            let (archives, archive_bytes) = count_archives(&policy.archive_dir, &f.path);
            let r = board.get(&f.path).cloned().unwrap_or_default();
            rows.insert(
                f.path.clone(),
                FileStatus {
                    path: f.path.to_string_lossy().into_owned(),
                    service: f.service,
                    size: f.size,
                    read_offset: f.read_offset,
                    archives,
                    archive_bytes,
                    rotations: r.rotations,
                    last_rotation: r.last_rotation,
                    last_method: r.last_method,
                    copytruncate_lost_bytes: r.copytruncate_lost_bytes,
                    last_error: r.last_error,
                },
            );
        }
        rows.into_values().collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Status {
        files,
        rotations,
        copytruncate_lost_bytes: lost,
    }))
}

/// Archives of exactly this live file (same stem) and their total size.
fn count_archives(dir: &Path, live: &Path) -> (usize, u64) {
    let stem = stem_of(live);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter(|e| {
            parse_archive_name(&e.file_name().to_string_lossy()).is_some_and(|n| n.stem == stem)
        })
        .fold((0, 0), |(n, bytes), e| {
            (n + 1, bytes + e.metadata().map(|m| m.len()).unwrap_or(0))
        })
}

#[derive(Serialize)]
pub struct RotateAnswer {
    pub rotated: Vec<Rotated>,
}

pub async fn rotate(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RotateAnswer>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["service"])?;
    let service = params.one("service")?.map(str::to_string);
    if let Some(s) = &service {
        let known = state
            .followed
            .lock()
            .map(|f| f.values().any(|f| f.live && &f.service == s))
            .unwrap_or(false);
        if !known {
            return Err(ApiError::BadRequest(format!(
                "parameter \"service\": no live file of a service named \"{s}\""
            )));
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .rotate
        .try_send(RotateMsg::Now { service, reply: tx })
        .map_err(|_| ApiError::Internal("the rotator is busy; try again".into()))?;
    let rotated = rx
        .await
        .map_err(|_| ApiError::Internal("the rotator stopped".into()))?;
    Ok(Json(RotateAnswer { rotated }))
}
