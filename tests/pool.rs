//! The connection pool with a real MariaDB: a client's server connection is
//! reused by the next client (same server thread), with the session state of
//! the previous one gone; COM_CHANGE_USER carries another user's login; the
//! no-change-user mode checks credentials itself; dead pooled connections
//! are never handed out.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::TcpStream;
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

/// A client logs in, runs `session` (which returns its server thread id),
/// and leaves; returns the thread id once its connection is in the pool.
fn pool_one_connection(proxy: &Proxy, session: fn(&mut mysql::Conn) -> u32) -> u32 {
    let mut client = proxy.endpoint().root_conn();
    let thread_id = session(&mut client);
    drop(client);
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    thread_id
}

#[test]
fn the_next_client_reuses_the_server_connection_with_a_clean_session() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &[]);

    let thread_id = pool_one_connection(&proxy, leave_state);

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

/// A client of the user a pooled connection is logged in as, with the same
/// password, character set and attributes, logs in on it without the
/// server: the connection was reset when it was pooled (and its database
/// noted then), so there is nothing for a COM_CHANGE_USER to do but a round
/// trip. MariaDB's counts of admin commands (where COM_CHANGE_USER counts)
/// and of database changes (COM_INIT_DB) do not move; a client asking for
/// another database than the one a `USE` left gets it with COM_INIT_DB; its
/// session is clean. Another user still goes through COM_CHANGE_USER.
#[test]
fn a_returning_user_logs_in_on_its_pooled_connection_without_the_server() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &[]);
    let thread_id = pool_one_connection(&proxy, leave_state);
    // MariaDB counts COM_CHANGE_USER among its admin commands (as it does
    // the COM_RESET_CONNECTION of a connection being pooled: each count is
    // taken while no connection is being parked), read on one connection
    // (a new one would count its own set-up).
    let mut direct = server.root_conn();
    let mut counts = || -> (u64, u64) {
        let rows: Vec<(String, u64)> = direct
            .query(
                "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME IN ('COM_ADMIN_COMMANDS', 'COM_CHANGE_DB') \
                 ORDER BY VARIABLE_NAME",
            )
            .unwrap();
        (rows[0].1, rows[1].1)
    };
    let before = counts();

    // Same login, same database (`test`, where the first client was).
    let mut again = proxy.endpoint().root_conn();
    assert_eq!(connection_id(&mut again), thread_id, "same server thread");
    assert_clean(&mut again);
    assert_eq!(
        counts(),
        before,
        "the returning user's login went to the server"
    );
    again.query_drop("USE mysql").unwrap();
    drop(again);

    // Parked in `mysql` (by a `USE` the proxy does not see); the next one
    // asks for `test` and gets it with COM_INIT_DB, still no COM_CHANGE_USER.
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let (admin_before, db_changes_before) = counts();
    let mut in_test = proxy.endpoint().root_conn();
    assert_eq!(connection_id(&mut in_test), thread_id);
    let db: Option<String> = in_test.query_first("SELECT DATABASE()").unwrap().unwrap();
    assert_eq!(db.as_deref(), Some("test"));
    assert_eq!(counts(), (admin_before, db_changes_before + 1));
    drop(in_test);

    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let (admin_before, _) = counts();
    let mut other = proxy.endpoint().user_conn();
    assert_eq!(connection_id(&mut other), thread_id);
    assert_eq!(
        counts().0,
        admin_before + 1,
        "no COM_CHANGE_USER for another user"
    );
}

#[test]
fn a_pooled_connection_the_server_closed_is_never_handed_out() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &[]);

    let thread_id = pool_one_connection(&proxy, connection_id);
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
fn idle_pooled_connections_are_closed_without_traffic() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(
        &server,
        &["--proxy-pool-idle-timeout=1", "--proxy-pool-min-idle=1"],
    );
    let proxy_threads_on_server = || -> Vec<u32> {
        let mut check = server.root_conn();
        let own = connection_id(&mut check);
        check
            .query::<u32, _>("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'root'")
            .unwrap()
            .into_iter()
            .filter(|&id| id != own)
            .collect()
    };

    let clients: Vec<_> = (0..3).map(|_| proxy.endpoint().root_conn()).collect();
    drop(clients);
    proxy.wait_for_backend(1, "idle_connections", "3", IDLE_WITHIN);
    let aborted = server.global_status("Aborted_clients");

    // No traffic: past the idle timeout, all but min_idle are closed, each
    // with a goodbye (not counted as an aborted client by the server).
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let kept = proxy_threads_on_server();
    assert_eq!(kept.len(), 1, "server threads of the proxy: {kept:?}");
    assert_eq!(server.global_status("Aborted_clients"), aborted);

    // The kept one is killed by the server: it goes too.
    server
        .root_conn()
        .query_drop(format!("KILL {}", kept[0]))
        .unwrap();
    proxy.wait_for_backend(1, "idle_connections", "0", IDLE_WITHIN);
}

#[test]
fn pooled_connections_say_goodbye_when_the_proxy_stops() {
    let server = MariaDb::start();
    let mut proxy = pooled_proxy(&server, &[]);
    let clients: Vec<_> = (0..2).map(|_| proxy.endpoint().root_conn()).collect();
    drop(clients);
    proxy.wait_for_backend(1, "idle_connections", "2", IDLE_WITHIN);
    let aborted = server.global_status("Aborted_clients");

    proxy.signal(libc::SIGTERM);
    assert!(proxy.wait_exit(Duration::from_secs(10)).success());
    // Once the server has seen both connections end:
    let began = std::time::Instant::now();
    while server.global_status("Threads_connected") > 1 {
        assert!(began.elapsed() < IDLE_WITHIN, "server connections linger");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.global_status("Aborted_clients"), aborted);
}

