//! `logagg rotate` and `logagg status`: the rotation side of the daemon from a shell.

use anyhow::Result;
use serde::Deserialize;

use super::format::{table, write_out};
use crate::client::{Client, Endpoint};
use crate::units::format_size;

#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// Only this service's files (default: every live file).
    #[arg(long, short = 's', value_name = "NAME")]
    pub service: Option<String>,
}

#[derive(Deserialize)]
struct RotateAnswer {
    rotated: Vec<Rotated>,
}

#[derive(Deserialize)]
struct Rotated {
    path: String,
    method: Option<String>,
    archive: Option<String>,
    error: Option<String>,
}

/// Prints one line per file: `PATH -> ARCHIVE (METHOD)` or `PATH: ERROR`. Exit 0 when
/// every file rotated, 1 when there was nothing to rotate, 2 when one failed.
pub fn rotate(args: &RotateArgs, endpoint: &Endpoint) -> Result<u8> {
    let client = Client::new(endpoint);
    let mut query = Vec::new();
    if let Some(s) = &args.service {
        query.push(("service", s.clone()));
    }
    let answer: RotateAnswer = client.post_json("/api/rotate", &query)?;
    let mut out = String::new();
    let mut failed = false;
    for r in &answer.rotated {
        match (&r.error, &r.archive) {
            (Some(e), _) => {
                failed = true;
                out.push_str(&format!("{}: {e}\n", r.path));
            }
            (None, Some(a)) => out.push_str(&format!(
                "{} -> {a} ({})\n",
                r.path,
                r.method.as_deref().unwrap_or("?")
            )),
            (None, None) => {}
        }
    }
    if answer.rotated.is_empty() {
        out.push_str("nothing to rotate: no live file with data\n");
    }
    write_out(&out)?;
    Ok(if failed {
        2
    } else if answer.rotated.is_empty() {
        1
    } else {
        0
    })
}

#[derive(Deserialize)]
struct Status {
    files: Vec<FileStatus>,
    rotations: u64,
    copytruncate_lost_bytes: u64,
}

#[derive(Deserialize)]
struct FileStatus {
    path: String,
    service: String,
    size: u64,
    archives: usize,
    archive_bytes: u64,
    rotations: u64,
    last_rotation: Option<String>,
    last_method: Option<String>,
    copytruncate_lost_bytes: u64,
    last_error: Option<String>,
}

/// A table of the live files with their rotation state.
pub fn status(json: bool, endpoint: &Endpoint) -> Result<u8> {
    let client = Client::new(endpoint);
    if json {
        let v: serde_json::Value = client.get_json("/api/status", &[])?;
        write_out(&format!("{v:#}\n"))?;
        return Ok(0);
    }
    let s: Status = client.get_json("/api/status", &[])?;
    let mut rows = vec![[
        "SERVICE".to_string(),
        "FILE".into(),
        "SIZE".into(),
        "ARCHIVES".into(),
        "ROTATIONS".into(),
        "LAST ROTATION".into(),
        "METHOD".into(),
        "LOST".into(),
    ]];
    for f in &s.files {
        rows.push([
            f.service.clone(),
            f.path.clone(),
            format_size(f.size),
            format!("{} ({})", f.archives, format_size(f.archive_bytes)),
            f.rotations.to_string(),
            f.last_rotation
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| "-".into()),
            f.last_method.clone().unwrap_or_else(|| "-".into()),
            format_size(f.copytruncate_lost_bytes),
        ]);
    }
    let mut out = table(&rows);
    for f in &s.files {
        if let Some(e) = &f.last_error {
            out.push_str(&format!("error: {}: {e}\n", f.path));
        }
    }
    out.push_str(&format!(
        "{} files, {} rotations, {} possibly lost by copytruncate\n",
        s.files.len(),
        s.rotations,
        format_size(s.copytruncate_lost_bytes)
    ));
    write_out(&out)?;
    Ok(0)
}
