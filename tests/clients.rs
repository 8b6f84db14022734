//! Clients the proxy must serve as MariaDB itself would, whatever capability
//! flags they send and however their session ends:
//!
//! - a client asking for compression or TLS that the proxy's greeting did not
//!   offer (a plain session; an ERR and a close);
//! - a session the server ends while its client is idle (KILL, wait_timeout):
//!   the client sees it at once, and the proxy keeps no socket of it;
//! - a client that leaves while its query runs on the server;
//! - with the connection pool on, clients with different capabilities
//!   (MariaDB's extended metadata, multi-statements, found rows) and connect
//!   attributes taking over each other's server connections.
//!
//! Where MariaDB's own behaviour is the expectation, a direct connection with
//! the same flags shows it first, and the proxy must give the same.

// Tests report failure by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql_proxy_tests::raw::{
    cmd, read_lenenc_bytes, read_lenenc_int, status, CLIENT_CONNECT_ATTRS, CLIENT_MYSQL,
    MARIADB_CLIENT_EXTENDED_METADATA,
};
use mysql_proxy_tests::{
    Endpoint, MariaDb, Proxy, RawConn, RawError, ServerError, StreamEnd, TEST_DB, TEST_PASSWORD,
    TEST_USER,
};

const CLIENT_FOUND_ROWS: u64 = 1 << 1;
const CLIENT_LONG_FLAG: u64 = 1 << 2;
const CLIENT_CONNECT_WITH_DB: u64 = 1 << 3;
const CLIENT_COMPRESS: u64 = 1 << 5;
const CLIENT_PROTOCOL_41: u64 = 1 << 9;
const CLIENT_SSL: u64 = 1 << 11;
const CLIENT_TRANSACTIONS: u64 = 1 << 13;
const CLIENT_SECURE_CONNECTION: u64 = 1 << 15;
const CLIENT_MULTI_STATEMENTS: u64 = 1 << 16;
const CLIENT_MULTI_RESULTS: u64 = 1 << 17;
const CLIENT_PLUGIN_AUTH: u64 = 1 << 19;

/// What every raw client here asks for, as a MySQL-style client (bit 0,
/// `CLIENT_MYSQL` to MariaDB, set: no extended capabilities).
const BASE: u64 = CLIENT_MYSQL
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH;

/// How long a raw client waits for an answer before calling it a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon an idle client must see the end of a session the server ended.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);
/// How soon the proxy must have let go of a finished session's sockets.
const FDS_SETTLE: Duration = Duration::from_secs(1);

fn proxy_for(server: &MariaDb) -> Proxy {
    Proxy::builder()
        .backend(server.addr())
        .start()
        .unwrap_or_else(|e| panic!("starting mysql-proxy: {e}"))
}

/// A raw client logged in as [`TEST_USER`] whose reads time out after
/// [`ANSWER_TIMEOUT`], so a hang fails the test quickly.
fn logged_in(endpoint: &Endpoint) -> RawConn {
    let raw = RawConn::connect(endpoint, TEST_USER, TEST_PASSWORD, Some(TEST_DB))
        .unwrap_or_else(|e| panic!("logging in at {endpoint}: {e}"));
    raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
    raw
}

