//! `chassis` (global `chassis`): MySQL Proxy 0.8's C module for what the
//! chassis offers scripts: its log, its stats, a shutdown.
//!
//! - `chassis.log(level, message)` writes `message` to the proxy's log
//!   (through the host) at `level`: `error`, `critical`, `warning`,
//!   `message`, `info` or `debug` (nil or absent: `message`; another
//!   level raises `bad argument #1 to 'log' (invalid option 'x')`). A nil
//!   or absent message logs `nil`; a number is taken in its string form,
//!   anything else raises an error, as 0.8's `luaL_optstring` did.
//!   `chassis.critical`, `warning`, `message`, `info` and `debug(message)`
//!   are the shorthands (0.8 had no `chassis.error`).
//! - The text is prefixed `(<file>:<line>) `, the location of the nearest
//!   of the 10 innermost callers whose source is a file, as 0.8 found it:
//!   a chunk named `@<path>` (a module loaded by `require` or `dofile`)
//!   or an absolute path (a script, which the runtime names by its path);
//!   with none, the direct caller's short source (`[string "..."]`, or
//!   the name of a `=name` chunk). 0.8 also stripped its base directory
//!   from the path; this plugin is not told the base directory, and shows
//!   the path as the script was named.
//! - Where 0.8 misbehaved, this does what a user expects: `error` logs at
//!   the error level (0.8 logged through GLib's `g_error`, which aborts
//!   the process); a message is logged whatever its bytes (a line that is
//!   not UTF-8 has its bad bytes replaced, the host's log being text).
//! - Once `chassis` has been required, the global `print` logs at the
//!   message level, with the same prefix, and Lua's own `print` is kept as
//!   `os.print` (0.8's rule). 0.8 set `print` to the message logger
//!   itself, which logged only its first argument and refused a table;
//!   here `print` joins every argument with tabs through `tostring`, as
//!   Lua's `print` does.
//! - `chassis.set_shutdown()` asks for the graceful shutdown a SIGTERM
//!   starts (see `modules::Context`).
//! - `chassis.get_stats()` returns `{ chassis = { lua_mem_alloc,
//!   lua_mem_free, lua_mem_bytes, lua_mem_bytes_max } }`: `lua_mem_bytes`
//!   is the Lua state's memory now, `lua_mem_bytes_max` the most any call
//!   has seen. 0.8 counted every allocation and free in its allocator;
//!   Lua's memory is allocated by mlua here, which counts bytes only, so
//!   `lua_mem_alloc` and `lua_mem_free` read 0. With a name,
//!   `get_stats(name)` returns that plugin's stats: 0.8 answered nil for
//!   every name, even `chassis`; here `get_stats("chassis")` returns the
//!   chassis's table (what a user asks for), and any other name nil (no
//!   plugin has stats for scripts).
//! - `chassis.mem_profile()` does nothing (0.8 printed GLib's memory
//!   profile, when GLib's profiling was on).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};
use mysql_proxy_plugin_abi::{HostHandle, LogLevel};

use super::{
    argument, bad_argument, check_string, describe, function, opt_string, Context, Failure,
};

/// The levels `chassis.log` takes, by name.
const LEVELS: [(&str, LogLevel); 6] = [
    ("error", LogLevel::Error),
    ("critical", LogLevel::Critical),
    ("warning", LogLevel::Warning),
    ("message", LogLevel::Message),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
];

/// The shorthands, which log at their name's level.
const SHORTHANDS: [(&str, LogLevel); 5] = [
    ("critical", LogLevel::Critical),
    ("warning", LogLevel::Warning),
    ("message", LogLevel::Message),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
];

/// The first stack level of a script's caller, seen from the Rust code of
/// a module's function: 0 is that code, 1 the function made by
/// `modules::function` that the script called.
const FIRST_CALLER: usize = 2;

/// How many callers are searched for a file source (0.8's limit).
const CALLERS_SEARCHED: usize = 10;

