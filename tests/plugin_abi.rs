//! The plugin ABI across releases: a plugin built against the previous
//! release (tests/fixtures/old-abi-plugin, on the frozen copy
//! tests/fixtures/plugin-abi-0.2.0) loads into this host and works with a
//! real client and server; a plugin of an incompatible release is refused
//! at start-up with one line naming it and the reason.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql_proxy_tests::{
    build_dir, build_fixture_plugin, free_port, spawn_expect_exit, Endpoint, MariaDb, Proxy,
};

#[test]
fn a_plugin_of_the_previous_abi_release_loads_and_runs() {
    let plugins = tempfile::tempdir().expect("tempdir");
    build_fixture_plugin("old-abi-plugin", "oldabi", &[], plugins.path());
    let server = MariaDb::start();
    let port = free_port();
    let proxy = Proxy::builder()
        .plugins(&["oldabi"])
        .arg(format!("--plugin-dir={}", plugins.path().display()))
        .arg(format!("--oldabi-address=127.0.0.1:{port}"))
        .arg(format!("--oldabi-backend={}", server.addr()))
        .wait_for_port(port)
        .start()
        .expect("the host loads a plugin of the previous ABI release");

    let mut conn = Endpoint::local(port).root_conn();
    // Forwarded to the server.
    let answer: u32 = conn.query_first("SELECT 6 * 7").unwrap().unwrap();
    assert_eq!(answer, 42);
    // The session's accessors.
    conn.select_db("mysql").unwrap();
    let (id, user, db, backend): (u64, String, String, String) =
        conn.query_first("SELECT 'who'").unwrap().unwrap();
    assert!(id > 0);
    assert_eq!(
        (user.as_str(), db.as_str(), backend.as_str()),
        ("root", "mysql", "0")
    );
    // An injected query and its result's accessors.
    let described: String = conn.query_first("SELECT 'inject'").unwrap().unwrap();
    assert_eq!(described, "id=7 kind=rs rows=2");
    // The backends' views.
    let backends: String = conn.query_first("SELECT 'backends'").unwrap().unwrap();
    assert_eq!(backends, format!("{}=up", server.addr()));
    // The session's setter: the connection closes after the reply.
    let bye: String = conn.query_first("SELECT 'bye'").unwrap().unwrap();
    assert_eq!(bye, "bye");
    assert!(
        conn.query_drop("SELECT 1").is_err(),
        "closed after the reply"
    );
    drop(proxy);
}

#[test]
fn a_plugin_of_an_incompatible_abi_is_refused_with_the_reason() {
    let version_dir = tempfile::tempdir().expect("tempdir");
    let layout_dir = tempfile::tempdir().expect("tempdir");
    // One test builds both variants, one after the other (same target dir).
    let by_version = build_fixture_plugin(
        "incompatible-plugin",
        "incompatible",
        &[],
        version_dir.path(),
    );
    let by_layout = build_fixture_plugin(
        "incompatible-plugin",
        "incompatible",
        &["layout"],
        layout_dir.path(),
    );

    let refusal = |dir: &std::path::Path| {
        let plugin_dir = format!("--plugin-dir={}", dir.display());
        let (status, _, stderr) = spawn_expect_exit(
            &[plugin_dir.as_str(), "--plugins=incompatible"],
            Duration::from_secs(30),
        );
        assert_eq!(status.code(), Some(1), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        lines[0].to_string()
    };
    let line = refusal(version_dir.path());
    assert!(
        line.ends_with(&format!(
            "plugin incompatible: {} was built against an incompatible plugin ABI: \
             the plugin has ABI version 99.0.0, this mysql-proxy needs one compatible with {}",
            by_version.display(),
            abi_version()
        )),
        "{line}"
    );
    let line = refusal(layout_dir.path());
    let prefix = format!(
        "plugin incompatible: {} was built against an incompatible plugin ABI: ",
        by_layout.display()
    );
    let reason = line.split_once(&prefix).map(|(_, reason)| reason);
    assert!(
        reason.is_some_and(|r| !r.is_empty() && r.len() < 250),
        "{line}"
    );
}

/// The plugin-ABI version the binary reports in `--version`.
fn abi_version() -> String {
    let plugin_dir = format!("--plugin-dir={}", build_dir().display());
    let (_, stdout, _) = spawn_expect_exit(
        &[plugin_dir.as_str(), "--plugins=", "--version"],
        Duration::from_secs(30),
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("  plugin-abi: "))
        .expect("--version names the plugin ABI")
        .to_string()
}
