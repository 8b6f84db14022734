//! MySQL Proxy 0.8 scripts through the real proxy (`--proxy-lua-script`),
//! a real MariaDB behind it and a real client in front: answering queries,
//! injecting and rewriting them, reading their results, per-connection
//! globals and `proxy.global`, `proxy.connection`, and errors in scripts.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use mysql::prelude::Queryable;
use mysql::Conn;
use mysql_proxy_tests::{MariaDb, Proxy};

/// The test's script file, in a directory kept as long as the test runs.
fn script(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.lua");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The proxy in front of `server`, running `script`.
fn proxy_with(server: &MariaDb, script: &std::path::Path) -> Proxy {
    proxy_with_args(server, script, [])
}

/// The proxy in front of `server`, running `script`, with more options.
fn proxy_with_args<const N: usize>(
    server: &MariaDb,
    script: &std::path::Path,
    args: [String; N],
) -> Proxy {
    args.into_iter()
        .fold(
            Proxy::builder()
                .backend(server.addr())
                .arg(format!("--proxy-lua-script={}", script.display())),
            |builder, arg| builder.arg(arg),
        )
        .start()
        .expect("proxy with a script")
}

fn one(conn: &mut Conn, query: &str) -> String {
    conn.query_first::<String, _>(query).unwrap().unwrap()
}

#[test]
fn a_script_answers_injects_and_rewrites() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
local COM_QUERY = string.char(proxy.COM_QUERY)

function read_query(packet)
    if packet:byte() ~= proxy.COM_QUERY then return end
    local query = packet:sub(2)
    if query == "SELECT 'answer'" then
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = {
                fields = { { name = "engine", type = proxy.MYSQL_TYPE_STRING } },
                rows = { { _VERSION } },
            },
        }
        return proxy.PROXY_SEND_RESULT
    elseif query == "SELECT 'rows'" then
        proxy.queries:append(1, COM_QUERY .. "SELECT 1 UNION SELECT 2 UNION SELECT 3",
            { resultset_is_needed = true })
        return proxy.PROXY_SEND_QUERY
    elseif query == "SELECT 'rewrite'" then
        proxy.queries:append(2, COM_QUERY .. "SELECT 'rewritten'")
        return proxy.PROXY_SEND_QUERY
    elseif query == "SELECT 'refuse'" then
        proxy.response = { type = proxy.MYSQLD_PACKET_ERR, errmsg = "not here", errcode = 1234 }
        return proxy.PROXY_SEND_RESULT
    end
end

function read_query_result(inj)
    if inj.id == 1 then
        local n, sum = 0, 0
        for row in inj.resultset.rows do
            n = n + 1
            sum = sum + tonumber(row[1])
        end
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = {
                fields = { { name = "summary" } },
                rows = { { n .. ":" .. sum .. ":" .. inj.resultset.row_count .. ":" .. inj.query:sub(2, 7) } },
            },
        }
        return proxy.PROXY_SEND_RESULT
    end
end
"#,
    );
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(one(&mut conn, "SELECT 'answer'"), "Lua 5.1");
    assert_eq!(one(&mut conn, "SELECT 'rows'"), "3:6:3:SELECT");
    assert_eq!(one(&mut conn, "SELECT 'rewrite'"), "rewritten");
    let error = conn.query_drop("SELECT 'refuse'").unwrap_err();
    match error {
        mysql::Error::MySqlError(error) => {
            assert_eq!((error.code, error.message.as_str()), (1234, "not here"))
        }
        other => panic!("{other:?}"),
    }
    // Anything else goes to the server unchanged.
    let port: u16 = conn.query_first("SELECT @@port").unwrap().unwrap();
    assert_eq!(port, server.port());
}

#[test]
fn globals_are_per_connection_and_proxy_global_is_shared() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
local mine = 0

