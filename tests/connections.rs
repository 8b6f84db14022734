//! The admin port's process list and KILL, with real clients on a real
//! MariaDB:
//!
//! - `SELECT * FROM connections` shows every client session (the admin
//!   session too): its user, backend, default database, state (`idle`,
//!   `query`), the command it runs with the query's text (truncated to 100
//!   characters; shown once the command has run for a second), the seconds
//!   it has been in that state, and its bytes;
//! - `KILL <id>` / `KILL CONNECTION <id>` end a session, idle or in the
//!   middle of a query (its client sees a lost connection within seconds,
//!   not when the query would have ended), and leave the others alone;
//! - `KILL QUERY <id>` has the backend interrupt the session's query (the
//!   client gets MariaDB's ERR 1317) while the session carries on, on the
//!   same server connection;
//! - the KILLs that cannot be done answer an ERR: an unknown id (1094), a
//!   KILL QUERY without `--health-check-user`, a malformed id.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::process::Output;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::{FromValue, Queryable};
use mysql::{Conn, Row};
use mysql_proxy_tests::{
    mariadb_cli, MariaDb, Proxy, RawConn, RawError, TEST_DB, TEST_PASSWORD, TEST_USER,
};

const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "secret";
/// The second client's account (the harness's MariaDB has `root` without a
/// password besides [`TEST_USER`]) and default database, so that the two
/// clients differ in both.
const ROOT: &str = "root";
const OTHER_DB: &str = "other";
/// A query that runs long enough to be seen and killed; a client that
/// waited for its whole 30 s would show the kill did nothing.
const SLEEP: &str = "SELECT SLEEP(30)";
/// The process list's columns, in order.
const COLUMNS: [&str; 12] = [
    "id",
    "plugin",
    "user",
    "client_address",
    "backend",
    "db",
    "state",
    "command",
    "info",
    "time",
    "bytes_in",
    "bytes_out",
];
/// Bound on the process list showing a change.
const SHOW_WITHIN: Duration = Duration::from_secs(5);
/// How soon a killed session or query must answer its client: the proxy
/// notices a KILL during a command within about 1-2 s; the rest is slack
/// for a loaded machine, still far below the query's 30 s.
const KILL_WITHIN: Duration = Duration::from_secs(5);
/// Bound on waiting for a client thread's result at all (beyond it the
/// test fails rather than waiting for the 30 s query).
const RESULT_WITHIN: Duration = Duration::from_secs(15);
/// MariaDB's "Query execution was interrupted".
const ER_QUERY_INTERRUPTED: u16 = 1317;
/// MySQL's "Unknown thread id".
const ER_NO_SUCH_THREAD: u16 = 1094;

// ---------------------------------------------------------------- helpers

/// A MariaDB with a second database, and a proxy in front of it with the
/// admin port; `--health-check-user=root` when `kill_query` (KILL QUERY
/// logs in as that user, and root may kill anyone's query).
fn start(kill_query: bool) -> (MariaDb, Proxy) {
    let server = MariaDb::start();
    server
        .root_conn()
        .query_drop(format!("CREATE DATABASE {OTHER_DB}"))
        .unwrap_or_else(|e| panic!("creating database {OTHER_DB}: {e}"));
    let mut builder = Proxy::builder()
        .backend(server.addr())
        .plugins(&["proxy", "admin"])
        .admin_credentials(ADMIN_USER, ADMIN_PASSWORD);
    if kill_query {
        // root has no password: --health-check-password stays empty.
        builder = builder.arg(format!("--health-check-user={ROOT}"));
    }
    let proxy = builder
        .start()
        .unwrap_or_else(|e| panic!("proxy did not start: {e}"));
    (server, proxy)
}

/// A client through the proxy as [`TEST_USER`], default database `test`.
fn user_client(proxy: &Proxy) -> Conn {
    proxy.endpoint().user_conn()
}

/// A client through the proxy as `root`, default database [`OTHER_DB`].
fn root_client(proxy: &Proxy) -> Conn {
    let endpoint = proxy.endpoint();
    endpoint.connect(endpoint.opts(ROOT, None).db_name(Some(OTHER_DB)))
}