/// `chassis`'s table; replaces `print` (keeping Lua's as `os.print`).
pub fn open(lua: &Lua, context: &Context) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let host = context.host.clone();
    module.raw_set(
        "log",
        function(lua, move |lua, args| {
            let level = level(lua, args)?;
            let message = opt_string(lua, args, 2, "nil")?;
            log(lua, &host, level, &message.as_bytes());
            Ok(Value::Nil)
        })?,
    )?;
    for (name, level) in SHORTHANDS {
        let host = context.host.clone();
        module.raw_set(
            name,
            function(lua, move |lua, args| {
                let message = opt_string(lua, args, 1, "nil")?;
                log(lua, &host, level, &message.as_bytes());
                Ok(Value::Nil)
            })?,
        )?;
    }
    let shutdown = Arc::clone(&context.shutdown);
    module.raw_set(
        "set_shutdown",
        function(lua, move |_, _| {
            shutdown();
            Ok(Value::Nil)
        })?,
    )?;
    let most = Arc::new(AtomicU64::new(0));
    module.raw_set(
        "get_stats",
        function(lua, move |lua, args| get_stats(lua, args, &most))?,
    )?;
    module.raw_set("mem_profile", function(lua, |_, _| Ok(Value::Nil))?)?;
    describe(
        &module,
        "LuaChassis - the chassis of MySQL Proxy: log, stats, shutdown",
        "LuaChassis 0.2",
    )?;
    replace_print(lua, &context.host)?;
    Ok(module)
}

/// `luaL_checkoption(L, 1, "message", names)`.
fn level(lua: &Lua, args: &MultiValue) -> Result<LogLevel, Failure> {
    let name = opt_string(lua, args, 1, "message")?;
    let name = name.as_bytes();
    LEVELS
        .iter()
        .find(|(level, _)| level.as_bytes() == &*name)
        .map(|(_, level)| *level)
        .ok_or_else(|| {
            let extra = format!("invalid option '{}'", String::from_utf8_lossy(&name));
            bad_argument(lua, 1, &extra)
        })
}

/// Writes `(<file>:<line>) <message>` to the host's log.
fn log(lua: &Lua, host: &HostHandle, level: LogLevel, message: &[u8]) {
    let (source, line) = caller(lua);
    let text = format!("({source}:{line}) {}", String::from_utf8_lossy(message));
    host.log(level, text.as_str().into());
}

/// Where the log line comes from: the file and current line of the nearest
/// caller whose source is a file, else the short source and line of the
/// direct caller (`unknown` and -1 with no caller at all), as 0.8 chose.
fn caller(lua: &Lua) -> (String, i64) {
    let mut first: Option<(String, i64)> = None;
    for level in FIRST_CALLER..FIRST_CALLER + CALLERS_SEARCHED {
        let frame = lua.inspect_stack(level, |frame| {
            let source = frame.source();
            let line = frame
                .current_line()
                .and_then(|line| i64::try_from(line).ok())
                .unwrap_or(-1);
            (
                source.source.map(|source| source.into_owned()),
                source.short_src.map(|short| short.into_owned()),
                line,
            )
        });
        let Some((source, short, line)) = frame else {
            break;
        };
        if let Some(source) = source {
            if let Some(path) = source.strip_prefix('@') {
                return (path.to_string(), line);
            }
            if source.starts_with('/') {
                return (source, line);
            }
        }
        if first.is_none() {
            first = Some((short.unwrap_or_else(|| "unknown".to_string()), line));
        }
    }
    first.unwrap_or_else(|| ("unknown".to_string(), -1))
}

/// `get_stats([name])`.
fn get_stats(lua: &Lua, args: &MultiValue, most: &AtomicU64) -> Result<Value, Failure> {
    let wanted = match argument(args, 1) {
        None | Some(Value::Nil) => None,
        Some(_) => Some(check_string(lua, args, 1)?),
    };
    if wanted
        .as_ref()
        .is_some_and(|name| &*name.as_bytes() != b"chassis")
    {
        return Ok(Value::Nil);
    }
    let bytes = u64::try_from(lua.used_memory()).unwrap_or(u64::MAX);
    let max = most.fetch_max(bytes, Ordering::Relaxed).max(bytes);
    let chassis = lua.create_table()?;
    chassis.raw_set("lua_mem_alloc", 0)?;
    chassis.raw_set("lua_mem_free", 0)?;
    chassis.raw_set("lua_mem_bytes", bytes)?;
    chassis.raw_set("lua_mem_bytes_max", max)?;
    if wanted.is_some() {
        return Ok(Value::Table(chassis));
    }
    let stats = lua.create_table()?;
    stats.raw_set("chassis", chassis)?;
    Ok(Value::Table(stats))
}

