//! The admin plugin through real clients: its tables, its login check, and
//! the start-up errors of a misconfigured admin plugin.

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql_proxy_tests::{
    build_dir, expect_success, free_port, mariadb_cli, spawn_expect_exit, MariaDb, Proxy,
};

fn proxy_with_admin(backend: &MariaDb) -> Proxy {
    Proxy::builder()
        .backend(backend.addr())
        .plugins(&["proxy", "admin"])
        .admin_credentials("admin", "secret")
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"))
}

fn admin_query(proxy: &Proxy, password: &str, sql: &str) -> std::process::Output {
    mariadb_cli(proxy.admin_port(), "admin", Some(password), &["-e", sql])
}

#[test]
fn backends_table_follows_clients() {
    let server = MariaDb::start();
    let proxy = proxy_with_admin(&server);

    let out = expect_success(
        "select * from backends",
        &admin_query(&proxy, "secret", "select * from backends"),
    );
    let mut lines = out.lines();
    // MySQL Proxy's columns first, then this proxy's counters.
    assert_eq!(
        lines.next(),
        Some(
            "backend_ndx\taddress\tstate\ttype\tuuid\tconnected_clients\tweight\tidle_connections\t\
             connects\t\
             connect_failures\tqueries\tbytes\terrors\tstate_age_s\tstate_reason"
        )
    );
    // The harness's readiness probe may already have reached the backend,
    // so it is `unknown` or `up`; no client holds it.
    let row = lines.next().unwrap_or_default();
    let address = server.addr();
    assert!(
        row.starts_with(&format!("1\t{address}\tunknown\trw\tNULL\t0\t1\t"))
            || row.starts_with(&format!("1\t{address}\tup\trw\tNULL\t0\t1\t")),
        "{out}"
    );

    // A client connected through the proxy is counted, and the backend is up.
    let mut client = proxy.endpoint().root_conn();
    client.query_drop("SELECT 1").unwrap();
    let out = expect_success(
        "backends",
        &admin_query(&proxy, "secret", "SELECT * FROM backends;"),
    );
    assert!(
        out.contains(&format!("1\t{}\tup\trw\tNULL\t1\t", server.addr())),
        "{out}"
    );
    drop(client);

    // The Rust client crate reads the same table with typed columns.
    let mut admin = proxy
        .admin_endpoint()
        .connect(proxy.admin_endpoint().opts("admin", Some("secret")));
    let rows: Vec<mysql::Row> = admin.query("SELECT * FROM backends").unwrap();
    assert_eq!(rows.len(), 1);
    let ndx: u32 = rows[0].get("backend_ndx").unwrap();
    let address: String = rows[0].get("address").unwrap();
    let queries: u64 = rows[0].get("queries").unwrap();
    assert_eq!((ndx, address.as_str()), (1, server.addr().as_str()));
    assert!(queries >= 1, "the SELECT 1 was counted");
}

#[test]
fn help_lists_the_commands_and_anything_else_points_to_it() {
    let server = MariaDb::start();
    let proxy = proxy_with_admin(&server);

    let out = expect_success("help", &admin_query(&proxy, "secret", "select * from help"));
    assert!(out.starts_with("command\tdescription\n"), "{out}");
    assert!(out.contains("SELECT * FROM backends\t"), "{out}");
    assert!(out.contains("SELECT * FROM help\t"), "{out}");

    let out = admin_query(&proxy, "secret", "select 1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR 1105")
            && stderr.contains("use 'SELECT * FROM help' to see the supported commands"),
        "{stderr}"
    );
}

#[test]
fn wrong_password_or_user_is_refused_with_1045() {
    let server = MariaDb::start();
    let proxy = proxy_with_admin(&server);

    let out = admin_query(&proxy, "wrong", "select * from help");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR 1045 (28000)"), "{stderr}");

    let out = mariadb_cli(
        proxy.admin_port(),
        "root",
        Some("secret"),
        &["-e", "select * from help"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR 1045 (28000)"), "{stderr}");

    // The proxy keeps serving others.
    expect_success(
        "after refusals",
        &admin_query(&proxy, "secret", "select * from help"),
    );
}

#[test]
fn admin_plugin_requires_its_credentials() {
    let plugin_dir = format!("--plugin-dir={}", build_dir().display());
    let address = format!("--admin-address=127.0.0.1:{}", free_port());
    let run = |extra: &[&str]| {
        let mut args = vec![plugin_dir.as_str(), "--plugins=admin", address.as_str()];
        args.extend_from_slice(extra);
        spawn_expect_exit(&args, Duration::from_secs(20))
    };

    let (status, _, stderr) = run(&[]);
    assert!(!status.success());
    assert!(
        stderr.contains("--admin-username needs to be set"),
        "{stderr}"
    );

    let (status, _, stderr) = run(&["--admin-username=admin"]);
    assert!(!status.success());
    assert!(
        stderr.contains("--admin-password cannot be empty"),
        "{stderr}"
    );
}
