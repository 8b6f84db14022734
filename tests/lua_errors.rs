//! Scripts that fail, through the real proxy (`--proxy-lua-script`), a real
//! MariaDB behind it and real clients in front: an error in each hook, a
//! file that cannot be compiled or whose top level fails, hooks that return
//! what is no decision, `proxy.response` tables that cannot be sent, and a
//! script edited while clients are connected. What each client gets is
//! MySQL Proxy 0.8's (COMPAT 2.9, 4.1, 4.2, 4.6) or the fallback docs/LUA.md
//! documents; the proxy stays up for every other client.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use mysql::prelude::Queryable;
use mysql::{Conn, MySqlError};
use mysql_proxy_tests::raw::split_frames;
use mysql_proxy_tests::{Endpoint, MariaDb, Proxy};

/// What a client gets when the script cannot be compiled (or read).
const FAILED_TO_LOAD: &str = "MySQL Proxy Lua script failed to load. Check the error log.";
/// ... when the script's top level raises an error.
const FAILED_TO_EXECUTE: &str = "MySQL Proxy Lua script failed to execute. Check the error log.";
/// ... when `proxy.response` cannot be sent.
const HANDLING_FAILED: &str = "(lua) handling proxy.response failed, check error-log";
/// ... when an ERR `proxy.response` has no message.
const ERRMSG_NIL: &str = "(lua) proxy.response.errmsg is nil";
/// ER_UNKNOWN_ERROR, the code of the proxy's own errors.
const ER_UNKNOWN_ERROR: u16 = 1105;
/// The SQLSTATE of the proxy's own errors.
const PROXY_SQL_STATE: &str = "07000";
/// How long the proxy may take to notice something (a client gone).
const PATIENCE: Duration = Duration::from_secs(10);

/// The test's script file, in a directory kept as long as the test runs.
fn script(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.lua");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Replaces the script's text and sets its modification time to `version`
/// seconds after the epoch: the change shows whatever the filesystem's
/// timestamp granularity.
fn rewrite(path: &Path, text: &str, version: u64) {
    std::fs::write(path, text).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 * version))
        .unwrap();
}

/// The proxy in front of `server`, running `script`.
fn proxy_with(server: &MariaDb, script: &Path) -> Proxy {
    Proxy::builder()
        .backend(server.addr())
        .arg(format!("--proxy-lua-script={}", script.display()))
        .start()
        .expect("proxy with a script")
}

/// The one value `query` returns.
fn one(conn: &mut Conn, query: &str) -> String {
    conn.query_first::<String, _>(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .unwrap()
}

/// The error `query` gets.
fn query_error(conn: &mut Conn, query: &str) -> MySqlError {
    match conn.query_drop(query) {
        Err(mysql::Error::MySqlError(error)) => error,
        other => panic!("{query}: expected an ERR packet, got {other:?}"),
    }
}

/// Asserts `error` is the proxy's own error with `message`.
fn assert_proxy_error(error: &MySqlError, message: &str) {
    assert_eq!(
        (error.code, error.state.as_str(), error.message.as_str()),
        (ER_UNKNOWN_ERROR, PROXY_SQL_STATE, message),
        "{error:?}"
    );
}

/// The error a new client gets instead of a session.
fn login_error(endpoint: &Endpoint) -> MySqlError {
    match Conn::new(endpoint.root_opts()) {
        Err(mysql::Error::MySqlError(error)) => error,
        Err(other) => panic!("expected an ERR packet, got {other}"),
        Ok(_) => panic!("expected an ERR packet, got a session"),
    }
}

/// Everything the proxy sends a new client that sends nothing, as
/// (sequence id, payload) frames; panics unless the proxy then closes the
/// connection.
fn sent_before_closing(endpoint: &Endpoint) -> Vec<(u8, Vec<u8>)> {
    let mut stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("expected the proxy to close, got {e} after {bytes:02x?}"));
    split_frames(&bytes).unwrap_or_else(|| panic!("not whole packets: {bytes:02x?}"))
}

/// An ERR payload without SQLSTATE (what a client that has no greeting
/// yet is sent, docs/LUA.md): code 1105 and `message`.
fn bare_error(message: &str) -> Vec<u8> {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&ER_UNKNOWN_ERROR.to_le_bytes());
    payload.extend_from_slice(message.as_bytes());
    payload
}

/// The line number (1-based) of the one line of `text` ending with `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim_end().ends_with(marker))
        .map(|(n, _)| n + 1)
        .collect();
    assert_eq!(lines.len(), 1, "{marker:?} on lines {lines:?}");
    lines[0]
}

/// How Lua names a place in the script: `[string "<path>"]:<line>:`.
fn location(path: &Path, line: usize) -> String {
    format!("[string \"{}\"]:{line}:", path.display())
}

