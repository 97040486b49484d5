//! The configuration as the binary applies it: precedence, `config check`, and a bad
//! file or variable refused at start with the file, line and key named.

use std::fs;

use crate::harness::{Project, BIN};

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .current_dir(dir)
        .env_remove("LOGAGG_CONFIG")
        .env_remove("LOGAGG_ADDR")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn defaults_then_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No file at all: built-in defaults, relative to the working directory.
    let (code, out, _) = run(d, &["config", "check"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("data_dir = \"{}/logs/logagg\"", d.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("paths = [\"{}/logs/pm2/*.log\"]", d.display())),
        "{out}"
    );
    assert!(out.contains("listen = \"127.0.0.1:9171\""), "{out}");
    assert!(out.contains("No config file was read."), "{out}");

    // config/logagg.toml under the working directory is found by itself.
    fs::create_dir(d.join("config")).unwrap();
    fs::write(
        d.join("config/logagg.toml"),
        "[index]\nretention = \"7d\"\ncommit_interval = \"2s\"\n",
    )
    .unwrap();
    let (_, out, _) = run(d, &["config", "check"], &[]);
    assert!(out.contains("retention = \"7d\""), "{out}");

    // LOGAGG_CONFIG names another file; --config beats it.
    fs::write(d.join("env.toml"), "[index]\nretention = \"2d\"\n").unwrap();
    fs::write(d.join("flag.toml"), "[index]\nretention = \"3d\"\n").unwrap();
    let (_, out, _) = run(d, &["config", "check"], &[("LOGAGG_CONFIG", "env.toml")]);
    assert!(out.contains("retention = \"2d\""), "{out}");
    let (_, out, _) = run(
        d,
        &["--config", "flag.toml", "config", "check"],
        &[("LOGAGG_CONFIG", "env.toml")],
    );
    assert!(out.contains("retention = \"3d\""), "{out}");

    // Environment beats the file; a list is comma-separated.
    let (_, out, _) = run(
        d,
        &["config", "check"],
        &[
            ("LOGAGG_INDEX_RETENTION", "12h"),
            ("LOGAGG_SOURCES_PATHS", "a/*.log,/abs/*.log"),
            ("LOGAGG_API_LISTEN", "127.0.0.1:9999"),
        ],
    );
    assert!(out.contains("retention = \"12h\""), "{out}");
    assert!(out.contains("commit_interval = \"2s\""), "{out}");
    assert!(
        out.contains(&format!(
            "paths = [\"{}/a/*.log\", \"/abs/*.log\"]",
            d.display()
        )),
        "{out}"
    );
    assert!(out.contains("listen = \"127.0.0.1:9999\""), "{out}");
}

#[test]
fn a_bad_file_is_refused_with_its_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "data_dir = \"x\"\n[index]\nretention = \"30 parsecs\"\n",
            "bad.toml:3:13: key \"index.retention\": invalid duration \"30 parsecs\"",
        ),
        (
            "[index]\nretentoin = \"3d\"\n",
            "bad.toml:2:1: unknown key \"index.retentoin\"",
        ),
        (
            "[sources]\nmax_line_bytes = \"lots\"\n",
            "bad.toml:2:18: key \"sources.max_line_bytes\": invalid size \"lots\"",
        ),
        ("[index\n", "bad.toml:1:7: syntax error"),
        (
            "[nosuch]\nx = 1\n",
            "bad.toml:1:2: unknown table \"nosuch\"",
        ),
        (
            "[api]\nlisten = 9171\n",
            "bad.toml:2:10: key \"api.listen\"",
        ),
    ];
    for (text, want) in cases {
        fs::write(d.join("bad.toml"), text).unwrap();
        for args in [
            &["--config", "bad.toml", "config", "check"][..],
            &["--config", "bad.toml", "daemon"][..],
        ] {
            let (code, out, err) = run(d, args, &[]);
            assert_eq!(code, 2, "{args:?} {text:?}: {err}");
            assert_eq!(out, "");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.starts_with(&format!("logagg: {want}")),
                "{text:?}: got {err:?}, want {want:?}"
            );
        }
    }
    // Nothing was started: no data_dir was created.
    assert!(!d.join("x").exists());
    // A missing file named on purpose is an error too.
    let (code, _, err) = run(d, &["--config", "nope.toml", "config", "check"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("nope.toml"), "{err}");
}

#[test]
fn a_bad_environment_variable_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(dir.path(), &["daemon"], &[("LOGAGG_INDEX_RETENTON", "7d")]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("logagg: environment variable LOGAGG_INDEX_RETENTON: unknown key"),
        "{err}"
    );
    let (code, _, err) = run(
        dir.path(),
        &["config", "check"],
        &[("LOGAGG_INDEX_COMMIT_INTERVAL", "soon")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("LOGAGG_INDEX_COMMIT_INTERVAL"), "{err}");
}

#[test]
fn flags_beat_everything_and_the_daemon_uses_them() {
    let p = Project::new("");
    let state = p.path().join("elsewhere");
    let child = p
        .command()
        .env("LOGAGG_API_LISTEN", "127.0.0.1:1")
        .args(["daemon", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&state)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child);
    let addr_file = state.join("api.addr");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !addr_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no api.addr in --data-dir"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let addr = fs::read_to_string(&addr_file).unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_ne!(addr.trim(), "127.0.0.1:1");
}

/// Ends a daemon started by hand, however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
