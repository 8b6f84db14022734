//! The connection pool with a real MariaDB: a client's server connection is
//! reused by the next client (same server thread), with the session state of
//! the previous one gone; COM_CHANGE_USER carries another user's login; the
//! no-change-user mode checks credentials itself; dead pooled connections
//! are never handed out.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql_proxy_tests::{mariadb_cli, MariaDb, Proxy, TEST_PASSWORD, TEST_USER};

fn pooled_proxy(server: &MariaDb, extra: &[&str]) -> Proxy {
    let mut builder = Proxy::builder()
        .backend(server.addr())
        .plugins(&["proxy", "admin"])
        .arg("--proxy-pool-max-idle=4");
    for arg in extra {
        builder = builder.arg(*arg);
    }
    builder
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"))
}

/// Leaves state behind in a session: a user variable and a temporary table.
fn leave_state(conn: &mut mysql::Conn) -> u32 {
    conn.query_drop("SET @left_behind = 42").unwrap();
    conn.query_drop("CREATE TEMPORARY TABLE test.left_behind (a INT)")
        .unwrap();
    connection_id(conn)
}

fn connection_id(conn: &mut mysql::Conn) -> u32 {
    conn.query_first("SELECT CONNECTION_ID()").unwrap().unwrap()
}

/// What the `mariadb` CLI says when the test user logs in with `password`.
fn test_user_login_error(proxy: &Proxy, password: &str) -> String {
    let out = mariadb_cli(
        proxy.proxy_port(),
        TEST_USER,
        Some(password),
        &["-e", "select 1"],
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clean(conn: &mut mysql::Conn) {
    let variable: Option<Option<u32>> = conn.query_first("SELECT @left_behind").unwrap();
    assert_eq!(variable, Some(None), "user variable leaked");
    let error = conn
        .query_drop("SELECT * FROM test.left_behind")
        .unwrap_err();
    assert!(error.to_string().contains("doesn't exist"), "{error}");
}

/// How soon a client's server connection is back in the pool.
const IDLE_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn the_next_client_reuses_the_server_connection_with_a_clean_session() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &[]);

    let mut first = proxy.endpoint().root_conn();
    let thread_id = leave_state(&mut first);
    drop(first);
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);

    let mut second = proxy.endpoint().root_conn();
    let reused = connection_id(&mut second);
    assert_eq!(reused, thread_id, "same server thread");
    assert_clean(&mut second);
    drop(second);

    // Another user logs in on it through COM_CHANGE_USER.
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let mut other = proxy.endpoint().user_conn();
    let reused = connection_id(&mut other);
    assert_eq!(reused, thread_id);
    let user: String = other.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert!(user.starts_with(&format!("{TEST_USER}@")), "{user}");
    drop(other);

    // A wrong password is refused by the server, pooled connection or not.
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let stderr = test_user_login_error(&proxy, "wrong");
    assert!(stderr.contains("ERROR 1045"), "{stderr}");
}

#[test]
fn a_pooled_connection_the_server_closed_is_never_handed_out() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &[]);

    let mut first = proxy.endpoint().root_conn();
    let thread_id = connection_id(&mut first);
    drop(first);
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    server
        .root_conn()
        .query_drop(format!("KILL {thread_id}"))
        .unwrap();
    thread::sleep(Duration::from_millis(200));

    let mut next = proxy.endpoint().root_conn();
    let fresh = connection_id(&mut next);
    assert_ne!(fresh, thread_id);
}

#[test]
fn without_change_user_only_the_same_login_is_let_in() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &["--proxy-pool-no-change-user"]);

    let mut first = proxy.endpoint().root_conn();
    let thread_id = leave_state(&mut first);
    drop(first);
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);

    // The same login: same server thread, session reset.
    let mut second = proxy.endpoint().root_conn();
    let reused = connection_id(&mut second);
    assert_eq!(reused, thread_id);
    assert_clean(&mut second);
    drop(second);

    // Another user cannot take it over.
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let stderr = test_user_login_error(&proxy, TEST_PASSWORD);
    assert!(
        stderr.contains("ERROR 1045") && stderr.contains("(proxy-pool) login failed"),
        "{stderr}"
    );
}
