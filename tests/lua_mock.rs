//! Responses real servers rarely send, produced by a script-only mock server
//! and relayed by the proxy under test: 250 to 256 columns (around the
//! length-encoded boundary at 251), NULLs everywhere, rows larger than
//! 16 MiB, custom error codes and SQLSTATEs, OK packets with large counters,
//! warnings and info, RAW result sets with 4.1 EOF packets, and several
//! result sets for one query.
//!
//! The mock is a proxy (A) whose MySQL Proxy 0.8 script answers
//! `connect_server` with a greeting of its own (`mysql.proto.
//! to_challenge_packet`), every login in `read_auth`, and every query from a
//! table of canned responses (`proxy.response`: OK, ERR, result sets and RAW
//! packets); it never connects to its backend. Chained behind it, the proxy
//! under test runs twice: as a plain relay (B), and with a pass-through
//! script (C) that injects each query with `resultset_is_needed = true` and
//! lets `read_query_result` return nothing, so that every result is
//! buffered and sent again. A client sees the same bytes from A, B and C,
//! and real clients (the `mysql` crate, the `mariadb` CLI) read the values
//! the mock made.
//!
//! B and C health-check A: the mock's greeting and `read_auth` let the check
//! log in, and its `read_query` answers the check's COM_PING.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::path::Path;
use std::time::Duration;

use mysql::consts::ColumnType;
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use mysql_proxy_tests::raw::{cmd, read_lenenc_int, status, MAX_PAYLOAD};
use mysql_proxy_tests::{expect_success, free_port, Endpoint, Proxy, RawConn};
use sha1::{Digest, Sha1};

/// The mock server: a script that answers everything itself.
///
/// `proto.to_challenge_packet` makes the greeting (version `5.07.44` from
/// 50744, 0.8's quirk; the capabilities of a 5.7 server without TLS,
/// compression or DEPRECATE_EOF, so that result sets end in 4.1 EOF
/// packets). Result sets that `proxy.response.resultset` cannot express
/// (EOF packets with warnings or other status flags, several result sets,
/// an error after rows) are RAW packets built here byte by byte.
const MOCK_SCRIPT: &str = r#"
local proto = require("mysql.proto")

local CLIENT = {
    LONG_PASSWORD = 1, FOUND_ROWS = 2, LONG_FLAG = 4, CONNECT_WITH_DB = 8,
    PROTOCOL_41 = 512, TRANSACTIONS = 8192, SECURE_CONNECTION = 32768,
    MULTI_STATEMENTS = 65536, MULTI_RESULTS = 131072, PS_MULTI_RESULTS = 262144,
    PLUGIN_AUTH = 524288,
}
local CAPABILITIES = 0
for _, flag in pairs(CLIENT) do CAPABILITIES = CAPABILITIES + flag end

local AUTOCOMMIT, MORE_RESULTS, NO_INDEX_USED = 2, 8, 32
local OK, ERR, RAW = proxy.MYSQLD_PACKET_OK, proxy.MYSQLD_PACKET_ERR, proxy.MYSQLD_PACKET_RAW
local HEALTH_CHECK_USER = "mysql-proxy-ping"

local function count(key)
    proxy.global[key] = (proxy.global[key] or 0) + 1
end

-- Byte i (from 0) of every long value: ((i % 251) * 7 + 3) % 256. The
-- period is prime, so a piece of a value that lands elsewhere shows.
local UNIT
do
    local bytes = {}
    for j = 0, 250 do bytes[#bytes + 1] = string.char((j * 7 + 3) % 256) end
    UNIT = table.concat(bytes)
end
local function pattern(len)
    if len == 0 then return "" end
    return string.rep(UNIT, math.floor((len - 1) / 251) + 1):sub(1, len)
end

-- Packet pieces for RAW responses.
local function lenenc(n)
    if n < 251 then return string.char(n) end
    if n < 65536 then return "\252" .. string.char(n % 256, math.floor(n / 256)) end
    if n < 16777216 then
        return "\253" .. string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536))
    end
    local bytes = {}
    for i = 1, 8 do
        bytes[i] = string.char(n % 256)
        n = math.floor(n / 256)
    end
    return "\254" .. table.concat(bytes)
