//! Relay acceptance tests: through the proxy a client sees exactly what it sees
//! talking to MariaDB directly (results, large packets, prepared statements,
//! LOAD DATA LOCAL, multi-statements, session commands, errors).
//!
//! Each body runs twice: `direct_*` against the server itself (validates the
//! test) and `proxy_*` through `mysql-proxy --plugins=proxy`.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Instant;

use mysql::consts::ColumnType;
use mysql::prelude::*;
use mysql::{from_value, ChangeUserOpts, Conn, Error, LocalInfileHandler, MySqlError, Row, Value};
use mysql_proxy_tests::data::printable;
use mysql_proxy_tests::{
    direct, expect_success, through_proxy, RawConn, RawError, Target, TEST_PASSWORD, TEST_USER,
};
use sha1::{Digest, Sha1};

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------- helpers

fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The server error a statement produced, or a panic if it did not fail that way.
fn server_error<T: std::fmt::Debug>(result: Result<T, Error>) -> MySqlError {
    match result {
        Err(Error::MySqlError(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

fn current_user(conn: &mut Conn) -> String {
    conn.query_first("SELECT current_user()").unwrap().unwrap()
}

// ---------------------------------------------------------------- bodies

/// `select @@version, connection_id()` with the mariadb command-line client.
fn version_cli(t: &Target) {
    let out = t.endpoint.cli(
        "root",
        None,
        &["-N", "-e", "select @@version, connection_id()"],
    );
    let stdout = expect_success("mariadb -e 'select @@version, connection_id()'", &out);
    let (version, id) = stdout
        .trim_end()
        .split_once('\t')
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"));
    let expected: String = t
        .backend
        .root_conn()
        .query_first("SELECT @@version")
        .unwrap()
        .unwrap();
    assert_eq!(version, expected);
    assert!(id.parse::<u64>().unwrap() > 0, "connection id {id:?}");

    // And a password user, which the proxy must authenticate against the server.
    let out = t.endpoint.cli(
        TEST_USER,
        Some(TEST_PASSWORD),
        &["-N", "-e", "select current_user()"],
    );
    let stdout = expect_success("mariadb -uproxyuser -psecret", &out);
    assert!(stdout.starts_with("proxyuser@"), "{stdout:?}");
}

/// The same through the Rust client; the greeting's thread id is the server's.
fn version_crate(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    let (version, id): (String, u32) = conn
        .query_first("select @@version, connection_id()")
        .unwrap()
        .unwrap();
    let expected: String = t
        .backend
        .root_conn()
        .query_first("SELECT @@version")
        .unwrap()
        .unwrap();
    assert_eq!(version, expected);
    assert_eq!(id, conn.connection_id(), "thread id in the greeting");

    let mut user = t.endpoint.user_conn();
    assert!(current_user(&mut user).starts_with("proxyuser@"));

    let denied = Conn::new(t.endpoint.opts(TEST_USER, Some("wrong")));
    let e = server_error(denied);
    assert_eq!((e.code, e.state.as_str()), (1045, "28000"), "{e:?}");
    assert!(
        e.message
            .starts_with("Access denied for user 'proxyuser'@'127.0.0.1'"),
        "{e:?}"
    );
}

/// ~105 MB in 105,000 rows of 1000 bytes, streamed row by row and checked byte
/// for byte (a stronger check than a checksum). Through the proxy, its peak
/// memory must not grow with the result.
fn large_result_100mb(t: &Target) {
    const ROWS: u64 = 105_000;
    let rss_before = t.proxy.map(|p| p.peak_rss_kib());
    let mut conn = t.endpoint.root_conn();
    let sql = format!(
        "SELECT seq, CONCAT(LPAD(seq, 10, '0'), REPEAT(CHAR(97 + seq % 26), 990)) \
         FROM seq_1_to_{ROWS}"
    );
    let began = Instant::now();
    let mut result = conn.query_iter(sql).unwrap();
    let mut rows = 0u64;
    let mut bytes = 0usize;
    for row in result.by_ref() {
        let (seq, text): (u64, Vec<u8>) = mysql::from_row(row.unwrap());
        rows += 1;
        assert_eq!(seq, rows, "row order");
        assert_eq!(text.len(), 1000, "row {seq} length");
        assert_eq!(
            &text[..10],
            format!("{seq:010}").as_bytes(),
            "row {seq} prefix"
        );
        let fill = b'a' + (seq % 26) as u8;
        assert!(text[10..].iter().all(|&b| b == fill), "row {seq} content");
        bytes += text.len();
    }
    drop(result);
    let elapsed = began.elapsed();
    assert_eq!(rows, ROWS);
    eprintln!(
        "[{}] streamed {rows} rows, {:.1} MB in {elapsed:.2?} ({:.0} MB/s)",
        t.label(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / elapsed.as_secs_f64()
    );
    // The connection is still in step afterwards.
    assert_eq!(conn.query_first::<u8, _>("SELECT 7").unwrap(), Some(7));
    if let (Some(proxy), Some(before)) = (t.proxy, rss_before) {
        let peak = proxy.peak_rss_kib();
        eprintln!("[proxy] peak RSS {before} KiB before, {peak} KiB after");
        assert!(
            peak < before + 48 * 1024,
            "proxy peak RSS grew from {before} KiB to {peak} KiB relaying a 105 MB result"
        );
    }
}

/// A 20 MiB row (two protocol packets) from server to client.
fn row_20mib(t: &Target) {
    let len = 20 * MIB;
    let mut conn = t.endpoint.root_conn();
    let (big, server_sha1): (Vec<u8>, String) = conn
        .query_first(format!(
            "SELECT REPEAT('a', {len}), SHA1(REPEAT('a', {len}))"
        ))
        .unwrap()
        .unwrap();
    assert_eq!(big.len(), len);
    assert!(big.iter().all(|&b| b == b'a'));
    assert_eq!(sha1_hex(&big), server_sha1);
    assert_eq!(conn.query_first::<u8, _>("SELECT 1").unwrap(), Some(1));
}

/// A 20 MiB query (two protocol packets) from client to server, read back.
fn query_20mib(t: &Target) {
    let data = printable(20 * MIB, 0x5eed);
    let mut conn = t.endpoint.root_conn();
    conn.query_drop("CREATE TABLE big (id INT PRIMARY KEY, v LONGBLOB)")
        .unwrap();
    let mut sql = b"INSERT INTO big VALUES (1, '".to_vec();
    sql.extend_from_slice(&data);
    sql.extend_from_slice(b"')");
    conn.query_drop(String::from_utf8(sql).unwrap()).unwrap();
    assert_eq!(conn.affected_rows(), 1);

    let (len, server_sha1): (usize, String) = conn
        .query_first("SELECT LENGTH(v), SHA1(v) FROM big WHERE id = 1")
        .unwrap()
        .unwrap();
    assert_eq!(len, data.len());
    assert_eq!(server_sha1, sha1_hex(&data));
    // Read it back whole, too (varied bytes, unlike the REPEAT row).
    let back: Vec<u8> = conn
        .query_first("SELECT v FROM big WHERE id = 1")
        .unwrap()
        .unwrap();
    assert!(back == data, "20 MiB value read back differs");
    // Checked on the server directly as well.
    let direct: String = t
        .backend
        .root_conn()
        .query_first("SELECT SHA1(v) FROM test.big")
        .unwrap()
        .unwrap();
    assert_eq!(direct, sha1_hex(&data));
}

/// Every column type through COM_STMT_PREPARE / COM_STMT_EXECUTE (binary
/// protocol) both ways, NULLs, and a 17 MiB parameter, which the client sends with
/// COM_STMT_SEND_LONG_DATA (the crate does so when the parameters exceed 16 MiB).
fn prepared_all_types(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    conn.query_drop(
        "CREATE TABLE all_types (
            id INT PRIMARY KEY,
            ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
            mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
            bi BIGINT, biu BIGINT UNSIGNED,
            f FLOAT, d DOUBLE, de DECIMAL(30, 10),
            da DATE, tm TIME(6), dt DATETIME(6), ts TIMESTAMP(6) NULL, y YEAR,
            c CHAR(10), vc VARCHAR(100), bn BINARY(4), vb VARBINARY(300),
            bl BLOB, tx TEXT, lb LONGBLOB,
            en ENUM('a', 'b', 'c'), st SET('x', 'y', 'z'), bt BIT(12), js JSON
        )",
    )
    .unwrap();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let blob = printable(60_000, 7);
    let text = "line1\nline2\t'quoted' \"double\" \\ back\u{0}zero ünïcödé ✓".to_string();
    let json = r#"{"a": [1, 2.5, "x", null, true], "b": {"c": "d"}}"#;
    let long_blob = printable(17 * MIB, 11);
    let row: Vec<Value> = vec![
        Value::Int(1),
        Value::Int(-128),
        Value::UInt(255),
        Value::Int(-32768),
        Value::UInt(65535),
        Value::Int(-8_388_608),
        Value::UInt(16_777_215),
        Value::Int(i32::MIN.into()),
        Value::UInt(u32::MAX.into()),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Float(1.5),
        Value::Double(-2.25e300),
        Value::Bytes(b"-12345678901234567890.0123456789".to_vec()),
        Value::Date(2024, 2, 29, 0, 0, 0, 0),
        Value::Time(true, 1, 2, 3, 4, 567_890),
        Value::Date(2024, 12, 31, 23, 59, 59, 999_999),
        Value::Date(2020, 6, 15, 12, 34, 56, 123_456),
        Value::UInt(2155),
        Value::Bytes(b"abc".to_vec()),
        Value::Bytes("héllo wörld ✓ 𝄞".as_bytes().to_vec()),
        Value::Bytes(vec![0, 1, 0xff]),
        Value::Bytes(all_bytes.clone()),
        Value::Bytes(blob.clone()),
        Value::Bytes(text.clone().into_bytes()),
        Value::Bytes(long_blob.clone()),
        Value::Bytes(b"b".to_vec()),
        Value::Bytes(b"x,z".to_vec()),
        Value::Bytes(vec![0x0a, 0xbc]),
        Value::Bytes(json.as_bytes().to_vec()),
    ];
    let columns = row.len();
    let placeholders = vec!["?"; columns].join(", ");
    let insert = conn
        .prep(format!("INSERT INTO all_types VALUES ({placeholders})"))
        .unwrap();
    assert_eq!(insert.num_params() as usize, columns);
    conn.exec_drop(&insert, row).unwrap();
    // Row 2: every column but the key NULL.
    let mut nulls = vec![Value::NULL; columns];
    nulls[0] = Value::Int(2);
    conn.exec_drop(&insert, nulls).unwrap();

    let select = conn.prep("SELECT * FROM all_types WHERE id = ?").unwrap();
    assert_eq!(select.num_columns() as usize, columns);
    let got: Row = conn.exec_first(&select, (1,)).unwrap().unwrap();
    let types: Vec<ColumnType> = got.columns_ref().iter().map(|c| c.column_type()).collect();
    assert_eq!(types[25], ColumnType::MYSQL_TYPE_BLOB, "LONGBLOB column");

    fn col<T: FromValue>(row: &Row, name: &str) -> T {
        let value = row
            .get_opt::<Value, _>(name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .unwrap();
        from_value::<T>(value)
    }
    assert_eq!(col::<i8>(&got, "ti"), -128);
    assert_eq!(col::<u8>(&got, "tiu"), 255);
    assert_eq!(col::<i16>(&got, "si"), -32768);
    assert_eq!(col::<u16>(&got, "siu"), 65535);
    assert_eq!(col::<i32>(&got, "mi"), -8_388_608);
    assert_eq!(col::<u32>(&got, "miu"), 16_777_215);
    assert_eq!(col::<i32>(&got, "i"), i32::MIN);
    assert_eq!(col::<u32>(&got, "iu"), u32::MAX);
    assert_eq!(col::<i64>(&got, "bi"), i64::MIN);
    assert_eq!(col::<u64>(&got, "biu"), u64::MAX);
    assert_eq!(col::<f32>(&got, "f"), 1.5);
    assert_eq!(col::<f64>(&got, "d"), -2.25e300);
    assert_eq!(
        col::<String>(&got, "de"),
        "-12345678901234567890.0123456789"
    );
    assert_eq!(
        col::<Value>(&got, "da"),
        Value::Date(2024, 2, 29, 0, 0, 0, 0)
    );
    assert_eq!(
        col::<Value>(&got, "tm"),
        Value::Time(true, 1, 2, 3, 4, 567_890)
    );
    assert_eq!(
        col::<Value>(&got, "dt"),
        Value::Date(2024, 12, 31, 23, 59, 59, 999_999)
    );
    assert_eq!(
        col::<Value>(&got, "ts"),
        Value::Date(2020, 6, 15, 12, 34, 56, 123_456)
    );
    assert_eq!(col::<u16>(&got, "y"), 2155);
    assert_eq!(col::<String>(&got, "c"), "abc");
    assert_eq!(col::<String>(&got, "vc"), "héllo wörld ✓ 𝄞");
    assert_eq!(col::<Vec<u8>>(&got, "bn"), vec![0, 1, 0xff, 0]);
    assert_eq!(col::<Vec<u8>>(&got, "vb"), all_bytes);
    assert!(col::<Vec<u8>>(&got, "bl") == blob, "BLOB differs");
    assert_eq!(col::<String>(&got, "tx"), text);
    assert!(
        col::<Vec<u8>>(&got, "lb") == long_blob,
        "17 MiB LONGBLOB differs"
    );
    assert_eq!(col::<String>(&got, "en"), "b");
    assert_eq!(col::<String>(&got, "st"), "x,z");
    assert_eq!(col::<Vec<u8>>(&got, "bt"), vec![0x0a, 0xbc]);
    assert_eq!(col::<String>(&got, "js"), json);

    let got: Row = conn.exec_first(&select, (2,)).unwrap().unwrap();
    for (i, value) in got.unwrap().into_iter().enumerate().skip(1) {
        assert_eq!(value, Value::NULL, "column {i} of the NULL row");
    }

    // The long parameter arrived intact on the server.
    let server: String = t
        .backend
        .root_conn()
        .query_first("SELECT SHA1(lb) FROM test.all_types WHERE id = 1")
        .unwrap()
        .unwrap();
    assert_eq!(server, sha1_hex(&long_blob));

    // Several rows through one execute; then the statements are closed.
    let ids: Vec<i32> = conn
        .exec("SELECT id FROM all_types WHERE id > ? ORDER BY id", (0,))
        .unwrap();
    assert_eq!(ids, vec![1, 2]);
    conn.close(insert).unwrap();
    conn.close(select).unwrap();
    assert_eq!(conn.query_first::<u8, _>("SELECT 1").unwrap(), Some(1));
}

/// LOAD DATA LOCAL INFILE from the crate (a generated 200,000-line file) and
/// from `mariadb --local-infile=1` (a real file).
fn load_data_local(t: &Target) {
    const LINES: u64 = 200_000;
    let mut conn = t.endpoint.root_conn();
    conn.query_drop("CREATE TABLE li (id INT PRIMARY KEY, v VARCHAR(64))")
        .unwrap();
    conn.set_local_infile_handler(Some(LocalInfileHandler::new(|name, out| {
        assert_eq!(name, b"generated.tsv");
        for i in 1..=LINES {
            writeln!(out, "{i}\tvalue number {i}")?;
        }
        Ok(())
    })));
    conn.query_drop("LOAD DATA LOCAL INFILE 'generated.tsv' INTO TABLE li (id, v)")
        .unwrap();
    assert_eq!(conn.affected_rows(), LINES);
    let (count, sum): (u64, u64) = conn
        .query_first("SELECT COUNT(*), SUM(id) FROM li")
        .unwrap()
        .unwrap();
    assert_eq!((count, sum), (LINES, LINES * (LINES + 1) / 2));
    assert_eq!(
        conn.query_first::<String, _>("SELECT v FROM li WHERE id = 4242")
            .unwrap()
            .unwrap(),
        "value number 4242"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cli.tsv");
    let mut content = String::new();
    for i in 1..=5000 {
        content.push_str(&format!("{i}\tcli {i}\n"));
    }
    std::fs::write(&file, content).unwrap();
    conn.query_drop("CREATE TABLE li_cli (id INT PRIMARY KEY, v VARCHAR(64))")
        .unwrap();
    let sql = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE li_cli (id, v)",
        file.display()
    );
    let out = t
        .endpoint
        .cli("root", None, &["--local-infile=1", "-Dtest", "-e", &sql]);
    expect_success("mariadb LOAD DATA LOCAL INFILE", &out);
    let count: u64 = t
        .backend
        .root_conn()
        .query_first("SELECT COUNT(*) FROM test.li_cli")
        .unwrap()
        .unwrap();
    assert_eq!(count, 5000);
}

/// One COM_QUERY with several statements returns every result, in order; an
/// error in the middle ends the batch and leaves the connection usable.
fn multi_statements(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    let mut result = conn.query_iter("select 1; select 2, 3; do 1").unwrap();
    let mut sets: Vec<(usize, Vec<Vec<Value>>)> = Vec::new();
    while let Some(set) = result.iter() {
        let width = set.columns().as_ref().len();
        let rows = set.map(|r| r.unwrap().unwrap()).collect();
        sets.push((width, rows));
    }
    drop(result);
    // Text-protocol values arrive as bytes.
    let v = |s: &str| Value::Bytes(s.as_bytes().to_vec());
    assert_eq!(
        sets,
        vec![
            (1, vec![vec![v("1")]]),
            (2, vec![vec![v("2"), v("3")]]),
            (0, vec![]),
        ]
    );

    let mut result = conn.query_iter("select 1; selec 2; select 3").unwrap();
    let first: Vec<Row> = result.iter().unwrap().map(Result::unwrap).collect();
    assert_eq!(first.len(), 1);
    let mut error = None;
    while let Some(set) = result.iter() {
        for row in set {
            if let Err(e) = row {
                error = Some(e);
            }
        }
    }
    drop(result);
    let e = server_error::<()>(Err(error.expect("the second statement must fail")));
    assert_eq!((e.code, e.state.as_str()), (1064, "42000"));
    assert_eq!(conn.query_first::<u8, _>("SELECT 4").unwrap(), Some(4));
}

/// COM_CHANGE_USER between root and the password user, session state dropped,
/// a wrong password refused.
fn change_user(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    assert!(current_user(&mut conn).starts_with("root@"));
    conn.query_drop("SET @marker = 42").unwrap();

    conn.change_user(
        ChangeUserOpts::default()
            .with_user(Some(TEST_USER.into()))
            .with_pass(Some(TEST_PASSWORD.into())),
    )
    .unwrap();
    assert!(current_user(&mut conn).starts_with("proxyuser@"));
    assert_eq!(
        conn.query_first::<Value, _>("SELECT @marker").unwrap(),
        Some(Value::NULL)
    );
    assert_eq!(
        conn.query_first::<String, _>("SELECT DATABASE()")
            .unwrap()
            .unwrap(),
        "test"
    );

    conn.change_user(
        ChangeUserOpts::default()
            .with_user(Some("root".into()))
            .with_pass(None),
    )
    .unwrap();
    assert!(current_user(&mut conn).starts_with("root@"));

    let mut other = t.endpoint.root_conn();
    let refused = other.change_user(
        ChangeUserOpts::default()
            .with_user(Some(TEST_USER.into()))
            .with_pass(Some("wrong".into())),
    );
    let e = server_error(refused);
    assert_eq!((e.code, e.state.as_str()), (1045, "28000"), "{e:?}");
}

/// COM_INIT_DB, good and bad.
fn init_db(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    conn.select_db("mysql").unwrap();
    assert_eq!(
        conn.query_first::<String, _>("SELECT DATABASE()")
            .unwrap()
            .unwrap(),
        "mysql"
    );
    let e = server_error(conn.select_db("no_such_db"));
    assert_eq!((e.code, e.state.as_str()), (1049, "42000"), "{e:?}");
    assert_eq!(e.message, "Unknown database 'no_such_db'");
    assert_eq!(
        conn.query_first::<String, _>("SELECT DATABASE()")
            .unwrap()
            .unwrap(),
        "mysql"
    );
    // The CLI's `use` and `-D` send COM_INIT_DB too.
    let out = t.endpoint.cli(
        "root",
        None,
        &["-N", "-Dmysql", "-e", "use test; select database()"],
    );
    assert_eq!(expect_success("mariadb use", &out).trim(), "test");
}

/// COM_PING from the crate, the raw client and `mariadb-admin ping`.
fn ping(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    for _ in 0..3 {
        conn.ping().unwrap();
    }
    let mut raw = RawConn::connect(&t.endpoint, "root", "", None).unwrap();
    raw.ping().unwrap();
    raw.quit().unwrap();
    let out = t.endpoint.admin_cli("root", None, &["ping"]);
    assert!(expect_success("mariadb-admin ping", &out).contains("mysqld is alive"));
}

/// COM_FIELD_LIST (no common client sends it on demand, so the raw client does).
fn field_list(t: &Target) {
    t.backend
        .root_conn()
        .query_drop("CREATE TABLE test.fl (a INT, b VARCHAR(10), c_x BLOB)")
        .unwrap();
    let mut raw = RawConn::connect(&t.endpoint, TEST_USER, TEST_PASSWORD, Some("test")).unwrap();
    assert_eq!(raw.field_list("fl", "").unwrap(), ["a", "b", "c_x"]);
    assert_eq!(raw.field_list("fl", "c%").unwrap(), ["c_x"]);
    match raw.field_list("missing", "") {
        Err(RawError::Server(e)) => assert_eq!((e.code, e.state.as_str()), (1146, "42S02")),
        other => panic!("expected ER_NO_SUCH_TABLE, got {other:?}"),
    }
    raw.ping().unwrap();
    raw.quit().unwrap();
}

/// COM_STATISTICS via `mariadb-admin status` and the raw client.
fn statistics(t: &Target) {
    let out = t.endpoint.admin_cli("root", None, &["status"]);
    let text = expect_success("mariadb-admin status", &out);
    assert!(text.starts_with("Uptime: "), "{text:?}");
    assert!(text.contains("Threads: "), "{text:?}");
    let mut raw = RawConn::connect(&t.endpoint, "root", "", None).unwrap();
    let text = raw.statistics().unwrap();
    assert!(text.starts_with("Uptime: "), "{text:?}");
    raw.ping().unwrap();
    raw.quit().unwrap();
}

/// COM_RESET_CONNECTION: the crate's `reset()` and a raw one.
fn reset_connection(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    conn.query_drop("SET @marker = 1").unwrap();
    conn.query_drop("CREATE TEMPORARY TABLE tmp (a INT)")
        .unwrap();
    let id = conn.connection_id();
    conn.reset().unwrap();
    assert_eq!(
        conn.query_first::<Value, _>("SELECT @marker").unwrap(),
        Some(Value::NULL)
    );
    let e = server_error(conn.query_drop("SELECT * FROM tmp"));
    assert_eq!(e.code, 1146);
    assert_eq!(
        conn.query_first::<u32, _>("SELECT connection_id()")
            .unwrap(),
        Some(id),
        "reset keeps the server connection"
    );

    let mut raw = RawConn::connect(&t.endpoint, "root", "", Some("test")).unwrap();
    raw.query("SET @marker = 2").unwrap();
    raw.reset_connection().unwrap();
    assert_eq!(raw.query("SELECT @marker").unwrap(), vec![vec![None]]);
    raw.quit().unwrap();
}

/// Server errors reach the client unchanged: code, SQLSTATE and text, from the
/// crate (text and binary protocol) and the CLI.
fn server_errors(t: &Target) {
    let mut conn = t.endpoint.root_conn();
    let mut direct = t.backend.root_conn();
    for sql in [
        "SELEC 1",
        "SELECT * FROM no_such_table",
        "SELECT no_such_column FROM mysql.user",
        "SELECT 1 FROM dual WHERE",
    ] {
        let through = server_error(conn.query_drop(sql));
        let expected = server_error(direct.query_drop(sql));
        assert_eq!(through, expected, "{sql}");
    }
    let e = server_error(conn.query_drop("SELEC 1"));
    assert_eq!((e.code, e.state.as_str()), (1064, "42000"));
    assert!(
        e.message
            .starts_with("You have an error in your SQL syntax"),
        "{e:?}"
    );
    let e = server_error(conn.prep("SELECT * FROM no_such_table WHERE a = ?"));
    assert_eq!((e.code, e.state.as_str()), (1146, "42S02"));
    assert_eq!(e.message, "Table 'test.no_such_table' doesn't exist");
    // A runtime error in a prepared statement.
    conn.query_drop("CREATE TABLE u (a INT PRIMARY KEY)")
        .unwrap();
    conn.exec_drop("INSERT INTO u VALUES (?)", (1,)).unwrap();
    let e = server_error(conn.exec_drop("INSERT INTO u VALUES (?)", (1,)));
    assert_eq!((e.code, e.state.as_str()), (1062, "23000"));
    assert_eq!(e.message, "Duplicate entry '1' for key 'PRIMARY'");
    assert_eq!(conn.query_first::<u8, _>("SELECT 1").unwrap(), Some(1));

    let cli = |port| {
        let out = mysql_proxy_tests::mariadb_cli(port, "root", None, &["-e", "SELEC 1"]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let through = cli(t.endpoint.port);
    let line = through
        .lines()
        .find(|l| l.starts_with("ERROR "))
        .unwrap_or_default();
    assert!(
        line.starts_with("ERROR 1064 (42000) at line 1: You have an error"),
        "{through}"
    );
    assert_eq!(through, cli(t.backend.port()));
}

// ---------------------------------------------------------------- tests
//
// The proxy variants are ignored until the proxy relays; enable when the proxy relays.

#[test]
fn direct_version_cli() {
    direct(version_cli)
}
#[test]
fn proxy_version_cli() {
    through_proxy(version_cli)
}

#[test]
fn direct_version_crate() {
    direct(version_crate)
}
#[test]
fn proxy_version_crate() {
    through_proxy(version_crate)
}

#[test]
fn direct_large_result_100mb() {
    direct(large_result_100mb)
}
#[test]
fn proxy_large_result_100mb() {
    through_proxy(large_result_100mb)
}

#[test]
fn direct_row_20mib() {
    direct(row_20mib)
}
#[test]
fn proxy_row_20mib() {
    through_proxy(row_20mib)
}

#[test]
fn direct_query_20mib() {
    direct(query_20mib)
}
#[test]
fn proxy_query_20mib() {
    through_proxy(query_20mib)
}

#[test]
fn direct_prepared_all_types() {
    direct(prepared_all_types)
}
#[test]
fn proxy_prepared_all_types() {
    through_proxy(prepared_all_types)
}

#[test]
fn direct_load_data_local() {
    direct(load_data_local)
}
#[test]
fn proxy_load_data_local() {
    through_proxy(load_data_local)
}

#[test]
fn direct_multi_statements() {
    direct(multi_statements)
}
#[test]
fn proxy_multi_statements() {
    through_proxy(multi_statements)
}

#[test]
fn direct_change_user() {
    direct(change_user)
}
#[test]
fn proxy_change_user() {
    through_proxy(change_user)
}

#[test]
fn direct_init_db() {
    direct(init_db)
}
#[test]
fn proxy_init_db() {
    through_proxy(init_db)
}

#[test]
fn direct_ping() {
    direct(ping)
}
#[test]
fn proxy_ping() {
    through_proxy(ping)
}

#[test]
fn direct_field_list() {
    direct(field_list)
}
#[test]
fn proxy_field_list() {
    through_proxy(field_list)
}

#[test]
fn direct_statistics() {
    direct(statistics)
}
#[test]
fn proxy_statistics() {
    through_proxy(statistics)
}

#[test]
fn direct_reset_connection() {
    direct(reset_connection)
}
#[test]
fn proxy_reset_connection() {
    through_proxy(reset_connection)
}

#[test]
fn direct_server_errors() {
    direct(server_errors)
}
#[test]
fn proxy_server_errors() {
    through_proxy(server_errors)
}
