//! `logagg services`: what the daemon knows of each service, as a table or JSON.

use anyhow::Result;
use chrono::{DateTime, Local};

use super::format::{table, write_out};
use crate::api::services::Services;
use crate::client::{Client, Endpoint};
use crate::units::format_size;

#[derive(clap::Args, Debug)]
pub struct ServicesArgs {
    /// The API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row per service: PM2's status, instances, files and their size, lines in the
/// index, bytes ingested since the daemon started, newest record, restarts.
pub fn run(args: &ServicesArgs, endpoint: &Endpoint) -> Result<u8> {
    let client = Client::new(endpoint);
    if args.json {
        let v: serde_json::Value = client.get_json("/api/services", &[])?;
        write_out(&format!("{v:#}\n"))?;
        return Ok(0);
    }
    let answer: Services = client.get_json("/api/services", &[])?;
    let mut rows = vec![[
        "SERVICE",
        "PM2",
        "INSTANCES",
        "FILES",
        "LINES",
        "BYTES",
        "LAST RECORD",
        "RESTARTS",
    ]
    .map(String::from)];
    for s in &answer.services {
        let size: u64 = s.files.iter().map(|f| f.size).sum();
        rows.push([
            s.name.clone(),
            s.pm2_status.clone().unwrap_or_else(|| "-".into()),
            match s.instances.as_slice() {
                [] => "-".into(),
                ids => ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            },
            format!("{} ({})", s.files.len(), format_size(size)),
            s.lines.to_string(),
            format_size(s.bytes),
            s.last_ts
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| {
                    t.with_timezone(&Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| "-".into()),
            s.restarts.to_string(),
        ]);
    }
    let mut out = table(&rows);
    let lines: u64 = answer.services.iter().map(|s| s.lines).sum();
    out.push_str(&format!(
        "{} services, {lines} lines in the index\n",
        answer.services.len()
    ));
    write_out(&out)?;
    Ok(0)
}