/// A session on the admin port.
fn admin_client(proxy: &Proxy) -> Conn {
    let endpoint = proxy.admin_endpoint();
    endpoint.connect(endpoint.opts(ADMIN_USER, Some(ADMIN_PASSWORD)))
}

/// The server's thread id of a client's connection.
fn connection_id(conn: &mut Conn) -> u32 {
    conn.query_first("SELECT CONNECTION_ID()")
        .unwrap_or_else(|e| panic!("SELECT CONNECTION_ID(): {e}"))
        .expect("SELECT CONNECTION_ID() returned no row")
}

/// One row of the process list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    id: u64,
    plugin: String,
    user: String,
    client_address: String,
    backend: Option<String>,
    db: Option<String>,
    state: String,
    command: Option<String>,
    info: Option<String>,
    time: u64,
    bytes_in: u64,
    bytes_out: u64,
}

/// A cell of `row`, typed; panics with the row if it is missing or of
/// another type.
fn cell<T: FromValue>(row: &Row, name: &str) -> T {
    match row.get_opt(name) {
        Some(Ok(value)) => value,
        Some(Err(e)) => panic!("column {name}: {e:?} in {row:?}"),
        None => panic!("no column {name} in {row:?}"),
    }
}

/// `SELECT * FROM connections`, with the columns checked.
fn connections(admin: &mut Conn) -> Vec<Session> {
    let rows: Vec<Row> = admin
        .query("SELECT * FROM connections")
        .unwrap_or_else(|e| panic!("SELECT * FROM connections: {e}"));
    rows.iter()
        .map(|row| {
            let names: Vec<String> = row
                .columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect();
            assert_eq!(names, COLUMNS, "the process list's columns");
            Session {
                id: cell(row, "id"),
                plugin: cell(row, "plugin"),
                user: cell(row, "user"),
                client_address: cell(row, "client_address"),
                backend: cell(row, "backend"),
                db: cell(row, "db"),
                state: cell(row, "state"),
                command: cell(row, "command"),
                info: cell(row, "info"),
                time: cell(row, "time"),
                bytes_in: cell(row, "bytes_in"),
                bytes_out: cell(row, "bytes_out"),
            }
        })
        .collect()
}

/// The table, one row a line, for failure messages.
fn show(table: &[Session]) -> String {
    table
        .iter()
        .map(|s| format!("  {s:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The proxy listener's session of `user` (each test has one per user).
fn session<'a>(table: &'a [Session], user: &str) -> Option<&'a Session> {
    table.iter().find(|s| s.plugin == "proxy" && s.user == user)
}

/// Like [`session`], panicking with the table if there is none.
fn expect_session<'a>(table: &'a [Session], user: &str) -> &'a Session {
    session(table, user)
        .unwrap_or_else(|| panic!("no session of {user} in the table:\n{}", show(table)))
}

/// Polls the process list until `holds`; returns that table; panics with
/// the last one after [`SHOW_WITHIN`].
fn wait_for_table(
    admin: &mut Conn,
    what: &str,
    holds: impl Fn(&[Session]) -> bool,
) -> Vec<Session> {
    let began = Instant::now();
    loop {
        let table = connections(admin);
        if holds(&table) {
            return table;
        }
        assert!(
            began.elapsed() < SHOW_WITHIN,
            "{what}: not within {SHOW_WITHIN:?}; the table:\n{}",
            show(&table)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `user`'s session runs `query`; returns its row.
fn wait_until_running(admin: &mut Conn, user: &str, query: &str) -> Session {
    let table = wait_for_table(admin, &format!("{user}'s session runs {query}"), |t| {
        session(t, user).is_some_and(|s| s.state == "query" && s.info.as_deref() == Some(query))
    });
    expect_session(&table, user).clone()
}

/// What a client's query on its own thread comes back with: the
/// connection (to go on using it) and the query's result.
type Outcome = (Conn, mysql::Result<Option<i64>>);

/// Runs `sql` (a query of one integer) on `conn` on a thread of its own.
fn in_background(mut conn: Conn, sql: impl Into<String>) -> mpsc::Receiver<Outcome> {
    let sql = sql.into();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let result = conn.query_first(sql);
        // The test may have given up waiting.
        let _ = sender.send((conn, result));
    });
    receiver
}

/// The background query's outcome; panics after [`RESULT_WITHIN`].
fn outcome(receiver: &mpsc::Receiver<Outcome>, what: &str) -> Outcome {
    receiver
        .recv_timeout(RESULT_WITHIN)
        .unwrap_or_else(|_| panic!("{what}: the client got no answer within {RESULT_WITHIN:?}"))
}

/// Whether `error` is how the `mysql` crate reports a connection its peer
/// closed (what libmysqlclient calls 2013 "Lost connection" or 2006
/// "server has gone away"): an I/O error of a closed socket. A read
/// timeout does not count.
fn is_lost_connection(error: &mysql::Error) -> bool {
    match error {
        mysql::Error::IoError(e) => matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ),
        mysql::Error::MySqlError(e) => e.code == 2013 || e.code == 2006,
        _ => false,
    }
}