function read_query(packet)
    if packet:sub(2) ~= "SELECT 'count'" then return end
    mine = mine + 1
    proxy.global.total = (proxy.global.total or 0) + 1
    proxy.response = {
        type = proxy.MYSQLD_PACKET_OK,
        resultset = {
            fields = { { name = "counts" } },
            rows = { { mine .. "/" .. proxy.global.total } },
        },
    }
    return proxy.PROXY_SEND_RESULT
end
"#,
    );
    let proxy = proxy_with(&server, &path);
    let (mut first, mut second) = (proxy.endpoint().root_conn(), proxy.endpoint().root_conn());
    assert_eq!(one(&mut first, "SELECT 'count'"), "1/1");
    assert_eq!(one(&mut first, "SELECT 'count'"), "2/2");
    assert_eq!(one(&mut second, "SELECT 'count'"), "1/3");
}

#[test]
fn scripts_read_and_change_the_connection() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
function read_query(packet)
    local query = packet:sub(2)
    local c = proxy.connection
    if query == "SELECT 'who'" then
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = {
                fields = { { name = "who" } },
                rows = { { c.client.username .. "@" .. c.client.default_db .. " on " ..
                    c.backend_ndx .. " " .. proxy.global.backends[c.backend_ndx].dst.name ..
                    " of " .. #proxy.global.backends } },
            },
        }
        return proxy.PROXY_SEND_RESULT
    elseif query == "SELECT 'bye'" then
        c.connection_close = true
    end
end
"#,
    );
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(
        one(&mut conn, "SELECT 'who'"),
        format!("root@test on 1 {} of 1", server.addr())
    );
    // Forwarded, answered by the server, then the connection closes.
    assert_eq!(one(&mut conn, "SELECT 'bye'"), "bye");
    assert!(
        conn.query_drop("SELECT 1").is_err(),
        "closed after the reply"
    );
}

#[test]
fn errors_in_a_script_end_no_more_than_mysql_proxy_ends() {
    let server = MariaDb::start();
    // A hook's error: logged, and the query goes to the server as it is.
    let (_dir, path) = script(
        r#"
function read_query(packet)
    if packet:sub(2) == "SELECT 'boom'" then error("boom") end
end
"#,
    );
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(one(&mut conn, "SELECT 'boom'"), "boom");
    assert_eq!(one(&mut conn, "SELECT 'still'"), "still");
    let log = proxy.stderr_text();
    assert!(
        log.contains("(read_query)") && log.contains(":3: boom"),
        "{log}"
    );
    drop(proxy);

    // A script that cannot be compiled: every client is told, the proxy
    // stays up.
    let (_dir, broken) = script("function read_query(packet)\n  if then\nend\n");
    let proxy = proxy_with(&server, &broken);
    for _ in 0..2 {
        match Conn::new(proxy.endpoint().root_opts()) {
            Err(mysql::Error::MySqlError(error)) => {
                assert!(error.message.contains("failed to load"), "{error:?}")
            }
            other => panic!(
                "expected the load error, got {:?}",
                other.map(|_| "a connection")
            ),
        }
    }
}

#[test]
fn scripts_require_mysql_proxys_modules() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
local tokenizer = require("mysql.tokenizer")
local password = require("mysql.password")
require("chassis")

function read_query(packet)
    if packet:sub(2) ~= "SELECT 'modules'" then return end
    local tokens = tokenizer.tokenize("SELECT a FROM t WHERE b = 1")
    print("tokenized " .. #tokens)
    proxy.response = {
        type = proxy.MYSQLD_PACKET_OK,
        resultset = {
            fields = { { name = "modules" } },
            rows = { { #tokens .. ":" .. tokens[1].token_name .. ":" .. #password.hash("secret")
                .. ":" .. tostring(proto == nil) .. ":" .. tostring(tokenizer == _G.tokenizer) } },
        },
    }
    return proxy.PROXY_SEND_RESULT
end
"#,
    );
    let proxy = Proxy::builder()
        .backend(server.addr())
        .arg(format!("--proxy-lua-script={}", path.display()))
        .log_level("message")
        .start()
        .expect("proxy with a script");
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(
        one(&mut conn, "SELECT 'modules'"),
        "8:TK_SQL_SELECT:20:true:true"
    );
    // `print` goes to the log once `chassis` is required.
    let log = proxy.stderr_text();
    assert!(log.contains("tokenized 8"), "{log}");
}