end
local function lstr(s) return lenenc(#s) .. s end
local function column(name, type)
    return lstr("def") .. lstr("mock") .. lstr("t") .. lstr("t") .. lstr(name) .. lstr(name)
        .. "\12" .. "\33\0" .. "\0\1\0\0" .. string.char(type) .. "\0\0" .. "\0" .. "\0\0"
end
local function row(n, values)
    local parts = {}
    for i = 1, n do
        if values[i] == nil then parts[i] = "\251" else parts[i] = lstr(values[i]) end
    end
    return table.concat(parts)
end
local function eof(warnings, status)
    return proto.to_eof_packet({ warnings = warnings, server_status = status })
end
local function err(code, state, message)
    return proto.to_err_packet({ errcode = code, sqlstate = state, errmsg = message })
end

local function result(fields, rows)
    return { type = OK, resultset = { fields = fields, rows = rows } }
end

local TYPES = { 253, 3, 8, 252, 246, 5, 254, 1, 2, 9 }

-- n columns c1..cn; rows: every value, no value, the even ones.
local function columns(n)
    local fields, full, none, even = {}, {}, {}, {}
    for i = 1, n do
        fields[i] = { name = "c" .. i, type = TYPES[(i - 1) % #TYPES + 1] }
        full[i] = tostring(i)
        if i % 2 == 0 then even[i] = tostring(i * 10) end
    end
    return result(fields, { full, none, even })
end

local function nulls(n, r)
    local fields, rows = {}, {}
    for i = 1, n do fields[i] = { name = "n" .. i, type = 253 } end
    for j = 1, r do rows[j] = {} end
    return result(fields, rows)
end

local CANNED = {
    ["select @@max_allowed_packet"] = function()
        return result({ { name = "@@max_allowed_packet", type = 8 } }, { { "67108864" } })
    end,
    ["select @@version_comment limit 1"] = function()
        return result({ { name = "@@version_comment" } }, { { "mysql-proxy mock" } })
    end,
    ["select mock stats"] = function()
        return result({ { name = "health_logins" }, { name = "health_pings" } },
            { { proxy.global.mock_health_logins or 0, proxy.global.mock_health_pings or 0 } })
    end,
    ["select edge values"] = function()
        return result({ { name = "v", type = 252 } }, {
            { "" }, {}, { "\0" }, { pattern(250) }, { pattern(251) }, { pattern(252) },
            { pattern(65535) }, { pattern(65536) },
        })
    end,
    ["select custom error"] = function()
        return { type = ERR, errcode = 4711, sqlstate = "XY123",
            errmsg = "mock: custom failure (\195\188n\195\175c\195\184d\195\169)" }
    end,
    ["select second error"] = function()
        return { type = ERR, errcode = 60001, sqlstate = "S1T00", errmsg = "mock: another failure" }
    end,
    -- Longer than the 512 bytes of proxy.response's and to_err_packet's.
    ["select long error"] = function()
        return { type = RAW, packets = { "\255\107\018#XY127" .. string.rep("0123456789", 200) } }
    end,
    ["insert ok"] = function()
        return { type = OK, affected_rows = 1099511627779, insert_id = 4294967301 }
    end,
    ["insert warnings"] = function()
        return { type = RAW, packets = {
            proto.to_ok_packet({ affected_rows = 3, insert_id = 70000,
                server_status = AUTOCOMMIT, warnings = 7 })
                .. lstr("Records: 3  Duplicates: 0  Warnings: 7"),
        } }
    end,
    ["select eof41"] = function()
        return { type = RAW, packets = {
            lenenc(2), column("id", 3), column("name", 253), eof(0, AUTOCOMMIT),
            row(2, { "1", "one" }), row(2, { "2", nil }),
            eof(3, AUTOCOMMIT + NO_INDEX_USED),
        } }
    end,
    ["select midway error"] = function()
        return { type = RAW, packets = {
            lenenc(1), column("r", 253), eof(0, AUTOCOMMIT),
            row(1, { "r1" }), row(1, { "r2" }),
            err(4713, "XY125", "mock: failed after two rows"),
        } }
    end,
    ["select multi"] = function()
        return { type = RAW, packets = {
            lenenc(1), column("a", 8), eof(0, AUTOCOMMIT + MORE_RESULTS),
            row(1, { "1" }), row(1, { "2" }), eof(0, AUTOCOMMIT + MORE_RESULTS),
            proto.to_ok_packet({ affected_rows = 5, insert_id = 6,
                server_status = AUTOCOMMIT + MORE_RESULTS, warnings = 1 }),
            lenenc(2), column("b", 253), column("c", 253), eof(0, AUTOCOMMIT + MORE_RESULTS),
            row(2, { "x", nil }), eof(0, AUTOCOMMIT),
        } }
    end,
    ["select multi error"] = function()
        return { type = RAW, packets = {
            lenenc(1), column("a", 8), eof(0, AUTOCOMMIT + MORE_RESULTS),
            row(1, { "1" }), eof(0, AUTOCOMMIT + MORE_RESULTS),
            err(4714, "XY126", "mock: the second statement failed"),
        } }
    end,
}

local function answer(query)
    local q = query:lower()
    if CANNED[q] then return CANNED[q]() end
    local n = q:match("^select columns (%d+)$")
    if n then return columns(tonumber(n)) end
    local width, height = q:match("^select nulls (%d+) (%d+)$")
    if width then return nulls(tonumber(width), tonumber(height)) end
    local raw_len = q:match("^select raw big (%d+)$")
    if raw_len then
        return { type = RAW, packets = {
            lenenc(1), column("blob", 251), eof(0, AUTOCOMMIT),
            lstr(pattern(tonumber(raw_len))), eof(0, AUTOCOMMIT),
        } }
    end
    local len = q:match("^select big (%d+)$")
    if len then
        return result({ { name = "blob", type = 251 }, { name = "id", type = 3 } },
            { { pattern(tonumber(len)), "1" }, { "after", "2" } })
    end
    return { type = ERR, errcode = 1064, sqlstate = "42000",
        errmsg = "mock: no canned response for: " .. query }
end

function connect_server()
    count("mock_threads")
    proxy.response = { type = RAW, packets = { proto.to_challenge_packet({
        server_version = 50744,
        thread_id = proxy.global.mock_threads,
        capabilities = CAPABILITIES,
        charset = 33,
        server_status = AUTOCOMMIT,
        challenge = "mock-scramble-20byte",
        auth_plugin_name = "mysql_native_password",
    }) } }
    return proxy.PROXY_SEND_RESULT
end

function read_auth()
    local user = proxy.connection.client.username
    if user == HEALTH_CHECK_USER then count("mock_health_logins") end
    if user == "denied" then
        proxy.response = { type = ERR, errcode = 4712, sqlstate = "XY124",
            errmsg = "mock: login refused for " .. user }
    else
        proxy.response = { type = OK }
    end
    return proxy.PROXY_SEND_RESULT
end

function read_query(packet)
    local command = packet:byte()
    -- Nothing: a client leaving needs no answer.
    if command == proxy.COM_QUIT then return end
    if command == proxy.COM_PING or command == proxy.COM_INIT_DB then
        if proxy.connection.client.username == HEALTH_CHECK_USER then
            count("mock_health_pings")
        end
        proxy.response = { type = OK }
    elseif command == proxy.COM_QUERY then
        proxy.response = answer(packet:sub(2))
    else
        proxy.response = { type = ERR, errcode = 1047, sqlstate = "08S01",
            errmsg = "mock: command " .. command .. " is not handled" }
    end
    return proxy.PROXY_SEND_RESULT
end
"#;

/// The proxy under test with a script in the way of every result: each
/// query is injected with `resultset_is_needed = true`, and
/// `read_query_result` returns nothing, which sends the buffered result on.
/// On the way, it logs what `inj.resultset` showed of the result (see
/// [`Chain::assert_scripted_saw`]).
const PASS_THROUGH_SCRIPT: &str = r#"
require("chassis")

function read_query(packet)
    if packet:byte() ~= proxy.COM_QUERY then return end
    proxy.queries:append(1, packet, { resultset_is_needed = true })
    return proxy.PROXY_SEND_QUERY
end

function read_query_result(inj)
    local res = inj.resultset
    local width = #res.fields
    local last = ""
    if width > 0 then
        last = (" (the last %s, type %d)"):format(res.fields[width].name, res.fields[width].type)
    end
    local seen = "no rows"
    if res.rows then
        local rows, nulls, bytes = 0, 0, 0
        for row in res.rows do
            rows = rows + 1
            for i = 1, width do
                if row[i] == nil then nulls = nulls + 1 else bytes = bytes + #row[i] end
            end
        end
        seen = rows .. " rows, " .. nulls .. " NULLs, " .. bytes .. " bytes"
    end
    print(("buffered [%s]: status %s, %d fields%s, row_count %d, warnings %d: %s"):format(
        inj.query:sub(2), tostring(res.query_status), width, last, res.row_count,
        res.warning_count, seen))
end
"#;

/// The mock and the two proxies under test in front of it.
struct Chain {
    mock: Proxy,
    relay: Proxy,
    scripted: Proxy,
    _scripts: tempfile::TempDir,
}

impl Chain {
    fn start() -> Chain {
        Chain::start_with(&["proxy"])
    }

    /// The proxies under test load `plugins`.
    fn start_with(plugins: &[&str]) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let mock_script = dir.path().join("mock.lua");
        let pass_through = dir.path().join("pass-through.lua");
        std::fs::write(&mock_script, MOCK_SCRIPT).unwrap();
        std::fs::write(&pass_through, PASS_THROUGH_SCRIPT).unwrap();
        // Its backend's port is free: nothing listens, and the script never
        // connects. Nor is there anything to health-check.
        let mock = Proxy::builder()
            .backend(format!("127.0.0.1:{}", free_port()))
            .arg(format!("--proxy-lua-script={}", mock_script.display()))
            .arg("--health-check-interval=0")
            .start()
            .expect("the mock");
        let under_test = |script: Option<&Path>| {
            // Health checks on, as by default, with room for a busy machine:
            // a check that times out while the mock makes a 16 MiB row would
            // turn new clients away.
            let mut builder = Proxy::builder()
                .plugins(plugins)
                .backend(mock.endpoint().addr())
                .arg("--health-check-timeout=10");
            if let Some(script) = script {
                builder = builder.arg(format!("--proxy-lua-script={}", script.display()));
            }
            builder.start().expect("the proxy under test")
        };
        let relay = under_test(None);
        let scripted = under_test(Some(&pass_through));
        Chain {
            mock,
            relay,
            scripted,
            _scripts: dir,
        }
    }

    /// Where a client connects: the mock itself, then each proxy under test.
    fn targets(&self) -> [(&'static str, Endpoint); 3] {
        [
            ("the mock", self.mock.endpoint()),
            ("the relay", self.relay.endpoint()),
            ("the scripted relay", self.scripted.endpoint()),
        ]
    }

    /// The scripted relay's `read_query_result` logged `line`: what
    /// `inj.resultset` showed of a buffered result (`[query]`, its
    /// `query_status`, the number of `fields` and the last one's name and
    /// type, `row_count`, `warning_count`, then the rows, NULLs and bytes of
    /// values that the `rows` iterator gave).
    fn assert_scripted_saw(&self, line: &str) {
        let began = std::time::Instant::now();
        loop {
            let log = self.scripted.stderr_text();
            if log.contains(line) {
                return;
            }
            let seen: Vec<&str> = log.lines().filter(|l| l.contains("buffered [")).collect();
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "the scripted relay did not log {line:?}; it logged:\n{}",
                seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The response to `sql` as it comes off the wire from the mock, after
    /// checking that both proxies under test send exactly the same packets
    /// (sequence ids and packet boundaries included) and that the
    /// connection is in step afterwards.
    fn same_wire_everywhere(&self, sql: &str) -> Vec<Frame> {
        let mut from_mock = None;
        for (name, endpoint) in self.targets() {
            let mut conn = RawConn::connect(&endpoint, "root", "", Some("test"))
                .unwrap_or_else(|e| panic!("{name}: login: {e}"));
            let frames = raw_query(&mut conn, sql);
            conn.ping()
                .unwrap_or_else(|e| panic!("{name}: ping after {sql:?}: {e}"));
            match &from_mock {
                None => {
                    for (i, frame) in frames.iter().enumerate() {
                        assert_eq!(
                            usize::from(frame.seq),
                            (i + 1) % 256,
                            "{sql}: sequence ids from the mock: {frames:?}"
                        );
                    }
                    from_mock = Some(frames);
                }
                Some(expected) => {
                    assert_same_wire(&format!("{sql} through {name}"), expected, &frames)
                }
            }
        }
        from_mock.unwrap()
    }
}

/// One physical packet: its sequence id and payload.
#[derive(Clone, PartialEq, Eq)]
struct Frame {
    seq: u8,
    payload: Vec<u8>,
}

// A frame of 16 MiB shows as its length, first bytes and digest.
impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.payload[..self.payload.len().min(24)];
        write!(f, "#{} len {} {:02x?}", self.seq, self.payload.len(), shown)?;
        if self.payload.len() > 24 {
            write!(f, "... sha1 {}", digest(&self.payload))?;
        }
        Ok(())
    }
}

fn digest(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn assert_same_wire(what: &str, expected: &[Frame], actual: &[Frame]) {
    if expected == actual {
        return;
    }
    let first = expected.iter().zip(actual).position(|(e, a)| e != a);
    panic!(
        "{what}: {} frames from the mock, {} here; first different frame: {first:?}\n\
         from the mock: {:?}\nhere: {:?}",
        expected.len(),
        actual.len(),
        first.and_then(|i| expected.get(i)),
        first.and_then(|i| actual.get(i)),
    );
}

/// Compares long byte strings by length, digest and first difference.
fn assert_same_bytes(what: &str, expected: &[u8], actual: &[u8]) {
    if expected == actual {
        return;
    }
    let first = expected.iter().zip(actual).position(|(e, a)| e != a);
    panic!(
        "{what}: {} bytes expected (sha1 {}), {} received (sha1 {}); first difference at {first:?}",
        expected.len(),
        digest(expected),
        actual.len(),
        digest(actual),
    );
}

/// Sends a COM_QUERY and reads its whole response frame by frame: results
/// (OK or result set) for as long as SERVER_MORE_RESULTS_EXISTS says more
/// follow, an ERR ending it.
fn raw_query(conn: &mut RawConn, sql: &str) -> Vec<Frame> {
    conn.send_command(cmd::QUERY, sql.as_bytes()).unwrap();
    let mut frames = Vec::new();
    let mut packet = || {
        let mut payload = Vec::new();
        loop {
            let (seq, piece) = conn
                .read_frame()
                .unwrap_or_else(|e| panic!("{sql}: after {frames:?}: {e}"));
            let more = piece.len() == MAX_PAYLOAD;
            payload.extend_from_slice(&piece);
            frames.push(Frame {
                seq,
                payload: piece,
            });
            if !more {
                return payload;
            }
        }
    };
    loop {
        let first = packet();
        match first.first() {
            Some(0x00) => {
                if ok_status(&first) & status::MORE_RESULTS_EXISTS == 0 {
                    break;
                }
            }
            Some(0xff) => break,
            _ => {
                let columns = read_lenenc_int(&first, &mut 0).expect("a column count");
                for _ in 0..columns {
                    packet();
                }
                assert!(is_eof(&packet()), "{sql}: no EOF after the columns");
                let end = loop {
                    let row = packet();
                    if row.first() == Some(&0xff) || is_eof(&row) {
                        break row;
                    }
                };
                if end[0] == 0xff || eof_status(&end) & status::MORE_RESULTS_EXISTS == 0 {
                    break;
                }
            }
        }
    }
    frames
}

fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xfe) && payload.len() < 9
}

fn eof_status(payload: &[u8]) -> u16 {
    u16::from_le_bytes([payload[3], payload[4]])
}

fn ok_status(payload: &[u8]) -> u16 {
    let mut pos = 1;
    read_lenenc_int(payload, &mut pos).unwrap();
    read_lenenc_int(payload, &mut pos).unwrap();
    u16::from_le_bytes([payload[pos], payload[pos + 1]])
}

/// The logical packets of a response (continuations joined).
fn packets(frames: &[Frame]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    for frame in frames {
        current.extend_from_slice(&frame.payload);
        if frame.payload.len() < MAX_PAYLOAD {
            packets.push(std::mem::take(&mut current));
        }
    }
    packets
}

/// The mock's long values (see `pattern` in its script).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i % 251) * 7 + 3) as u8).collect()
}

/// A text-protocol value with its length prefix, as the mock sends it.
fn lenenc_value(prefix: &[u8], len: usize) -> Vec<u8> {
    let mut bytes = prefix.to_vec();
    bytes.extend(pattern(len));
    bytes
}

fn bytes(text: &str) -> Value {
    Value::Bytes(text.as_bytes().to_vec())
}

/// The result sets of `sql` as the `mysql` crate reads them: per set, the
/// columns' names and types, the rows, and the set's affected rows, last
/// insert id and warnings; an error where the client got one.
struct ReadSet {
    columns: Vec<(String, ColumnType)>,
    rows: Vec<Vec<Value>>,
    affected_rows: u64,
    last_insert_id: Option<u64>,
    warnings: u16,
    error: Option<mysql::Error>,
}

fn read_sets(conn: &mut Conn, sql: &str) -> Vec<ReadSet> {
    let mut result = conn
        .query_iter(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut sets = Vec::new();
    while let Some(set) = result.iter() {
        let columns = set
            .columns()
            .as_ref()
            .iter()
            .map(|c| (c.name_str().into_owned(), c.column_type()))
            .collect();
        let (affected_rows, last_insert_id, warnings) =
            (set.affected_rows(), set.last_insert_id(), set.warnings());
        let mut rows = Vec::new();
        let mut error = None;
        for row in set {
            match row {
                Ok(row) => rows.push(row.unwrap()),
                Err(e) => error = Some(e),
            }
        }
        sets.push(ReadSet {
            columns,
            rows,
            affected_rows,
            last_insert_id,
            warnings,
            error,
        });
    }
    sets
}

/// The error code, SQLSTATE and message of a server error.
fn server_error(error: &mysql::Error) -> (u16, &str, &str) {
    match error {
        mysql::Error::MySqlError(e) => (e.code, e.state.as_str(), e.message.as_str()),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// The connection is still in step: the next query reads its own answer.
fn assert_still_in_step(name: &str, conn: &mut Conn) {
    let rows: Vec<Value> = conn
        .query_iter("SELECT @@max_allowed_packet")
        .unwrap_or_else(|e| panic!("{name}: the next query: {e}"))
        .map(|row| row.unwrap().unwrap().remove(0))
        .collect();
    assert_eq!(rows, vec![bytes("67108864")], "{name}: the next query");
}

/// `mariadb --batch` output of `args`; panics if the client failed.
fn cli(name: &str, endpoint: &Endpoint, args: &[&str]) -> Vec<u8> {
    let out = endpoint.cli("root", None, args);
    expect_success(&format!("mariadb {args:?} against {name}"), &out);
    out.stdout
}

#[test]
fn the_mock_greets_logs_in_and_passes_the_health_check() {
    let chain = Chain::start_with(&["proxy", "admin"]);
    // The checks log in to the mock and ping it: the proxies under test
    // count it as up, and clients get through.
    for proxy in [&chain.relay, &chain.scripted] {
        proxy.wait_for_backend(1, "state", "up", Duration::from_secs(10));
    }
    let log = chain.relay.stderr_text();
    assert!(!log.contains("health-check login refused"), "{log}");

    let mock_greeting = RawConn::open(&chain.mock.endpoint()).unwrap().greeting;
    assert_eq!(mock_greeting.server_version, "5.07.44");
    assert_eq!(mock_greeting.scramble, b"mock-scramble-20byte");
    assert_eq!(mock_greeting.auth_plugin, "mysql_native_password");
    assert_eq!(mock_greeting.charset, 33);
    for (name, endpoint) in chain.targets() {
        // The proxies pass the mock's greeting on (less what they cannot relay).
        let greeting = RawConn::open(&endpoint).unwrap().greeting;
        assert_eq!(
            (
                greeting.server_version.as_str(),
                greeting.scramble.as_slice(),
                greeting.auth_plugin.as_str(),
            ),
            (
                "5.07.44",
                b"mock-scramble-20byte".as_slice(),
                "mysql_native_password"
            ),
            "{name}"
        );
        assert_eq!(
            greeting.capabilities & !mock_greeting.capabilities,
            0,
            "{name}: capabilities the mock does not offer"
        );

        // Clients log in, and the mock decides who may.
        let mut conn = endpoint.root_conn();
        let stats: Vec<(u64, u64)> = conn.query("SELECT MOCK STATS").unwrap();
        let (logins, pings) = stats[0];
        assert!(logins >= 2 && pings >= 2, "{name}: {stats:?}");
        let refused = Conn::new(endpoint.opts("denied", None))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            server_error(&refused),
            (4712, "XY124", "mock: login refused for denied"),
            "{name}"
        );
    }
}

#[test]
fn result_sets_of_250_to_256_columns_arrive_whole() {
    let chain = Chain::start();
    // The column count is one byte up to 250, then 0xfc and two bytes.
    let counts: [(usize, &[u8]); 4] = [
        (250, &[0xfa]),
        (251, &[0xfc, 0xfb, 0x00]),
        (255, &[0xfc, 0xff, 0x00]),
        (256, &[0xfc, 0x00, 0x01]),
    ];
    let types = [
        ColumnType::MYSQL_TYPE_VAR_STRING,
        ColumnType::MYSQL_TYPE_LONG,
        ColumnType::MYSQL_TYPE_LONGLONG,
        ColumnType::MYSQL_TYPE_BLOB,
        ColumnType::MYSQL_TYPE_NEWDECIMAL,
        ColumnType::MYSQL_TYPE_DOUBLE,
        ColumnType::MYSQL_TYPE_STRING,
        ColumnType::MYSQL_TYPE_TINY,
        ColumnType::MYSQL_TYPE_SHORT,
        ColumnType::MYSQL_TYPE_INT24,
    ];
    for (n, count) in counts {
        let sql = format!("SELECT COLUMNS {n}");
        let wire = packets(&chain.same_wire_everywhere(&sql));
        // Count, columns, EOF, three rows, EOF.
        assert_eq!(wire.len(), n + 6, "{sql}");
        assert_eq!(wire[0], count, "{sql}: column count");
        assert!(is_eof(&wire[n + 1]) && is_eof(&wire[n + 5]), "{sql}");
        assert_eq!(wire[n + 3], vec![0xfb; n], "{sql}: the row of NULLs");

        let expected_columns: Vec<(String, ColumnType)> = (1..=n)
            .map(|i| (format!("c{i}"), types[(i - 1) % types.len()]))
            .collect();
        let expected_rows = vec![
            (1..=n).map(|i| bytes(&i.to_string())).collect::<Vec<_>>(),
            vec![Value::NULL; n],
            (1..=n)
                .map(|i| match i % 2 {
                    0 => bytes(&(i * 10).to_string()),
                    _ => Value::NULL,
                })
                .collect(),
        ];
        for (name, endpoint) in chain.targets() {
            let mut conn = endpoint.root_conn();
            let sets = read_sets(&mut conn, &sql);
            assert_eq!(sets.len(), 1, "{sql} from {name}");
            assert_eq!(sets[0].columns, expected_columns, "{sql} from {name}");
            assert!(sets[0].rows == expected_rows, "{sql} from {name}");
            assert_still_in_step(name, &mut conn);
        }
        let value_bytes: usize = (1..=n).map(|i| i.to_string().len()).sum::<usize>()
            + (2..=n)
                .step_by(2)
                .map(|i| (i * 10).to_string().len())
                .sum::<usize>();
        let nulls = n + n.div_ceil(2);
        let last_type = types[(n - 1) % types.len()] as u8;
        chain.assert_scripted_saw(&format!(
            "buffered [{sql}]: status 0, {n} fields (the last c{n}, type {last_type}), row_count 3, warnings 0: \
             3 rows, {nulls} NULLs, {value_bytes} bytes"
        ));
    }

    // The command-line client shows 256 columns.
    let mut expected = String::new();
    let line = |f: &dyn Fn(usize) -> String| (1..=256).map(f).collect::<Vec<_>>().join("\t") + "\n";
    expected += &line(&|i| format!("c{i}"));
    expected += &line(&|i| i.to_string());
    expected += &line(&|_| "NULL".to_string());
    expected += &line(&|i| match i % 2 {
        0 => (i * 10).to_string(),
        _ => "NULL".to_string(),
    });
    for (name, endpoint) in chain.targets() {
        let out = cli(name, &endpoint, &["-e", "SELECT COLUMNS 256"]);
        assert_eq!(String::from_utf8_lossy(&out), expected, "{name}");
    }
}

#[test]
fn nulls_everywhere_and_values_at_length_boundaries() {
    let chain = Chain::start();
    for (width, height) in [(1, 2), (251, 1), (256, 3)] {
        let sql = format!("SELECT NULLS {width} {height}");
        let wire = packets(&chain.same_wire_everywhere(&sql));
        assert_eq!(wire.len(), width + 3 + height, "{sql}");
        for row in &wire[width + 2..width + 2 + height] {
            assert_eq!(row, &vec![0xfb; width], "{sql}");
        }
        for (name, endpoint) in chain.targets() {
            let mut conn = endpoint.root_conn();
            let sets = read_sets(&mut conn, &sql);
            assert!(
                sets.len() == 1 && sets[0].rows == vec![vec![Value::NULL; width]; height],
                "{sql} from {name}"
            );
        }
        chain.assert_scripted_saw(&format!(
            "buffered [{sql}]: status 0, {width} fields (the last n{width}, type 253), row_count {height}, warnings 0: \
             {height} rows, {} NULLs, 0 bytes",
            width * height
        ));
    }

    // One column whose rows start with the bytes of OK (an empty string),
    // NULL, and each form of a length prefix.
    let sql = "SELECT EDGE VALUES";
    let wire = packets(&chain.same_wire_everywhere(sql));
    let expected_rows: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0xfb],
        vec![0x01, 0x00],
        lenenc_value(&[0xfa], 250),
        lenenc_value(&[0xfc, 0xfb, 0x00], 251),
        lenenc_value(&[0xfc, 0xfc, 0x00], 252),
        lenenc_value(&[0xfc, 0xff, 0xff], 65535),
        lenenc_value(&[0xfd, 0x00, 0x00, 0x01], 65536),
    ];
    assert_eq!(wire.len(), 1 + 1 + 1 + expected_rows.len() + 1);
    for (i, row) in expected_rows.iter().enumerate() {
        assert_same_bytes(&format!("{sql}: row {i}"), row, &wire[3 + i]);
    }
    let expected_values = vec![
        vec![bytes("")],
        vec![Value::NULL],
        vec![bytes("\0")],
        vec![Value::Bytes(pattern(250))],
        vec![Value::Bytes(pattern(251))],
        vec![Value::Bytes(pattern(252))],
        vec![Value::Bytes(pattern(65535))],
        vec![Value::Bytes(pattern(65536))],
    ];
    for (name, endpoint) in chain.targets() {
        let mut conn = endpoint.root_conn();
        let sets = read_sets(&mut conn, sql);
        assert!(
            sets.len() == 1 && sets[0].rows == expected_values,
            "{sql} from {name}"
        );
        assert_still_in_step(name, &mut conn);
    }

    chain.assert_scripted_saw(
        "buffered [SELECT EDGE VALUES]: status 0, 1 fields (the last v, type 252), row_count 8, warnings 0: \
         8 rows, 1 NULLs, 131825 bytes",
    );

    let out = cli(
        "the relay",
        &chain.relay.endpoint(),
        &["-e", "SELECT NULLS 3 2"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "n1\tn2\tn3\nNULL\tNULL\tNULL\nNULL\tNULL\tNULL\n"
    );
}

/// `mariadb --batch` escapes NUL, tab, newline and backslash in values.
fn cli_escaped(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for &b in bytes {
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            other => out.push(other),
        }
    }
    out
}

#[test]
fn a_row_larger_than_16_mib_is_split_into_16_mib_packets_and_read_whole() {
    let chain = Chain::start();
    // (value length, its length prefix, the row's physical packet lengths):
    // a row of exactly 0xffffff bytes is followed by an empty packet; a
    // value of 2^24 bytes or more has the 9-byte prefix, so that the row
    // starts with 0xfe, as an EOF does.
    let cases: [(usize, &[u8], [usize; 2]); 2] = [
        (16_777_209, &[0xfd, 0xf9, 0xff, 0xff], [MAX_PAYLOAD, 0]),
        (
            16_778_216,
            &[0xfe, 0xe8, 0x03, 0x00, 0x01, 0, 0, 0, 0],
            [MAX_PAYLOAD, 1012],
        ),
    ];
    for (len, prefix, row_frames) in cases {
        let sql = format!("SELECT BIG {len}");
        let frames = chain.same_wire_everywhere(&sql);
        // Count, two columns, EOF; the big row; the next row; EOF.
        let lengths: Vec<usize> = frames.iter().map(|f| f.payload.len()).collect();
        assert_eq!(frames.len(), 8, "{sql}: {frames:?}");
        assert_eq!(lengths[4..6], row_frames, "{sql}: {frames:?}");
        let wire = packets(&frames);
        let mut expected_row = lenenc_value(prefix, len);
        expected_row.extend_from_slice(&[0x01, b'1']);
        assert_same_bytes(&sql, &expected_row, &wire[4]);
        assert_eq!(wire[5], b"\x05after\x012", "{sql}: the row after it");

        let value = pattern(len);
        for (name, endpoint) in chain.targets() {
            let mut conn = endpoint.root_conn();
            let mut sets = read_sets(&mut conn, &sql);
            assert_eq!(sets.len(), 1, "{sql} from {name}");
            let mut rows = std::mem::take(&mut sets[0].rows);
            assert_eq!(rows.len(), 2, "{sql} from {name}");
            assert_eq!(rows[1], vec![bytes("after"), bytes("2")], "{name}");
            assert_eq!(rows[0][1], bytes("1"), "{sql} from {name}");
            match rows[0].swap_remove(0) {
                Value::Bytes(read) => {
                    assert_same_bytes(&format!("{sql} from {name}"), &value, &read)
                }
                other => panic!("{sql} from {name}: {other:?}"),
            }
            assert_still_in_step(name, &mut conn);
        }
        chain.assert_scripted_saw(&format!(
            "buffered [{sql}]: status 0, 2 fields (the last id, type 3), row_count 2, warnings 0: \
             2 rows, 0 NULLs, {} bytes",
            len + 7
        ));
    }

    // A RAW row packet of more than 16 MiB is split the same way; its
    // value of 2^24 bytes has the 9-byte length prefix.
    let len = 1 << 24;
    let sql = format!("SELECT RAW BIG {len}");
    let frames = chain.same_wire_everywhere(&sql);
    let lengths: Vec<usize> = frames.iter().map(|f| f.payload.len()).collect();
    assert_eq!(frames.len(), 6, "{sql}: {frames:?}");
    assert_eq!(lengths[3..5], [MAX_PAYLOAD, 10], "{sql}: {frames:?}");
    let expected_row = lenenc_value(&[0xfe, 0, 0, 0, 1, 0, 0, 0, 0], len);
    assert_same_bytes(&sql, &expected_row, &packets(&frames)[3]);
    let value = pattern(len);
    for (name, endpoint) in chain.targets() {
        let mut conn = endpoint.root_conn();
        let mut sets = read_sets(&mut conn, &sql);
        assert!(
            sets.len() == 1 && sets[0].rows.len() == 1,
            "{sql} from {name}"
        );
        match sets[0].rows[0].swap_remove(0) {
            Value::Bytes(read) => assert_same_bytes(&format!("{sql} from {name}"), &value, &read),
            other => panic!("{sql} from {name}: {other:?}"),
        }
        assert_still_in_step(name, &mut conn);
    }

    // The command-line client reads it whole too.
    let (len, ..) = cases[1];
    let sql = format!("SELECT BIG {len}");
    let mut expected = cli_escaped(&pattern(len));
    expected.extend_from_slice(b"\t1\nafter\t2\n");
    for (name, endpoint) in chain.targets() {
        let out = cli(
            name,
            &endpoint,
            &[
                "--max-allowed-packet=64M",
                "--skip-column-names",
                "-e",
                &sql,
            ],
        );
        assert_same_bytes(&format!("mariadb {sql} against {name}"), &expected, &out);
    }
}

#[test]
fn custom_error_codes_and_sqlstates_reach_the_client_unchanged() {
    let chain = Chain::start();
    let message = "mock: custom failure (ünïcødé)";
    let mut custom = b"\xff\x67\x12#XY123".to_vec();
    custom.extend_from_slice(message.as_bytes());
    let long_message = "0123456789".repeat(200);
    let errors = [
        ("SELECT CUSTOM ERROR", custom, (4711, "XY123", message)),
        (
            "SELECT SECOND ERROR",
            b"\xff\x61\xea#S1T00mock: another failure".to_vec(),
            (60001, "S1T00", "mock: another failure"),
        ),
        (
            "SELECT LONG ERROR",
            [b"\xff\x6b\x12#XY127".as_slice(), long_message.as_bytes()].concat(),
            (4715, "XY127", long_message.as_str()),
        ),
    ];
    for (sql, payload, expected) in &errors {
        let frames = chain.same_wire_everywhere(sql);
        assert_eq!(
            frames,
            vec![Frame {
                seq: 1,
                payload: payload.clone()
            }],
            "{sql}"
        );
        for (name, endpoint) in chain.targets() {
            let mut conn = endpoint.root_conn();
            let error = conn.query_drop(sql).unwrap_err();
            assert_eq!(server_error(&error), *expected, "{sql} from {name}");
            assert_still_in_step(name, &mut conn);
        }
        chain.assert_scripted_saw(&format!(
            "buffered [{sql}]: status 255, 0 fields, row_count 0, warnings 0: no rows"
        ));
    }

    // An error after two rows: the client has the rows, then the error.
    let sql = "SELECT MIDWAY ERROR";
    let wire = packets(&chain.same_wire_everywhere(sql));
    assert_eq!(wire.len(), 6, "{sql}");
    assert_eq!(
        wire[3..5],
        [b"\x02r1".to_vec(), b"\x02r2".to_vec()],
        "{sql}"
    );
    assert_eq!(wire[5], b"\xff\x69\x12#XY125mock: failed after two rows");
    for (name, endpoint) in chain.targets() {
        let mut conn = endpoint.root_conn();
        let sets = read_sets(&mut conn, sql);
        assert_eq!(sets.len(), 1, "{sql} from {name}");
        assert_eq!(sets[0].rows, vec![vec![bytes("r1")], vec![bytes("r2")]]);
        let error = sets[0].error.as_ref().expect("the error after the rows");
        assert_eq!(
            server_error(error),
            (4713, "XY125", "mock: failed after two rows"),
            "{name}"
        );
        assert_still_in_step(name, &mut conn);
    }
    // The rows before the error (its status is not asserted: 0.8's is not
    // clear for a result set that ends in an ERR).
    chain.assert_scripted_saw(
        ", 1 fields (the last r, type 253), row_count 2, warnings 0: 2 rows, 0 NULLs, 4 bytes",
    );

    // The command-line client shows code, state and message (after the
    // statement it ran).
    for (name, endpoint) in chain.targets() {
        let out = endpoint.cli("root", None, &["-e", "SELECT CUSTOM ERROR"]);
        assert!(!out.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.lines().last(),
            Some(format!("ERROR 4711 (XY123) at line 1: {message}").as_str()),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn ok_packets_keep_affected_rows_insert_id_warnings_and_info() {
    let chain = Chain::start();
    // proxy.response's OK: counters of 8 bytes each.
    let frames = chain.same_wire_everywhere("INSERT OK");
    let mut ok = vec![
        0x00, 0xfe, 3, 0, 0, 0, 0, 1, 0, 0, 0xfe, 5, 0, 0, 0, 1, 0, 0, 0,
    ];
    ok.extend_from_slice(&[0x02, 0x00, 0x00, 0x00]);
    assert_eq!(
        frames,
        vec![Frame {
            seq: 1,
            payload: ok
        }]
    );
    // A RAW OK with warnings and an info text.
    let frames = chain.same_wire_everywhere("INSERT WARNINGS");
    // The info is length-encoded, as servers send it (net_send_ok).
    let info = b"Records: 3  Duplicates: 0  Warnings: 7";
    let mut ok = vec![0x00, 0x03, 0xfd, 0x70, 0x11, 0x01, 0x02, 0x00, 0x07, 0x00];
    ok.push(info.len() as u8);
    ok.extend_from_slice(info);
    assert_eq!(
        frames,
        vec![Frame {
            seq: 1,
            payload: ok
        }]
    );

    for (name, endpoint) in chain.targets() {
        let mut conn = endpoint.root_conn();
        conn.query_drop("INSERT OK").unwrap();
        assert_eq!(
            (conn.affected_rows(), conn.last_insert_id(), conn.warnings()),
            (1_099_511_627_779, 4_294_967_301, 0),
            "{name}"
        );
        conn.query_drop("INSERT WARNINGS").unwrap();
        assert_eq!(
            (
                conn.affected_rows(),
                conn.last_insert_id(),
                conn.warnings(),
                conn.info_str().into_owned()
            ),
            (
                3,
                70_000,
                7,
                "Records: 3  Duplicates: 0  Warnings: 7".to_string()
            ),
            "{name}"
        );
        assert_still_in_step(name, &mut conn);
    }
    chain.assert_scripted_saw(
        "buffered [INSERT OK]: status 0, 0 fields, row_count 0, warnings 0: no rows",
    );
    chain.assert_scripted_saw(
        "buffered [INSERT WARNINGS]: status 0, 0 fields, row_count 0, warnings 7: no rows",
    );
}

#[test]
fn raw_result_sets_with_4_1_eof_packets_pass_unchanged() {
    let chain = Chain::start();
    let sql = "SELECT EOF41";
    let wire = packets(&chain.same_wire_everywhere(sql));
    let column = |name: &str, column_type: u8| {
        let mut def = b"\x03def\x04mock\x01t\x01t".to_vec();
        for _ in 0..2 {
            def.push(name.len() as u8);
            def.extend_from_slice(name.as_bytes());
        }
        def.extend_from_slice(&[0x0c, 33, 0, 0, 1, 0, 0, column_type, 0, 0, 0, 0, 0]);
        def
    };
    assert_eq!(
        wire,
        vec![
            vec![2],
            column("id", 3),
            column("name", 253),
            vec![0xfe, 0, 0, 0x02, 0],
            b"\x011\x03one".to_vec(),
            b"\x012\xfb".to_vec(),
            // 3 warnings, AUTOCOMMIT | NO_INDEX_USED.
            vec![0xfe, 3, 0, 0x22, 0],
        ]
    );
    for (name, endpoint) in chain.targets() {
        let mut conn = endpoint.root_conn();
        let sets = read_sets(&mut conn, sql);
        assert_eq!(sets.len(), 1, "{name}");
        assert_eq!(
            sets[0].columns,
            vec![
                ("id".to_string(), ColumnType::MYSQL_TYPE_LONG),
                ("name".to_string(), ColumnType::MYSQL_TYPE_VAR_STRING)
            ],
            "{name}"
        );
        assert_eq!(
            sets[0].rows,
            vec![
                vec![bytes("1"), bytes("one")],
                vec![bytes("2"), Value::NULL]
            ],
            "{name}"
        );
        // The closing EOF's warnings.
        assert_eq!(conn.warnings(), 3, "{name}");
        assert_still_in_step(name, &mut conn);
        let out = cli(name, &endpoint, &["-e", sql]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "id\tname\n1\tone\n2\tNULL\n",
            "{name}"
        );
    }
    chain.assert_scripted_saw(
        "buffered [SELECT EOF41]: status 0, 2 fields (the last name, type 253), row_count 2, warnings 3: \
         2 rows, 1 NULLs, 5 bytes",
    );
}

#[test]
fn multiple_result_sets_reach_the_client_in_order() {
    let chain = Chain::start();
    // proxy.response has no form for several result sets: RAW packets do it.
    let sql = "SELECT MULTI";
    let wire = packets(&chain.same_wire_everywhere(sql));
    assert_eq!(wire.len(), 13, "{sql}");
    assert_eq!(
        wire[6],
        [0x00, 5, 6, 0x0a, 0x00, 0x01, 0x00],
        "{sql}: the OK"
    );
    for (name, endpoint) in chain.targets() {
        let mut conn = endpoint.root_conn();
        let sets = read_sets(&mut conn, sql);
        let shape: Vec<_> = sets
            .iter()
            .map(|s| {
                let names: Vec<&str> = s.columns.iter().map(|(n, _)| n.as_str()).collect();
                (names, s.rows.clone(), s.error.is_some())
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (vec!["a"], vec![vec![bytes("1")], vec![bytes("2")]], false),
                (vec![], vec![], false),
                (vec!["b", "c"], vec![vec![bytes("x"), Value::NULL]], false),
            ],
            "{sql} from {name}"
        );
        assert_eq!(
            (
                sets[1].affected_rows,
                sets[1].last_insert_id,
                sets[1].warnings
            ),
            (5, Some(6), 1),
            "{sql} from {name}: the OK between the result sets"
        );
        assert_still_in_step(name, &mut conn);
        let out = cli(name, &endpoint, &["-e", sql]);
        assert_eq!(String::from_utf8_lossy(&out), "a\n1\n2\nb\tc\nx\tNULL\n");
    }
    // The first result set's fields and rows; the rows of all of them
    // counted, the last one's warnings.
    chain.assert_scripted_saw(
        "buffered [SELECT MULTI]: status 0, 1 fields (the last a, type 8), row_count 3, warnings 0: \
         2 rows, 0 NULLs, 2 bytes",
    );

    // A result set, then the error of the next statement.
    let sql = "SELECT MULTI ERROR";
    let wire = packets(&chain.same_wire_everywhere(sql));
    assert_eq!(wire.len(), 6, "{sql}");
    for (name, endpoint) in chain.targets() {
        let mut conn = endpoint.root_conn();
        let sets = read_sets(&mut conn, sql);
        assert_eq!(sets.len(), 2, "{sql} from {name}");
        assert_eq!(sets[0].rows, vec![vec![bytes("1")]], "{sql} from {name}");
        let error = sets[1]
            .error
            .as_ref()
            .expect("the second statement's error");
        assert_eq!(
            server_error(error),
            (4714, "XY126", "mock: the second statement failed"),
            "{name}"
        );
        assert_still_in_step(name, &mut conn);
    }
    chain.assert_scripted_saw(
        "buffered [SELECT MULTI ERROR]: status 0, 1 fields (the last a, type 8), row_count 1, warnings 0: \
         1 rows, 0 NULLs, 1 bytes",
    );
}