/// The client's server thread, as the server tells it.
fn connection_id(raw: &mut RawConn) -> u32 {
    let rows = raw
        .query("SELECT CONNECTION_ID()")
        .unwrap_or_else(|e| panic!("SELECT CONNECTION_ID(): {e}"));
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------- the proxy's sockets

/// The proxy's open file descriptors, as their link targets
/// (`socket:[1234]`, a log file, ...).
fn proxy_fds(proxy: &Proxy) -> Vec<String> {
    let dir = format!("/proc/{}/fd", proxy.pid());
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .filter_map(Result::ok)
        .map(|entry| {
            fs::read_link(entry.path())
                .map(|target| target.display().to_string())
                .unwrap_or_else(|_| "(gone)".into())
        })
        .collect()
}

/// Waits until the proxy holds no more descriptors than `baseline` (taken
/// before the session began); panics with both lists after `within`.
fn wait_for_fds(proxy: &Proxy, baseline: &[String], within: Duration, after: &str) {
    let began = Instant::now();
    loop {
        let now = proxy_fds(proxy);
        if now.len() <= baseline.len() {
            eprintln!(
                "[fds] back to {} {:.2?} after {after}",
                now.len(),
                began.elapsed()
            );
            return;
        }
        assert!(
            began.elapsed() < within,
            "after {after}: the proxy holds {} descriptors {within:?} later, {} before the \
             session\nbefore: {baseline:?}\nnow: {now:?}",
            now.len(),
            baseline.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The proxy's descriptors at rest: taken after one session has come and
/// gone, so whatever the proxy sets up on its first client is not counted
/// as a leftover of the session under test; and the fewest of several
/// looks, so a health check's connection to the backend (every 2 s) that
/// happens to be open is not counted either.
fn settled_fds(proxy: &Proxy) -> Vec<String> {
    let before = proxy_fds(proxy);
    let mut warm_up = logged_in(&proxy.endpoint());
    warm_up.ping().unwrap();
    warm_up.quit().unwrap();
    let began = Instant::now();
    while proxy_fds(proxy).len() > before.len() && began.elapsed() < Duration::from_secs(2) {
        thread::sleep(Duration::from_millis(20));
    }
    (0..10)
        .map(|_| {
            thread::sleep(Duration::from_millis(20));
            proxy_fds(proxy)
        })
        .min_by_key(Vec::len)
        .unwrap()
}

// ---------------------------------------------------------------- compression, TLS

/// A client that asks for compression although the proxy's greeting does not
/// offer it (the proxy does not relay compressed traffic) gets an ordinary
/// uncompressed session, as a server that does not offer compression gives.
/// Relaying the flag to the server, which does offer it, would switch the
/// server to compressed packets the client does not expect.
#[test]
fn a_client_asking_for_compression_not_offered_gets_a_plain_session() {
    let server = MariaDb::start();
    let proxy = proxy_for(&server);

    let (mut raw, offered) = RawConn::open_extended(&proxy.endpoint()).unwrap();
    assert_eq!(
        offered & CLIENT_COMPRESS,
        0,
        "the proxy's greeting offers compression: {offered:#x}"
    );
    raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
    raw.login_extended(
        TEST_USER,
        TEST_PASSWORD,
        Some(TEST_DB),
        BASE | CLIENT_COMPRESS,
        &[],
    )
    .unwrap_or_else(|e| panic!("login asking for compression: {e}"));

    let compression = raw
        .query("SHOW SESSION STATUS LIKE 'Compression'")
        .unwrap_or_else(|e| panic!("first query after the login (a timeout is a hang): {e}"));
    assert_eq!(
        compression,
        [[Some("Compression".to_string()), Some("OFF".to_string())]]
    );
    let rows = raw
        .query("SELECT seq, REPEAT('x', 3) FROM seq_1_to_3")
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2], [Some("3".to_string()), Some("xxx".to_string())]);
    raw.ping().unwrap();
    raw.quit().unwrap();
}

/// An SSLRequest: the capabilities (CLIENT_SSL among them), the maximum
/// packet size, the character set and 23 zero bytes; nothing else.
fn ssl_request(capabilities: u64) -> Vec<u8> {
    let mut p = (capabilities as u32).to_le_bytes().to_vec();
    p.extend_from_slice(&(1u32 << 24).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    assert_eq!(p.len(), 32);
    p
}

/// The client must read the end of the stream within [`ANSWER_TIMEOUT`]
/// (and nothing more).
fn expect_close(raw: &mut RawConn, what: &str) {
    raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
    let (bytes, end) = raw.drain();
    assert!(
        ended(end),
        "{what}: the connection is not closed after the error ({end:?}; then {bytes:02x?})"
    );
    assert!(
        bytes.is_empty(),
        "{what}: more bytes after the error: {bytes:02x?}"
    );
}

/// A proxy in front of its own server, and a session through it (the
/// `mysql` crate) that must not be disturbed by the bad clients.
struct TlsSetup {
    bystander: mysql::Conn,
    bystander_id: u32,
    proxy: Proxy,
    _server: MariaDb,
}

impl TlsSetup {
    fn start() -> TlsSetup {
        let server = MariaDb::start();
        let proxy = proxy_for(&server);
        let mut bystander = proxy.endpoint().user_conn();
        let bystander_id = bystander
            .query_first("SELECT CONNECTION_ID()")
            .unwrap()
            .unwrap();
        TlsSetup {
            bystander,
            bystander_id,
            proxy,
            _server: server,
        }
    }

    /// The other session still works on its connection, and new ones log in.
    fn finish(mut self) {
        let id: u32 = self
            .bystander
            .query_first("SELECT CONNECTION_ID()")
            .unwrap()
            .unwrap();
        assert_eq!(
            id, self.bystander_id,
            "the other session kept its connection"
        );
        let mut fresh = logged_in(&self.proxy.endpoint());
        assert_eq!(fresh.query("SELECT 7").unwrap(), [[Some("7".to_string())]]);
    }
}

/// A greeting that does not offer TLS, then an SSLRequest: the ERR the
/// client reads (it must come within [`ANSWER_TIMEOUT`]), after which the
/// connection must be closed.
fn answer_to_ssl_request(endpoint: &Endpoint, what: &str) -> ServerError {
    let (mut raw, offered) = RawConn::open_extended(endpoint).unwrap();
    assert_eq!(offered & CLIENT_SSL, 0, "{what}: TLS is offered");
    raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
    raw.write_packet(&ssl_request(BASE | CLIENT_SSL)).unwrap();
    let began = Instant::now();
    let (seq, payload) = raw
        .read_frame()
        .unwrap_or_else(|e| panic!("{what}: no ERR within {ANSWER_TIMEOUT:?}: {e}"));
    let error = ServerError::parse(&payload)
        .unwrap_or_else(|| panic!("{what}: expected ERR, got {payload:02x?}"));
    eprintln!(
        "[{what}] {error} (sequence id {seq}) after {:.2?}",
        began.elapsed()
    );
    expect_close(&mut raw, what);
    error
}

/// An SSLRequest after a greeting that did not offer TLS (the client would
/// wait for a TLS handshake that never comes, the proxy for an auth
/// response): an ERR and a close, never a hang. MariaDB without TLS, asked
/// directly first, answers 1043 "Bad handshake" (08S01) and closes. Another
/// session through the proxy is not disturbed.
#[test]
fn an_ssl_request_not_offered_gets_an_error_and_a_close() {
    let reference = MariaDb::start();
    let direct = answer_to_ssl_request(&reference.endpoint(), "direct: SSLRequest");
    assert_eq!((direct.code, direct.state.as_str()), (1043, "08S01"));

    let setup = TlsSetup::start();
    answer_to_ssl_request(&setup.proxy.endpoint(), "proxy: SSLRequest");
    setup.finish();
}

/// A full auth response with CLIENT_SSL set, after a greeting that did not
/// offer TLS, is no request for TLS (that would have been an SSLRequest):
/// MariaDB ignores the flag it did not offer and logs the client in
/// unencrypted, and so does the proxy, without relaying the flag. The
/// session works and is not encrypted.
#[test]
fn an_auth_response_with_the_tls_flag_not_offered_gets_a_plain_session() {
    let reference = MariaDb::start();
    let (mut raw, _) = RawConn::open_extended(&reference.endpoint()).unwrap();
    raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
    raw.login_extended(
        TEST_USER,
        TEST_PASSWORD,
        Some(TEST_DB),
        BASE | CLIENT_SSL,
        &[],
    )
    .unwrap_or_else(|e| panic!("direct: MariaDB refused the login: {e}"));

    let setup = TlsSetup::start();
    let what = "proxy: auth response with CLIENT_SSL";
    let (mut raw, offered) = RawConn::open_extended(&setup.proxy.endpoint()).unwrap();
    assert_eq!(offered & CLIENT_SSL, 0, "{what}: TLS is offered");
    raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
    raw.login_extended(
        TEST_USER,
        TEST_PASSWORD,
        Some(TEST_DB),
        BASE | CLIENT_SSL,
        &[],
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let cipher = raw
        .query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .unwrap_or_else(|e| panic!("{what}: first query: {e}"));
    assert_eq!(
        cipher,
        [[Some("Ssl_cipher".to_string()), Some(String::new())]],
        "{what}: the server session is encrypted"
    );
    raw.quit().unwrap();
    setup.finish();
}

/// A client that asks for compression although it was not offered, and then
/// compresses anyway (Connector/Python with `compress=True` does): its
/// first command arrives as a frame of the compressed protocol. It is told
/// so in a compressed frame it can read (ERR 1235), and the connection is
/// closed, instead of both sides waiting on each other.
#[test]
fn a_client_that_compresses_anyway_gets_an_error_it_can_read() {
    let setup = TlsSetup::start();
    let what = "proxy: compressed command";
    let (mut raw, offered) = RawConn::open_extended(&setup.proxy.endpoint()).unwrap();
    assert_eq!(
        offered & CLIENT_COMPRESS,
        0,
        "{what}: compression is offered"
    );
    raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
    raw.login_extended(
        TEST_USER,
        TEST_PASSWORD,
        Some(TEST_DB),
        BASE | CLIENT_COMPRESS,
        &[],
    )
    .unwrap_or_else(|e| panic!("{what}: login: {e}"));
    // COM_QUERY "SELECT 1" in a compressed frame, not compressed itself:
    // compressed length, compressed sequence id 0, uncompressed length 0,
    // then the plain packet.
    let command = b"\x03SELECT 1";
    let mut inner = vec![command.len() as u8, 0, 0, 0];
    inner.extend_from_slice(command);
    let mut frame = vec![inner.len() as u8, 0, 0, 0, 0, 0, 0];
    frame.extend_from_slice(&inner);
    raw.write_raw(&frame).unwrap();

    let (bytes, end) = raw.drain();
    assert!(ended(end), "{what}: not closed ({end:?}; got {bytes:02x?})");
    // One compressed frame (7-byte header, uncompressed length 0) holding
    // one packet: the ERR.
    let (outer, rest) = bytes.split_at(7.min(bytes.len()));
    assert_eq!(
        outer.get(4..7),
        Some(&[0u8, 0, 0][..]),
        "{what}: {bytes:02x?}"
    );
    let inner_len = u32::from_le_bytes([outer[0], outer[1], outer[2], 0]) as usize;
    assert_eq!(inner_len, rest.len(), "{what}: {bytes:02x?}");
    let error = ServerError::parse(&rest[4..])
        .unwrap_or_else(|| panic!("{what}: expected ERR, got {bytes:02x?}"));
    assert_eq!(error.code, 1235, "{what}: {error}");
    assert!(error.message.contains("compress"), "{what}: {error}");
    setup.finish();
}

// ---------------------------------------------------------------- sessions the server ends

/// What an idle client receives when the server ends its session: the
/// bytes, how the stream ended, and how long after `end_session` returned.
struct IdleEnd {
    bytes: Vec<u8>,
    end: StreamEnd,
    after: Duration,
}

/// A client logs in at `endpoint`, lets `end_session` do what ends its
/// session (given its server thread id), then waits, idle, reading what
/// comes until the stream ends or `within` passes without a byte.
fn idle_client_ends(
    endpoint: &Endpoint,
    within: Duration,
    end_session: impl FnOnce(&mut RawConn, u32),
) -> IdleEnd {
    let mut raw = logged_in(endpoint);
    let id = connection_id(&mut raw);
    raw.set_read_timeout(within).unwrap();
    let began = Instant::now();
    end_session(&mut raw, id);
    let (bytes, end) = raw.drain();
    IdleEnd {
        bytes,
        end,
        after: began.elapsed(),
    }
}

/// Whether the stream ended: the peer closed the connection, with a FIN or
/// a reset (MariaDB resets a connection it closes on `wait_timeout`).
fn ended(end: StreamEnd) -> bool {
    matches!(end, StreamEnd::Closed | StreamEnd::Reset)
}

/// Runs the same idle-client scenario directly and through the proxy, and
/// requires of the proxy what the direct client got: the same bytes (an ERR
/// packet, if the server sends one before closing), then end-of-stream
/// within `within`; and the proxy holding no more sockets than before.
fn server_ends_idle_session(
    what: &str,
    within: Duration,
    end_session: impl Fn(&MariaDb, &mut RawConn, u32),
) {
    let server = MariaDb::start();
    let proxy = proxy_for(&server);

    let direct = idle_client_ends(&server.endpoint(), within, |raw, id| {
        end_session(&server, raw, id)
    });
    eprintln!(
        "[direct: {what}] {:?} after {:.2?}, bytes {:02x?} ({})",
        direct.end,
        direct.after,
        direct.bytes,
        String::from_utf8_lossy(&direct.bytes)
    );
    assert!(
        ended(direct.end),
        "direct: {what}: the server did not close the connection within {within:?}"
    );

    let baseline = settled_fds(&proxy);
    let proxied = idle_client_ends(&proxy.endpoint(), within, |raw, id| {
        end_session(&server, raw, id)
    });
    eprintln!(
        "[proxy: {what}] {:?} after {:.2?}, bytes {:02x?}",
        proxied.end, proxied.after, proxied.bytes
    );
    assert!(
        ended(proxied.end),
        "proxy: {what}: the idle client did not see its connection closed within {within:?} \
         ({:?}, got {:02x?})",
        proxied.end,
        proxied.bytes
    );
    assert_eq!(
        proxied.bytes, direct.bytes,
        "proxy: {what}: the client got other bytes than a direct client"
    );
    wait_for_fds(&proxy, &baseline, FDS_SETTLE, what);
}

/// Another connection KILLs the server thread of an idle client: the client
/// sees its connection end within a second, as it does directly, and the
/// proxy does not keep the dead session's sockets until the client speaks.
#[test]
fn an_idle_client_sees_its_session_end_when_the_server_thread_is_killed() {
    server_ends_idle_session("KILL", CLOSE_WITHIN, |server, _, id| {
        server
            .root_conn()
            .query_drop(format!("KILL {id}"))
            .unwrap_or_else(|e| panic!("KILL {id}: {e}"));
    });
}

/// The server closes a client idle for longer than its `wait_timeout` (2 s):
/// the client sees it within 3 s of setting it, as it does directly.
#[test]
fn an_idle_client_sees_its_session_end_when_wait_timeout_expires() {
    server_ends_idle_session("wait_timeout", Duration::from_secs(3), |_, raw, _| {
        raw.query("SET SESSION wait_timeout = 2")
            .unwrap_or_else(|e| panic!("SET SESSION wait_timeout: {e}"));
    });
}

/// A client sends a 30-second query and closes its socket while the server
/// runs it: the proxy notices (it does not wait for the answer nobody will
/// read) and lets go of both of the session's sockets within two seconds.
#[test]
fn a_client_leaving_during_a_long_query_frees_its_sockets() {
    let server = MariaDb::start();
    let proxy = proxy_for(&server);
    let baseline = settled_fds(&proxy);

    let mut raw = logged_in(&proxy.endpoint());
    let id = connection_id(&mut raw);
    raw.send_command(cmd::QUERY, b"SELECT SLEEP(30)").unwrap();
    // The query runs on the server before the client leaves.
    let mut checker = server.root_conn();
    let began = Instant::now();
    loop {
        let running: Option<String> = checker
            .query_first(format!(
                "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = {id}"
            ))
            .unwrap();
        if running.as_deref() == Some("SELECT SLEEP(30)") {
            break;
        }
        assert!(
            began.elapsed() < ANSWER_TIMEOUT,
            "SELECT SLEEP(30) does not run on server thread {id}: {running:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    drop(raw);
    wait_for_fds(
        &proxy,
        &baseline,
        Duration::from_secs(2),
        "the client left during SELECT SLEEP(30)",
    );
}

// ---------------------------------------------------------------- pool: capabilities

/// Whether a client asks for MariaDB's extended metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Extended {
    /// No: a MySQL-style client (bit 0, `CLIENT_MYSQL`, set).
    No,
    /// If the greeting offers it, as MariaDB's connectors do: bit 0
    /// cleared, MARIADB_CLIENT_EXTENDED_METADATA in the filler.
    IfOffered,
    /// Whatever the greeting says: a client that must not be given what
    /// was not offered because it asked.
    Always,
}

/// Which optional behaviours a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Wants {
    extended_metadata: Extended,
    multi_statements: bool,
    found_rows: bool,
}

const fn wants(extended_metadata: Extended, multi_statements: bool, found_rows: bool) -> Wants {
    Wants {
        extended_metadata,
        multi_statements,
        found_rows,
    }
}

impl Wants {
    /// The capabilities the client sends after a greeting offering
    /// `offered`; connect attributes always.
    fn capabilities(self, offered: u64) -> u64 {
        let mut caps = BASE | CLIENT_CONNECT_ATTRS;
        if self.multi_statements {
            caps |= CLIENT_MULTI_STATEMENTS;
        }
        if self.found_rows {
            caps |= CLIENT_FOUND_ROWS;
        }
        let offers_extended =
            offered & CLIENT_MYSQL == 0 && offered & MARIADB_CLIENT_EXTENDED_METADATA != 0;
        let extended = match self.extended_metadata {
            Extended::No => false,
            Extended::IfOffered => offers_extended,
            Extended::Always => true,
        };
        if extended {
            caps = (caps & !CLIENT_MYSQL) | MARIADB_CLIENT_EXTENDED_METADATA;
        }
        caps
    }
}

/// The capabilities in effect between a client that sent `sent` and a
/// server whose greeting offered `offered`: what both have (a server acts
/// on what it offered only; bit 0 stays the client's). The client reads
/// results by these, and a direct client sending them is the reference.
fn negotiated(sent: u64, offered: u64) -> u64 {
    let caps = sent & (offered | CLIENT_MYSQL);
    if caps >> 32 == 0 {
        // No extended capability left: as a MySQL-style client.
        caps | CLIENT_MYSQL
    } else {
        caps
    }
}

/// A column definition, every field of it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ColumnDef {
    schema: String,
    table: String,
    name: String,
    charset: u16,
    length: u32,
    column_type: u8,
    flags: u16,
    decimals: u8,
    /// MariaDB's extended metadata, present when it was negotiated.
    extended: Option<Vec<u8>>,
}

/// One result of a COM_QUERY (an OK has no columns).
#[derive(Clone, Debug, PartialEq, Eq)]
struct QueryResult {
    columns: Vec<ColumnDef>,
    rows: Vec<Vec<Option<String>>>,
    affected_rows: u64,
}

fn malformed(what: &str, packet: &[u8]) -> RawError {
    RawError::Protocol(format!("malformed {what}: {packet:02x?}"))
}

/// ColumnDefinition41, read strictly by what was negotiated: with extended
/// metadata, a length-encoded string of it after `org_name`; then the
/// length of the fixed fields, which is 12, and nothing after them. A
/// definition laid out the other way does not parse.
fn parse_column(p: &[u8], extended: bool) -> Result<ColumnDef, RawError> {
    let bad = || malformed("column definition", p);
    let mut pos = 0;
    let mut strings = Vec::new();
    for _ in 0..6 {
        let field = read_lenenc_bytes(p, &mut pos).ok_or_else(bad)?;
        strings.push(String::from_utf8_lossy(field).into_owned());
    }
    let extended = if extended {
        Some(read_lenenc_bytes(p, &mut pos).ok_or_else(bad)?.to_vec())
    } else {
        None
    };
    if read_lenenc_int(p, &mut pos) != Some(12) || p.len() != pos + 12 {
        return Err(bad());
    }
    let f = &p[pos..];
    Ok(ColumnDef {
        schema: strings[1].clone(),
        table: strings[2].clone(),
        name: strings[4].clone(),
        charset: u16::from_le_bytes([f[0], f[1]]),
        length: u32::from_le_bytes([f[2], f[3], f[4], f[5]]),
        column_type: f[6],
        flags: u16::from_le_bytes([f[7], f[8]]),
        decimals: f[9],
        extended,
    })
}

fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// A text row of `columns` values, every byte accounted for.
fn parse_row(p: &[u8], columns: usize) -> Result<Vec<Option<String>>, RawError> {
    let mut pos = 0;
    let mut row = Vec::with_capacity(columns);
    for _ in 0..columns {
        if p.get(pos) == Some(&0xfb) {
            pos += 1;
            row.push(None);
        } else {
            let value = read_lenenc_bytes(p, &mut pos).ok_or_else(|| malformed("row", p))?;
            row.push(Some(String::from_utf8_lossy(value).into_owned()));
        }
    }
    if pos != p.len() {
        return Err(malformed("row", p));
    }
    Ok(row)
}

fn server_error(p: &[u8]) -> RawError {
    match ServerError::parse(p) {
        Some(e) => RawError::Server(e),
        None => malformed("ERR", p),
    }
}

/// COM_QUERY; every result (several with multi-statements), with column
/// definitions read as `extended` says they are laid out.
fn query(raw: &mut RawConn, sql: &str, extended: bool) -> Result<Vec<QueryResult>, RawError> {
    raw.send_command(cmd::QUERY, sql.as_bytes())?;
    let mut results = Vec::new();
    loop {
        let first = raw.read_packet()?;
        let (result, status) = match first.first() {
            Some(0x00) => {
                let mut pos = 1;
                let affected_rows = read_lenenc_int(&first, &mut pos);
                let insert_id = read_lenenc_int(&first, &mut pos);
                let status = first.get(pos..pos + 2);
                let (Some(affected_rows), Some(_), Some(status)) =
                    (affected_rows, insert_id, status)
                else {
                    return Err(malformed("OK", &first));
                };
                let result = QueryResult {
                    columns: Vec::new(),
                    rows: Vec::new(),
                    affected_rows,
                };
                (result, u16::from_le_bytes([status[0], status[1]]))
            }
            Some(0xff) => return Err(server_error(&first)),
            _ => {
                let mut pos = 0;
                let count = read_lenenc_int(&first, &mut pos)
                    .filter(|&n| n > 0 && pos == first.len())
                    .ok_or_else(|| malformed("column count", &first))?;
                let columns = (0..count)
                    .map(|_| parse_column(&raw.read_packet()?, extended))
                    .collect::<Result<Vec<_>, _>>()?;
                let eof = raw.read_packet()?;
                if !is_eof(&eof) {
                    return Err(malformed("EOF after the column definitions", &eof));
                }
                let mut rows = Vec::new();
                let status = loop {
                    let packet = raw.read_packet()?;
                    if is_eof(&packet) {
                        break packet
                            .get(3..5)
                            .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]));
                    }
                    if packet.first() == Some(&0xff) {
                        return Err(server_error(&packet));
                    }
                    rows.push(parse_row(&packet, columns.len())?);
                };
                let result = QueryResult {
                    columns,
                    rows,
                    affected_rows: 0,
                };
                (result, status)
            }
        };
        results.push(result);
        if status & status::MORE_RESULTS_EXISTS == 0 {
            return Ok(results);
        }
    }
}

