//! The ports where Lua answers without a server: the admin port with
//! `--admin-lua-script` (the script's `read_query` answers every command)
//! and the debug port (`--plugins=debug`: each query runs as Lua). Both
//! share one Lua state with the proxy plugin's script, so what a proxy
//! script keeps in `proxy.global` is what they read.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use mysql_proxy_tests::{free_port, Endpoint, MariaDb, Proxy, RawConn, RawError};

/// Writes `text` as `name` in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The proxy script of these tests: counts the queries it sees, in
/// `proxy.global`, and remembers the last one.
const COUNTING_SCRIPT: &str = r#"
function read_query(packet)
    if packet:byte() == proxy.COM_QUERY then
        proxy.global.queries = (proxy.global.queries or 0) + 1
        proxy.global.last = packet:sub(2)
    end
end
"#;

/// An admin script: answers `SELECT * FROM stats` from `proxy.global`,
/// `SELECT * FROM backends` from `proxy.global.backends`, leaves
/// `silence` unanswered, queues a query for `queue`, and answers
/// anything else with an error of its own.
const ADMIN_SCRIPT: &str = r#"
function read_query(packet)
    local query = packet:sub(2):lower()
    if packet:byte() ~= proxy.COM_QUERY then
        proxy.response = { type = proxy.MYSQLD_PACKET_ERR, errmsg = "queries only" }
        return proxy.PROXY_SEND_RESULT
    elseif query == "select * from stats" then
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = {
                fields = { { name = "queries" }, { name = "last" }, { name = "user" } },
                rows = { { proxy.global.queries, proxy.global.last,
                           proxy.connection.client.username } },
            },
        }
        return proxy.PROXY_SEND_RESULT
    elseif query == "select * from backends" then
        local rows = {}
        for i = 1, #proxy.global.backends do
            local backend = proxy.global.backends[i]
            rows[#rows + 1] = { i, backend.dst.name, backend.connected_clients }
        end
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = {
                fields = { { name = "ndx" }, { name = "address" }, { name = "clients" } },
                rows = rows,
            },
        }
        return proxy.PROXY_SEND_RESULT
    elseif query == "silence" then
        return
    elseif query == "queue" then
        proxy.queries:append(1, string.char(proxy.COM_QUERY) .. "SELECT 1")
        return proxy.PROXY_SEND_QUERY
    end
    proxy.response = { type = proxy.MYSQLD_PACKET_ERR, errmsg = "unknown: " .. query }
    return proxy.PROXY_SEND_RESULT
end
"#;

/// The proxy with the proxy, admin and debug plugins, `COUNTING_SCRIPT`
/// on the proxy port, `admin_script` (if any) on the admin port.
fn start(server: &MariaDb, dir: &Path, admin_script: Option<&Path>) -> (Proxy, Endpoint) {
    let debug_port = free_port();
    let mut builder = Proxy::builder()
        .plugins(&["proxy", "admin", "debug"])
        .backend(server.addr())
        .arg(format!(
            "--proxy-lua-script={}",
            file(dir, "proxy.lua", COUNTING_SCRIPT).display()
        ))
        .arg(format!("--debug-address=127.0.0.1:{debug_port}"))
        .wait_for_port(debug_port);
    if let Some(script) = admin_script {
        builder = builder.arg(format!("--admin-lua-script={}", script.display()));
    }
    let proxy = builder.start().expect("proxy with admin and debug plugins");
    (proxy, Endpoint::local(debug_port))
}

fn server_error(result: Result<Vec<Vec<Option<String>>>, RawError>) -> (u16, String) {
    match result {
        Err(RawError::Server(error)) => (error.code, error.message),
        other => panic!("expected an ERR, got {other:?}"),
    }
}

fn cell(rows: &[Vec<Option<String>>], row: usize, column: usize) -> Option<&str> {
    rows[row][column].as_deref()
}

