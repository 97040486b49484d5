//! `/api/search`, `/healthz`, the `search` command and the daemon's life cycle, as a user
//! sees them: exact hits, totals, orders, errors, exit codes and signals.

use std::fs;
use std::time::Duration;

use crate::harness::{append, get_status, messages, Project};

/// Three services with fixed timestamps a minute apart, so order and ranges are exact.
fn seeded() -> Project {
    seeded_with("")
}

/// [`seeded`] with more configuration lines (see [`Project::new`]).
pub fn seeded_with(extra: &str) -> Project {
    let p = Project::new(extra);
    append(
        &p.log("duck-out.log"),
        "2026-11-22T10:00:00: duck starting\n\
         2026-11-22T10:03:00: duck request timeout from upstream\n\
         2026-11-22T10:06:00: duck done\n",
    );
    append(
        &p.log("duck-error.log"),
        "2026-11-22T10:01:00: ERROR upstream timeout after 30s\n\
         2026-11-22T10:04:00: WARN retrying upstream\n",
    );
    append(
        &p.log("api-out-0.log"),
        "2026-11-22T10:02:00: api timeout waiting for db\n\
         2026-11-22T10:05:00: INFO api upstream healthy\n",
    );
    p
}

#[test]
fn search_answers_exact_totals_in_timeline_order() {
    let p = seeded();
    let d = p.start();
    let all = d.wait_total(&[], 7, 20);
    // Newest first by default.
    assert_eq!(
        messages(&all),
        [
            "duck done",
            "INFO api upstream healthy",
            "WARN retrying upstream",
            "duck request timeout from upstream",
            "api timeout waiting for db",
            "ERROR upstream timeout after 30s",
            "duck starting",
        ]
    );
    let hit = &all["hits"][1];
    assert_eq!(hit["ts"], "2026-11-22T10:05:00.000000Z");
    assert_eq!(hit["service"], "api");
    assert_eq!(hit["instance"], 0);
    assert_eq!(hit["stream"], "out");
    assert_eq!(hit["level"], "info");
    assert_eq!(hit["kind"], "line");
    assert_eq!(hit["file"], p.log("api-out-0.log").to_str().unwrap());
    // The byte where the line starts: just after the file's first line.
    let first = "2026-11-22T10:02:00: api timeout waiting for db\n";
    assert_eq!(hit["offset"], first.len());
    assert!(all["took_ms"].as_f64().unwrap() >= 0.0);

    // Words are ANDed; AND/OR/NOT and phrases are tantivy's syntax.
    let q = d.search(&[("q", "timeout AND upstream"), ("order", "asc")]);
    assert_eq!(
        messages(&q),
        [
            "ERROR upstream timeout after 30s",
            "duck request timeout from upstream"
        ]
    );
    assert_eq!(q["total"], 2);
    assert_eq!(d.search(&[("q", "timeout upstream")])["total"], 2);
    assert_eq!(d.search(&[("q", "timeout OR healthy")])["total"], 4);
    assert_eq!(d.search(&[("q", "timeout -db")])["total"], 2);
    assert_eq!(d.search(&[("q", "\"upstream healthy\"")])["total"], 1);

    // Filters.
    assert_eq!(d.search(&[("service", "api")])["total"], 2);
    assert_eq!(
        d.search(&[("service", "api"), ("service", "duck")])["total"],
        7
    );
    assert_eq!(d.search(&[("service", "nobody")])["total"], 0);
    assert_eq!(d.search(&[("stream", "err")])["total"], 2);
    assert_eq!(d.search(&[("level", "warn")])["total"], 2);
    let range = d.search(&[
        ("since", "2026-11-22T10:02:00Z"),
        ("until", "2026-11-22T10:04:00Z"),
        ("order", "asc"),
    ]);
    // since is inclusive, until exclusive (like logcli's --from/--to), so adjacent
    // windows never share a line.
    assert_eq!(
        messages(&range),
        [
            "api timeout waiting for db",
            "duck request timeout from upstream"
        ]
    );
    // Relative times: all of these lines are older than an hour.
    assert_eq!(d.search(&[("since", "1h")])["total"], 0);
    assert_eq!(d.search(&[("until", "10 min ago")])["total"], 7);

    // A limit cuts the hits, never the total.
    let two = d.search(&[("limit", "2")]);
    assert_eq!(two["total"], 7);
    assert_eq!(messages(&two), ["duck done", "INFO api upstream healthy"]);
    // The cursor continues where the page ended.
    let next = two["next"].as_str().unwrap().to_string();
    let page2 = d.search(&[("limit", "2"), ("cursor", &next)]);
    assert_eq!(
        messages(&page2),
        [
            "WARN retrying upstream",
            "duck request timeout from upstream"
        ]
    );
    // Limits above the cap are capped, not refused.
    assert_eq!(
        d.search(&[("limit", "1000000")])["hits"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn hostile_parameters_get_a_400_that_says_what_is_wrong() {
    let p = seeded();
    let d = p.start();
    d.wait_total(&[], 7, 20);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("limit", "abc")],
            "parameter \"limit\": \"abc\" is not a number",
        ),
        (
            &[("limit", "-1")],
            "parameter \"limit\": \"-1\" is not a number",
        ),
        (&[("limit", "0")], "parameter \"limit\": must be at least 1"),
        (&[("limit", "99999999999999999999999")], "is not a number"),
        (
            &[("order", "sideways")],
            "parameter \"order\": \"sideways\" is not one of asc, desc",
        ),
        (&[("stream", "stdout")], "parameter \"stream\""),
        (&[("level", "loud")], "parameter \"level\""),
        (&[("kind", "x")], "parameter \"kind\""),
        (&[("since", "yesterday-ish")], "parameter \"since\""),
        (&[("until", "99999999999d")], "parameter \"until\""),
        (
            &[
                ("since", "2026-11-22T11:00:00Z"),
                ("until", "2026-11-22T10:00:00Z"),
            ],
            "later than",
        ),
        (&[("q", "timeout AND (")], "parameter \"q\""),
        (&[("q", "message:[a TO")], "parameter \"q\""),
        (&[("cursor", "../../etc/passwd")], "parameter \"cursor\""),
        (&[("limit", "1"), ("limit", "2")], "may be given only once"),
        (&[("file", "/etc/passwd")], "unknown parameter \"file\""),
        (&[("q\u{0}", "x")], "unknown parameter"),
    ];
    for (query, want) in cases {
        let (status, body) = d.get("/api/search", query);
        assert_eq!(status, 400, "{query:?} → {body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
        assert!(error.contains(want), "{query:?}: {error:?} lacks {want:?}");
    }
    // A raw query string that is not even valid percent-encoding of UTF-8.
    let url = format!("http://{}/api/search?q=%ff%fe&limit=%zz", d.addr);
    let mut resp = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(&url)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert!(body["error"].is_string(), "{body}");
    // Unknown routes are JSON too.
    let (status, body) = d.get("/api/nothing", &[]);
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    // The daemon is still fine after all that.
    assert_eq!(d.search(&[])["total"], 7);
}

#[test]
fn the_search_command_prints_lines_and_exits_0_1_or_2() {
    let p = seeded();
    let d = p.start();
    d.wait_total(&[], 7, 20);
    let addr = d.addr.clone();
    let run = |args: &[&str]| {
        let mut cmd = p.command();
        cmd.env("TZ", "UTC").arg("--addr").arg(&addr).args(args);
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    let (code, out, err) = run(&["search", "timeout AND upstream", "--asc"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "2026-11-22 10:01:00.000 duck err ERROR upstream timeout after 30s\n\
         2026-11-22 10:03:00.000 duck out duck request timeout from upstream\n"
    );
    let (code, out, _) = run(&["search", "timeout", "--service", "api"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "2026-11-22 10:02:00.000 api:0 out api timeout waiting for db\n"
    );
    let (code, out, _) = run(&["search", "", "--stream", "err", "--limit", "1", "--json"]);
    assert_eq!(code, Some(0));
    let hit: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(hit["message"], "WARN retrying upstream");
    assert_eq!(out.lines().count(), 1);

    let (code, out, err) = run(&["search", "nothing-matches-this"]);
    assert_eq!((code, out.as_str(), err.as_str()), (Some(1), "", ""));

    let (code, out, err) = run(&["search", "timeout AND ("]);
    assert_eq!(code, Some(2));
    assert_eq!(out, "");
    assert!(err.starts_with("logagg: "), "{err}");
    assert!(err.contains("parameter \"q\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let (code, _, err) = run(&["search", "x", "--since", "last tuesday-ish"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("since"), "{err}");
}

#[test]
fn client_commands_say_in_one_line_when_no_daemon_answers() {
    let p = Project::new("");
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for how in ["flag", "env"] {
        let mut cmd = p.command();
        match how {
            "flag" => cmd.args(["--addr", &addr]),
            _ => cmd.env("LOGAGG_ADDR", &addr),
        };
        let out = cmd.args(["search", "x"]).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{how}: {err}");
        assert_eq!(err.lines().count(), 1, "{how}: {err}");
        assert!(
            err.starts_with(&format!("logagg: no logagg daemon answers at {addr}")),
            "{how}: {err}"
        );
        assert!(err.contains("logagg daemon"), "{err}");
    }
}

#[test]
fn sigterm_commits_and_exits_0_within_two_seconds_and_a_restart_reads_nothing_twice() {
    let p = seeded();
    let mut d = p.start();
    d.wait_total(&[], 7, 20);
    assert_eq!(get_status(&d.addr, "/healthz"), Some(200));
    let (status, took) = d.terminate();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!p.data_dir().join("api.addr").exists());

    append(
        &p.log("duck-out.log"),
        "2026-11-22T10:07:00: while stopped\n",
    );
    let d = p.start();
    let body = d.wait_total(&[], 8, 20);
    assert_eq!(messages(&body)[0], "while stopped");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(d.search(&[])["total"], 8);
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let p = Project::new("");
    let _d = p.start();
    let out = p
        .command()
        .args(["daemon", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "another logagg daemon is already using {}",
            p.data_dir().join("index").display()
        )),
        "{err}"
    );
    // The first one still has its address file.
    assert!(fs::read_to_string(p.data_dir().join("api.addr")).is_ok());
}
