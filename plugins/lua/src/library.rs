//! MySQL Proxy 0.8's `proxy.*` Lua library (`proxy.tokenizer`,
//! `proxy.commands`, `proxy.parser`, `proxy.balance`, `proxy.auto-config`,
//! `proxy.test`), written afresh in Lua (`plugins/lua/lib/proxy/`) and
//! embedded in the plugin, so that `require` finds them with no file
//! installed.
//!
//! [`install`] appends a searcher to Lua 5.1's `package.loaders`, after
//! the standard ones: a file of the same name on `LUA_PATH` wins (0.8
//! installed these modules as files in
//! `<basedir>/lib/mysql-proxy/lua/proxy/`, and a user may have changed
//! them), and the embedded copy is found otherwise. For a name it does not
//! know, the searcher returns `"\n\tno embedded module '<name>'"`, which
//! Lua adds to its "module not found" message.
//!
//! An embedded module runs as a file found on `LUA_PATH` does (in `_G`,
//! named `@proxy/<name>.lua` in error messages and tracebacks), and gets,
//! after its name, a table of the plugin's built-in helpers: `normalize`
//! (`proxy.tokenizer.normalize`, on the Rust tokenizer's
//! [`crate::tokenizer::normalize`]) and `constants` (the `proxy` table's
//! constants, for `proxy.commands`' command names and `proxy.test`'s fake
//! `proxy`). Each module says where it differs from 0.8 in its header.
//!
//! Unlike 0.8's modules, which were written with Lua 5.1's `module()`,
//! these do not also set `proxy.tokenizer`, `proxy.balance`, ... in the
//! `proxy` table: scripts use what `require` returns (0.8's own scripts
//! all do), and `proxy`'s keys other than its constants and `global` are
//! the current connection's own in this runtime.

use mlua::{Function, Lua, MultiValue, ObjectLike, Table, Value};

use crate::constants::{PROXY_CONSTANTS, PROXY_VERSION};
use crate::modules::{argument, bad_argument, function, type_error, Failure};
use crate::tokenizer::{normalize, Token, TokenId};

/// Every embedded module: the name `require` takes, its file under
/// `lib/` (the chunk's name), and its source.
const MODULES: &[(&str, &str, &str)] = &[
    (
        "proxy.auto-config",
        "proxy/auto-config.lua",
        include_str!("../lib/proxy/auto-config.lua"),
    ),
    (
        "proxy.balance",
        "proxy/balance.lua",
        include_str!("../lib/proxy/balance.lua"),
    ),
    (
        "proxy.commands",
        "proxy/commands.lua",
        include_str!("../lib/proxy/commands.lua"),
    ),
    (
        "proxy.parser",
        "proxy/parser.lua",
        include_str!("../lib/proxy/parser.lua"),
    ),
    (
        "proxy.test",
        "proxy/test.lua",
        include_str!("../lib/proxy/test.lua"),
    ),
    (
        "proxy.tokenizer",
        "proxy/tokenizer.lua",
        include_str!("../lib/proxy/tokenizer.lua"),
    ),
];

/// Appends the searcher of the embedded modules to `package.loaders` of
/// `lua` (the runtime calls it once, when it sets the state up).
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let package: Table = lua.globals().raw_get("package")?;
    let loaders: Table = package.raw_get("loaders")?;
    loaders.raw_push(lua.create_function(search)?)
}