/// What a client's flags change, as a client with them sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    /// `SELECT * FROM` a table with INT, VARCHAR, JSON and DATETIME columns.
    table: Vec<QueryResult>,
    /// `SELECT 1; SELECT 2`: two results with multi-statements, else ERR 1064.
    multi: Result<Vec<QueryResult>, (u16, String)>,
    /// Affected rows of an UPDATE that changes nothing in an existing row:
    /// 1 with CLIENT_FOUND_ROWS (rows matched), else 0 (rows changed).
    update_affected: u64,
}

const TABLE: &str = "test.client_flags";

fn create_table(server: &MariaDb) {
    let mut root = server.root_conn();
    root.query_drop(format!(
        "CREATE TABLE {TABLE} (id INT PRIMARY KEY, a INT, v VARCHAR(20), j JSON, d DATETIME)"
    ))
    .unwrap();
    root.query_drop(format!(
        "INSERT INTO {TABLE} VALUES (1, 10, 'one', '{{\"k\": 1}}', '2024-01-02 03:04:05'), \
         (2, NULL, NULL, NULL, NULL)"
    ))
    .unwrap();
}

/// Runs the queries whose answers depend on the client's flags.
fn observe(raw: &mut RawConn, extended: bool) -> Result<Observed, RawError> {
    let table = query(raw, &format!("SELECT * FROM {TABLE} ORDER BY id"), extended)?;
    let multi = match query(raw, "SELECT 1; SELECT 2", extended) {
        Ok(results) => Ok(results),
        Err(RawError::Server(e)) => Err((e.code, e.state)),
        Err(e) => return Err(e),
    };
    let update = query(
        raw,
        &format!("UPDATE {TABLE} SET a = a WHERE id = 1"),
        extended,
    )?;
    Ok(Observed {
        table,
        multi,
        update_affected: update[0].affected_rows,
    })
}