/// The server error `result` must be; panics with what it was instead.
fn server_error<T: std::fmt::Debug>(result: mysql::Result<T>, what: &str) -> mysql::MySqlError {
    match result {
        Err(mysql::Error::MySqlError(e)) => e,
        other => panic!("{what}: expected an ERR, got {other:?}"),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn connections_lists_each_session_with_its_user_backend_db_state_and_running_query() {
    let (server, proxy) = start(false);
    let mut user = user_client(&proxy);
    let mut root = root_client(&proxy);
    let root_thread = connection_id(&mut root);
    let mut admin = admin_client(&proxy);

    // Both idle, each with its own login, on the one backend.
    let table = wait_for_table(&mut admin, "both clients idle", |t| {
        [TEST_USER, ROOT]
            .iter()
            .all(|u| session(t, u).is_some_and(|s| s.state == "idle"))
    });
    let before_user = expect_session(&table, TEST_USER).clone();
    let before_root = expect_session(&table, ROOT).clone();
    for (s, db) in [(&before_user, TEST_DB), (&before_root, OTHER_DB)] {
        assert_eq!(s.backend.as_deref(), Some(server.addr().as_str()), "{s:?}");
        assert_eq!(s.db.as_deref(), Some(db), "{s:?}");
        assert_eq!(
            (s.command.as_deref(), s.info.as_deref()),
            (None, None),
            "{s:?}"
        );
        assert!(s.client_address.starts_with("127.0.0.1:"), "{s:?}");
    }
    assert_ne!(before_user.id, before_root.id, "{}", show(&table));
    assert_ne!(
        before_user.client_address,
        before_root.client_address,
        "{}",
        show(&table)
    );
    // No other client session (the login queries of the crate are done).
    let logged_in = table
        .iter()
        .filter(|s| s.plugin == "proxy" && s.state != "login")
        .count();
    assert_eq!(logged_in, 2, "{}", show(&table));
    // The admin session reading the table is a session too.
    let admins: Vec<&Session> = table.iter().filter(|s| s.plugin == "admin").collect();
    assert_eq!(admins.len(), 1, "{}", show(&table));
    assert_eq!(admins[0].user, ADMIN_USER, "{}", show(&table));
    assert!(
        ![before_user.id, before_root.id].contains(&admins[0].id),
        "{}",
        show(&table)
    );

    // A query counts its bytes both ways: at least its text in, the
    // 1000 characters of its row out. The other session's stay.
    let query = "SELECT REPEAT('x', 1000)";
    let row: Option<String> = user.query_first(query).unwrap();
    assert_eq!(row.map(|r| r.len()), Some(1000));
    let table = wait_for_table(&mut admin, "the query's bytes counted", |t| {
        session(t, TEST_USER).is_some_and(|s| {
            s.bytes_in >= before_user.bytes_in + query.len() as u64
                && s.bytes_out >= before_user.bytes_out + 1000
        })
    });
    let root_now = expect_session(&table, ROOT);
    assert_eq!(
        (root_now.bytes_in, root_now.bytes_out),
        (before_root.bytes_in, before_root.bytes_out),
        "{}",
        show(&table)
    );

    // While root's query runs, its session shows it; the other stays idle.
    let sleeping = in_background(root, SLEEP);
    let running = wait_until_running(&mut admin, ROOT, SLEEP);
    assert_eq!(running.command.as_deref(), Some("COM_QUERY"), "{running:?}");
    assert_eq!(
        (
            running.id,
            running.db.as_deref(),
            running.backend.as_deref()
        ),
        (before_root.id, Some(OTHER_DB), Some(server.addr().as_str())),
        "{running:?}"
    );
    // Shown once it has run for a second (a quicker command is shown as a
    // running one without its text): so it has been running 1 s, or just
    // over.
    assert!(running.time <= 2, "just started: {running:?}");
    let table = connections(&mut admin);
    assert_eq!(expect_session(&table, TEST_USER).state, "idle");

    // A long query's text is shown cut to its first 100 characters.
    let long_query = format!("SELECT SLEEP(30) AS `{}`", "x".repeat(150));
    let user_thread = connection_id(&mut user);
    let long_sleeping = in_background(user, long_query.as_str());
    let table = wait_for_table(&mut admin, "the long query shown", |t| {
        session(t, TEST_USER).is_some_and(|s| s.state == "query" && s.info.is_some())
    });
    let shown = expect_session(&table, TEST_USER);
    assert_eq!(
        shown.info.as_deref(),
        Some(&long_query[..100]),
        "{}",
        show(&table)
    );

    // The time in the state grows with the seconds the query runs.
    let table = wait_for_table(&mut admin, "root's query time reaching 2 s", |t| {
        session(t, ROOT).is_some_and(|s| s.state == "query" && s.time >= 2)
    });
    let later = expect_session(&table, ROOT);
    assert!(later.time > running.time, "{running:?} then {later:?}");
    assert_eq!(later.info.as_deref(), Some(SLEEP), "{later:?}");

    // Ends the sleeps on the server itself (the proxy's KILL has tests of
    // its own), and the sessions are idle again.
    let mut direct = server.root_conn();
    for thread in [root_thread, user_thread] {
        direct.query_drop(format!("KILL QUERY {thread}")).unwrap();
    }
    // (Interrupted, each query ends with ERR 1317, which is not the point;
    // the connections are kept, or their sessions would end.)
    let (_root, _) = outcome(&sleeping, "root's sleep killed on the server");
    let (_user, _) = outcome(&long_sleeping, "the long sleep killed on the server");
    wait_for_table(&mut admin, "both idle again", |t| {
        [TEST_USER, ROOT].iter().all(|u| {
            session(t, u)
                .is_some_and(|s| s.state == "idle" && s.command.is_none() && s.info.is_none())
        })
    });
}

#[test]
fn kill_ends_a_session_in_the_middle_of_its_query_and_leaves_the_others_alone() {
    let (_server, proxy) = start(false);
    let victim = user_client(&proxy);
    let mut bystander = root_client(&proxy);
    let bystander_thread = connection_id(&mut bystander);
    let mut admin = admin_client(&proxy);

    let sleeping = in_background(victim, SLEEP);
    let id = wait_until_running(&mut admin, TEST_USER, SLEEP).id;
    let killed_at = Instant::now();
    admin
        .query_drop(format!("KILL {id}"))
        .unwrap_or_else(|e| panic!("KILL {id}: {e}"));

    // The client learns at once that its connection is gone, rather than
    // waiting for the query's 30 s.
    let (_, result) = outcome(&sleeping, "the killed session's query");
    let took = killed_at.elapsed();
    let error = match result {
        Err(e) => e,
        Ok(row) => panic!("the killed session's query returned {row:?} after {took:?}"),
    };
    assert!(
        is_lost_connection(&error),
        "expected a lost connection, got {error:?} after {took:?}"
    );
    assert!(
        took < KILL_WITHIN,
        "the killed session's client waited {took:?} for its error ({error})"
    );

    let table = wait_for_table(&mut admin, "the killed session gone", |t| {
        t.iter().all(|s| s.id != id)
    });
    // The other session is untouched: the same server connection, in use.
    assert_eq!(expect_session(&table, ROOT).state, "idle");
    assert_eq!(connection_id(&mut bystander), bystander_thread);
    let one: Option<i64> = bystander.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn kill_and_kill_connection_end_idle_sessions_at_once() {
    let (_server, proxy) = start(false);
    let mut by_kill = user_client(&proxy);
    let mut by_kill_connection = root_client(&proxy);
    let mut admin = admin_client(&proxy);
    let table = wait_for_table(&mut admin, "both clients idle", |t| {
        [TEST_USER, ROOT]
            .iter()
            .all(|u| session(t, u).is_some_and(|s| s.state == "idle"))
    });
    let first = expect_session(&table, TEST_USER).id;
    let second = expect_session(&table, ROOT).id;

    admin
        .query_drop(format!("KILL {first}"))
        .unwrap_or_else(|e| panic!("KILL {first}: {e}"));
    // Gone at once, though its client sent nothing: the session does not
    // wait for a next command to notice.
    let table = wait_for_table(&mut admin, "the session killed by KILL gone", |t| {
        t.iter().all(|s| s.id != first)
    });
    assert!(
        table.iter().any(|s| s.id == second),
        "the other session was left alone:\n{}",
        show(&table)
    );
    let error = by_kill
        .query_drop("SELECT 1")
        .expect_err("a query on a killed session");
    assert!(is_lost_connection(&error), "{error:?}");

    admin
        .query_drop(format!("KILL CONNECTION {second}"))
        .unwrap_or_else(|e| panic!("KILL CONNECTION {second}: {e}"));
    wait_for_table(
        &mut admin,
        "the session killed by KILL CONNECTION gone",
        |t| t.iter().all(|s| s.id != second),
    );
    let error = by_kill_connection
        .query_drop("SELECT 1")
        .expect_err("a query on a killed session");
    assert!(is_lost_connection(&error), "{error:?}");

    // The proxy takes new clients as before.
    let mut again = user_client(&proxy);
    let one: Option<i64> = again.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn kill_query_interrupts_the_query_and_the_session_goes_on() {
    let (_server, proxy) = start(true);
    let mut victim = user_client(&proxy);
    let victim_thread = connection_id(&mut victim);
    let mut bystander = root_client(&proxy);
    let bystander_thread = connection_id(&mut bystander);
    let mut admin = admin_client(&proxy);

    let sleeping = in_background(victim, SLEEP);
    let id = wait_until_running(&mut admin, TEST_USER, SLEEP).id;
    let killed_at = Instant::now();
    admin
        .query_drop(format!("KILL QUERY {id}"))
        .unwrap_or_else(|e| panic!("KILL QUERY {id}: {e}"));

    // The server's own answer to an interrupted query, soon.
    let (mut victim, result) = outcome(&sleeping, "the query killed by KILL QUERY");
    let took = killed_at.elapsed();
    let error = server_error(result, "the query killed by KILL QUERY");
    assert_eq!(error.code, ER_QUERY_INTERRUPTED, "{error:?} after {took:?}");
    assert!(
        took < KILL_WITHIN,
        "the client waited {took:?} for its ERR ({error})"
    );

    // Same session, same server connection, usable.
    assert_eq!(connection_id(&mut victim), victim_thread);
    let one: Option<i64> = victim.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
    let table = wait_for_table(&mut admin, "the session idle again", |t| {
        session(t, TEST_USER).is_some_and(|s| s.state == "idle")
    });
    assert_eq!(expect_session(&table, TEST_USER).id, id, "{}", show(&table));

    // The other session is untouched.
    assert_eq!(expect_session(&table, ROOT).state, "idle");
    assert_eq!(connection_id(&mut bystander), bystander_thread);
}

#[test]
fn kills_that_cannot_be_done_answer_an_error() {
    let (_server, proxy) = start(false);
    let mut admin = admin_client(&proxy);

    for kill in ["KILL 999999", "KILL CONNECTION 999999", "KILL QUERY 999999"] {
        let error = server_error(admin.query_drop(kill), kill);
        assert_eq!(error.code, ER_NO_SUCH_THREAD, "{kill}: {error:?}");
        assert_eq!(error.message, "Unknown thread id: 999999", "{kill}");
    }

    for kill in [
        "KILL foo",
        "KILL QUERY foo",
        "KILL CONNECTION 1 2",
        "KILL -1",
    ] {
        let error = server_error(admin.query_drop(kill), kill);
        assert_eq!(error.code, 1064, "{kill}: a syntax error, got {error:?}");
    }

    // Without --health-check-user the proxy has no login of its own to
    // kill a query with, and says so (rather than pretending it did).
    let sleeping = in_background(user_client(&proxy), SLEEP);
    let id = wait_until_running(&mut admin, TEST_USER, SLEEP).id;
    let error = server_error(
        admin.query_drop(format!("KILL QUERY {id}")),
        "KILL QUERY without --health-check-user",
    );
    assert!(
        error.message.contains("--health-check-user"),
        "KILL QUERY without --health-check-user: {error:?}"
    );
    // The query runs on, untouched; KILL ends it with its session.
    let table = connections(&mut admin);
    let still = expect_session(&table, TEST_USER);
    assert_eq!((still.id, still.state.as_str()), (id, "query"), "{still:?}");
    admin.query_drop(format!("KILL {id}")).unwrap();
    let (_, result) = outcome(&sleeping, "the session killed after the failed KILL QUERY");
    match result {
        Err(e) => assert!(is_lost_connection(&e), "{e:?}"),
        Ok(row) => panic!("the killed session's query returned {row:?}"),
    }

    // The admin session is fine after its errors.
    connections(&mut admin);
}

/// The `mariadb` command-line client numbers its errors as libmysqlclient
/// does: a killed session is a lost connection (2013 during a query; 2006
/// if the close was seen before sending).
#[test]
fn kill_gives_the_mariadb_client_a_lost_connection_error() {
    let (_server, proxy) = start(false);
    let mut admin = admin_client(&proxy);
    let port = proxy.proxy_port();
    let (sender, receiver) = mpsc::channel::<Output>();
    thread::spawn(move || {
        let out = mariadb_cli(port, TEST_USER, Some(TEST_PASSWORD), &["-e", SLEEP]);
        let _ = sender.send(out);
    });

    let id = wait_until_running(&mut admin, TEST_USER, SLEEP).id;
    let killed_at = Instant::now();
    admin.query_drop(format!("KILL {id}")).unwrap();
    let out = receiver
        .recv_timeout(RESULT_WITHIN)
        .unwrap_or_else(|_| panic!("mariadb still running {RESULT_WITHIN:?} after KILL"));
    let took = killed_at.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mariadb succeeded: {out:?}");
    assert!(
        stderr.contains("ERROR 2013") || stderr.contains("ERROR 2006"),
        "expected a lost connection, got: {stderr}"
    );
    assert!(took < KILL_WITHIN, "mariadb waited {took:?}: {stderr}");
}

#[test]
fn beyond_max_connections_a_client_gets_1040_and_the_others_go_on() {
    let server = MariaDb::start();
    let proxy = Proxy::builder()
        .backend(server.addr())
        .plugins(&["proxy", "admin"])
        .arg("--max-connections=2")
        .start()
        .expect("proxy with --max-connections");
    let endpoint = proxy.endpoint();
    let mut first = RawConn::connect(&endpoint, "root", "", None).unwrap();
    let mut second = RawConn::connect(&endpoint, "root", "", None).unwrap();
    match RawConn::connect(&endpoint, "root", "", None) {
        Err(RawError::Server(error)) => {
            assert_eq!(error.code, 1040);
            assert_eq!(error.message, "Too many connections");
        }
        other => panic!("expected ERR 1040, got {:?}", other.map(|_| "a session")),
    }
    // The sessions there are untouched, and the admin port is not counted.
    assert_eq!(
        first.query("SELECT 1").unwrap(),
        vec![vec![Some("1".to_string())]]
    );
    assert_eq!(
        second.query("SELECT 2").unwrap(),
        vec![vec![Some("2".to_string())]]
    );
    let mut admin = RawConn::connect(&proxy.admin_endpoint(), "admin", "secret", None).unwrap();
    let sessions = admin.query("SELECT * FROM connections").unwrap();
    assert_eq!(sessions.len(), 3, "two clients and the admin: {sessions:?}");
    // A seat given back is taken by the next client.
    first.quit().unwrap();
    let started = std::time::Instant::now();
    let mut third = loop {
        match RawConn::connect(&endpoint, "root", "", None) {
            Ok(conn) => break conn,
            Err(error) if started.elapsed() < std::time::Duration::from_secs(5) => {
                assert!(error.to_string().contains("1040"), "{error}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(error) => panic!("no seat after a client left: {error}"),
        }
    };
    assert_eq!(
        third.query("SELECT 3").unwrap(),
        vec![vec![Some("3".to_string())]]
    );
}