/// The searcher: for a module it embeds, a loader running the module's
/// chunk with the name and the built-in helpers; for another name, the
/// line Lua adds to its "module not found" message.
fn search(lua: &Lua, name: Value) -> mlua::Result<Value> {
    let wanted = match &name {
        Value::String(name) => name.as_bytes().to_vec(),
        other => lua
            .coerce_string(other.clone())?
            .map(|name| name.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    let Some(&(_, file, source)) = MODULES
        .iter()
        .find(|(module, _, _)| module.as_bytes() == wanted.as_slice())
    else {
        let message = format!(
            "\n\tno embedded module '{}'",
            String::from_utf8_lossy(&wanted)
        );
        return Ok(Value::String(lua.create_string(message)?));
    };
    let chunk = lua
        .load(source)
        .set_name(format!("@{file}"))
        .into_function()?;
    let helpers = helpers(lua)?;
    let loader = lua
        .create_function(move |_, name: Value| chunk.call::<MultiValue>((name, helpers.clone())))?;
    Ok(Value::Function(loader))
}

/// The built-in helpers the embedded modules get after their name.
fn helpers(lua: &Lua) -> mlua::Result<Table> {
    let helpers = lua.create_table()?;
    helpers.raw_set("normalize", function(lua, normalize_tokens)?)?;
    let constants = lua.create_table()?;
    for &(name, value) in PROXY_CONSTANTS {
        constants.raw_set(name, value)?;
    }
    constants.raw_set("PROXY_VERSION", PROXY_VERSION)?;
    helpers.raw_set("constants", constants)?;
    Ok(helpers)
}

/// `proxy.tokenizer.normalize(tokens)`: the fingerprint of a token list.
fn normalize_tokens(lua: &Lua, args: &MultiValue) -> Result<Value, Failure> {
    let tokens = read_tokens(lua, args)?;
    Ok(Value::String(lua.create_string(normalize(&tokens))?))
}

/// The token list in argument 1, read as 0.8's Lua code read it: `#tokens`,
/// then `tokens[i].token_name` and `tokens[i].text` for each `i`. It may be
/// the userdata of `mysql.tokenizer` or an array of tables.
fn read_tokens(lua: &Lua, args: &MultiValue) -> Result<Vec<Token>, Failure> {
    let (count, list) = match argument(args, 1) {
        Some(Value::Table(table)) => (table.raw_len(), Value::Table(table.clone())),
        Some(Value::UserData(object)) => {
            let length: Option<Function> = object.metatable()?.get("__len")?;
            let Some(length) = length else {
                return Err(type_error(lua, args, 1, "token list"));
            };
            let count: i64 = length.call((object.clone(), Value::Nil))?;
            let count = usize::try_from(count).unwrap_or(0);
            (count, Value::UserData(object.clone()))
        }
        _ => return Err(type_error(lua, args, 1, "token list")),
    };
    let mut tokens = Vec::with_capacity(count);
    for index in 1..=count {
        let token = index_of(&list, index)?;
        if !matches!(token, Value::Table(_) | Value::UserData(_)) {
            let extra = format!("tokens[{index}] is not a token");
            return Err(bad_argument(lua, 1, &extra));
        }
        let id = match field(&token, "token_name")? {
            Value::String(name) => id_of(&name.as_bytes()),
            _ => {
                let extra = format!("tokens[{index}] has no token_name");
                return Err(bad_argument(lua, 1, &extra));
            }
        };
        let text = match field(&token, "text")? {
            value @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
                lua.coerce_string(value)?
            }
            _ => None,
        };
        let Some(text) = text else {
            let extra = format!("tokens[{index}] has no text");
            return Err(bad_argument(lua, 1, &extra));
        };
        tokens.push(Token::new(id, text.as_bytes().to_vec()));
    }
    Ok(tokens)
}

/// `list[index]`, through the list's metamethods.
fn index_of(list: &Value, index: usize) -> mlua::Result<Value> {
    match list {
        Value::Table(table) => table.get(index),
        Value::UserData(object) => object.get(index),
        _ => Ok(Value::Nil),
    }
}

/// `token[key]`, through the token's metamethods.
fn field(token: &Value, key: &str) -> mlua::Result<Value> {
    match token {
        Value::Table(table) => table.get(key),
        Value::UserData(object) => object.get(key),
        _ => Ok(Value::Nil),
    }
}

/// The token kind `normalize` needs from a `token_name`: the kinds it
/// treats apart by name, and [`TokenId::Unknown`] for every other (all of
/// which it upper-cases and follows with a space, as it does unknown
/// bytes).
fn id_of(name: &[u8]) -> TokenId {
    match name {
        b"TK_COMMENT" => TokenId::Comment,
        b"TK_COMMENT_MYSQL" => TokenId::CommentMysql,
        b"TK_STRING" => TokenId::String,
        b"TK_INTEGER" => TokenId::Integer,
        b"TK_FLOAT" => TokenId::Float,
        b"TK_FUNCTION" => TokenId::Function,
        b"TK_LITERAL" => TokenId::Literal,
        _ => TokenId::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::tests::{exec, lua as lua_with_modules};
    use mysql_proxy_plugin_abi::{OkResponse, Response};

    /// A Lua state with the C modules (`mysql.tokenizer`, ...), the test
    /// helpers of `modules::tests` (`fails`) and the embedded library.
    fn lua() -> Lua {
        let lua = lua_with_modules();
        install(&lua).unwrap();
        lua
    }

    /// `proxy.response` of the Lua state, as the host reads it.
    fn response(lua: &Lua) -> Response {
        let proxy: Table = lua.globals().get("proxy").unwrap();
        let response: Table = proxy.get("response").unwrap();
        crate::response::from_lua(lua, &response).unwrap().0
    }

    #[test]
    fn every_module_is_found_by_require_and_loaded_once() {
        let lua = lua();
        exec(
            &lua,
            r#"
            proxy = { global = { config = {} } }
            for _, name in ipairs({ "proxy.tokenizer", "proxy.commands", "proxy.parser",
                                    "proxy.balance", "proxy.auto-config", "proxy.test" }) do
                local module = require(name)
                assert(type(module) == "table", name)
                assert(package.loaded[name] == module, name)
                assert(require(name) == module, name)
            end
            local ok, err = pcall(require, "proxy.nothing")
            assert(not ok)
            assert(err:find("module 'proxy.nothing' not found", 1, true), err)
            assert(err:find("\n\tno embedded module 'proxy.nothing'", 1, true), err)
            assert(err:find("no file", 1, true), "the standard searchers come first: " .. err)
            "#,
        );
    }

    #[test]
    fn a_file_on_the_lua_path_wins_over_the_embedded_module() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("proxy")).unwrap();
        std::fs::write(
            dir.path().join("proxy").join("tokenizer.lua"),
            "return { mine = true }",
        )
        .unwrap();
        let lua = lua();
        let path = format!("{}/?.lua", dir.path().display());
        lua.globals()
            .get::<Table>("package")
            .unwrap()
            .set("path", path)
            .unwrap();
        exec(
            &lua,
            r#"
            assert(require("proxy.tokenizer").mine == true)
            assert(require("proxy.commands").parse, "the others are still embedded")
            "#,
        );
    }

    #[test]
    fn an_embedded_module_s_errors_name_its_file() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local commands = require("proxy.commands")
            local ok, err = pcall(commands.parse, "")
            assert(not ok and err:find("the packet is empty", 1, true), err)
            local ok, err = pcall(function() return commands.pretty_print(nil) end)
            assert(not ok and err:find("^proxy/commands.lua:%d+:"), err)
            "#,
        );
    }

    #[test]
    fn tokenizer_normalizes_as_documented() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("proxy.tokenizer")
            assert(tokenizer.tokenize == require("mysql.tokenizer").tokenize)
            local function n(sql) return tokenizer.normalize(tokenizer.tokenize(sql)) end
            local got = n("select count(*) from mysql.user")
            assert(got == "SELECT COUNT( * ) FROM `mysql` . `user` ", got)
            got = n("/* c */ select * from t where a = 'x' and b in (1, 2.5) /*!40001 q */")
            assert(got == "SELECT * FROM `t` WHERE `a` = ? AND `b` IN ( ? , ? ) /*!40001 q */ ", got)
            assert(n("start transaction") == "START TRANSACTION ")
            assert(n("select @x") == "SELECT @x ")
            -- An array of token tables is read as the userdata is.
            local tokens = {
                { token_name = "TK_SQL_SELECT", text = "select" },
                { token_name = "TK_FUNCTION", text = "now" },
                { token_name = "TK_OBRACE", text = "(" },
                { token_name = "TK_CBRACE", text = ")" },
                { token_name = "TK_COMMENT", text = "x" },
                { token_name = "TK_INTEGER", text = 12 },
            }
            got = tokenizer.normalize(tokens)
            assert(got == "SELECT NOW( ) ? ", got)
            assert(tokenizer.normalize({}) == "")
            "#,
        );
    }

    #[test]
    fn tokenizer_normalize_refuses_what_is_not_a_token_list() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("proxy.tokenizer")
            fails(function() tokenizer.normalize() end,
                "bad argument #1 to 'normalize' (token list expected, got no value)")
            fails(function() tokenizer.normalize("select 1") end,
                "bad argument #1 to 'normalize' (token list expected, got string)")
            local tokens = tokenizer.tokenize("select 1")
            tokens[2] = nil
            fails(function() tokenizer.normalize(tokens) end,
                "bad argument #1 to 'normalize' (tokens[2] is not a token)")
            fails(function() tokenizer.normalize({ { text = "x" } }) end,
                "bad argument #1 to 'normalize' (tokens[1] has no token_name)")
            fails(function() tokenizer.normalize({ { token_name = "TK_LITERAL" } }) end,
                "bad argument #1 to 'normalize' (tokens[1] has no text)")
            "#,
        );
    }

    #[test]
    fn tokenizer_helpers_pick_and_rebuild_tokens() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("proxy.tokenizer")
            local tokens = tokenizer.tokenize("/* hi */ SELECT now(), 'a\"b' /*!1 x*/ FROM t")
            local first = tokenizer.first_stmt_token(tokens)
            assert(first.token_name == "TK_SQL_SELECT" and first.text == "SELECT")
            assert(tokenizer.first_stmt_token(tokenizer.tokenize("/* only */")) == nil)

            local bare = tokenizer.bare_tokens(tokens)
            local expected = { "SELECT", "now", "(", ")", ",", 'a"b', "1 x", "FROM", "t" }
            assert(#bare == #expected, #bare)
            for i = 1, #expected do assert(bare[i] == expected[i], i .. ": " .. bare[i]) end
            local quoted = tokenizer.bare_tokens(tokens, true)
            assert(quoted[6] == '"a\\"b"', quoted[6])
            local without = tokenizer.tokens_without_comments(tokens)
            assert(#without == #expected and without[6] == 'a"b')

            local query = tokenizer.tokens_to_query(tokens)
            assert(query == 'SELECT now( ) , "a\\"b" /*!1 x*/ FROM t ', query)
            query = tokenizer.tokens_to_query(tokens, 2, 5)
            assert(query == "SELECT now( ) ", query)
            query = tokenizer.tokens_to_query(tokens, 9, 100)
            assert(query == "FROM t ", query)
            "#,
        );
    }

    #[test]
    fn commands_parse_decodes_each_command() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local commands = require("proxy.commands")
            local cmd = commands.parse("\3SELECT 1")
            assert(cmd.type == 3 and cmd.type_name == "COM_QUERY" and cmd.query == "SELECT 1")
            assert(commands.pretty_print(cmd) == "[COM_QUERY] SELECT 1")

            cmd = commands.parse("\2shop")
            assert(cmd.type == 2 and cmd.type_name == "COM_INIT_DB" and cmd.schema == "shop")
            assert(cmd.query == nil)
            assert(commands.pretty_print(cmd) == "[COM_INIT_DB] shop")
            assert(commands.parse("\5db").schema == "db" and commands.parse("\6db").schema == "db")

            -- COM_STMT_EXECUTE: id 0x04030201, flags 0, iteration count 1.
            cmd = commands.parse("\23\1\2\3\4\0\1\0\0\0")
            assert(cmd.type_name == "COM_STMT_EXECUTE", cmd.type_name)
            assert(cmd.stmt_handler_id == 0x04030201, cmd.stmt_handler_id)
            assert(commands.pretty_print(cmd) == "[COM_STMT_EXECUTE] 67305985")
            cmd = commands.parse("\25\255\255\255\255")
            assert(cmd.type_name == "COM_STMT_CLOSE" and cmd.stmt_handler_id == 4294967295)

            cmd = commands.parse("\22SELECT ?")
            assert(cmd.type_name == "COM_STMT_PREPARE" and cmd.query == "SELECT ?")
            assert(commands.pretty_print(cmd) == "[COM_STMT_PREPARE] SELECT ?")
            cmd = commands.parse("\4t\0")
            assert(cmd.type_name == "COM_FIELD_LIST" and cmd.table == "t\0")
            assert(commands.pretty_print(cmd) == "[COM_FIELD_LIST]")
            assert(commands.parse("\27\1\0").option == "\1\0")

            local printed = {}
            local real_print = print
            print = function(line) printed[#printed + 1] = line end
            cmd = commands.parse("\14")
            assert(cmd.type_name == "COM_PING" and #printed == 0)
            assert(commands.pretty_print(cmd) == "[COM_PING]")
            cmd = commands.parse("\9")
            assert(cmd.type_name == "COM_STATISTICS")
            cmd = commands.parse("\200")
            assert(cmd.type == 200 and cmd.type_name == nil)
            print = real_print
            assert(#printed == 2, #printed)
            assert(printed[1] == "[debug] (command) unhandled type name:COM_STATISTICS byte:9", printed[1])
            assert(printed[2] == "[debug] (command) unhandled type name:nil byte:200", printed[2])
            assert(commands.pretty_print(cmd) == "[nil] ... no idea")

            fails(function() commands.parse("") end, "proxy.commands.parse: the packet is empty")
            fails(function() commands.parse("\23\1\2") end,
                "proxy.commands.parse: COM_STMT_EXECUTE packet too short for a statement id (3 bytes)")
            fails(function() commands.parse(nil) end,
                "bad argument #1 to 'parse' (string expected, got nil)")
            "#,
        );
    }

    #[test]
    fn parser_finds_the_tables_read_and_written() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("proxy.tokenizer")
            local parser = require("proxy.parser")
            proxy = { connection = { client = { default_db = "shop" } } }

            local function check(sql, expected)
                local got = parser.get_tables(tokenizer.tokenize(sql))
                for name, access in pairs(expected) do
                    assert(got[name] == access, sql .. ": " .. name .. " is " .. tostring(got[name]))
                end
                for name, access in pairs(got) do
                    assert(expected[name], sql .. ": unexpected " .. name .. " (" .. access .. ")")
                end
            end

            check("SELECT a, b FROM t WHERE c = 1", { ["shop.t"] = "read" })
            check("select * from mysql.user u, other.t AS o", { ["mysql.user"] = "read", ["other.t"] = "read" })
            check("SELECT * FROM a LEFT JOIN b USING (id) JOIN c ON a.x = c.y ORDER BY 1",
                { ["shop.a"] = "read", ["shop.b"] = "read", ["shop.c"] = "read" })
            check("SELECT * FROM a WHERE id IN (SELECT id FROM b) AND EXISTS(SELECT 1 FROM c)",
                { ["shop.a"] = "read", ["shop.b"] = "read", ["shop.c"] = "read" })
            check("SELECT * FROM (SELECT x FROM inner_t) AS d, e",
                { ["shop.inner_t"] = "read", ["shop.e"] = "read" })
            check("SELECT EXTRACT(YEAR FROM d), TRIM(LEADING 'x' FROM y) FROM t", { ["shop.t"] = "read" })
            check("SELECT 1 FROM a UNION SELECT 2 FROM b", { ["shop.a"] = "read", ["shop.b"] = "read" })
            check("SELECT NOW()", {})
            check("/* c */ SELECT * FROM t; SELECT * FROM u", { ["shop.t"] = "read" })
            check("DELETE FROM t WHERE id IN (SELECT id FROM u)", { ["shop.t"] = "write", ["shop.u"] = "read" })
            check("DELETE QUICK FROM db.t", { ["db.t"] = "write" })
            check("INSERT INTO t (a, b) VALUES (1, 2)", { ["shop.t"] = "write" })
            check("insert low_priority ignore db.t set a = 1", { ["db.t"] = "write" })
            check("REPLACE INTO t SELECT * FROM u", { ["shop.t"] = "write", ["shop.u"] = "read" })
            check("INSERT INTO t SELECT * FROM t", { ["shop.t"] = "write" })
            check("UPDATE t SET a = 1 WHERE b = (SELECT max(b) FROM u)",
                { ["shop.t"] = "write", ["shop.u"] = "read" })
            check("UPDATE t1 JOIN t2 ON t1.a = t2.a SET t1.b = 2",
                { ["shop.t1"] = "write", ["shop.t2"] = "write" })
            check("CREATE TABLE t (id INT PRIMARY KEY)", { ["shop.t"] = "write" })
            check("CREATE TEMPORARY TABLE IF NOT EXISTS t SELECT * FROM u",
                { ["shop.t"] = "write", ["shop.u"] = "read" })
            check("CREATE TABLE t LIKE db.u", { ["shop.t"] = "write", ["db.u"] = "read" })
            check("DROP TABLE IF EXISTS a, db.b", { ["shop.a"] = "write", ["db.b"] = "write" })
            check("ALTER TABLE t ADD COLUMN c INT", { ["shop.t"] = "write" })
            check("RENAME TABLE a TO b, c TO d",
                { ["shop.a"] = "write", ["shop.b"] = "write", ["shop.c"] = "write", ["shop.d"] = "write" })
            check("CREATE DATABASE x", {})
            check("SHOW TABLES FROM db", {})
            check("", {})

            -- Without a default database, names stay as written.
            proxy.connection.client.default_db = ""
            check("SELECT * FROM t JOIN db.u", { ["t"] = "read", ["db.u"] = "read" })
            proxy = {}
            check("SELECT * FROM t", { ["t"] = "read" })
            "#,
        );
    }

    #[test]
    fn parser_expands_table_names() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local parser = require("proxy.parser")
            proxy = { connection = { client = { default_db = "shop" } } }
            assert(parser.tablename_expand("t") == "shop.t")
            assert(parser.tablename_expand("t", "db") == "db.t")
            proxy.connection.client.default_db = ""
            assert(parser.tablename_expand("t") == "t")
            assert(parser.tablename_expand("t", "") == "t")
            "#,
        );
    }

    #[test]
    fn balance_chooses_by_state_type_and_idle_connections() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local balance = require("proxy.balance")
            local function backend(state, kind, clients, idle)
                return {
                    state = state, type = kind, connected_clients = clients,
                    pool = { users = { app = { cur_idle_connections = idle } } },
                }
            end
            local UP, DOWN, UNKNOWN, RW, RO = 1, 2, 0, 1, 2
            proxy = {
                BACKEND_STATE_DOWN = DOWN, BACKEND_TYPE_RW = RW, BACKEND_TYPE_RO = RO,
                connection = { client = { username = "app" } },
                global = { backends = {
                    backend(DOWN, RW, 0, 5),    -- 1: down
                    backend(UP, RO, 3, 2),      -- 2
                    backend(UP, RW, 9, 0),      -- 3: no idle connection
                    backend(UNKNOWN, RW, 9, 1), -- 4: the first usable RW
                    backend(UP, RW, 0, 1),      -- 5
                    backend(DOWN, RO, 0, 4),    -- 6: down
                    backend(UP, RO, 1, 1),      -- 7: the RO with the fewest clients
                    backend(UP, RO, 1, 3),      -- 8: as few, but later
                    backend(UP, RO, 0, 0),      -- 9: no idle connection
                } },
            }
            assert(balance.idle_failsafe_rw() == 4, balance.idle_failsafe_rw())
            assert(balance.idle_ro() == 7, balance.idle_ro())

            -- Another user has no idle connections anywhere.
            proxy.connection.client.username = "other"
            assert(balance.idle_failsafe_rw() == 0 and balance.idle_ro() == 0)

            proxy.connection.client.username = "app"
            proxy.global.backends = { backend(UP, RO, 0, 1) }
            assert(balance.idle_failsafe_rw() == 0 and balance.idle_ro() == 1)
            proxy.global.backends = {}
            assert(balance.idle_failsafe_rw() == 0 and balance.idle_ro() == 0)
            "#,
        );
    }

    /// A Lua state with the fake `proxy` of `proxy.test`, a configuration
    /// and `proxy.auto-config` loaded, and `run(query)` answering a query
    /// with `config:handle` (returning what it returns).
    fn auto_config_lua() -> Lua {
        let lua = lua();
        exec(
            &lua,
            r#"
            require("proxy.test").ProxyBaseTest:setDefaultScope()
            proxy.global.config.rwsplit = { is_debug = false, max_idle_connections = 8, name = "x" }
            auto_config = require("proxy.auto-config")
            function run(query)
                proxy.response = {}
                return proxy.global.config:handle({ type = proxy.COM_QUERY, query = query })
            end
            "#,
        );
        lua
    }

    /// The message of `proxy.response`, which must be an ERR.
    fn error_message(lua: &Lua) -> String {
        match response(lua) {
            Response::Error(error) => error.message.to_string(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn auto_config_sets_options_keeping_their_type() {
        let lua = auto_config_lua();
        exec(
            &lua,
            r#"
            local config = proxy.global.config.rwsplit
            assert(run("PROXY SET GLOBAL rwsplit.is_debug = true") == proxy.PROXY_SEND_RESULT)
            assert(config.is_debug == true, "true is stored as given")
            assert(run("proxy set global rwsplit.max_idle_connections=-16;") == proxy.PROXY_SEND_RESULT)
            assert(config.max_idle_connections == -16)
            assert(run("Proxy Set Global rwsplit.name = \"a b\"") == proxy.PROXY_SEND_RESULT)
            assert(config.name == "a b", config.name)
            assert(run("PROXY SET GLOBAL rwsplit.name = 'c'  ; ") == proxy.PROXY_SEND_RESULT)
            assert(config.name == "c", config.name)
            -- The old form: the module's function with the command alone.
            assert(auto_config.handle({ type = proxy.COM_QUERY,
                query = "PROXY SET GLOBAL rwsplit.is_debug = FALSE" }) == proxy.PROXY_SEND_RESULT)
            assert(config.is_debug == false)
            "#,
        );
        assert_eq!(
            response(&lua),
            Response::Ok(OkResponse {
                affected_rows: 1,
                ..OkResponse::default()
            })
        );
        for (query, message) in [
            ("PROXY SET GLOBAL nothing.x = 1", "module not known"),
            ("PROXY SET GLOBAL rwsplit.nothing = 1", "option not know"),
            (
                "PROXY SET GLOBAL rwsplit.is_debug = 1",
                "type mismatch: rwsplit.is_debug is a boolean, the value given a number",
            ),
            (
                "PROXY SET GLOBAL rwsplit.max_idle_connections = 'x'",
                "type mismatch: rwsplit.max_idle_connections is a number, the value given a string",
            ),
        ] {
            let code = format!("assert(run({query:?}) == proxy.PROXY_SEND_RESULT)");
            exec(&lua, &code);
            assert_eq!(error_message(&lua), message, "{query}");
        }
        exec(
            &lua,
            r#"
            local config = proxy.global.config.rwsplit
            assert(config.is_debug == false and config.max_idle_connections == -16 and config.name == "c")
            "#,
        );
    }

    #[test]
    fn auto_config_lets_other_queries_pass() {
        let lua = auto_config_lua();
        exec(
            &lua,
            r#"
            local long = "PROXY SET GLOBAL rwsplit.name = '" .. string.rep("x", 100) .. "'"
            assert(#long > 128)
            for _, query in ipairs({
                "SELECT 1", "PROXY", "PROXY SHOW", "PROXY SHOW CONFIG x", "PROXYSHOW CONFIG",
                "PROXY SET GLOBAL rwsplit.is_debug", "PROXY SET GLOBAL rwsplit.is_debug = maybe",
                "PROXY SET rwsplit.is_debug = true", "PROXY SAVE CONFIG INTO file",
                "PROXY LOAD CONFIG FROM \"unterminated", long,
            }) do
                assert(run(query) == nil, query)
                assert(next(proxy.response) == nil, query)
            end
            assert(proxy.global.config:handle({ type = proxy.COM_INIT_DB, query = "PROXY SHOW CONFIG" }) == nil)
            assert(auto_config.handle({ type = proxy.COM_QUERY }) == nil)
            "#,
        );
    }

    #[test]
    fn auto_config_shows_the_configuration() {
        let lua = auto_config_lua();
        exec(
            &lua,
            r#"
            proxy.global.config.other = { level = 1.5 }
            proxy.global.config.not_a_module = true
            assert(run("  proxy show config") == proxy.PROXY_SEND_RESULT)
            "#,
        );
        let Response::ResultSet(result) = response(&lua) else {
            panic!("not a result set");
        };
        let names: Vec<String> = result.columns.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(names, ["module", "option", "value", "type"]);
        let mut rows: Vec<Vec<String>> = result
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|value| String::from_utf8(value.clone().unwrap().to_vec()).unwrap())
                    .collect()
            })
            .collect();
        rows.sort();
        let expected = [
            ["other", "level", "1.5", "number"],
            ["rwsplit", "is_debug", "false", "boolean"],
            ["rwsplit", "max_idle_connections", "8", "number"],
            ["rwsplit", "name", "x", "string"],
        ];
        assert_eq!(rows, expected.map(|row| row.map(String::from).to_vec()));
    }

    #[test]
    fn auto_config_saves_and_loads_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.lua");
        let lua = auto_config_lua();
        lua.globals()
            .set("file", file.display().to_string())
            .unwrap();
        exec(
            &lua,
            r#"
            local config = proxy.global.config
            config.rwsplit.name = "quote \" and \\ and\nline\0nul"
            config.rwsplit.ratio = 0.1
            config.rwsplit.skipped = function() end
            config.other = { on = true }
            assert(run("PROXY SAVE CONFIG INTO \"" .. file .. "\"") == proxy.PROXY_SEND_RESULT)
            assert(proxy.response.type == proxy.MYSQLD_PACKET_OK, proxy.response.errmsg)

            config.rwsplit = { is_debug = true, kept = 1 }
            config.other = nil
            assert(run("PROXY LOAD CONFIG FROM '" .. file .. "'") == proxy.PROXY_SEND_RESULT)
            assert(proxy.response.type == proxy.MYSQLD_PACKET_OK, proxy.response.errmsg)
            local r = config.rwsplit
            assert(r.is_debug == false and r.max_idle_connections == 8 and r.ratio == 0.1)
            assert(r.name == "quote \" and \\ and\nline\0nul", r.name)
            assert(r.kept == 1, "options the file lacks are kept")
            assert(r.skipped == nil, "functions are not saved")
            assert(config.other.on == true, "modules the configuration lacks are added")
            "#,
        );
        let saved = std::fs::read_to_string(&file).unwrap();
        assert!(saved.contains("return {"), "{saved}");
        assert!(saved.contains("[\"max_idle_connections\"] = 8,"), "{saved}");
    }

    #[test]
    fn auto_config_reports_files_it_cannot_use() {
        let dir = tempfile::tempdir().unwrap();
        let lua = auto_config_lua();
        let missing = dir.path().join("missing.lua");
        let code = dir.path().join("code.lua");
        std::fs::write(&code, "os.exit(3)").unwrap();
        let not_a_table = dir.path().join("number.lua");
        std::fs::write(&not_a_table, "return 1").unwrap();
        let unwritable = dir.path().join("no").join("such").join("dir.lua");
        let cases = [
            (
                format!("PROXY LOAD CONFIG FROM '{}'", missing.display()),
                "cannot open",
            ),
            (
                format!("PROXY LOAD CONFIG FROM '{}'", code.display()),
                "attempt to index global 'os'",
            ),
            (
                format!("PROXY LOAD CONFIG FROM '{}'", not_a_table.display()),
                "the file does not return a table",
            ),
            (
                format!("PROXY SAVE CONFIG INTO '{}'", unwritable.display()),
                "No such file or directory",
            ),
        ];
        for (query, part) in cases {
            exec(
                &lua,
                &format!("assert(run({query:?}) == proxy.PROXY_SEND_RESULT)"),
            );
            let message = error_message(&lua);
            assert!(message.contains(part), "{query}: {message}");
        }
    }

    #[test]
    fn test_runs_test_methods_and_counts_failures() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local test = require("proxy.test")
            test.assertEquals(1, 1)
            test.assertNotEquals(1, 2)
            fails(function() test.assertEquals(1, 2, "why") end,
                "assertEquals failed: got 1, expected 2 (why)")
            fails(function() test.assertNotEquals("a", "a") end, "assertNotEquals failed: got a")

            local printed = {}
            local real_print = print
            print = function(line) printed[#printed + 1] = line end
            local calls = {}
            local Case = test.BaseTest:new()
            function Case:setUp() calls[#calls + 1] = "setUp" end
            function Case:tearDown() calls[#calls + 1] = "tearDown" end
            function Case:testB() calls[#calls + 1] = "B"; test.assertEquals(1, 2) end
            function Case:testA() calls[#calls + 1] = "A" end
            function Case:helper() calls[#calls + 1] = "helper" end
            local Sub = Case:new()
            function Sub:testC() calls[#calls + 1] = "C" end
            local case = Sub:new()
            local passed = case:run()
            print = real_print

            assert(passed == false)
            assert(case.num_passed == 2 and case.num_failed == 1)
            assert(case.failures[1].name == "testB")
            assert(case.failures[1].message:find("assertEquals failed: got 1, expected 2", 1, true))
            local order = table.concat(calls, " ")
            assert(order == "setUp A tearDown setUp B tearDown setUp C tearDown", order)
            assert(printed[1]:find("^%[FAIL%] testB: "), printed[1])
            assert(printed[2] == "2 passed, 1 failed", printed[2])
            "#,
        );
    }

    #[test]
    fn test_sets_a_fake_proxy_scope() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local test = require("proxy.test")
            local Case = test.ProxyBaseTest:new()
            local scope = Case:new():setDefaultScope()
            assert(proxy == scope)
            assert(proxy.COM_QUERY == 3 and proxy.MYSQLD_PACKET_ERR == 255)
            assert(proxy.BACKEND_TYPE_RO == 2 and proxy.PROXY_VERSION == 0x00805)
            -- 0.8's fake swaps these two.
            assert(proxy.PROXY_SEND_QUERY == 2 and proxy.PROXY_SEND_RESULT == 1)
            assert(type(proxy.global.config) == "table" and #proxy.global.backends == 0)
            proxy.queries:append(1, "a")
            proxy.queries:prepend(2, "b")
            assert(#proxy.queries == 2 and proxy.queries:len() == 2)
            assert(proxy.queries[1].id == 2 and proxy.queries[2].query == "a")
            proxy.queries:reset()
            assert(#proxy.queries == 0)
            Case:new():setDefaultScope()
            assert(proxy ~= scope, "a fresh scope each time")
            "#,
        );
    }

    #[test]
    fn a_script_of_the_runtime_uses_the_library() {
        use mysql_proxy_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
        use mysql_proxy_plugin_abi::abi_stable::std_types::RArc;
        use mysql_proxy_plugin_abi::HostFfi_TO;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.lua");
        std::fs::write(
            &path,
            r#"
            local commands = require("proxy.commands")
            local tokenizer = require("proxy.tokenizer")
            local auto_config = require("proxy.auto-config")
            if not proxy.global.config.mine then
                proxy.global.config.mine = { verbose = false }
            end
            function read_query(packet)
                local cmd = commands.parse(packet)
                local answer = proxy.global.config:handle(cmd)
                if answer then return answer end
                proxy.global.fingerprint = tokenizer.normalize(tokenizer.tokenize(cmd.query))
            end
            "#,
        )
        .unwrap();
        let runtime = crate::runtime::Runtime::new().unwrap();
        let host = crate::modules::tests::TestHost::default();
        let handle = HostFfi_TO::from_ptr(RArc::new(host), TD_Opaque);
        runtime
            .with_lua(|lua| crate::modules::install(lua, handle).and_then(|()| install(lua)))
            .unwrap();
        let mut connection = runtime.connection(&path);
        let mut query = |sql: &str| {
            let packet = [&[3u8][..], sql.as_bytes()].concat();
            runtime.call_hook(&mut connection, "read_query", None, move |lua, _, _| {
                Ok(MultiValue::from_vec(vec![Value::String(
                    lua.create_string(&packet)?,
                )]))
            })
        };
        assert_eq!(
            query("PROXY SET GLOBAL mine.verbose = true"),
            Ok(crate::runtime::Outcome::Returned(Some(2)))
        );
        assert_eq!(
            query("select 1"),
            Ok(crate::runtime::Outcome::Returned(None))
        );
        let (verbose, fingerprint) = runtime.with_lua(|lua| {
            let verbose: bool = lua
                .load("return proxy.global.config.mine.verbose")
                .eval()
                .unwrap();
            let fingerprint: String = lua.load("return proxy.global.fingerprint").eval().unwrap();
            (verbose, fingerprint)
        });
        assert!(verbose);
        assert_eq!(fingerprint, "SELECT ? ");
    }
}