/// How `proxy` differs from `direct`, one line per difference.
fn differences(proxy: &Observed, direct: &Observed) -> Vec<String> {
    let mut found = Vec::new();
    let (p, d) = (&proxy.table[0], &direct.table[0]);
    if p.columns.len() != d.columns.len() {
        found.push(format!(
            "SELECT *: columns {:?} / {:?}",
            p.columns, d.columns
        ));
    } else {
        for (pc, dc) in p.columns.iter().zip(&d.columns).filter(|(pc, dc)| pc != dc) {
            found.push(format!("SELECT *: column {pc:?} / {dc:?}"));
        }
    }
    if p.rows != d.rows {
        found.push(format!("SELECT *: rows {:?} / {:?}", p.rows, d.rows));
    }
    if proxy.table.len() != direct.table.len() {
        found.push(format!(
            "SELECT *: {} results / {}",
            proxy.table.len(),
            direct.table.len()
        ));
    }
    if proxy.multi != direct.multi {
        let summary = |multi: &Result<Vec<QueryResult>, (u16, String)>| match multi {
            Ok(results) => format!(
                "{} results {:?}",
                results.len(),
                results.iter().map(|r| &r.rows).collect::<Vec<_>>()
            ),
            Err((code, state)) => format!("ERR {code} ({state})"),
        };
        found.push(format!(
            "SELECT 1; SELECT 2: {} / {}",
            summary(&proxy.multi),
            summary(&direct.multi)
        ));
    }
    if proxy.update_affected != direct.update_affected {
        found.push(format!(
            "UPDATE SET a = a: {} affected rows / {}",
            proxy.update_affected, direct.update_affected
        ));
    }
    found
}