#[test]
fn the_admin_script_answers_the_admin_port_from_the_proxy_scripts_state() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = file(dir.path(), "admin.lua", ADMIN_SCRIPT);
    let (proxy, _) = start(&server, dir.path(), Some(&admin));
    let mut client = RawConn::connect(&proxy.endpoint(), "root", "", None).unwrap();
    client.query("SELECT 1").unwrap();
    client.query("SELECT 'the last one'").unwrap();

    let (user, password) = ("admin", "secret");
    let mut admin = RawConn::connect(&proxy.admin_endpoint(), user, password, None).unwrap();
    let stats = admin.query("SELECT * FROM stats").unwrap();
    assert_eq!(cell(&stats, 0, 0), Some("2"), "{stats:?}");
    assert_eq!(cell(&stats, 0, 1), Some("SELECT 'the last one'"));
    assert_eq!(cell(&stats, 0, 2), Some(user));
    let backends = admin.query("select * from BACKENDS").unwrap();
    assert_eq!(cell(&backends, 0, 1), Some(server.addr().as_str()));
    assert_eq!(
        cell(&backends, 0, 2),
        Some("1"),
        "the client still connected"
    );
    let (code, message) = server_error(admin.query("bogus"));
    assert_eq!((code, message.as_str()), (1105, "unknown: bogus"));
    admin.query("SELECT * FROM stats").unwrap();

    // What is not an answer is an error that ends the connection.
    let (code, message) = server_error(admin.query("silence"));
    assert_eq!(code, 1105);
    assert_eq!(message, "need a resultset + proxy.PROXY_SEND_RESULT");
    assert!(
        admin.query("SELECT * FROM stats").is_err(),
        "connection closed"
    );
    let mut admin = RawConn::connect(&proxy.admin_endpoint(), user, password, None).unwrap();
    let (_, message) = server_error(admin.query("queue"));
    assert_eq!(
        message,
        "need a resultset + proxy.PROXY_SEND_RESULT ... got something else"
    );
    // LOAD is refused without the script.
    let mut admin = RawConn::connect(&proxy.admin_endpoint(), user, password, None).unwrap();
    let (_, message) = server_error(admin.query("load data local infile 'x' into table t"));
    assert!(message.ends_with("got something else"), "{message}");

    // The built-in tables are not there: the script answers alone.
    let mut admin = RawConn::connect(&proxy.admin_endpoint(), user, password, None).unwrap();
    let (_, message) = server_error(admin.query("SELECT * FROM help"));
    assert_eq!(message, "unknown: select * from help");
    // The proxy port went on all along.
    assert_eq!(cell(&client.query("SELECT 3").unwrap(), 0, 0), Some("3"));
}

#[test]
fn an_admin_script_that_does_not_load_is_each_connections_error() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = file(dir.path(), "admin.lua", "function read_query(");
    let (proxy, _) = start(&server, dir.path(), Some(&admin));
    let mut conn = RawConn::connect(&proxy.admin_endpoint(), "admin", "secret", None).unwrap();
    let (_, message) = server_error(conn.query("SELECT 1"));
    assert_eq!(
        message,
        "MySQL Proxy Lua script failed to load. Check the error log."
    );
    // Fixed, the next connection gets it.
    std::fs::write(&admin, ADMIN_SCRIPT).unwrap();
    let mut conn = RawConn::connect(&proxy.admin_endpoint(), "admin", "secret", None).unwrap();
    conn.query("SELECT * FROM stats").unwrap();
    assert!(
        proxy.stderr_text().contains("admin.lua"),
        "{}",
        proxy.stderr_text()
    );
}