#[test]
fn hooks_may_come_from_a_module_on_the_lua_path() {
    let server = MariaDb::start();
    let (dir, path) = script("require(\"answering\")\n");
    // A module runs in the real _G: its hooks serve every connection.
    std::fs::write(
        dir.path().join("answering.lua"),
        r#"
function read_query(packet)
    if packet:sub(2) ~= "SELECT 'module'" then return end
    proxy.response = {
        type = proxy.MYSQLD_PACKET_OK,
        resultset = { fields = { { name = "from" } }, rows = { { "the module" } } },
    }
    return proxy.PROXY_SEND_RESULT
end
"#,
    )
    .unwrap();
    let proxy = proxy_with_args(
        &server,
        &path,
        [format!("--lua-path={}/?.lua", dir.path().display())],
    );
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(one(&mut conn, "SELECT 'module'"), "the module");
    assert_eq!(one(&mut conn, "SELECT 'other'"), "other");
}

#[test]
fn the_proxy_library_modules_are_found_without_configuration() {
    let server = MariaDb::start();
    let (dir, path) = script(
        r#"
local tokenizer = require("proxy.tokenizer")
local commands = require("proxy.commands")
local config = require("proxy.auto-config")
local answer = require("answer")
proxy.global.config.mine = proxy.global.config.mine or { limit = 5 }

function read_query(packet)
    local command = commands.parse(packet)
    if config.handle(command) == proxy.PROXY_SEND_RESULT then
        return proxy.PROXY_SEND_RESULT
    end
    if command.type ~= proxy.COM_QUERY or command.query:sub(1, 10) ~= "NORMALIZE " then
        return
    end
    local normalized = tokenizer.normalize(tokenizer.tokenize(command.query:sub(11)))
    return answer(normalized)
end
"#,
    );
    // A module of one's own beside the script, on --lua-path.
    std::fs::write(
        dir.path().join("answer.lua"),
        r#"
return function(text)
    proxy.response = {
        type = proxy.MYSQLD_PACKET_OK,
        resultset = { fields = { { name = "text" } }, rows = { { text } } },
    }
    return proxy.PROXY_SEND_RESULT
end
"#,
    )
    .unwrap();
    let proxy = proxy_with_args(
        &server,
        &path,
        [format!("--lua-path={}/?.lua", dir.path().display())],
    );
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(
        one(
            &mut conn,
            "NORMALIZE select count(*) from mysql.user where a = 'x'"
        ),
        "SELECT COUNT( * ) FROM `mysql` . `user` WHERE `a` = ? "
    );
    // proxy.auto-config answers PROXY ... commands from proxy.global.config.
    conn.query_drop("PROXY SET GLOBAL mine.limit = 10").unwrap();
    let rows: Vec<(String, String, String)> = conn
        .query_map(
            "PROXY SHOW CONFIG",
            |(module, option, value, _): (String, String, String, String)| (module, option, value),
        )
        .unwrap();
    assert!(
        rows.contains(&("mine".into(), "limit".into(), "10".into())),
        "{rows:?}"
    );
    let error = conn
        .query_drop("PROXY SET GLOBAL nobody.x = 1")
        .unwrap_err();
    assert!(error.to_string().contains("module not known"), "{error}");
    assert_eq!(one(&mut conn, "SELECT 'on'"), "on");
}

#[test]
fn a_hook_that_runs_away_is_stopped_and_only_its_client_gets_an_error() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
function read_query(packet)
    if packet:sub(2) == "SELECT 'loop'" then
        local n = 0
        while true do n = n + 1 end
    end
