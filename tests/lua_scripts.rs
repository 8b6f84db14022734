//! The scripts of `etc/lua/` through the real proxy, with real clients (the
//! `mysql` crate, the `mariadb` CLI, sysbench) and real MariaDB servers:
//! read/write splitting over a primary and two replicas, the query log, the
//! query histogram, the audit log, the firewall, and the mock server that
//! needs no backend at all.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts};
use mysql_proxy_tests::sysbench::counter;
use mysql_proxy_tests::{
    expect_success, free_port, Endpoint, MariaDb, Proxy, Sysbench, TEST_PASSWORD, TEST_USER,
};

/// A script of `etc/lua/`.
fn script(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../etc/lua")
        .join(name);
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A script that sets options (Lua statements in `config`) and then runs
/// `etc/lua/NAME` in the connection's own globals, as the scripts' headers
/// describe; written in `dir`.
fn configured(dir: &Path, name: &str, config: &str) -> PathBuf {
    let wrapper = dir.join(format!("configured-{name}"));
    let text = format!(
        "{config}\nlocal chunk = assert(loadfile([[{}]]))\nsetfenv(chunk, getfenv(1))\nchunk()\n",
        script(name).display()
    );
    std::fs::write(&wrapper, text).unwrap();
    wrapper
}

/// The proxy in front of `server` running `script`.
fn proxy_running(server: &MariaDb, script: &Path) -> Proxy {
    Proxy::builder()
        .backend(server.addr())
        .arg(format!("--proxy-lua-script={}", script.display()))
        .start()
        .expect("proxy with a script")
}

/// Options that make the crate send nothing of its own at connect (it asks
/// for `@@max_allowed_packet` otherwise).
fn quiet(endpoint: &Endpoint, user: &str, password: Option<&str>) -> Opts {
    endpoint
        .opts(user, password)
        .max_allowed_packet(Some(16 << 20))
        .into()
}

/// The server's error of a failed query: (code, SQLSTATE, message).
fn server_error(result: mysql::Result<()>) -> (u16, String, String) {
    match result {
        Err(mysql::Error::MySqlError(error)) => (error.code, error.state, error.message),
        other => panic!("expected an error from the server, got {other:?}"),
    }
}

/// Several servers at once (each takes a second or two to start).
fn servers(n: usize) -> Vec<MariaDb> {
    thread::scope(|scope| {
        let started: Vec<_> = (0..n).map(|_| scope.spawn(MariaDb::start)).collect();
        started.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

/// Waits until `path` holds a line containing every one of `parts`; returns
/// that line.
fn wait_for_line(path: &Path, parts: &[&str]) -> String {
    let began = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
        {
            return line.to_string();
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "no line with {parts:?} in {}:\n{text}",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// --- rw-splitting.lua ---------------------------------------------------

/// `test.whoami` on each server says which server answered: its port, and
/// the database (`other.whoami` exists too).
fn prepare_rw_server(server: &MariaDb) {
    let mut conn = server.root_conn();
    let port = server.port();
    for statement in [
        "CREATE DATABASE other".to_string(),
        "CREATE TABLE test.whoami (port INT, db VARCHAR(10))".to_string(),
        format!("INSERT INTO test.whoami VALUES ({port}, 'test')"),
        "CREATE TABLE other.whoami (port INT, db VARCHAR(10))".to_string(),
        format!("INSERT INTO other.whoami VALUES ({port}, 'other')"),
        "CREATE TABLE test.items (id INT AUTO_INCREMENT PRIMARY KEY, v INT)".to_string(),
        "CREATE TABLE other.notes (v INT)".to_string(),
    ] {
        conn.query_drop(&statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

fn rw_splitting_proxy(primary: &MariaDb, replicas: &[MariaDb], extra: &[&str]) -> Proxy {
    let mut builder = Proxy::builder()
        .plugins(&["proxy", "admin"])
        .backend(primary.addr())
        .arg(format!(
            "--proxy-lua-script={}",
            script("rw-splitting.lua").display()
        ));
    for replica in replicas {
        builder = builder.read_only_backend(replica.addr());
    }
    for arg in extra {
        builder = builder.arg(*arg);
    }
    builder.start().expect("proxy with rw-splitting.lua")
}

fn port_of(conn: &mut Conn, query: &str) -> u16 {
    conn.query_first(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .unwrap()
}

fn com_select(server: &MariaDb) -> u64 {
    server.global_status("Com_select")
}

#[test]
fn rw_splitting_sends_reads_to_the_replicas_and_the_rest_to_the_primary() {
    reads_to_replicas_and_the_rest_to_the_primary(&["--proxy-pool-max-idle=16"]);
}

/// With the pool off, the connections the script parks are kept all the
/// same, and its logins open the connections it asks for.
#[test]
fn rw_splitting_works_with_the_pool_off_too() {
    reads_to_replicas_and_the_rest_to_the_primary(&[]);
}

fn reads_to_replicas_and_the_rest_to_the_primary(proxy_args: &[&str]) {
    let mut all = servers(3);
    for server in &all {
        prepare_rw_server(server);
    }
    let replicas = all.split_off(1);
    let primary = all.pop().unwrap();
    let replica_ports: Vec<u16> = replicas.iter().map(MariaDb::port).collect();
    let proxy = rw_splitting_proxy(&primary, &replicas, proxy_args);
    let endpoint = proxy.endpoint();
    let root = || Conn::new(quiet(&endpoint, "root", None)).unwrap();

    // The first clients all log in on the primary (no other connection
    // exists yet for their writes); when they leave, their connections stay
    // in the pool, and the next clients can log in on the replicas.
    let first: Vec<Conn> = (0..3).map(|_| root()).collect();
    drop(first);
    proxy.wait_for_backend(1, "idle_connections", "3", Duration::from_secs(10));
    let mut conn = root();
    let mut other = root();

    // Plain SELECTs go to the replicas, and only there.
    let before: Vec<u64> = replicas.iter().map(com_select).collect();
    let primary_before = com_select(&primary);
    for _ in 0..10 {
        let port = port_of(&mut conn, "SELECT port FROM whoami");
        assert!(replica_ports.contains(&port), "a read went to {port}");
        let port = port_of(&mut other, "select port from whoami where port > 0");
        assert!(replica_ports.contains(&port), "a read went to {port}");
    }
    let after: Vec<u64> = replicas.iter().map(com_select).collect();
    let grown: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    assert!(grown >= 20, "replicas' Com_select {before:?} -> {after:?}");
    // (com_select's own connection counts one SELECT per call)
    let primary_grown = com_select(&primary) - primary_before;
    assert!(
        primary_grown <= 2,
        "primary's Com_select grew by {primary_grown}"
    );

    // Writes go to the primary; LAST_INSERT_ID() follows them there.
    conn.query_drop("INSERT INTO items (v) VALUES (1)").unwrap();
    conn.query_drop("INSERT INTO items (v) VALUES (2)").unwrap();
    let id: u64 = conn
        .query_first("SELECT LAST_INSERT_ID()")
        .unwrap()
        .unwrap();
    assert_eq!(id, 2);
    let rows = |server: &MariaDb| -> u64 {
        server
            .root_conn()
            .query_first("SELECT COUNT(*) FROM test.items")
            .unwrap()
            .unwrap()
    };
    assert_eq!(rows(&primary), 2);
    for replica in &replicas {
        assert_eq!(rows(replica), 0, "a write reached a replica");
    }

    // Reads that lock, that need the last insert or found rows, that use
    // user variables: the primary.
    let primary_port = primary.port();
    for query in [
        "SELECT port FROM whoami FOR UPDATE",
        "SELECT port FROM whoami LOCK IN SHARE MODE",
        "SELECT port FROM whoami WHERE port <> @@insert_id",
        "SELECT SQL_CALC_FOUND_ROWS port FROM whoami",
    ] {
        assert_eq!(port_of(&mut conn, query), primary_port, "{query}");
    }
    conn.query_drop("SELECT SQL_CALC_FOUND_ROWS port FROM whoami LIMIT 0")
        .unwrap();
    let found: u64 = conn.query_first("SELECT FOUND_ROWS()").unwrap().unwrap();
    assert_eq!(found, 1, "FOUND_ROWS() ran on another connection");
    conn.query_drop("SET @mine = 42").unwrap();
    let (mine, port): (u32, u16) = conn
        .query_first("SELECT @mine, port FROM whoami")
        .unwrap()
        .unwrap();
    assert_eq!((mine, port), (42, primary_port));

    // A transaction stays on the primary from BEGIN to COMMIT, a session
    // with autocommit=0 for as long as it is off; reads go back to the
    // replicas afterwards.
    let mut fresh = root();
    assert!(replica_ports.contains(&port_of(&mut fresh, "SELECT port FROM whoami")));
    fresh.query_drop("BEGIN").unwrap();
    assert_eq!(port_of(&mut fresh, "SELECT port FROM whoami"), primary_port);
    fresh
        .query_drop("INSERT INTO items (v) VALUES (3)")
        .unwrap();
    assert_eq!(port_of(&mut fresh, "SELECT port FROM whoami"), primary_port);
    fresh.query_drop("COMMIT").unwrap();
    assert!(replica_ports.contains(&port_of(&mut fresh, "SELECT port FROM whoami")));
    fresh.query_drop("START TRANSACTION").unwrap();
    assert_eq!(port_of(&mut fresh, "SELECT port FROM whoami"), primary_port);
    fresh.query_drop("ROLLBACK").unwrap();
    fresh.query_drop("SET autocommit = 0").unwrap();
    assert_eq!(port_of(&mut fresh, "SELECT port FROM whoami"), primary_port);
    assert_eq!(port_of(&mut fresh, "SELECT port FROM whoami"), primary_port);
    fresh.query_drop("SET autocommit = 1").unwrap();
    assert!(replica_ports.contains(&port_of(&mut fresh, "SELECT port FROM whoami")));

    // Session settings follow the client to every connection it is given;
    // a setting made again replaces the first.
    fresh
        .query_drop("SET SESSION wait_timeout = 1234, sql_mode = 'ANSI_QUOTES'")
        .unwrap();
    let settings = "SELECT @@wait_timeout, @@session.sql_mode, port FROM whoami";
    let locking = "SELECT @@wait_timeout, @@session.sql_mode, port FROM whoami FOR UPDATE";
    let (timeout, mode, port): (u32, String, u16) = fresh.query_first(settings).unwrap().unwrap();
    assert!(replica_ports.contains(&port), "{port}");
    assert_eq!((timeout, mode.as_str()), (1234, "ANSI_QUOTES"));
    let (timeout, mode, port): (u32, String, u16) = fresh.query_first(locking).unwrap().unwrap();
    assert_eq!(
        (timeout, mode.as_str(), port),
        (1234, "ANSI_QUOTES", primary_port)
    );
    fresh.query_drop("SET @@wait_timeout = 4321").unwrap();
    let (timeout, mode, port): (u32, String, u16) = fresh.query_first(settings).unwrap().unwrap();
    assert!(replica_ports.contains(&port), "{port}");
    assert_eq!((timeout, mode.as_str()), (4321, "ANSI_QUOTES"));
    let (timeout, _, port): (u32, String, u16) = fresh.query_first(locking).unwrap().unwrap();
    assert_eq!((timeout, port), (4321, primary_port));
    fresh.query_drop("SET sql_mode = ''").unwrap();

    // The default database follows the client too: USE as a query, then
    // COM_INIT_DB.
    fresh.query_drop("USE other").unwrap();
    let (port, db): (u16, String) = fresh
        .query_first("SELECT port, db FROM whoami")
        .unwrap()
        .unwrap();
    assert!(replica_ports.contains(&port), "{port}");
    assert_eq!(db, "other");
    fresh.query_drop("INSERT INTO notes VALUES (7)").unwrap();
    let notes: u64 = primary
        .root_conn()
        .query_first("SELECT COUNT(*) FROM other.notes")
        .unwrap()
        .unwrap();
    assert_eq!(notes, 1, "the write ran in another database");
    let (_, db): (u16, String) = fresh
        .query_first("SELECT port, db FROM whoami")
        .unwrap()
        .unwrap();
    assert_eq!(db, "other");
    fresh.select_db("test").unwrap();
    let (port, db): (u16, String) = fresh
        .query_first("SELECT port, db FROM whoami")
        .unwrap()
        .unwrap();
    assert!(replica_ports.contains(&port), "{port}");
    assert_eq!(db, "test");
    fresh
        .query_drop("INSERT INTO items (v) VALUES (4)")
        .unwrap();
    assert_eq!(rows(&primary), 4);
    let db: String = fresh.query_first("SELECT DATABASE()").unwrap().unwrap();
    assert_eq!(db, "test");

    // A prepared statement lives on the primary's connection, and the
    // session stays there while it is open.
    let port: u16 = fresh
        .exec_first("SELECT port FROM whoami WHERE port > ?", (0,))
        .unwrap()
        .unwrap();
    assert_eq!(port, primary_port);
    assert_eq!(port_of(&mut fresh, "SELECT port FROM whoami"), primary_port);
    drop(proxy);
}

#[test]
fn rw_splitting_runs_sysbench_with_reads_on_the_replicas() {
    const THREADS: u32 = 4;
    let mut all = servers(3);
    // These servers are not replicas: every one gets the same tables.
    let load = |port: u16| {
        Sysbench::new("oltp_read_write", port)
            .arg("--tables=2")
            .arg("--table-size=10000")
            .arg(format!("--threads={THREADS}"))
            .arg("--rand-type=uniform")
            // Every statement in autocommit (no BEGIN/COMMIT around them),
            // so that the reads may go to the replicas; no deletes and
            // inserts, which without a transaction around them could race
            // for the same id between two threads.
            .arg("--skip_trx=on")
            .arg("--delete_inserts=0")
            // Text queries: a prepared statement keeps its session on the
            // primary.
            .arg("--db-ps-mode=disable")
    };
    thread::scope(|scope| {
        for server in &all {
            scope.spawn(|| load(server.port()).run("prepare", Duration::from_secs(120)));
        }
    });
    let replicas = all.split_off(1);
    let primary = all.pop().unwrap();
    let proxy = rw_splitting_proxy(&primary, &replicas, &["--proxy-pool-max-idle=32"]);
    let through = load(proxy.proxy_port());

    // A first, short run: its clients log in on the primary and leave their
    // connections in the pool, for the writes of the next ones.
    through
        .clone()
        .arg("--time=2")
        .run("run", Duration::from_secs(60));
    proxy.wait_for_backend(
        1,
        "idle_connections",
        &THREADS.to_string(),
        Duration::from_secs(10),
    );

    let before: Vec<u64> = replicas.iter().map(com_select).collect();
    let primary_before = com_select(&primary);
    let updates = |server: &MariaDb| server.global_status("Com_update");
    let updates_before: Vec<u64> = [&primary, &replicas[0], &replicas[1]].map(updates).to_vec();
    let began = Instant::now();
    let report = through
        .clone()
        .arg("--time=15")
        .run("run", Duration::from_secs(120));
    let elapsed = began.elapsed();
    let after: Vec<u64> = replicas.iter().map(com_select).collect();
    let primary_grown = com_select(&primary) - primary_before;
    let updates_after: Vec<u64> = [&primary, &replicas[0], &replicas[1]].map(updates).to_vec();
    let transactions = counter(&report, "transactions:");
    let ignored = counter(&report, "ignored errors:");
    let reconnects = counter(&report, "reconnects:");
    eprintln!(
        "sysbench oltp_read_write through rw-splitting.lua, {THREADS} threads: {transactions} \
         transactions, {ignored} ignored errors, {reconnects} reconnects in {elapsed:.1?}; \
         replicas' Com_select {before:?} -> {after:?}, the primary's grew by {primary_grown}"
    );
    assert!(transactions > 0, "no transactions:\n{report}");
    assert_eq!(ignored, 0, "errors:\n{report}");
    assert_eq!(reconnects, 0, "reconnects:\n{report}");
    // Each transaction is 14 SELECTs (10 point selects, 4 ranges), and they
    // all went to the replicas: each session had a connection there.
    for (replica, (b, a)) in replicas.iter().zip(before.iter().zip(&after)) {
        assert!(
            a - b >= transactions,
            "replica {} answered {} SELECTs for {transactions} transactions",
            replica.port(),
            a - b
        );
    }
    let on_replicas: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    assert!(
        on_replicas >= 14 * transactions,
        "{on_replicas} SELECTs on the replicas"
    );
    // (each status read on the primary is a SELECT @@max_allowed_packet)
    assert!(primary_grown <= 5, "{primary_grown} SELECTs on the primary");
    // Each has 2 UPDATEs, all on the primary.
    assert!(
        updates_after[0] - updates_before[0] >= 2 * transactions,
        "Com_update {updates_before:?} -> {updates_after:?}"
    );
    assert_eq!(
        updates_after[1..],
        updates_before[1..],
        "writes on the replicas"
    );
}

// --- query-log.lua ------------------------------------------------------

#[test]
fn query_log_writes_every_query_with_its_timing() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries.log");
    let wrapper = configured(
        dir.path(),
        "query-log.lua",
        &format!(
            "proxy.global.config.query_log = {{ file = [[{}]] }}",
            log.display()
        ),
    );
    let proxy = proxy_running(&server, &wrapper);
    let mut conn = proxy.endpoint().root_conn();
    let id: u32 = conn.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    conn.query_drop("CREATE TABLE logged (id INT PRIMARY KEY, v VARCHAR(10))")
        .unwrap();
    conn.query_drop("INSERT INTO logged VALUES (1, 'a'), (2, 'b')")
        .unwrap();
    let rows: Vec<(u32, String)> = conn.query("SELECT * FROM logged").unwrap();
    assert_eq!(rows.len(), 2);
    let slept: u32 = conn.query_first("SELECT SLEEP(0.2)").unwrap().unwrap();
    assert_eq!(slept, 0);
    server_error(conn.query_drop("SELECT * FROM missing"));
    conn.query_drop("SELECT\n\t1").unwrap();
    conn.select_db("mysql").unwrap();
    conn.query_drop("SELECT 'in mysql'").unwrap();
    let mut user = Conn::new(proxy.endpoint().user_opts()).unwrap();
    user.query_drop("SELECT 'as the user'").unwrap();

    let conn_part = format!("conn={id} user=root db=test ");
    let line = wait_for_line(&log, &[&conn_part, "query=SELECT * FROM logged"]);
    assert!(line.contains(" rows=2 status=OK "), "{line}");
    let line = wait_for_line(&log, &["query=INSERT INTO logged"]);
    assert!(line.contains(" affected=2 status=OK "), "{line}");
    let line = wait_for_line(&log, &["query=SELECT SLEEP(0.2)"]);
    let time: f64 = line
        .split(" time=")
        .nth(1)
        .and_then(|rest| rest.split("ms").next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((200.0..5000.0).contains(&time), "{line}");
    // (a timestamp first)
    assert!(
        line.chars().take(4).all(|c| c.is_ascii_digit()) && line.as_bytes()[4] == b'-',
        "{line}"
    );
    let line = wait_for_line(&log, &["query=SELECT * FROM missing"]);
    assert!(line.contains(" rows=- status=ERR "), "{line}");
    wait_for_line(&log, &["query=SELECT\\n\\t1"]);
    wait_for_line(&log, &[" db=test ", "query=USE mysql"]);
    wait_for_line(&log, &[" db=mysql ", "query=SELECT 'in mysql'"]);
    wait_for_line(
        &log,
        &[&format!(" user={TEST_USER} "), "query=SELECT 'as the user'"],
    );
    // One line per query: the crate's own SELECT @@max_allowed_packet at
    // connect, twice, and the 10 above.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 12, "{text}");
}

// --- histogram.lua ------------------------------------------------------

#[test]
fn histogram_counts_normalized_queries_and_answers_through_sql() {
    let server = MariaDb::start();
    server
        .root_conn()
        .query_drop("CREATE TABLE test.h (id INT PRIMARY KEY)")
        .unwrap();
    let proxy = proxy_running(&server, &script("histogram.lua"));
    let endpoint = proxy.endpoint();
    let mut first = Conn::new(quiet(&endpoint, "root", None)).unwrap();
    let mut second = Conn::new(quiet(&endpoint, "root", None)).unwrap();
    for query in [
        "SELECT * FROM h WHERE id = 1",
        "select *   from h where id=2",
        "SELECT * FROM h /* a comment */ WHERE id = 'x'",
    ] {
        first.query_drop(query).unwrap();
    }
    second.query_drop("SELECT * FROM h WHERE id = 3").unwrap();
    second
        .query_drop("SELECT * FROM h WHERE id = 4 -- again\n")
        .unwrap();
    second.query_drop("SELECT SLEEP(0.1)").unwrap();

    // (A query's statistics are recorded once its result has been sent:
    // the connection that sent it is the one sure to see them at its next
    // query.)
    type Row = (String, u64, u64, u64, u64, u64);
    let rows: Vec<Row> = second.query("SELECT * FROM histogram.queries").unwrap();
    let find = |rows: &[Row], query: &str| -> Row {
        rows.iter()
            .find(|row| row.0 == query)
            .unwrap_or_else(|| panic!("no {query:?} in {rows:?}"))
            .clone()
    };
    let (_, count, total, max, min, avg) = find(&rows, "SELECT * FROM h WHERE id = ?");
    assert_eq!(count, 5, "{rows:?}");
    assert!(min <= avg && avg <= max && max <= total, "{rows:?}");
    let (_, count, total, max, _, _) = find(&rows, "SELECT SLEEP(?)");
    assert_eq!(count, 1);
    assert!(
        (100_000..5_000_000).contains(&max) && total == max,
        "{rows:?}"
    );
    // Slowest in total first.
    assert_eq!(rows[0].0, "SELECT SLEEP(?)", "{rows:?}");
    assert_eq!(rows.len(), 2, "only these two: {rows:?}");

    // Any client reads it; the mariadb CLI too.
    let out = proxy
        .endpoint()
        .cli("root", None, &["-e", "select * from HISTOGRAM.queries"]);
    let text = expect_success("mariadb", &out);
    assert!(
        text.starts_with("query\tcount\ttotal_us\tmax_us\tmin_us\tavg_us\n"),
        "{text}"
    );
    assert!(text.contains("SELECT * FROM h WHERE id = ?\t5\t"), "{text}");

    // DELETE empties it, for every connection, and says how many queries
    // it dropped.
    first.query_drop("DELETE FROM histogram.queries").unwrap();
    assert_eq!(first.affected_rows(), 2);
    let rows: Vec<Row> = second.query("SELECT * FROM histogram.queries").unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    second.query_drop("SELECT * FROM h WHERE id = 9").unwrap();
    let rows: Vec<Row> = second.query("SELECT * FROM histogram.queries").unwrap();
    assert_eq!(find(&rows, "SELECT * FROM h WHERE id = ?").1, 1);
}

// --- auditing.lua -------------------------------------------------------

#[test]
fn auditing_logs_logins_with_their_outcome_and_queries_with_their_user() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let wrapper = configured(
        dir.path(),
        "auditing.lua",
        &format!(
            "proxy.global.config.auditing = {{ file = [[{}]] }}",
            audit.display()
        ),
    );
    let proxy = proxy_running(&server, &wrapper);
    let endpoint = proxy.endpoint();
    let mut conn = Conn::new(quiet(&endpoint, TEST_USER, Some(TEST_PASSWORD))).unwrap();
    conn.query_drop("SELECT 'audited'\n").unwrap();
    conn.select_db("mysql").unwrap();
    drop(conn);
    let refused = Conn::new(quiet(&endpoint, TEST_USER, Some("wrong")));
    assert!(refused.is_err(), "a wrong password was accepted");

    let connect = wait_for_line(&audit, &[" CONNECT server=", &server.addr()]);
    assert!(connect.contains(" client=127.0.0.1:"), "{connect}");
    let client = connect
        .split(" client=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    let with_client = format!(" client={client} ");
    wait_for_line(
        &audit,
        &[
            &with_client,
            &format!(" LOGIN user={TEST_USER} db=test result=OK"),
        ],
    );
    wait_for_line(
        &audit,
        &[
            &with_client,
            &format!(" QUERY user={TEST_USER} query=SELECT 'audited'\\n"),
        ],
    );
    wait_for_line(
        &audit,
        &[
            &with_client,
            &format!(" QUERY user={TEST_USER} query=USE mysql"),
        ],
    );
    wait_for_line(
        &audit,
        &[&with_client, &format!(" DISCONNECT user={TEST_USER}")],
    );
    let failed = wait_for_line(
        &audit,
        &[&format!(
            " LOGIN user={TEST_USER} db=test result=FAILED error=1045 "
        )],
    );
    assert!(failed.contains("Access denied"), "{failed}");
    assert!(!failed.contains(&with_client), "another client: {failed}");
}

// --- firewall.lua -------------------------------------------------------

#[test]
fn firewall_refuses_what_its_rules_match_and_passes_the_rest() {
    let server = MariaDb::start();
    server
        .root_conn()
        .query_drop("CREATE TABLE test.fw (id INT, secret INT)")
        .unwrap();
    server
        .root_conn()
        .query_drop("INSERT INTO test.fw VALUES (1, 10), (2, 20)")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("firewall.rules");
    std::fs::write(
        &rules,
        "# rules of this test\n\nno-secrets  ^SELECT .*SECRET .*FROM FW  unless  WHERE ID = %?$\n\
         broken  [unclosed\n",
    )
    .unwrap();
    let wrapper = configured(
        dir.path(),
        "firewall.lua",
        &format!(
            "proxy.global.config.firewall = {{ rules_file = [[{}]] }}",
            rules.display()
        ),
    );
    let proxy = proxy_running(&server, &wrapper);
    let mut conn = proxy.endpoint().root_conn();

    for (query, rule) in [
        ("DELETE FROM fw", "delete-without-where"),
        ("update fw set secret = 0", "update-without-where"),
        ("SELECT id FROM fw WHERE id = 3 OR 1=1", "always-true"),
        (
            "select id from fw where id = '' or 'a' = 'a'",
            "always-true",
        ),
        ("/*!50000 DROP DATABASE test */", "drop-database"),
        ("SELECT 1; drop  schema test", "drop-database"),
        ("SELECT id, secret FROM fw", "no-secrets"),
        ("select SLEEP(1)", "sleep"),
    ] {
        let (code, state, message) = server_error(conn.query_drop(query));
        assert_eq!(
            (code, state.as_str(), message.as_str()),
            (
                1105,
                "42000",
                format!("(firewall) query refused by rule '{rule}'").as_str()
            ),
            "{query}"
        );
    }
    // What no rule matches reaches the server.
    conn.query_drop("UPDATE fw SET secret = 11 WHERE id = 1")
        .unwrap();
    let ids: Vec<u32> = conn.query("SELECT id FROM fw ORDER BY id").unwrap();
    assert_eq!(ids, [1, 2]);
    let secret: u32 = conn
        .query_first("SELECT secret FROM fw WHERE id = 1")
        .unwrap()
        .unwrap();
    assert_eq!(secret, 11);
    conn.query_drop("DELETE FROM fw WHERE id = 2").unwrap();
    // And nothing refused did.
    let (count, secret): (u32, u32) = server
        .root_conn()
        .query_first("SELECT COUNT(*), SUM(secret) FROM test.fw")
        .unwrap()
        .unwrap();
    assert_eq!((count, secret), (1, 11));
    let databases: Vec<String> = server.root_conn().query("SHOW DATABASES").unwrap();
    assert!(databases.iter().any(|db| db == "test"), "{databases:?}");

    // The CLI shows the refusal; the proxy's log has each one.
    let out = proxy
        .endpoint()
        .cli("root", None, &["test", "-e", "delete from fw"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR 1105 (42000)") && stderr.contains("rule 'delete-without-where'"),
        "{stderr}"
    );
    let log = proxy.stderr_text();
    assert!(
        log.contains("[firewall] refused (rule 'no-secrets') for root@127.0.0.1:"),
        "{log}"
    );
    // (once, although two connections read the file)
    assert_eq!(
        log.matches("firewall.rules:4: not a valid Lua pattern")
            .count(),
        1,
        "{log}"
    );
}

// --- mock-server.lua ----------------------------------------------------

#[test]
fn mock_server_answers_clients_without_any_backend() {
    let dir = tempfile::tempdir().unwrap();
    let responses = dir.path().join("responses.lua");
    std::fs::write(
        &responses,
        r#"
return {
    responses = {
        ["SELECT price FROM items WHERE id = 7"] = { fields = { "price" }, rows = { { "9.99" } } },
        ["drop table items"] = { error = "Unknown table 'items'", errcode = 1051, sqlstate = "42S02" },
        ["select who"] = function(query, session)
            return { fields = { "user", "db", "query" }, rows = { { session.user, session.db, query } } }
        end,
    },
    patterns = { { "^call ", { affected_rows = 0 } } },
    tables = { shop = { items = { fields = { "id", "name" }, rows = { { 7, "pen" }, { 8, nil } } } } },
    users = { root = "", app = "secret" },
}
"#,
    )
    .unwrap();
    let wrapper = configured(
        dir.path(),
        "mock-server.lua",
        &format!(
            "proxy.global.config.mock_server = {{ responses_file = [[{}]] }}",
            responses.display()
        ),
    );
    // A backend where nothing listens: never connected to.
    let proxy = Proxy::builder()
        .backend(format!("127.0.0.1:{}", free_port()))
        .arg("--health-check-interval=0")
        .arg(format!("--proxy-lua-script={}", wrapper.display()))
        .start()
        .expect("proxy with mock-server.lua");
    let endpoint = proxy.endpoint();

    // The mariadb CLI: its own queries at start are answered too.
    let out = endpoint.cli(
        "app",
        Some("secret"),
        &[
            "mock",
            "-e",
            "select @@version_comment limit 1; show tables; select * from users; \
             select @@version, database(), 42 as answer, 'x', null",
        ],
    );
    let text = expect_success("mariadb", &out);
    for expected in [
        "mysql-proxy mock-server",
        "Tables_in_mock\nusers\n",
        "id\tname\n1\talice\n2\tbob\n",
        "@@version\tdatabase()\tanswer\tx\tNULL\n5.7.25-mock\tmock\t42\tx\tNULL\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    // The crate, with its @@max_allowed_packet at connect.
    let mut conn = Conn::new(endpoint.opts("app", Some("secret")).db_name(Some("shop"))).unwrap();
    let rows: Vec<(u32, Option<String>)> = conn.query("SELECT * FROM items").unwrap();
    assert_eq!(rows, [(7, Some("pen".to_string())), (8, None)]);
    let price: String = conn
        .query_first("select  price from items where id = 7 ;")
        .unwrap()
        .unwrap();
    assert_eq!(price, "9.99");
    let who: (String, String, String) = conn.query_first("SELECT who").unwrap().unwrap();
    assert_eq!(who, ("app".into(), "shop".into(), "SELECT who".into()));
    conn.query_drop("INSERT INTO items VALUES (9, 'ink')")
        .unwrap();
    assert_eq!((conn.affected_rows(), conn.last_insert_id()), (1, 1));
    conn.query_drop("CALL anything()").unwrap();
    let (code, state, _) = server_error(conn.query_drop("DROP TABLE items"));
    assert_eq!((code, state.as_str()), (1051, "42S02"));
    let (code, state, message) = server_error(conn.query_drop("SELECT something else"));
    assert_eq!(
        (code, state.as_str(), message.as_str()),
        (
            1235,
            "42000",
            "(mock-server) no answer for: SELECT something else"
        )
    );
    conn.select_db("mock").unwrap();
    let db: String = conn.query_first("SELECT DATABASE()").unwrap().unwrap();
    assert_eq!(db, "mock");
    conn.ping().unwrap();
    let id: u32 = conn.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    assert!(id > 0);

    // Logins are checked against the users of the responses file.
    let (code, state, message) =
        server_error(Conn::new(endpoint.opts("app", Some("wrong"))).map(|_| ()));
    assert_eq!((code, state.as_str()), (1045, "28000"), "{message}");
    let (code, _, message) = server_error(Conn::new(endpoint.opts("nobody", None)).map(|_| ()));
    assert_eq!(code, 1045, "{message}");
    // (root has no password; the mock knows no database `test`)
    let mut root = Conn::new(quiet(&endpoint, "root", None)).err();
    assert!(
        matches!(&root, Some(mysql::Error::MySqlError(e)) if e.code == 1049),
        "{root:?}"
    );
    root = Conn::new(endpoint.opts("root", None).db_name(None::<String>)).err();
    assert!(root.is_none(), "{root:?}");
    let out = endpoint.admin_cli("app", Some("secret"), &["status"]);
    assert!(expect_success("mariadb-admin", &out).contains("Uptime: "));
}