#[test]
fn the_debug_port_runs_each_query_as_lua_in_the_shared_state() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let (proxy, debug) = start(&server, dir.path(), None);
    let mut client = RawConn::connect(&proxy.endpoint(), "root", "", None).unwrap();
    client.query("SELECT 'seen by the script'").unwrap();

    // Any credentials are accepted.
    let mut conn = RawConn::connect(&debug, "anyone", "anything", None).unwrap();
    let rows = conn.query("select @@version_comment limit 1").unwrap();
    assert_eq!(cell(&rows, 0, 0), Some("MySQL Enterprise Agent"));
    assert_eq!(
        cell(&conn.query("SELECT USER()").unwrap(), 0, 0),
        Some("root")
    );
    let rows = conn.query("return proxy.global.last").unwrap();
    assert_eq!(cell(&rows, 0, 0), Some("SELECT 'seen by the script'"));
    let rows = conn
        .query("return proxy.global.backends[1].dst.name")
        .unwrap();
    assert_eq!(cell(&rows, 0, 0), Some(server.addr().as_str()));
    assert_eq!(conn.query("return nil").unwrap(), vec![vec![None]]);
    let rows = conn
        .query("return { { id = 1, name = 'a' }, { id = 2 } }")
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].contains(&None), "a missing key is NULL: {rows:?}");
    // State lasts across connections.
    conn.query("debug_counter = 41").unwrap();
    let mut other = RawConn::connect(&debug, "x", "", None).unwrap();
    let rows = other
        .query("debug_counter = debug_counter + 1 return debug_counter")
        .unwrap();
    assert_eq!(cell(&rows, 0, 0), Some("42"));

    // What crashed MySQL Proxy 0.8's debug plugin gets an answer.
    assert!(conn.query("return {}").unwrap().is_empty());
    let rows = conn
        .query("return { a = { b = { c = { d = 1 } } } }")
        .unwrap();
    assert_eq!(cell(&rows, 0, 0), Some("{c = {d = 1}}"));
    let rows = conn.query("return { { { { { { 1 } } } } } }").unwrap();
    assert_eq!(cell(&rows, 0, 0), Some("{[1] = {[1] = {[1] = {...}}}}"));
    let (code, message) = server_error(conn.query("return 1 +"));
    assert_eq!(code, 1105);
    assert!(message.contains("unexpected symbol"), "{message}");
    let (_, message) = server_error(conn.query("error('boom')"));
    assert!(message.contains("boom"), "{message}");
    let (_, message) = server_error(conn.query("error({})"));
    assert!(!message.is_empty());
    let (_, message) = server_error(conn.query("return string.rep('x', 20 * 1024 * 1024)"));
    assert!(message.contains("larger than"), "{message}");
    // A chunk that runs away is stopped (the default limit is 5 s).
    let started = std::time::Instant::now();
    let (_, message) = server_error(conn.query("while true do end"));
    assert!(
        message.contains("stopped after running longer than 5 s"),
        "{message}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    conn.ping().unwrap();
    conn.init_db("anything").unwrap();
    assert_eq!(cell(&conn.query("return 1").unwrap(), 0, 0), Some("1"));
    // The proxy port went on all along.
    assert_eq!(cell(&client.query("SELECT 2").unwrap(), 0, 0), Some("2"));
}

