//! Command acceptance tests at the protocol level (raw client): COM_SET_OPTION,
//! server-side cursors with COM_STMT_FETCH, COM_STMT_RESET / CLOSE /
//! SEND_LONG_DATA with binary rows, and COM_QUIT closing both connections.
//!
//! Each body runs twice: `direct_*` against MariaDB itself (validates the test)
//! and `proxy_*` through `mysql-proxy --plugins=proxy`.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::*;
use mysql::Conn;
use mysql_proxy_tests::raw::{
    column_type, decode_binary_row, status, BinValue, Param, CLIENT_MULTI_RESULTS,
    CLIENT_MULTI_STATEMENTS, CURSOR_TYPE_READ_ONLY, MYSQL_OPTION_MULTI_STATEMENTS_OFF,
    MYSQL_OPTION_MULTI_STATEMENTS_ON,
};
use mysql_proxy_tests::{
    direct, through_proxy, MariaDb, RawConn, RawError, StreamEnd, Target, TEST_PASSWORD, TEST_USER,
};

/// Bound on any single wait for the server or the proxy.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Rows in the cursor test's table.
const ROWS: i64 = 1000;

// ---------------------------------------------------------------- helpers

fn raw_user(t: &Target, extra_caps: u32) -> RawConn {
    let raw = RawConn::connect_with(
        &t.endpoint,
        TEST_USER,
        TEST_PASSWORD,
        Some("test"),
        extra_caps,
    )
    .unwrap_or_else(|e| panic!("[{}] raw connect: {e}", t.label()));
    raw.set_read_timeout(TIMEOUT).unwrap();
    raw
}

fn expect_server_error<T: std::fmt::Debug>(result: Result<T, RawError>) -> (u16, String) {
    match result {
        Err(RawError::Server(e)) => (e.code, e.state),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// Polls `f` every 50 ms until it holds; panics with `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Server connections of [`TEST_USER`], counted on the backend itself.
fn user_connections(checker: &mut Conn) -> u64 {
    checker
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE user = ?",
            (TEST_USER,),
        )
        .unwrap()
        .unwrap()
}

fn backend_checker(backend: &MariaDb) -> Conn {
    backend.root_conn()
}

/// The names of a text result's single column.
fn texts(rows: &[Vec<Option<String>>]) -> Vec<Option<&str>> {
    rows.iter()
        .map(|r| {
            assert_eq!(r.len(), 1, "{rows:?}");
            r[0].as_deref()
        })
        .collect()
}

/// `items`: `ROWS` rows (id, name), name NULL for every 100th id.
fn create_items(t: &Target) {
    let mut conn = t.backend.root_conn();
    conn.query_drop(
        "CREATE TABLE test.items (id INT PRIMARY KEY, name VARCHAR(50) NULL) ENGINE=InnoDB",
    )
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO test.items SELECT seq, IF(seq % 100 = 0, NULL, CONCAT('item-', seq)) \
         FROM seq_1_to_{ROWS}"
    ))
    .unwrap();
}

/// The `items` row expected for `id`.
fn expected_item(id: i64) -> Vec<BinValue> {
    let name = if id % 100 == 0 {
        BinValue::Null
    } else {
        BinValue::Bytes(format!("item-{id}").into_bytes())
    };
    vec![BinValue::Int(id), name]
}

// ---------------------------------------------------------------- bodies