#[test]
fn a_client_that_leaves_before_logging_in_gives_the_pooled_connection_back() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &[]);
    let thread_id = pool_one_connection(&proxy, connection_id);

    // A port check: connect, read the greeting (the pooled connection's,
    // so the session holds it now), close.
    let mut probe = TcpStream::connect(("127.0.0.1", proxy.proxy_port())).unwrap();
    let mut header = [0u8; 4];
    probe.read_exact(&mut header).unwrap();
    assert_eq!(proxy.backend_row(1)["idle_connections"], "0");
    drop(probe);

    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let mut next = proxy.endpoint().root_conn();
    assert_eq!(
        connection_id(&mut next),
        thread_id,
        "the same server thread"
    );
}

#[test]
fn locks_a_client_left_behind_are_released_when_its_connection_is_pooled() {
    let server = MariaDb::start();
    server
        .root_conn()
        .query_drop("CREATE TABLE test.pool_lock_tables (id INT PRIMARY KEY) ENGINE=InnoDB")
        .unwrap();
    let proxy = pooled_proxy(&server, &[]);

    let mut locker = proxy.endpoint().root_conn();
    locker
        .query_drop("LOCK TABLES test.pool_lock_tables WRITE")
        .unwrap();
    let got: u32 = locker
        .query_first("SELECT GET_LOCK('pool_user_lock', 0)")
        .unwrap()
        .unwrap();
    assert_eq!(got, 1);
    drop(locker);
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);

    // Neither lock is held by the pooled connection while it waits.
    let mut other = server.root_conn();
    other
        .query_drop("SET SESSION lock_wait_timeout = 2")
        .unwrap();
    other
        .query_drop("INSERT INTO test.pool_lock_tables VALUES (1)")
        .unwrap();
    let free: u32 = other
        .query_first("SELECT IS_FREE_LOCK('pool_user_lock')")
        .unwrap()
        .unwrap();
    assert_eq!(free, 1);
}

#[test]
fn without_change_user_only_the_same_login_is_let_in() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &["--proxy-pool-no-change-user"]);

    let thread_id = pool_one_connection(&proxy, leave_state);

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
    // The refused client was never logged in on it: it stays pooled.
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let mut again = proxy.endpoint().root_conn();
    assert_eq!(connection_id(&mut again), thread_id);
}

#[test]
fn a_client_leaving_mid_transaction_does_not_pool_its_locks() {
    let server = MariaDb::start();
    server
        .root_conn()
        .query_drop("CREATE TABLE test.pool_locks (id INT PRIMARY KEY, n INT) ENGINE=InnoDB")
        .unwrap();
    server
        .root_conn()
        .query_drop("INSERT INTO test.pool_locks VALUES (1, 0)")
        .unwrap();
    let proxy = pooled_proxy(&server, &[]);
    let aborted = server.global_status("Aborted_clients");

    let mut locker = proxy.endpoint().root_conn();
    let thread_id = connection_id(&mut locker);
    locker.query_drop("BEGIN").unwrap();
    locker
        .query_drop("UPDATE test.pool_locks SET n = 1 WHERE id = 1")
        .unwrap();
    drop(locker);

    // The server connection is closed, not pooled: the server rolls back
    // and the row lock is gone at once.
    let mut other = server.root_conn();
    other
        .query_drop("SET innodb_lock_wait_timeout = 5")
        .unwrap();
    other
        .query_drop("UPDATE test.pool_locks SET n = 2 WHERE id = 1")
        .unwrap();
    let n: i32 = other
        .query_first("SELECT n FROM test.pool_locks WHERE id = 1")
        .unwrap()
        .unwrap();
    assert_eq!(n, 2, "the abandoned transaction was rolled back");
    assert_eq!(proxy.backend_row(1)["idle_connections"], "0");
    // The client said goodbye (COM_QUIT, which the proxy keeps with the
    // pool on); the proxy says it to the server for it.
    assert_eq!(server.global_status("Aborted_clients"), aborted);
    let mut next = proxy.endpoint().root_conn();
    assert_ne!(connection_id(&mut next), thread_id);
}

#[test]
fn taking_a_backend_offline_closes_its_pooled_connections() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &[]);
    drop(proxy.endpoint().root_conn());
    proxy.wait_for_backend(1, "idle_connections", "1", IDLE_WITHIN);
    let out = mariadb_cli(
        proxy.admin_port(),
        "admin",
        Some("secret"),
        &[
            "-e",
            "UPDATE backends SET state='offline' WHERE backend_ndx=1",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(proxy.backend_row(1)["idle_connections"], "0");
}

#[test]
fn after_a_change_user_the_connection_is_not_filed_under_the_first_login() {
    let server = MariaDb::start();
    let proxy = pooled_proxy(&server, &["--proxy-pool-no-change-user"]);

    let mut first = proxy.endpoint().root_conn();
    let thread_id = connection_id(&mut first);
    first
        .change_user(
            mysql::ChangeUserOpts::default()
                .with_user(Some(TEST_USER.into()))
                .with_pass(Some(TEST_PASSWORD.into())),
        )
        .unwrap();
    let user: String = first.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert!(user.starts_with(&format!("{TEST_USER}@")), "{user}");
    drop(first);
    thread::sleep(Duration::from_millis(200));

    // root again: must not be handed the connection now logged in as TEST_USER.
    let mut next = proxy.endpoint().root_conn();
    assert_ne!(connection_id(&mut next), thread_id);
    let user: String = next.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert!(user.starts_with("root@"), "{user}");
}