/// Every constant of MySQL Proxy 0.8's `proxy` table, with its value.
const CONSTANTS: &[(&str, i64)] = &[
    ("PROXY_SEND_QUERY", 1),
    ("PROXY_SEND_RESULT", 2),
    ("PROXY_IGNORE_RESULT", 4),
    ("PROXY_VERSION", 0x00805),
    ("MYSQLD_PACKET_OK", 0),
    ("MYSQLD_PACKET_RAW", 250),
    ("MYSQLD_PACKET_ERR", 255),
    ("BACKEND_STATE_UNKNOWN", 0),
    ("BACKEND_STATE_UP", 1),
    ("BACKEND_STATE_DOWN", 2),
    ("BACKEND_TYPE_UNKNOWN", 0),
    ("BACKEND_TYPE_RW", 1),
    ("BACKEND_TYPE_RO", 2),
    ("COM_SLEEP", 0),
    ("COM_QUIT", 1),
    ("COM_INIT_DB", 2),
    ("COM_QUERY", 3),
    ("COM_FIELD_LIST", 4),
    ("COM_CREATE_DB", 5),
    ("COM_DROP_DB", 6),
    ("COM_REFRESH", 7),
    ("COM_SHUTDOWN", 8),
    ("COM_STATISTICS", 9),
    ("COM_PROCESS_INFO", 10),
    ("COM_CONNECT", 11),
    ("COM_PROCESS_KILL", 12),
    ("COM_DEBUG", 13),
    ("COM_PING", 14),
    ("COM_TIME", 15),
    ("COM_DELAYED_INSERT", 16),
    ("COM_CHANGE_USER", 17),
    ("COM_BINLOG_DUMP", 18),
    ("COM_TABLE_DUMP", 19),
    ("COM_CONNECT_OUT", 20),
    ("COM_REGISTER_SLAVE", 21),
    ("COM_STMT_PREPARE", 22),
    ("COM_STMT_EXECUTE", 23),
    ("COM_STMT_SEND_LONG_DATA", 24),
    ("COM_STMT_CLOSE", 25),
    ("COM_STMT_RESET", 26),
    ("COM_SET_OPTION", 27),
    ("COM_STMT_FETCH", 28),
    ("COM_DAEMON", 29),
    ("MYSQL_TYPE_DECIMAL", 0),
    ("MYSQL_TYPE_TINY", 1),
    ("MYSQL_TYPE_SHORT", 2),
    ("MYSQL_TYPE_LONG", 3),
    ("MYSQL_TYPE_FLOAT", 4),
    ("MYSQL_TYPE_DOUBLE", 5),
    ("MYSQL_TYPE_NULL", 6),
    ("MYSQL_TYPE_TIMESTAMP", 7),
    ("MYSQL_TYPE_LONGLONG", 8),
    ("MYSQL_TYPE_INT24", 9),
    ("MYSQL_TYPE_DATE", 10),
    ("MYSQL_TYPE_TIME", 11),
    ("MYSQL_TYPE_DATETIME", 12),
    ("MYSQL_TYPE_YEAR", 13),
    ("MYSQL_TYPE_NEWDATE", 14),
    ("MYSQL_TYPE_BIT", 16),
    ("MYSQL_TYPE_NEWDECIMAL", 246),
    ("MYSQL_TYPE_ENUM", 247),
    ("MYSQL_TYPE_SET", 248),
    ("MYSQL_TYPE_TINY_BLOB", 249),
    ("MYSQL_TYPE_MEDIUM_BLOB", 250),
    ("MYSQL_TYPE_LONG_BLOB", 251),
    ("MYSQL_TYPE_BLOB", 252),
    ("MYSQL_TYPE_VAR_STRING", 253),
    ("MYSQL_TYPE_STRING", 254),
    ("MYSQL_TYPE_GEOMETRY", 255),
];

#[test]
fn every_constant_of_mysql_proxy_is_there_and_the_missing_ones_are_nil() {
    let server = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, debug) = start(&server, dir.path(), None);
    let mut conn = RawConn::connect(&debug, "x", "", None).unwrap();
    let names: Vec<String> = CONSTANTS
        .iter()
        .map(|(name, _)| format!("'{name}'"))
        .collect();
    let rows = conn
        .query(&format!(
            "local rows = {{}} \
             for _, name in ipairs({{ {} }}) do \
               rows[#rows + 1] = {{ name = name, value = proxy[name] }} \
             end \
             return rows",
            names.join(", ")
        ))
        .unwrap();
    assert_eq!(rows.len(), CONSTANTS.len());
    for (row, (name, value)) in rows.iter().zip(CONSTANTS) {
        let row: Vec<&str> = row
            .iter()
            .map(|cell| cell.as_deref().unwrap_or("NULL"))
            .collect();
        let expected = value.to_string();
        assert!(
            row.contains(name) && row.contains(&expected.as_str()),
            "{name}: {row:?}"
        );
    }
    // Not exported by 0.8 (scripts test them for nil).
    let rows = conn
        .query("return { eof = proxy.MYSQLD_PACKET_EOF == nil, varchar = proxy.MYSQL_TYPE_VARCHAR == nil, typo = proxy.COM_QEURY == nil }")
        .unwrap();
    assert_eq!(rows, vec![vec![Some("TRUE".to_string()); 3]]);
}
