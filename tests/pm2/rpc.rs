//! `pm2::rpc::RpcClient` against a real PM2 daemon: the replies it parses, the log paths
//! PM2 reports for fork and cluster apps, and what `reloadLogs` does to a renamed file.

use std::fs;
use std::time::Duration;

use logagg::pm2::rpc::{Pm2LogFile, RpcClient, RpcError};
use serde_json::json;

use crate::harness::{pinned_version, read, wait_for_content, AppSpec, Pm2};

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn ping_version_and_errors() {
    let pm2 = Pm2::start();
    let mut client = RpcClient::connect(pm2.home(), TIMEOUT).unwrap();
    client.ping().unwrap();
    assert_eq!(
        client.call("getVersion", json!({})).unwrap(),
        json!(pinned_version())
    );

    let err = client.call("noSuchMethod", json!({})).unwrap_err();
    assert!(
        matches!(&err, RpcError::Remote(m) if m == r#"method "noSuchMethod" does not exist"#),
        "{err:?}"
    );
    // A method that fails with an Error: PM2 sends its message (and a stack, ignored).
    let err = client.call("stopProcessId", json!(5555)).unwrap_err();
    assert!(
        matches!(&err, RpcError::Remote(m) if m == "5555 : id unknown"),
        "{err:?}"
    );

    // Errors leave the connection usable; an idle daemon has nothing to list or reload.
    client.ping().unwrap();
    assert_eq!(client.log_files().unwrap(), vec![]);
    client.reload_logs().unwrap();
}

#[test]
fn log_files_of_fork_apps() {
    let pm2 = Pm2::start();
    let custom = pm2.apps_dir().join("custom");
    pm2.start_say_app(&AppSpec::fork("web"));
    // PM2 turns every character but letters, digits, `.` and `-` into `-`.
    pm2.start_say_app(&AppSpec::fork("my_app.v2"));
    pm2.start_say_app(&AppSpec {
        out_file: Some(custom.join("quiet.out.log")),
        error_file: Some("/dev/null".into()),
        log_file: Some(custom.join("all.log")),
        time: true,
        ..AppSpec::fork("quiet")
    });

    let mut client = RpcClient::connect(pm2.home(), TIMEOUT).unwrap();
    assert_eq!(
        client.log_files().unwrap(),
        vec![
            Pm2LogFile {
                name: "web".into(),
                pm_id: 0,
                out: Some(pm2.log("web-out.log")),
                err: Some(pm2.log("web-error.log")),
                combined: None,
                cluster: false,
            },
            Pm2LogFile {
                name: "my_app.v2".into(),
                pm_id: 1,
                out: Some(pm2.log("my-app.v2-out.log")),
                err: Some(pm2.log("my-app.v2-error.log")),
                combined: None,
                cluster: false,
            },
            Pm2LogFile {
                name: "quiet".into(),
                pm_id: 2,
                out: Some(custom.join("quiet.out.log")),
                err: None,
                combined: Some(custom.join("all.log")),
                cluster: false,
            },
        ]
    );
}

#[test]
fn log_files_of_cluster_apps() {
    let pm2 = Pm2::start();
    let custom = pm2.apps_dir().join("custom");
    pm2.start_say_app(&AppSpec::cluster("api", 2));
    pm2.start_say_app(&AppSpec {
        out_file: Some(custom.join("worker.log")),
        // Not ending in `.log`: PM2 adds no `-<pm_id>`, so both workers share it.
        error_file: Some(custom.join("worker-errors.txt")),
        ..AppSpec::cluster("worker", 2)
    });
    pm2.start_say_app(&AppSpec {
        merge_logs: Some(true),
        ..AppSpec::cluster("merged", 2)
    });

    let mut client = RpcClient::connect(pm2.home(), TIMEOUT).unwrap();
    let file = |name: &str, pm_id, out, err| Pm2LogFile {
        name: name.into(),
        pm_id,
        out: Some(out),
        err: Some(err),
        combined: None,
        cluster: true,
    };
    assert_eq!(
        client.log_files().unwrap(),
        vec![
            file(
                "api",
                0,
                pm2.log("api-out-0.log"),
                pm2.log("api-error-0.log")
            ),
            file(
                "api",
                1,
                pm2.log("api-out-1.log"),
                pm2.log("api-error-1.log")
            ),
            file(
                "worker",
                2,
                custom.join("worker-2.log"),
                custom.join("worker-errors.txt")
            ),
            file(
                "worker",
                3,
                custom.join("worker-3.log"),
                custom.join("worker-errors.txt")
            ),
            file(
                "merged",
                4,
                pm2.log("merged-out.log"),
                pm2.log("merged-error.log")
            ),
            file(
                "merged",
                5,
                pm2.log("merged-out.log"),
                pm2.log("merged-error.log")
            ),
        ]
    );
}

#[test]
fn reload_logs_reopens_renamed_files_in_fork_mode() {
    let mut pm2 = Pm2::start();
    pm2.start_say_app(&AppSpec::fork("web"));
    let (out, err) = (pm2.log("web-out.log"), pm2.log("web-error.log"));
    pm2.say(0, &["before 1", "err:before oops", "before 2"]);
    wait_for_content(&out, "before 1\nbefore 2\n");
    wait_for_content(&err, "before oops\n");

    let (out_old, err_old) = (pm2.log("web-out.log.1"), pm2.log("web-error.log.1"));
    fs::rename(&out, &out_old).unwrap();
    fs::rename(&err, &err_old).unwrap();
    // Without a reload PM2 keeps writing into the renamed files.
    pm2.say(0, &["renamed 1"]);
    wait_for_content(&out_old, "before 1\nbefore 2\nrenamed 1\n");
    assert!(!out.exists());

    let mut client = RpcClient::connect(pm2.home(), TIMEOUT).unwrap();
    client.reload_logs().unwrap();
    // In fork mode the daemon has swapped its streams before it replies, so what the app
    // prints from now on goes to the new files.
    pm2.say(0, &["after 1", "err:after oops", "after 2"]);
    wait_for_content(&out, "after 1\nafter 2\n");
    wait_for_content(&err, "after oops\n");
    assert_eq!(read(&out_old), "before 1\nbefore 2\nrenamed 1\n");
    assert_eq!(read(&err_old), "before oops\n");
}

#[test]
fn reload_logs_reopens_renamed_files_in_cluster_mode() {
    let mut pm2 = Pm2::start();
    pm2.start_say_app(&AppSpec::cluster("api", 2));
    let out = [pm2.log("api-out-0.log"), pm2.log("api-out-1.log")];
    pm2.say(0, &["zero before"]);
    pm2.say(1, &["one before"]);
    wait_for_content(&out[0], "zero before\n");
    wait_for_content(&out[1], "one before\n");

    let old = [pm2.log("api-out-0.log.1"), pm2.log("api-out-1.log.1")];
    fs::rename(&out[0], &old[0]).unwrap();
    fs::rename(&out[1], &old[1]).unwrap();
    let mut client = RpcClient::connect(pm2.home(), TIMEOUT).unwrap();
    client.reload_logs().unwrap();
    // Each worker reopens its own files when the daemon's message reaches it, after the
    // RPC reply, and then says so in the new file: only that line tells the switch is
    // done.
    wait_for_content(&out[0], "Reloading log...\n");
    wait_for_content(&out[1], "Reloading log...\n");
    pm2.say(0, &["zero after"]);
    pm2.say(1, &["one after"]);
    wait_for_content(&out[0], "Reloading log...\nzero after\n");
    wait_for_content(&out[1], "Reloading log...\none after\n");
    assert_eq!(read(&old[0]), "zero before\n");
    assert_eq!(read(&old[1]), "one before\n");
}

#[test]
fn no_daemon_is_not_running() {
    let empty = tempfile::tempdir().unwrap();
    let err = RpcClient::connect(empty.path(), TIMEOUT).unwrap_err();
    assert!(matches!(err, RpcError::NotRunning { .. }), "{err:?}");

    // A daemon that was there and is gone.
    let mut pm2 = Pm2::start();
    let mut client = RpcClient::connect(pm2.home(), TIMEOUT).unwrap();
    client.ping().unwrap();
    pm2.kill();
    let err = client.ping().unwrap_err();
    assert!(
        matches!(err, RpcError::Io(_) | RpcError::NotRunning { .. }),
        "{err:?}"
    );
    let err = client.ping().unwrap_err();
    assert!(matches!(err, RpcError::NotRunning { .. }), "{err:?}");
    let err = RpcClient::connect(pm2.home(), TIMEOUT).unwrap_err();
    assert!(matches!(err, RpcError::NotRunning { .. }), "{err:?}");
}