end
"#,
    );
    let proxy = proxy_with_args(&server, &path, ["--proxy-lua-hook-timeout=0.5".to_string()]);
    let endpoint = proxy.endpoint();
    let looping = std::thread::spawn(move || {
        let mut conn = endpoint.root_conn();
        let started = std::time::Instant::now();
        let error = conn.query_drop("SELECT 'loop'").unwrap_err();
        let elapsed = started.elapsed();
        // The session goes on after the error.
        let after = one(&mut conn, "SELECT 'after'");
        (error.to_string(), elapsed, after)
    });
    // Another client waits for the lock meanwhile, then goes on.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut other = proxy.endpoint().root_conn();
    assert_eq!(one(&mut other, "SELECT 'other'"), "other");
    let (error, elapsed, after) = looping.join().unwrap();
    assert!(error.contains("read_query() ran too long"), "{error}");
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(after, "after");
    let log = proxy.stderr_text();
    assert!(
        log.contains("(read_query)")
            && log.contains(&format!(
                "{}\"]:5: stopped after running longer than 0.5 s",
                path.display()
            )),
        "{log}"
    );
}

#[test]
fn lua_5_1_c_modules_from_debian_load_through_the_lua_cpath() {
    // Installed by scripts/test (packages lua-cjson, lua-lpeg, lua-filesystem).
    let modules = format!("/usr/lib/{}-linux-gnu/lua/5.1", std::env::consts::ARCH);
    for module in ["cjson", "lpeg", "lfs"] {
        let file = format!("{modules}/{module}.so");
        assert!(
            std::path::Path::new(&file).exists(),
            "{file} is missing: install Debian's lua-cjson, lua-lpeg and lua-filesystem (scripts/test does)"
        );
    }
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
local cjson = require("cjson")
local lpeg = require("lpeg")
local lfs = require("lfs")
local number = lpeg.C(lpeg.R("09") ^ 1) / tonumber

function read_query(packet)
    local query = packet:sub(2)
    local n = number:match(query)
    if not n then return end
    proxy.response = {
        type = proxy.MYSQLD_PACKET_OK,
        resultset = {
            fields = { { name = "json" }, { name = "dir" } },
            rows = { { cjson.encode({ n = n, twice = { n, n } }),
                       lfs.attributes("/", "mode") } },
        },
    }
    return proxy.PROXY_SEND_RESULT
end
"#,
    );
    let proxy = proxy_with_args(&server, &path, [format!("--lua-cpath={modules}/?.so")]);
    let mut conn = proxy.endpoint().root_conn();
    let (json, dir): (String, String) = conn.query_first("42").unwrap().unwrap();
    assert!(
        json.starts_with('{') && json.contains("\"n\":42") && json.contains("\"twice\":[42,42]"),
        "{json}"
    );
    assert_eq!(dir, "directory");
    assert_eq!(one(&mut conn, "SELECT 'other'"), "other");
}

#[test]
fn a_failed_statement_leaves_the_transaction_flags_as_they_were() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
function read_query(packet)
    if packet:byte() ~= proxy.COM_QUERY then return end
    proxy.queries:append(1, packet, { resultset_is_needed = true })
    return proxy.PROXY_SEND_QUERY
end

function read_query_result(inj)
    local flags = inj.resultset.flags
    proxy.global.in_trans = flags.in_trans
    if inj.query:sub(2) == "SELECT 'flags'" then
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = {
                fields = { { name = "in_trans" } },
                rows = { { tostring(proxy.global.before) } },
            },
        }
        return proxy.PROXY_SEND_RESULT
    end
    proxy.global.before = flags.in_trans
end
"#,
    );
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    conn.query_drop("BEGIN").unwrap();
    conn.query_drop("SELECT * FROM no_such_table").unwrap_err();
    // What the failed statement's result said: still in the transaction.
    assert_eq!(one(&mut conn, "SELECT 'flags'"), "true");
    conn.query_drop("ROLLBACK").unwrap();
    conn.query_drop("SELECT * FROM no_such_table").unwrap_err();
    assert_eq!(one(&mut conn, "SELECT 'flags'"), "false");
}