/// The connect attribute `program_name` of server thread `id`, read directly.
fn program_name(server: &MariaDb, id: u32) -> Option<String> {
    server
        .root_conn()
        .query_first(format!(
            "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs \
             WHERE PROCESSLIST_ID = {id} AND ATTR_NAME = 'program_name'"
        ))
        .unwrap()
}

/// A raw client that logged in with `caps` and `program_name`.
fn raw_login(endpoint: &Endpoint, caps: u64, program: &str) -> Result<RawConn, RawError> {
    let (mut raw, _) = RawConn::open_extended(endpoint)?;
    raw.set_read_timeout(ANSWER_TIMEOUT)?;
    raw.login_extended(
        TEST_USER,
        TEST_PASSWORD,
        Some(TEST_DB),
        caps,
        &[("program_name", program), ("_client_name", "clients.rs")],
    )?;
    Ok(raw)
}

/// What a direct client with exactly `caps` observes; checks on the way that
/// MariaDB does what the proxy is then required to do: multi-statements and
/// found rows as the flags say, and the client's own connect attributes.
fn direct_reference(server: &MariaDb, caps: u64) -> Observed {
    let extended = caps & MARIADB_CLIENT_EXTENDED_METADATA != 0;
    let program = format!("direct-{caps:#x}");
    let mut raw = raw_login(&server.endpoint(), caps, &program)
        .unwrap_or_else(|e| panic!("direct login with {caps:#x}: {e}"));
    let observed =
        observe(&mut raw, extended).unwrap_or_else(|e| panic!("direct, flags {caps:#x}: {e}"));
    match &observed.multi {
        Ok(results) if caps & CLIENT_MULTI_STATEMENTS != 0 => assert_eq!(results.len(), 2),
        Err((code, _)) if caps & CLIENT_MULTI_STATEMENTS == 0 => assert_eq!(*code, 1064),
        other => panic!("direct, flags {caps:#x}: SELECT 1; SELECT 2 gave {other:?}"),
    }
    let expected = u64::from(caps & CLIENT_FOUND_ROWS != 0);
    assert_eq!(
        observed.update_affected, expected,
        "direct, flags {caps:#x}"
    );
    assert_eq!(
        observed.table[0].columns[0].extended.is_some(),
        extended,
        "direct, flags {caps:#x}"
    );
    let id = connection_id_ext(&mut raw, extended);
    assert_eq!(program_name(server, id), Some(program));
    raw.quit().unwrap();
    observed
}