/// Waits until the proxy's log contains `text`; returns the log.
fn wait_for_log(proxy: &Proxy, text: &str) -> String {
    wait_for_log_times(proxy, text, 1)
}

/// Waits until the proxy's log contains `text` `times` times; returns the
/// log.
fn wait_for_log_times(proxy: &Proxy, text: &str, times: usize) -> String {
    let began = Instant::now();
    loop {
        let log = proxy.stderr_text();
        if log.matches(text).count() >= times {
            return log;
        }
        assert!(
            began.elapsed() < PATIENCE,
            "not {times} times {text:?} in the log:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts `conn` answers `query` with `value` within [`PATIENCE`]
/// (something a disconnecting session does is seen by the next query).
fn wait_for_answer(conn: &mut Conn, query: &str, value: &str) {
    let began = Instant::now();
    loop {
        let answer = one(conn, query);
        if answer == value {
            return;
        }
        assert!(
            began.elapsed() < PATIENCE,
            "{query}: {answer:?}, not {value:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Every hook raises an error for the connection armed by `SELECT 'arm'`
/// (after having prepared a decision it never returns): each error is
/// logged with the file and the line, each hook counts as having returned
/// nothing, so that connection logs in and works as without a script; the
/// session opened before goes on with the script's answers.
#[test]
fn an_error_in_each_hook_is_logged_and_decides_nothing() {
    let server = MariaDb::start();
    let text = r#"
local function answer(text)
    proxy.response = {
        type = proxy.MYSQLD_PACKET_OK,
        resultset = { fields = { { name = "answer" } }, rows = { { text } } },
    }
    return proxy.PROXY_SEND_RESULT
end

local refusal = { type = proxy.MYSQLD_PACKET_ERR, errmsg = "a response of a failed hook" }

function connect_server()
    if proxy.global.armed then
        proxy.global.armed = nil
        failing = true
        proxy.response = refusal
        error("connect_server failed") -- connect_server
    end
end

function read_handshake()
    if failing then proxy.response = refusal error("read_handshake failed") end -- read_handshake
end

function read_auth()
    if failing then proxy.response = refusal error("read_auth failed") end -- read_auth
end

function read_auth_result(auth)
    if failing then proxy.response = refusal error("read_auth_result failed") end -- read_auth_result
end

function read_query(packet)
    local query = packet:sub(2)
    if query == "SELECT 'arm'" then
        proxy.global.armed = true
        return answer("armed")
    elseif query == "SELECT 'inject'" then
        proxy.queries:append(1, string.char(proxy.COM_QUERY) .. "SELECT 'injected'",
            { resultset_is_needed = true })
        return proxy.PROXY_SEND_QUERY
    elseif query == "SELECT 'inject two'" then
        proxy.queries:append(3, string.char(proxy.COM_QUERY) .. "SELECT 'first'",
            { resultset_is_needed = true })
        proxy.queries:append(4, string.char(proxy.COM_QUERY) .. "SELECT 'second'",
            { resultset_is_needed = true })
        return proxy.PROXY_SEND_QUERY
    elseif query == "SELECT 'stream'" then
        proxy.queries:append(5, string.char(proxy.COM_QUERY) .. "SELECT 'streamed'")
        return proxy.PROXY_SEND_QUERY
    elseif failing then
        -- Neither the queued entry nor the response: the command goes on.
        proxy.queries:append(2, string.char(proxy.COM_QUERY) .. "SELECT 'queued'")
        proxy.response = refusal
        error("read_query failed") -- read_query
    end
end

function read_query_result(inj)
    if failing then proxy.response = refusal error("read_query_result failed") end -- read_query_result
    if inj.id == 5 then return end
    if inj.id == 4 then return proxy.PROXY_IGNORE_RESULT end
    return answer("seen by the script")
end

function disconnect_client()
    if failing then error("disconnect_client failed") end -- disconnect_client
end
"#;
    let (_dir, path) = script(text);
    let proxy = proxy_with(&server, &path);
    let mut before = proxy.endpoint().root_conn();
    assert_eq!(one(&mut before, "SELECT 'inject'"), "seen by the script");
    assert_eq!(
        one(&mut before, "SELECT 'inject two'"),
        "seen by the script"
    );
    assert_eq!(one(&mut before, "SELECT 'stream'"), "streamed");

    // A login the server refuses: the server's error reaches the client.
    assert_eq!(one(&mut before, "SELECT 'arm'"), "armed");
    let refused = Conn::new(proxy.endpoint().opts("root", Some("wrong password")));
    match refused {
        Err(mysql::Error::MySqlError(error)) => {
            assert_eq!(
                (error.code, error.state.as_str()),
                (1045, "28000"),
                "{error:?}"
            )
        }
        other => panic!(
            "expected the server's refusal, got {:?}",
            other.map(|_| "a session")
        ),
    }
    assert_eq!(one(&mut before, "SELECT 'arm'"), "armed");

    // Every hook of its login fails: the login goes on as without a script.
    let mut failing = proxy.endpoint().root_conn();
    let port: u16 = failing.query_first("SELECT @@port").unwrap().unwrap();
    assert_eq!(port, server.port());
    assert_eq!(one(&mut failing, "SELECT 'plain'"), "plain");
    // The injections happen; their results go to the client unchanged
    // (the first one only, when two are buffered: one result per command).
    assert_eq!(one(&mut failing, "SELECT 'inject'"), "injected");
    assert_eq!(one(&mut failing, "SELECT 'inject two'"), "first");
    assert_eq!(one(&mut failing, "SELECT 'stream'"), "streamed");
    assert_eq!(one(&mut before, "SELECT 'inject'"), "seen by the script");
    assert_eq!(one(&mut failing, "SELECT 'again'"), "again");
    drop(failing);

    // Both armed sessions (the refused login and this one) have ended.
    let log = wait_for_log_times(&proxy, "disconnect_client failed", 2);
    for hook in [
        "connect_server",
        "read_handshake",
        "read_auth",
        "read_auth_result",
        "read_query",
        "read_query_result",
        "disconnect_client",
    ] {
        let line = line_of(text, &format!("-- {hook}"));
        let expected = format!("({hook}) {} {hook} failed", location(&path, line));
        assert!(
            log.contains(&expected),
            "no {expected:?} in the log:\n{log}"
        );
    }
    // The session opened before goes on, after the other's disconnection
    // too.
    assert_eq!(one(&mut before, "SELECT 'inject'"), "seen by the script");
    assert_eq!(one(&mut before, "SELECT 'still'"), "still");
    let mut after = proxy.endpoint().root_conn();
    assert_eq!(one(&mut after, "SELECT 'inject'"), "seen by the script");
}

/// `error()` with something else than a string, Lua's own run-time
/// errors, and errors of the proxy's objects, in a hook: logged with the
/// line they were raised on, and the command goes to the server.
#[test]
fn errors_that_are_no_string_count_as_nothing_too() {
    let server = MariaDb::start();
    let text = r#"
local function recurse(n) return 1 + recurse(n + 1) end -- a recursion

function read_query(packet)
    local query = packet:sub(2)
    if query == "SELECT 'a table'" then
        error({ code = 1 }) -- a table
    elseif query == "SELECT 'nil'" then
        error(nil) -- nil
    elseif query == "SELECT 'a number'" then
        error(42) -- a number
    elseif query == "SELECT 'an object'" then
        error(setmetatable({}, { __tostring = function() return "an object" end })) -- an object
    elseif query == "SELECT 'a bad object'" then
        error(setmetatable({}, { __tostring = function() return {} end })) -- a bad object
    elseif query == "SELECT 'an index'" then
        local missing
        return missing.field -- an index
    elseif query == "SELECT 'a call'" then
        return proxy.no_such_function() -- a call
    elseif query == "SELECT 'a level'" then
        error("level two", 2) -- a level
    elseif query == "SELECT 'a recursion'" then
        return recurse(1)
    elseif query == "SELECT 'a yield'" then
        coroutine.yield() -- a yield
    elseif query == "SELECT 'an append'" then
        proxy.queries:append(1, packet, { resultset_is_needed = "yes" }) -- an append
    elseif query == "SELECT 'a backend'" then
        proxy.global.backends[1].weight = 2 -- a backend
    end
end
"#;
    let (_dir, path) = script(text);
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    let mut other = proxy.endpoint().root_conn();
    // (the case, what the log says after "(read_query) ", or "" if the
    // message has no location and only the traceback names the line)
    let cases = [
        ("a table", "table: "),
        ("nil", "nil"),
        ("a number", "{location} 42"),
        ("an object", "an object"),
        ("a bad object", ""),
        (
            "an index",
            "{location} attempt to index local 'missing' (a nil value)",
        ),
        (
            "a call",
            "{location} attempt to call field 'no_such_function' (a nil value)",
        ),
        ("a level", "level two"),
        ("a recursion", "{location} stack overflow"),
        ("a yield", "attempt to yield"),
        ("an append", "{location} bad argument #3 to 'append'"),
        (
            "a backend",
            "{location} proxy.global.backends[...].weight is not writable",
        ),
    ];
    for (case, logged) in cases {
        let before = proxy.stderr_text().len();
        assert_eq!(one(&mut conn, &format!("SELECT '{case}'")), case);
        assert_eq!(one(&mut other, "SELECT 'other'"), "other");
        let log = proxy.stderr_text();
        let added = &log[before..];
        let location = location(&path, line_of(text, &format!("-- {case}")));
        let expected = format!("(read_query) {}", logged.replace("{location}", &location));
        assert!(
            added.contains(&expected) && added.contains(&location),
            "{case}: no {expected:?} and {location:?} in the log:\n{added}"
        );
    }
}

/// A script that cannot be compiled, or whose top level fails: each new
/// client gets 0.8's error (before any greeting, so without SQLSTATE, as
/// docs/LUA.md says) and is disconnected; the log says where; the proxy
/// stays up, and a fixed file serves the next client.
#[test]
fn a_script_that_cannot_load_or_run_refuses_each_client_and_the_proxy_stays_up() {
    let server = MariaDb::start();
    // (script, the client's message, what the log says, the line it names)
    let cases: [(&str, &str, &str, usize); 7] = [
        (
            "-- a syntax error on line 3\nfunction read_query(packet)\n    if then return end\nend\n",
            FAILED_TO_LOAD,
            "failed to load: {location} unexpected symbol near 'then'",
            3,
        ),
        // A first-line `#!` is a syntax error (COMPAT 4.1).
        (
            "#!/usr/bin/env lua\nfunction read_query(packet) end\n",
            FAILED_TO_LOAD,
            "failed to load: {location} unexpected symbol near '#'",
            1,
        ),
        (
            "function read_query(packet) end\n\nerror(\"top level failed\")\n",
            FAILED_TO_EXECUTE,
            "failed to execute: {location} top level failed",
            3,
        ),
        (
            "local t\nlocal x = t.field\n",
            FAILED_TO_EXECUTE,
            "failed to execute: {location} attempt to index local 't' (a nil value)",
            2,
        ),
        // Errors that are no string: the traceback names the line.
        (
            "function read_query(packet) end\nerror({ code = 1 })\n",
            FAILED_TO_EXECUTE,
            "failed to execute: table: ",
            2,
        ),
        ("error(nil)\n", FAILED_TO_EXECUTE, "failed to execute: nil", 1),
        (
            "function read_query(packet) end\nerror(setmetatable({}, { __tostring = function() return 'an object' end }))\n",
            FAILED_TO_EXECUTE,
            "failed to execute: an object",
            2,
        ),
    ];
    for (text, message, logged, line) in cases {
        let (_dir, path) = script(text);
        let mut proxy = proxy_with(&server, &path);
        let error = login_error(&proxy.endpoint());
        assert_eq!(
            (error.code, error.message.as_str()),
            (ER_UNKNOWN_ERROR, message),
            "{text:?}: {error:?}"
        );
        // Exactly one ERR packet, without SQLSTATE, then the connection
        // is closed; the next client is told again.
        for _ in 0..2 {
            assert_eq!(
                sent_before_closing(&proxy.endpoint()),
                vec![(0, bare_error(message))],
                "{text:?}"
            );
        }
        assert!(proxy.is_running(), "{text:?}");
        let log = proxy.stderr_text();
        let location = location(&path, line);
        let logged = logged.replace("{location}", &location);
        assert!(
            log.contains(&logged) && log.contains(&location),
            "{text:?}: no {logged:?} and {location:?} in the log:\n{log}"
        );
        // Fixed: the next client runs the new file.
        rewrite(&path, "function read_query(packet) end -- fixed\n", 1);
        let mut conn = proxy.endpoint().root_conn();
        assert_eq!(one(&mut conn, "SELECT 'fixed'"), "fixed", "{text:?}");
    }

    // A file that is not there.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.lua");
    let proxy = proxy_with(&server, &path);
    let error = login_error(&proxy.endpoint());
    assert_eq!(
        (error.code, error.message.as_str()),
        (ER_UNKNOWN_ERROR, FAILED_TO_LOAD)
    );
    let log = proxy.stderr_text();
    assert!(
        log.contains("failed to load") && log.contains(&path.display().to_string()),
        "{log}"
    );
    std::fs::write(&path, "function read_query(packet) end\n").unwrap();
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(one(&mut conn, "SELECT 'there'"), "there");
}

/// A script whose top level fails for one connection only (it counts
/// connections in `proxy.global`), opened after the first.
const FAILS_ONCE: &str = r#"
proxy.global.runs = (proxy.global.runs or 0) + 1
if proxy.global.fail then
    proxy.global.fail = nil
    error("this connection's top level fails") -- fails
end

function read_query(packet)
    local query = packet:sub(2)
    local value
    if query == "SELECT 'fail next'" then
        proxy.global.fail = true
        value = "armed"
    elseif query == "SELECT 'runs'" then
        value = tostring(proxy.global.runs)
    elseif query == "SELECT 'disconnected'" then
        value = tostring(proxy.global.disconnected or 0)
    else
        return
    end
    proxy.response = {
        type = proxy.MYSQLD_PACKET_OK,
        resultset = { fields = { { name = "value" } }, rows = { { value } } },
    }
    return proxy.PROXY_SEND_RESULT
end

function disconnect_client()
    proxy.global.disconnected = (proxy.global.disconnected or 0) + 1
end
"#;

/// A top level that fails for one connection: that client only is
/// refused, the sessions before and after go on.
#[test]
fn a_top_level_failing_for_one_connection_refuses_only_that_one() {
    let server = MariaDb::start();
    let (_dir, path) = script(FAILS_ONCE);
    let proxy = proxy_with(&server, &path);
    let mut before = proxy.endpoint().root_conn();
    assert_eq!(one(&mut before, "SELECT 'fail next'"), "armed");
    let error = login_error(&proxy.endpoint());
    assert_eq!(
        (error.code, error.message.as_str()),
        (ER_UNKNOWN_ERROR, FAILED_TO_EXECUTE)
    );
    wait_for_log(
        &proxy,
        &format!(
            "failed to execute: {} this connection's top level fails",
            location(&path, line_of(FAILS_ONCE, "-- fails"))
        ),
    );
    let mut after = proxy.endpoint().root_conn();
    assert_eq!(one(&mut after, "SELECT 'plain'"), "plain");
    assert_eq!(one(&mut before, "SELECT 'plain'"), "plain");
}

/// docs/LUA.md: "each connection runs the script's top level once"; a
/// connection refused because its top level failed has no script to run
/// `disconnect_client` of.
#[test]
fn a_refused_connection_runs_the_top_level_once_and_no_hook_after() {
    let server = MariaDb::start();
    let (_dir, path) = script(FAILS_ONCE);
    let proxy = proxy_with(&server, &path);
    let mut before = proxy.endpoint().root_conn();
    assert_eq!(one(&mut before, "SELECT 'runs'"), "1");
    assert_eq!(one(&mut before, "SELECT 'fail next'"), "armed");
    // Refused, and closed: its session (disconnect_client included) is
    // over when the connection is.
    assert_eq!(
        sent_before_closing(&proxy.endpoint()),
        vec![(0, bare_error(FAILED_TO_EXECUTE))]
    );
    let mut after = proxy.endpoint().root_conn();
    assert_eq!(one(&mut after, "SELECT 'runs'"), "3");
    assert_eq!(one(&mut after, "SELECT 'disconnected'"), "0");
}

/// Errors raised by `proxy.connection` and its socket objects are errors
/// like any other: a string located at the script's line, so the log names
/// the line (docs/LUA.md: `(read_query) [string "<path>"]:<line>: ...`) and
/// `pcall` hands the script a message, as the errors of
/// `proxy.global.backends`, `proxy.queries` and `inj` are.
#[test]
fn errors_of_proxy_connection_are_located_strings() {
    let server = MariaDb::start();
    let text = r#"
function read_query(packet)
    local query = packet:sub(2)
    if query == "SELECT 'a key'" then
        proxy.connection.foo = 1 -- a key
    elseif query == "SELECT 'connection_close'" then
        proxy.connection.connection_close = 1 -- connection_close
    elseif query == "SELECT 'backend_ndx'" then
        proxy.connection.backend_ndx = "first" -- backend_ndx
    elseif query == "SELECT 'default_db'" then
        local db = proxy.connection.default_db -- default_db
    elseif query == "SELECT 'address'" then
        local address = proxy.connection.client.address -- address
    elseif query == "SELECT 'pcall'" then
        local ok, err = pcall(function() proxy.connection.foo = 1 end) -- pcall
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = { fields = { { name = "error" } }, rows = { { type(err) .. ": " .. tostring(err) } } },
        }
        return proxy.PROXY_SEND_RESULT
    end
end
"#;
    let (_dir, path) = script(text);
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    for (case, message) in [
        ("a key", "proxy.connection.foo is not writable"),
        (
            "connection_close",
            "proxy.connection.connection_close needs a boolean",
        ),
        ("backend_ndx", "proxy.connection.backend_ndx needs a number"),
        ("default_db", "proxy.connection.default_db is deprecated"),
        ("address", ".address is deprecated"),
    ] {
        assert_eq!(one(&mut conn, &format!("SELECT '{case}'")), case);
        let expected = format!(
            "(read_query) {} {message}",
            location(&path, line_of(text, &format!("-- {case}")))
        );
        let log = proxy.stderr_text();
        assert!(
            log.contains(&expected),
            "no {expected:?} in the log:\n{log}"
        );
    }
    assert_eq!(
        one(&mut conn, "SELECT 'pcall'"),
        format!(
            "string: {} proxy.connection.foo is not writable",
            location(&path, line_of(text, "-- pcall"))
        )
    );
}

/// Values that are no decision, returned by every hook: a string, a table,
/// numbers that are no decision but whose low 32 bits or whole part are
/// `PROXY_SEND_RESULT`, NaN, infinity, and a decision as second value. Each
/// hook has `proxy.response` set to an ERR that the client must not see:
/// the hook decided nothing (COMPAT 4.2), and `SELECT 'send result'`, which
/// returns the real `PROXY_SEND_RESULT`, shows that the ERR would be seen.
#[test]
fn hooks_returning_what_is_no_decision_decide_nothing() {
    let server = MariaDb::start();
    let text = r#"
local SEND_RESULT = proxy.PROXY_SEND_RESULT
local returns = {
    ["a string"] = function() return "yes" end,
    ["a table"] = function() return { SEND_RESULT } end,
    ["a huge number"] = function() return 2 ^ 32 + SEND_RESULT end,
    ["a larger number"] = function() return 1e300 end,
    ["a negative number"] = function() return -(2 ^ 32) + SEND_RESULT end,
    ["minus one"] = function() return -1 end,
    ["a float"] = function() return SEND_RESULT + 0.5 end,
    ["not a number"] = function() return 0 / 0 end,
    ["infinity"] = function() return 1 / 0 end,
    ["two values"] = function() return nil, SEND_RESULT end,
}
local order = {
    "a string", "a table", "a huge number", "a larger number",
    "a negative number", "minus one", "a float", "not a number", "infinity", "two values",
}

local function garbage(key)
    proxy.response = { type = proxy.MYSQLD_PACKET_ERR, errmsg = "taken for a decision: " .. key }
    return returns[key]()
end

function connect_server()
    proxy.global.connections = (proxy.global.connections or 0) + 1
    mine = order[proxy.global.connections]
    if mine then return garbage(mine) end
end
function read_handshake() if mine then return garbage(mine) end end
function read_auth() if mine then return garbage(mine) end end
function read_auth_result() if mine then return garbage(mine) end end

function read_query(packet)
    local query = packet:sub(2)
    local key = query:match("^SELECT '(.*)'$")
    local injected = query:match("^INJECT (.*)$")
    if query == "SELECT 'send result'" then
        proxy.response = { type = proxy.MYSQLD_PACKET_ERR, errmsg = "sent", errcode = 1234 }
        return SEND_RESULT
    elseif injected then
        proxy.queries:append(1, string.char(proxy.COM_QUERY) .. "SELECT '" .. injected .. "'",
            { resultset_is_needed = true })
        return proxy.PROXY_SEND_QUERY
    elseif key and returns[key] then
        return garbage(key)
    end
end

function read_query_result(inj)
    return garbage(inj.query:match("^.SELECT '(.*)'$"))
end
"#;
    let (_dir, path) = script(text);
    let proxy = proxy_with(&server, &path);
    let keys = [
        "a string",
        "a table",
        "a huge number",
        "a larger number",
        "a negative number",
        "minus one",
        "a float",
        "not a number",
        "infinity",
        "two values",
    ];
    let mut sessions = Vec::new();
    for key in keys {
        // connect_server, read_handshake, read_auth, read_auth_result
        // return it: the login goes on as without a script.
        let mut conn = match Conn::new(proxy.endpoint().root_opts()) {
            Ok(conn) => conn,
            Err(error) => panic!("{key}: the login failed: {error}"),
        };
        let port: u16 = conn.query_first("SELECT @@port").unwrap().unwrap();
        assert_eq!(port, server.port(), "{key}");
        // read_query and read_query_result return it.
        assert_eq!(one(&mut conn, &format!("SELECT '{key}'")), key);
        assert_eq!(one(&mut conn, &format!("INJECT {key}")), key);
        let error = query_error(&mut conn, "SELECT 'send result'");
        assert_eq!((error.code, error.message.as_str()), (1234, "sent"));
        sessions.push(conn);
    }
}

/// `proxy.response` tables that cannot be sent, after `read_query` returned
/// `PROXY_SEND_RESULT`: the client gets 0.8's error (COMPAT 2.9, 4.6; 7.p
/// for a result set without fields or rows), the log says why, and the
/// session goes on. From the login's hooks the client gets the same error
/// instead of a session, and the session opened before goes on.
#[test]
fn an_invalid_proxy_response_gets_the_client_0_8s_error() {
    let server = MariaDb::start();
    let text = r#"
local OK, ERR, RAW = proxy.MYSQLD_PACKET_OK, proxy.MYSQLD_PACKET_ERR, proxy.MYSQLD_PACKET_RAW
local SEND_RESULT = proxy.PROXY_SEND_RESULT
local function fields() return { { name = "f", type = proxy.MYSQL_TYPE_STRING } } end
local EOF = "\254\0\0\2\0"

local invalid = {
    ["no type"] = function() return { errmsg = "no type", errcode = 1234 } end,
    ["a type that is a string"] = function() return { type = "OK" } end,
    ["an unknown type"] = function() return { type = 7 } end,
    ["a response that is a string"] = function() return "OK" end,
    ["no response"] = function() return nil end,
    ["a result set without fields"] = function()
        return { type = OK, resultset = { rows = { { "a" } } } }
    end,
    ["a result set with no field"] = function()
        return { type = OK, resultset = { fields = {}, rows = {} } }
    end,
    ["fields that are not tables"] = function()
        return { type = OK, resultset = { fields = { "f" }, rows = { { "a" } } } }
    end,
    ["a result set without rows"] = function()
        return { type = OK, resultset = { fields = fields() } }
    end,
    ["rows that are not tables"] = function()
        return { type = OK, resultset = { fields = fields(), rows = { "a", "b" } } }
    end,
    ["a second row that is not a table"] = function()
        return { type = OK, resultset = { fields = fields(), rows = { { "a" }, 1 } } }
    end,
    ["raw without packets"] = function() return { type = RAW } end,
    ["packets that are a string"] = function() return { type = RAW, packets = EOF } end,
    ["a packet that is a table"] = function() return { type = RAW, packets = { {} } } end,
    ["a packet that is a boolean"] = function()
        return { type = RAW, packets = { "\1", true } }
    end,
    ["a packet that is a number"] = function() return { type = RAW, packets = { 0 } } end,
}
local errmsg_nil = {
    ["an error without errmsg"] = function()
        return { type = ERR, errcode = 1234, sqlstate = "42000" }
    end,
    ["an errmsg that is a table"] = function() return { type = ERR, errmsg = { "x" } } end,
    ["an errmsg that is a boolean"] = function() return { type = ERR, errmsg = true } end,
}

-- The login's hooks of the next connection answer `{ type = 7 }` when
-- `CASE <hook>` named them.
local function refuse(hook)
    if mine == hook then
        proxy.response = { type = 7 }
        return SEND_RESULT
    end
end
function connect_server()
    mine = proxy.global.case
    proxy.global.case = nil
    return refuse("connect_server")
end
function read_handshake() return refuse("read_handshake") end
function read_auth() return refuse("read_auth") end
function read_auth_result() return refuse("read_auth_result") end

function read_query(packet)
    local query = packet:sub(2)
    local make = invalid[query] or errmsg_nil[query]
    if make then
        proxy.response = make()
        return SEND_RESULT
    elseif query:match("^CASE ") then
        proxy.global.case = query:sub(6)
        proxy.response = { type = OK }
        return SEND_RESULT
    elseif query:match("^INJECT ") then
        proxy.queries:append(1, string.char(proxy.COM_QUERY) .. "SELECT 1",
            { resultset_is_needed = true })
        injected = query:sub(8)
        return proxy.PROXY_SEND_QUERY
    end
end

function read_query_result(inj)
    local make = invalid[injected] or errmsg_nil[injected]
    proxy.response = make()
    return SEND_RESULT
end
"#;
    let (_dir, path) = script(text);
    let mut proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    let invalid = [
        "no type",
        "a type that is a string",
        "an unknown type",
        "a response that is a string",
        "no response",
        "a result set without fields",
        "a result set with no field",
        "fields that are not tables",
        "a result set without rows",
        "rows that are not tables",
        "a second row that is not a table",
        "raw without packets",
        "packets that are a string",
        "a packet that is a table",
        "a packet that is a boolean",
        "a packet that is a number",
    ];
    let errmsg_nil = [
        "an error without errmsg",
        "an errmsg that is a table",
        "an errmsg that is a boolean",
    ];
    let cases = invalid
        .iter()
        .map(|case| (*case, HANDLING_FAILED))
        .chain(errmsg_nil.iter().map(|case| (*case, ERRMSG_NIL)));
    for (case, message) in cases {
        for query in [case.to_string(), format!("INJECT {case}")] {
            let before = proxy.stderr_text().len();
            let error = query_error(&mut conn, &query);
            assert_proxy_error(&error, message);
            assert_eq!(one(&mut conn, "SELECT 'after'"), "after", "{query}");
            let log = proxy.stderr_text();
            assert!(
                log[before..].contains("proxy.response"),
                "{query}: nothing logged:\n{}",
                &log[before..]
            );
        }
    }

    // From the hooks of a login.
    for hook in [
        "connect_server",
        "read_handshake",
        "read_auth",
        "read_auth_result",
    ] {
        conn.query_drop(format!("CASE {hook}")).unwrap();
        let error = login_error(&proxy.endpoint());
        assert_eq!(
            (error.code, error.message.as_str()),
            (ER_UNKNOWN_ERROR, HANDLING_FAILED),
            "{hook}: {error:?}"
        );
        assert_eq!(one(&mut conn, "SELECT 'still'"), "still", "{hook}");
    }
    // Before the greeting: one ERR without SQLSTATE, then the connection is
    // closed (COMPAT 7.q).
    for hook in ["connect_server", "read_handshake"] {
        conn.query_drop(format!("CASE {hook}")).unwrap();
        assert_eq!(
            sent_before_closing(&proxy.endpoint()),
            vec![(0, bare_error(HANDLING_FAILED))],
            "{hook}"
        );
    }
    assert!(proxy.is_running());
    let mut after = proxy.endpoint().root_conn();
    assert_eq!(one(&mut after, "SELECT 'after'"), "after");
}

/// A script edited while clients are connected: each session keeps the
/// version it started with (its hooks, its disconnect_client too), new
/// sessions get the new one; an edit that cannot be loaded or run refuses
/// new clients only, and the next good edit serves them again.
#[test]
fn an_edited_script_serves_new_sessions_and_old_ones_keep_theirs() {
    let server = MariaDb::start();
    let version = |name: &str| {
        format!(
            r#"
local version = "{name}"

function read_query(packet)
    local query = packet:sub(2)
    local value
    if query == "SELECT 'version'" then
        value = version
    elseif query == "SELECT 'last disconnected'" then
        value = tostring(proxy.global.disconnected)
    else
        return
    end
    proxy.response = {{
        type = proxy.MYSQLD_PACKET_OK,
        resultset = {{ fields = {{ {{ name = "value" }} }}, rows = {{ {{ value }} }} }},
    }}
    return proxy.PROXY_SEND_RESULT
end

function disconnect_client()
    proxy.global.disconnected = version
end
"#
        )
    };
    let (_dir, path) = script("");
    rewrite(&path, &version("first"), 1);
    let proxy = proxy_with(&server, &path);
    let endpoint = proxy.endpoint();
    let mut first = endpoint.root_conn();
    assert_eq!(one(&mut first, "SELECT 'version'"), "first");

    rewrite(&path, &version("second"), 2);
    let mut second = endpoint.root_conn();
    assert_eq!(one(&mut second, "SELECT 'version'"), "second");
    assert_eq!(one(&mut first, "SELECT 'version'"), "first");

    // A broken edit: new clients are refused, the sessions go on.
    let broken = "function read_query(packet)\n    return = 1\nend\n";
    rewrite(&path, broken, 3);
    for _ in 0..2 {
        let error = login_error(&endpoint);
        assert_eq!(
            (error.code, error.message.as_str()),
            (ER_UNKNOWN_ERROR, FAILED_TO_LOAD)
        );
    }
    wait_for_log(&proxy, &format!("failed to load: {}", location(&path, 2)));
    assert_eq!(one(&mut first, "SELECT 'version'"), "first");
    assert_eq!(one(&mut second, "SELECT 'version'"), "second");

    // One whose top level fails.
    rewrite(&path, "local x = 1\nerror(\"third fails\")\n", 4);
    let error = login_error(&endpoint);
    assert_eq!(
        (error.code, error.message.as_str()),
        (ER_UNKNOWN_ERROR, FAILED_TO_EXECUTE)
    );
    wait_for_log(
        &proxy,
        &format!("failed to execute: {} third fails", location(&path, 2)),
    );
    assert_eq!(one(&mut first, "SELECT 'version'"), "first");

    // The file gone.
    std::fs::remove_file(&path).unwrap();
    let error = login_error(&endpoint);
    assert_eq!(
        (error.code, error.message.as_str()),
        (ER_UNKNOWN_ERROR, FAILED_TO_LOAD)
    );
    assert_eq!(one(&mut second, "SELECT 'version'"), "second");

    // A good edit serves new clients again.
    rewrite(&path, &version("fifth"), 5);
    let mut fifth = endpoint.root_conn();
    assert_eq!(one(&mut fifth, "SELECT 'version'"), "fifth");
    assert_eq!(one(&mut first, "SELECT 'version'"), "first");
    assert_eq!(one(&mut second, "SELECT 'version'"), "second");

    // Each session's disconnect_client is its own version's.
    drop(first);
    wait_for_answer(&mut fifth, "SELECT 'last disconnected'", "first");
    drop(second);
    wait_for_answer(&mut fifth, "SELECT 'last disconnected'", "second");

    // Another text of the same size, with an older time: still a
    // change, compiled again for new clients.
    rewrite(&path, &version("sixth"), 1);
    let mut sixth = endpoint.root_conn();
    assert_eq!(one(&mut sixth, "SELECT 'version'"), "sixth");
    assert_eq!(one(&mut fifth, "SELECT 'version'"), "fifth");
}