#[test]
fn an_injected_init_db_moves_the_server_connection_and_a_passed_on_one_the_client() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
function read_query(packet)
    if packet:byte() == proxy.COM_INIT_DB then
        -- The client's own command, passed on as an injection.
        proxy.queries:append(1, packet)
        return proxy.PROXY_SEND_QUERY
    end
    local query = packet:sub(2)
    if query == "SELECT 'sync'" then
        proxy.queries:append(2, string.char(proxy.COM_INIT_DB) .. "mysql",
            { resultset_is_needed = true })
        proxy.queries:append(3, string.char(proxy.COM_QUERY) .. "SELECT DATABASE()")
        return proxy.PROXY_SEND_QUERY
    elseif query == "SELECT 'dbs'" then
        proxy.response = {
            type = proxy.MYSQLD_PACKET_OK,
            resultset = {
                fields = { { name = "client" }, { name = "server" } },
                rows = { { proxy.connection.client.default_db,
                           proxy.connection.server.default_db } },
            },
        }
        return proxy.PROXY_SEND_RESULT
    end
end

function read_query_result(inj)
    if inj.id == 2 then return proxy.PROXY_IGNORE_RESULT end
end
"#,
    );
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    conn.query_drop("CREATE DATABASE IF NOT EXISTS lua_db")
        .unwrap();
    conn.select_db("lua_db").unwrap();
    let dbs: (String, String) = conn.query_first("SELECT 'dbs'").unwrap().unwrap();
    assert_eq!(dbs, ("lua_db".to_string(), "lua_db".to_string()));
    assert_eq!(one(&mut conn, "SELECT 'sync'"), "mysql");
    let dbs: (String, String) = conn.query_first("SELECT 'dbs'").unwrap().unwrap();
    assert_eq!(dbs, ("lua_db".to_string(), "mysql".to_string()));
}

#[test]
fn print_output_shows_while_the_proxy_runs() {
    let server = MariaDb::start();
    let (_dir, path) = script("function read_query(packet) print('seen', packet:sub(2)) end\n");
    let proxy = proxy_with(&server, &path);
    let mut conn = proxy.endpoint().root_conn();
    assert_eq!(one(&mut conn, "SELECT 'printed'"), "printed");
    // stdout is a file here: without a flush per print the line would
    // wait in the stream's buffer until the proxy exits.
    assert!(
        proxy.stdout_text().contains("seen\tSELECT 'printed'\n"),
        "{}",
        proxy.stdout_text()
    );
}

#[test]
fn a_buffered_result_beyond_the_limit_is_an_error_and_the_session_goes_on() {
    let server = MariaDb::start();
    let (_dir, path) = script(
        r#"
function read_query(packet)
    if packet:byte() ~= proxy.COM_QUERY then return end
    proxy.queries:append(1, packet, { resultset_is_needed = true })
    proxy.queries:append(2, string.char(proxy.COM_QUERY) .. "SELECT 'queued'",
        { resultset_is_needed = true })
    return proxy.PROXY_SEND_QUERY
end

function read_query_result(inj)
    if inj.id == 2 then return proxy.PROXY_IGNORE_RESULT end
end
"#,
    );
    let proxy = proxy_with_args(
        &server,
        &path,
        ["--proxy-buffered-result-limit=1".to_string()],
    );
    let mut conn = proxy.endpoint().root_conn();
    // Two MiB of rows: over the 1 MiB limit.
    let error = conn
        .query_drop("SELECT REPEAT('x', 1024) FROM seq_1_to_2048")
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("larger than the 1 MiB a session may buffer"),
        "{error}"
    );
    // The server connection was read to the end: the session goes on.
    assert_eq!(one(&mut conn, "SELECT 'after'"), "after");
    let rows: Vec<String> = conn
        .query("SELECT REPEAT('x', 100) FROM seq_1_to_100")
        .unwrap();
    assert_eq!(rows.len(), 100);
}