fn connection_id_ext(raw: &mut RawConn, extended: bool) -> u32 {
    let results = query(raw, "SELECT CONNECTION_ID()", extended)
        .unwrap_or_else(|e| panic!("SELECT CONNECTION_ID(): {e}"));
    results[0].rows[0][0].as_deref().unwrap().parse().unwrap()
}

/// One client of the mix, logged in through the proxy.
struct MixClient {
    n: usize,
    wants: Wants,
    /// The capabilities in effect (see [`negotiated`]).
    caps: u64,
    raw: RawConn,
    thread_id: u32,
}

/// The state of the pool-mix test: who ran on which server thread, the
/// direct references, and everything that went wrong (collected, so one
/// run reports every client that was served wrongly).
struct Mix<'a> {
    server: &'a MariaDb,
    proxy: &'a Proxy,
    references: HashMap<u64, Observed>,
    /// Server thread id -> the capabilities in effect of the clients that
    /// ran on it, in order.
    threads: HashMap<u32, Vec<u64>>,
    clients: usize,
    reused: usize,
    reused_across_flags: usize,
    failures: Vec<String>,
}

impl Mix<'_> {
    /// Client `n` logs in through the proxy with `wants` and checks what it
    /// gets; `None` (a failure recorded) if its session is unusable.
    fn connect(&mut self, wants: Wants) -> Option<MixClient> {
        self.clients += 1;
        let n = self.clients;
        let program = format!("client-{n}");
        let (mut raw, offered) = match RawConn::open_extended(&self.proxy.endpoint()) {
            Ok(opened) => opened,
            Err(e) => {
                self.failures
                    .push(format!("client-{n} {wants:?}: greeting: {e}"));
                return None;
            }
        };
        for (flag, name) in [
            (CLIENT_FOUND_ROWS, "CLIENT_FOUND_ROWS"),
            (CLIENT_MULTI_STATEMENTS, "CLIENT_MULTI_STATEMENTS"),
            (CLIENT_CONNECT_ATTRS, "CLIENT_CONNECT_ATTRS"),
        ] {
            assert_ne!(offered & flag, 0, "the proxy's greeting lacks {name}");
        }
        let sent = wants.capabilities(offered);
        let caps = negotiated(sent, offered);
        raw.set_read_timeout(ANSWER_TIMEOUT).unwrap();
        let attrs = [
            ("program_name", program.as_str()),
            ("_client_name", "clients.rs"),
        ];
        if let Err(e) = raw.login_extended(TEST_USER, TEST_PASSWORD, Some(TEST_DB), sent, &attrs) {
            self.failures
                .push(format!("client-{n} {wants:?} ({sent:#x}): login: {e}"));
            return None;
        }
        let extended = caps & MARIADB_CLIENT_EXTENDED_METADATA != 0;
        let thread_id = match query(&mut raw, "SELECT CONNECTION_ID()", extended) {
            Ok(results) => results[0].rows[0][0].as_deref().unwrap().parse().unwrap(),
            Err(e) => {
                self.failures.push(format!(
                    "client-{n} {wants:?} ({caps:#x}): SELECT CONNECTION_ID(): {e}"
                ));
                return None;
            }
        };
        let before = self.threads.entry(thread_id).or_default();
        if !before.is_empty() {
            self.reused += 1;
            if before.last() != Some(&caps) {
                self.reused_across_flags += 1;
            }
        }
        eprintln!(
            "[mix] client-{n} {wants:?} sent {sent:#x}, in effect {caps:#x}: server thread \
             {thread_id} (before with {before:x?})"
        );
        before.push(caps);
        Some(MixClient {
            n,
            wants,
            caps,
            raw,
            thread_id,
        })
    }

    /// The client's checks: what a direct client with its flags gets, and
    /// its own connect attributes on the server. Returns whether its session
    /// is still usable (it did not fail to parse an answer).
    fn check(&mut self, client: &mut MixClient) -> bool {
        let server = self.server;
        let reference = self
            .references
            .entry(client.caps)
            .or_insert_with(|| direct_reference(server, client.caps))
            .clone();
        let who = format!(
            "client-{} {:?} ({:#x}) on server thread {}",
            client.n, client.wants, client.caps, client.thread_id
        );
        let extended = client.caps & MARIADB_CLIENT_EXTENDED_METADATA != 0;
        match observe(&mut client.raw, extended) {
            Ok(observed) => {
                for difference in differences(&observed, &reference) {
                    self.failures.push(format!(
                        "{who}: {difference} (proxy, then a direct client with the same flags)"
                    ));
                }
            }
            Err(e) => {
                self.failures.push(format!("{who}: {e}"));
                return false;
            }
        }
        let program = program_name(self.server, client.thread_id);
        let expected = format!("client-{}", client.n);
        if program.as_deref() != Some(expected.as_str()) {
            self.failures.push(format!(
                "{who}: the server shows program_name {program:?}, not {expected:?}"
            ));
        }
        true
    }

    /// The client leaves with COM_QUIT (its connection may go to the pool);
    /// one whose session broke just closes its socket.
    fn leave(&mut self, client: MixClient, usable: bool) {
        if usable {
            if let Err(e) = client.raw.quit() {
                self.failures
                    .push(format!("client-{} {:?}: quit: {e}", client.n, client.wants));
            }
        }
    }

    /// Connects the clients of `batch` one after the other (all logged in
    /// at once), checks each, and lets them leave in the order `leave_order`
    /// gives (indexes into `batch`); then waits until the proxy has put
    /// away their connections.
    fn batch(&mut self, batch: &[Wants], leave_order: &[usize]) {
        let mut clients: Vec<Option<(MixClient, bool)>> = batch
            .iter()
            .map(|&wants| {
                self.connect(wants).map(|mut client| {
                    let usable = self.check(&mut client);
                    (client, usable)
                })
            })
            .collect();
        for &i in leave_order {
            if let Some((client, usable)) = clients[i].take() {
                self.leave(client, usable);
            }
        }
        self.proxy
            .wait_for_backend(1, "connected_clients", "0", Duration::from_secs(5));
    }
}

