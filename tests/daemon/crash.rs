//! Exactly once across crashes: 100,000 numbered lines over four services while the
//! daemon is `kill -9`ed and restarted mid-ingest, then every line counted via the API.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{brief, Project};

const SERVICES: [&str; 4] = [
    "alpha-out.log",
    "beta-out-1.log",
    "gamma-error.log",
    "delta.log",
];
const LINES: u64 = 100_000;
const KILLS: usize = 3;

#[test]
fn every_line_is_indexed_exactly_once_across_three_kill_9s() {
    let p = Project::new("");
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let paths: Vec<_> = SERVICES.iter().map(|s| p.log(s)).collect();
        let written = written.clone();
        std::thread::spawn(move || write_lines(&paths, &written))
    };

    let mut d = p.start();
    for kill in 0..KILLS {
        // Let it ingest for a while, then kill it while lines are still being written.
        std::thread::sleep(Duration::from_millis(1500));
        let indexed = d.search(&[("limit", "1")])["total"].as_u64().unwrap();
        let so_far = written.load(Ordering::SeqCst);
        assert!(
            so_far < LINES,
            "kill {kill}: the writer finished before the kill; the test proves nothing"
        );
        assert!(indexed > 0, "kill {kill}: nothing indexed yet");
        d.kill9();
        // Lines keep arriving while no daemon runs.
        std::thread::sleep(Duration::from_millis(300));
        d = p.start();
    }
    writer.join().unwrap();
    assert_eq!(written.load(Ordering::SeqCst), LINES);

    d.wait_total(&[("limit", "1")], LINES, 180);
    // Read every record back, oldest first, page by page through the cursor.
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut positions = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("order", "asc"), ("limit", "10000")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let body = d.search(&query);
        assert_eq!(body["total"], LINES);
        let hits = body["hits"].as_array().unwrap();
        for h in hits {
            *seen
                .entry(h["message"].as_str().unwrap().to_string())
                .or_default() += 1;
            let at = (
                h["file"].as_str().unwrap().to_string(),
                h["offset"].as_u64().unwrap(),
            );
            assert!(positions.insert(at.clone()), "{at:?} indexed twice");
        }
        pages += 1;
        match body["next"].as_str() {
            Some(next) if !hits.is_empty() => cursor = Some(next.to_string()),
            _ => break,
        }
        assert!(pages <= 11, "more pages than lines: {}", brief(&body));
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "indexed more than once: {doubled:?}");
    let mut missing = Vec::new();
    for seq in 0..LINES {
        let service = SERVICES[(seq % 4) as usize];
        if !seen.contains_key(&message(service, seq)) {
            missing.push(seq);
        }
    }
    assert!(
        missing.is_empty(),
        "{} lines missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(seen.len() as u64, LINES);
}

fn message(file: &str, seq: u64) -> String {
    format!(
        "{file} seq={seq:06} payload {}",
        "x".repeat((seq % 50) as usize)
    )
}

/// Writes the numbered lines round-robin over the files at about 10,000 lines a second,
/// sometimes in two writes that split a line, as a real writer's buffer boundaries do.
fn write_lines(paths: &[std::path::PathBuf], written: &AtomicU64) {
    let mut files: Vec<_> = paths
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap()
        })
        .collect();
    let mut seq = 0;
    while seq < LINES {
        for _ in 0..100 {
            let i = (seq % 4) as usize;
            let line = format!(
                "2026-11-22T10:00:00.{:06}Z: {}\n",
                seq % 1_000_000,
                message(SERVICES[i], seq)
            );
            if seq % 7 == 0 {
                let (a, b) = line.split_at(line.len() / 2);
                files[i].write_all(a.as_bytes()).unwrap();
                files[i].flush().unwrap();
                files[i].write_all(b.as_bytes()).unwrap();
            } else {
                files[i].write_all(line.as_bytes()).unwrap();
            }
            seq += 1;
            written.store(seq, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