/// Keeps Lua's `print` as `os.print` (unless `os.print` is already set:
/// loading `chassis` again must not keep the logger as the original) and
/// sets the global `print` to log at the message level.
fn replace_print(lua: &Lua, host: &HostHandle) -> mlua::Result<()> {
    let globals = lua.globals();
    if let Value::Table(os) = globals.raw_get::<Value>("os")? {
        if os.raw_get::<Value>("print")?.is_nil() {
            os.raw_set("print", globals.raw_get::<Value>("print")?)?;
        }
    }
    let host = host.clone();
    let print = function(lua, move |lua, args| {
        let mut line = Vec::new();
        // Looked up at each call, as Lua's `print` does.
        let tostring: Value = lua.globals().get("tostring")?;
        for (i, value) in args.iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            let shown = match &tostring {
                Value::Function(tostring) => tostring.call::<Value>(value.clone())?,
                _ => return Err(Failure::Raise("attempt to call a nil value".to_string())),
            };
            match shown {
                Value::String(shown) => line.extend_from_slice(&shown.as_bytes()),
                _ => {
                    let message = "'tostring' must return a string to 'print'";
                    return Err(Failure::Raise(message.to_string()));
                }
            }
        }
        log(lua, &host, LogLevel::Message, &line);
        Ok(Value::Nil)
    })?;
    globals.raw_set("print", print)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{exec, lua_with, TestHost};
    use super::*;
    use mlua::Function;
    use std::sync::atomic::Ordering;

    /// Lua's `print`, where `chassis` kept it.
    fn original_print(lua: &Lua) -> Option<Function> {
        let os: Table = lua.globals().get("os").ok()?;
        os.get("print").ok()
    }

    fn line(level: LogLevel, text: &str) -> (LogLevel, String) {
        (level, text.to_string())
    }

    #[test]
    fn log_writes_at_each_level_with_the_caller_s_location() {
        let host = TestHost::default();
        let (lua, _) = lua_with(&host);
        exec(
            &lua,
            r#"
            require("chassis")
            chassis.log("error", "e")
            chassis.log("critical", "c")
            chassis.log("warning", "w")
            chassis.log("message", "m")
            chassis.log("info", "i")
            chassis.log("debug", "d")
            chassis.log(nil, "default")
            chassis.log()
            chassis.log("info", 12)
            "#,
        );
        assert_eq!(
            host.lines(),
            vec![
                line(LogLevel::Error, "(test:3) e"),
                line(LogLevel::Critical, "(test:4) c"),
                line(LogLevel::Warning, "(test:5) w"),
                line(LogLevel::Message, "(test:6) m"),
                line(LogLevel::Info, "(test:7) i"),
                line(LogLevel::Debug, "(test:8) d"),
                line(LogLevel::Message, "(test:9) default"),
                line(LogLevel::Message, "(test:10) nil"),
                line(LogLevel::Info, "(test:11) 12"),
            ]
        );
    }

    #[test]
    fn the_shorthands_log_at_their_level() {
        let host = TestHost::default();
        let (lua, _) = lua_with(&host);
        exec(
            &lua,
            "local chassis = require('chassis')\n\
             chassis.critical('c') chassis.warning('w') chassis.message('m')\n\
             chassis.info('i') chassis.debug('d', 'ignored') chassis.debug()\n\
             assert(chassis.error == nil)",
        );
        assert_eq!(
            host.lines(),
            vec![
                line(LogLevel::Critical, "(test:2) c"),
                line(LogLevel::Warning, "(test:2) w"),
                line(LogLevel::Message, "(test:2) m"),
                line(LogLevel::Info, "(test:3) i"),
                line(LogLevel::Debug, "(test:3) d"),
                line(LogLevel::Debug, "(test:3) nil"),
            ]
        );
    }

    #[test]
    fn the_location_is_the_nearest_file() {
        let host = TestHost::default();
        let (lua, _) = lua_with(&host);
        exec(&lua, "require('chassis')");
        // A module loaded from a file calls a helper of a plain chunk.
        lua.load("function helper(text) chassis.message(text) end")
            .set_name("=helper")
            .exec()
            .unwrap();
        lua.load("\nhelper('from a module')")
            .set_name("@/usr/lib/mysql-proxy/lua/module.lua")
            .exec()
            .unwrap();
        // A script, named by its absolute path.
        lua.load("\n\nhelper('from a script')")
            .set_name("/etc/mysql-proxy/script.lua")
            .exec()
            .unwrap();
        // No file at all: the direct caller.
        lua.load("helper('nowhere')")
            .set_name("select 1")
            .exec()
            .unwrap();
        // Called from Rust: no caller.
        let message: Function = lua
            .load("return chassis.message")
            .set_name("=test")
            .eval()
            .unwrap();
        message.call::<()>("from rust").unwrap();
        assert_eq!(
            host.lines(),
            vec![
                line(
                    LogLevel::Message,
                    "(/usr/lib/mysql-proxy/lua/module.lua:2) from a module"
                ),
                line(
                    LogLevel::Message,
                    "(/etc/mysql-proxy/script.lua:3) from a script"
                ),
                line(LogLevel::Message, "(helper:1) nowhere"),
                line(LogLevel::Message, "(unknown:-1) from rust"),
            ]
        );
    }

    #[test]
    fn print_logs_at_the_message_level_once_chassis_is_required() {
        let host = TestHost::default();
        let (lua, _) = lua_with(&host);
        let lua_print = lua.globals().get::<Function>("print").unwrap();
        exec(&lua, "assert(os.print == nil)");
        exec(&lua, "require('chassis')");
        assert_eq!(original_print(&lua), Some(lua_print.clone()));
        exec(
            &lua,
            r#"
            print("a", 1, nil, true)
            print()
            print(setmetatable({}, { __tostring = function() return "shown" end }))
            print("\255bytes")
            "#,
        );
        assert_eq!(
            host.lines(),
            vec![
                line(LogLevel::Message, "(test:2) a\t1\tnil\ttrue"),
                line(LogLevel::Message, "(test:3) "),
                line(LogLevel::Message, "(test:4) shown"),
                line(LogLevel::Message, "(test:5) \u{fffd}bytes"),
            ]
        );
        // Loaded again, chassis keeps Lua's print as os.print.
        exec(&lua, "package.loaded.chassis = nil require('chassis')");
        assert_eq!(original_print(&lua), Some(lua_print));
        exec(
            &lua,
            r#"
            fails(function() print(setmetatable({}, { __tostring = function() return {} end })) end,
                "'tostring' must return a string to 'print'")
            "#,
        );
    }

    #[test]
    fn set_shutdown_asks_for_a_shutdown() {
        let host = TestHost::default();
        let (lua, shutdowns) = lua_with(&host);
        exec(&lua, "require('chassis').set_shutdown()");
        assert_eq!(shutdowns.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn get_stats_and_mem_profile() {
        let host = TestHost::default();
        let (lua, _) = lua_with(&host);
        exec(
            &lua,
            r#"
            local chassis = require("chassis")
            local stats = chassis.get_stats()
            local c = stats.chassis
            assert(c.lua_mem_alloc == 0 and c.lua_mem_free == 0)
            assert(c.lua_mem_bytes > 0 and c.lua_mem_bytes_max >= c.lua_mem_bytes)
            local big = {}
            for i = 1, 10000 do big[i] = tostring(i) end
            local more = chassis.get_stats("chassis")
            assert(more.lua_mem_bytes > c.lua_mem_bytes)
            assert(more.lua_mem_bytes_max >= more.lua_mem_bytes)
            big = nil
            collectgarbage()
            local after = chassis.get_stats().chassis
            assert(after.lua_mem_bytes < more.lua_mem_bytes)
            assert(after.lua_mem_bytes_max >= more.lua_mem_bytes)
            assert(chassis.get_stats("proxy") == nil)
            assert(chassis.get_stats(1) == nil)
            assert(chassis.mem_profile() == nil)
            fails(function() chassis.get_stats({}) end,
                "bad argument #1 to 'get_stats' (string expected, got table)")
            "#,
        );
    }

    #[test]
    fn bad_arguments_raise_errors() {
        let host = TestHost::default();
        let (lua, _) = lua_with(&host);
        exec(
            &lua,
            r#"
            local chassis = require("chassis")
            fails(function() chassis.log("loud", "x") end,
                "bad argument #1 to 'log' (invalid option 'loud')")
            fails(function() chassis.log({}, "x") end,
                "bad argument #1 to 'log' (string expected, got table)")
            fails(function() chassis.log("info", {}) end,
                "bad argument #2 to 'log' (string expected, got table)")
            fails(function() chassis.warning(print) end,
                "bad argument #1 to 'warning' (string expected, got function)")
            "#,
        );
        assert!(host.lines().is_empty());
    }
}