/// With the pool on, clients with different capabilities take over each
/// other's server connections (one after the other, and several at once so
/// that several pooled connections are handed around). COM_CHANGE_USER does
/// not renegotiate capabilities, so the proxy must see to it that each
/// client still gets what it gets on a direct connection with the same
/// flags: column definitions laid out with or without MariaDB's extended
/// metadata as negotiated (never extended metadata its greeting did not
/// offer, even to a client that asks for it anyway), multi-statements,
/// found-rows counts; and that the server shows the client's own connect
/// attributes (in `performance_schema`, on with `--performance-schema=ON`),
/// not the previous client's.
#[test]
fn pooled_connections_serve_each_client_by_its_own_capabilities() {
    let server = MariaDb::builder().arg("--performance-schema=ON").start();
    create_table(&server);
    let proxy = Proxy::builder()
        .backend(server.addr())
        .plugins(&["proxy", "admin"])
        .arg("--proxy-pool-max-idle=4")
        .start()
        .unwrap_or_else(|e| panic!("starting mysql-proxy: {e}"));
    let mut mix = Mix {
        server: &server,
        proxy: &proxy,
        references: HashMap::new(),
        threads: HashMap::new(),
        clients: 0,
        reused: 0,
        reused_across_flags: 0,
        failures: Vec::new(),
    };

    use Extended::{Always, IfOffered, No};
    // One after the other: each flag goes on and off between clients.
    let sequential = [
        wants(IfOffered, true, true),
        wants(No, false, false),
        wants(IfOffered, false, false),
        wants(No, true, false),
        wants(Always, false, true),
        wants(IfOffered, true, false),
        wants(No, true, true),
        wants(Always, false, false),
        wants(No, false, false),
        wants(IfOffered, true, true),
    ];
    for wants in sequential {
        mix.batch(&[wants], &[0]);
    }
    // Several at once, leaving in another order than they came.
    mix.batch(
        &[
            wants(IfOffered, false, true),
            wants(No, true, false),
            wants(Always, true, false),
        ],
        &[1, 2, 0],
    );
    mix.batch(
        &[
            wants(No, false, true),
            wants(IfOffered, false, false),
            wants(No, true, true),
        ],
        &[2, 0, 1],
    );
    mix.batch(
        &[
            wants(Always, true, true),
            wants(No, false, false),
            wants(No, true, false),
            wants(IfOffered, false, true),
        ],
        &[3, 1, 0, 2],
    );

    let threads: HashSet<u32> = mix.threads.keys().copied().collect();
    eprintln!(
        "[mix] {} clients on {} server threads; {} got a pooled connection, {} one a client \
         with other flags had used",
        mix.clients,
        threads.len(),
        mix.reused,
        mix.reused_across_flags
    );
    assert!(
        mix.failures.is_empty(),
        "{} failures:\n{}",
        mix.failures.len(),
        mix.failures.join("\n")
    );
    // Otherwise the test showed nothing about pooled connections.
    assert!(mix.reused > 0, "no client got a pooled connection");
}