/// COM_SET_OPTION: multi-statements OFF makes a two-statement query a syntax
/// error; ON gives back every result set. The reply to COM_SET_OPTION itself is
/// the server's, byte for byte.
fn set_option(t: &Target) {
    let caps = CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS;
    let mut raw = raw_user(t, caps);
    assert_eq!(
        raw.capabilities & caps,
        caps,
        "the greeting must offer multi-statements and multi-results"
    );
    let two = "SELECT 'one'; SELECT 'two' UNION ALL SELECT 'three'";

    // Connected with CLIENT_MULTI_STATEMENTS: both results.
    let results = raw.query_results(two).unwrap();
    assert_eq!(results.len(), 2, "{results:?}");

    // What the server itself answers to COM_SET_OPTION, asked directly.
    let mut reference = RawConn::connect_with(
        &t.backend.endpoint(),
        TEST_USER,
        TEST_PASSWORD,
        Some("test"),
        caps,
    )
    .unwrap();
    reference.set_read_timeout(TIMEOUT).unwrap();
    let server_off = reference
        .set_option(MYSQL_OPTION_MULTI_STATEMENTS_OFF)
        .unwrap();
    let server_on = reference
        .set_option(MYSQL_OPTION_MULTI_STATEMENTS_ON)
        .unwrap();
    reference.quit().unwrap();
    // MariaDB answers with a classic EOF (the client did not ask for DEPRECATE_EOF).
    assert_eq!(
        server_off.first(),
        Some(&0xfe),
        "server reply {server_off:02x?}"
    );
    assert_eq!(server_off.len(), 5, "server reply {server_off:02x?}");

    let off = raw.set_option(MYSQL_OPTION_MULTI_STATEMENTS_OFF).unwrap();
    assert_eq!(off, server_off, "reply to MULTI_STATEMENTS_OFF");
    let (code, state) = expect_server_error(raw.query_results(two));
    assert_eq!((code, state.as_str()), (1064, "42000"));
    // A single statement still works, and the connection is in step.
    let one = raw.query_results("SELECT 'single'").unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(texts(&one[0].rows), [Some("single")]);

    let on = raw.set_option(MYSQL_OPTION_MULTI_STATEMENTS_ON).unwrap();
    assert_eq!(on, server_on, "reply to MULTI_STATEMENTS_ON");
    let results = raw.query_results(two).unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(texts(&results[0].rows), [Some("one")]);
    assert_ne!(results[0].status & status::MORE_RESULTS_EXISTS, 0);
    assert_eq!(texts(&results[1].rows), [Some("two"), Some("three")]);
    assert_eq!(results[1].status & status::MORE_RESULTS_EXISTS, 0);
    // Three statements, the middle one without a result set.
    let results = raw
        .query_results("SELECT 1; DO 2; SELECT 3 UNION ALL SELECT NULL")
        .unwrap();
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results[1].columns.is_empty(), "{results:?}");
    assert_eq!(texts(&results[2].rows), [Some("3"), None]);

    // An unknown option is the server's error, and the connection survives.
    let (code, _) = expect_server_error(raw.set_option(7));
    assert_eq!(code, 1047, "unknown COM_SET_OPTION option");
    raw.ping().unwrap();
    raw.quit().unwrap();
}

/// A cursor over 1000 rows fetched 100 at a time, binary rows decoded;
/// COM_STMT_RESET (also in the middle of a cursor); the same statement without
/// a cursor; COM_STMT_CLOSE, which has no reply, then COM_PING.
fn cursor_fetch(t: &Target) {
    create_items(t);
    let mut raw = raw_user(t, 0);
    let stmt = raw
        .prepare("SELECT id, name FROM items WHERE id > ? ORDER BY id")
        .unwrap();
    assert_eq!(stmt.params, 1);
    let names: Vec<&str> = stmt.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name"]);
    let params = [Param::Int(0)];

    let opened = raw.execute(&stmt, CURSOR_TYPE_READ_ONLY, &params).unwrap();
    assert_ne!(
        opened.status & status::CURSOR_EXISTS,
        0,
        "EOF after the columns must say a cursor exists: status {:#06x}",
        opened.status
    );
    assert!(opened.rows.is_empty(), "rows came without COM_STMT_FETCH");
    let types: Vec<u8> = opened.columns.iter().map(|c| c.column_type).collect();
    assert_eq!(types, [column_type::LONG, column_type::VAR_STRING]);
    let columns = opened.columns;

    let mut got = Vec::new();
    let mut fetches = 0;
    loop {
        fetches += 1;
        assert!(fetches <= 20, "no LAST_ROW_SENT after {fetches} fetches");
        let (rows, flags) = raw.fetch(stmt.id, 100).unwrap();
        assert!(
            rows.len() <= 100,
            "fetch of 100 returned {} rows",
            rows.len()
        );
        for row in &rows {
            got.push(decode_binary_row(&columns, row).unwrap());
        }
        if flags & status::LAST_ROW_SENT != 0 {
            break;
        }
        assert_eq!(rows.len(), 100, "a fetch short of the cursor's end");
        assert_ne!(flags & status::CURSOR_EXISTS, 0, "status {flags:#06x}");
    }
    assert_eq!(got.len(), ROWS as usize, "rows through the cursor");
    for (i, row) in got.iter().enumerate() {
        assert_eq!(*row, expected_item(i as i64 + 1), "cursor row {i}");
    }
    eprintln!("[{}] {ROWS} rows in {fetches} fetches", t.label());

    raw.stmt_reset(stmt.id).unwrap();

    // A second cursor, reset while rows are left: the cursor is gone.
    let opened = raw.execute(&stmt, CURSOR_TYPE_READ_ONLY, &params).unwrap();
    assert_ne!(opened.status & status::CURSOR_EXISTS, 0);
    let (rows, _) = raw.fetch(stmt.id, 100).unwrap();
    assert_eq!(rows.len(), 100);
    raw.stmt_reset(stmt.id).unwrap();
    let (code, _) = expect_server_error(raw.fetch(stmt.id, 100));
    assert_eq!(code, 1421, "fetch after COM_STMT_RESET: no open cursor");

    // Without a cursor every row comes in the execute's response.
    let all = raw.execute(&stmt, 0, &params).unwrap();
    assert_eq!(all.status & status::CURSOR_EXISTS, 0);
    assert_eq!(all.rows.len(), ROWS as usize);
    for (i, row) in all.rows.iter().enumerate() {
        let row = decode_binary_row(&all.columns, row).unwrap();
        assert_eq!(row, expected_item(i as i64 + 1), "row {i}");
    }
    // Another parameter value.
    let tail = raw.execute(&stmt, 0, &[Param::Int(ROWS - 3)]).unwrap();
    let tail: Vec<_> = tail
        .rows
        .iter()
        .map(|r| decode_binary_row(&all.columns, r).unwrap())
        .collect();
    assert_eq!(
        tail,
        (ROWS - 2..=ROWS).map(expected_item).collect::<Vec<_>>()
    );

    // COM_STMT_CLOSE has no reply: the ping right after must get its OK
    // (a proxy waiting for a reply to the close would stall here).
    raw.stmt_close(stmt.id).unwrap();
    let began = Instant::now();
    raw.ping().unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "COM_PING after COM_STMT_CLOSE took {:?}",
        began.elapsed()
    );
    // The close reached the server: the statement is gone.
    let (code, _) = expect_server_error(raw.execute(&stmt, 0, &params));
    assert_eq!(code, 1243, "execute after COM_STMT_CLOSE");
    raw.ping().unwrap();
    raw.quit().unwrap();
}

/// COM_STMT_SEND_LONG_DATA (no reply) in several pieces, then the execute sees
/// the joined value: in an INSERT (checked on the server) and in a WHERE.
fn long_data(t: &Target) {
    create_items(t);
    t.backend
        .root_conn()
        .query_drop("CREATE TABLE test.docs (id INT PRIMARY KEY, body LONGBLOB)")
        .unwrap();
    let mut raw = raw_user(t, 0);

    let insert = raw.prepare("INSERT INTO docs VALUES (?, ?)").unwrap();
    assert_eq!(insert.params, 2);
    let pieces: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            (0..300_000u32)
                .map(|j| b'a' + ((j + i as u32) % 26) as u8)
                .collect()
        })
        .collect();
    for piece in &pieces {
        raw.send_long_data(insert.id, 1, piece).unwrap();
    }
    let done = raw
        .execute(&insert, 0, &[Param::Int(1), Param::LongData])
        .unwrap();
    assert_eq!(done.affected_rows, 1);
    let whole = pieces.concat();
    let (len, same): (usize, bool) = t
        .backend
        .root_conn()
        .exec_first(
            "SELECT LENGTH(body), body = ? FROM test.docs WHERE id = 1",
            (whole.clone(),),
        )
        .unwrap()
        .unwrap();
    assert_eq!(len, whole.len());
    assert!(
        same,
        "the long data on the server differs from what was sent"
    );

    // Long data in a query's parameter, next to an inline one.
    let select = raw
        .prepare("SELECT id, name FROM items WHERE name = ? AND id > ?")
        .unwrap();
    raw.send_long_data(select.id, 0, b"item-").unwrap();
    raw.send_long_data(select.id, 0, b"777").unwrap();
    let found = raw
        .execute(&select, 0, &[Param::LongData, Param::Int(0)])
        .unwrap();
    let rows: Vec<_> = found
        .rows
        .iter()
        .map(|r| decode_binary_row(&found.columns, r).unwrap())
        .collect();
    assert_eq!(rows, [expected_item(777)]);
    // The long data was used up by that execute: an inline value now.
    let found = raw
        .execute(
            &select,
            0,
            &[Param::Bytes(b"item-42".to_vec()), Param::Int(0)],
        )
        .unwrap();
    assert_eq!(found.rows.len(), 1);
    raw.stmt_close(select.id).unwrap();
    raw.stmt_close(insert.id).unwrap();
    raw.ping().unwrap();
    raw.quit().unwrap();
}

/// COM_QUIT: the connection is closed cleanly (end of stream, nothing sent
/// before it), and the server connection behind it goes away.
fn quit(t: &Target) {
    let mut checker = backend_checker(t.backend);
    let before = user_connections(&mut checker);
    let mut raw = raw_user(t, 0);
    let thread_id = raw.greeting.connection_id;
    assert_eq!(user_connections(&mut checker), before + 1);
    raw.ping().unwrap();

    let began = Instant::now();
    raw.send_command(mysql_proxy_tests::raw::cmd::QUIT, &[])
        .unwrap();
    let (received, end) = raw.drain();
    assert_eq!(
        (received.as_slice(), end),
        (&[][..], StreamEnd::Closed),
        "after COM_QUIT: bytes {received:02x?}, then {end:?}"
    );
    assert!(began.elapsed() < TIMEOUT);
    wait_for(
        "the server connection to go after COM_QUIT",
        Duration::from_secs(5),
        || user_connections(&mut checker) == before,
    );
    let left: u64 = checker
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ?",
            (thread_id,),
        )
        .unwrap()
        .unwrap();
    assert_eq!(left, 0, "server thread {thread_id} still there");

    // A client library's disconnect (it sends COM_QUIT) does the same.
    let conn = t.endpoint.user_conn();
    wait_for("the crate's connection", Duration::from_secs(5), || {
        user_connections(&mut checker) == before + 1
    });
    drop(conn);
    wait_for(
        "the server connection to go after the crate's disconnect",
        Duration::from_secs(5),
        || user_connections(&mut checker) == before,
    );
}

// ---------------------------------------------------------------- tests

#[test]
fn direct_set_option() {
    direct(set_option)
}
#[test]
fn proxy_set_option() {
    through_proxy(set_option)
}

#[test]
fn direct_cursor_fetch() {
    direct(cursor_fetch)
}
#[test]
fn proxy_cursor_fetch() {
    through_proxy(cursor_fetch)
}

#[test]
fn direct_long_data() {
    direct(long_data)
}
#[test]
fn proxy_long_data() {
    through_proxy(long_data)
}

#[test]
fn direct_quit() {
    direct(quit)
}
#[test]
fn proxy_quit() {
    through_proxy(quit)
}
