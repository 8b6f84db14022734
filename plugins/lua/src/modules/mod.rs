//! MySQL Proxy 0.8's Lua C modules, rewritten in Rust and loadable with
//! `require` under 0.8's names: `mysql.tokenizer`, `mysql.password`,
//! `chassis`, `glib2` and `posix` (and `mysql.proto` beside them).
//!
//! [`install`] puts a loader for each in `package.preload`, so `require`
//! finds them without any file on `LUA_PATH` or `LUA_CPATH` (0.8 shipped
//! them as shared objects there) and `package.loaded` caches them as Lua
//! caches any module. Loading one also does what 0.8's `luaL_register`
//! did: the module is set as the global of its short name (`tokenizer`,
//! `password`, `chassis`, `glib2`, `posix`) in the real `_G`, whichever
//! connection's script required it, and as `package.loaded[<short name>]`
//! (its functions go into the table already there, when one is). Library
//! code such as `proxy.tokenizer` relies on those globals. Every module
//! carries `_COPYRIGHT`, `_DESCRIPTION` and `_VERSION` (0.8's versions).
//!
//! Functions are written as MySQL Proxy 0.8's C functions read their
//! arguments with Lua's auxiliary library (a string argument also takes a
//! number in its string form, an integer argument a numeric string, and so
//! on), and raise their errors as strings located at the script's line,
//! worded as `luaL_argerror` words them: `bad argument #1 to 'md5'
//! (string expected, got nil)`.

use std::sync::Arc;

use mlua::{Function, Lua, LuaString, MultiValue, Table, Value};
use mysql_proxy_plugin_abi::HostHandle;

use crate::queries::{raising, reply, type_name};

pub mod chassis;
pub mod glib2;
pub mod password;
pub mod posix;
pub mod proto;
pub mod tokenizer;

/// What a module's opener may use: the host (for `chassis`'s log) and how
/// to stop the proxy (`chassis.set_shutdown`).
#[derive(Clone)]
pub struct Context {
    /// The host whose log `chassis` writes to.
    pub host: HostHandle,
    /// Asks the process for a graceful shutdown.
    pub shutdown: Arc<dyn Fn() + Send + Sync>,
}

impl Context {
    /// The context of a real proxy: a shutdown is SIGTERM to the process
    /// itself, which the chassis handles as a graceful shutdown (the
    /// plugin ABI has no call for it).
    pub fn new(host: HostHandle) -> Self {
        Self {
            host,
            shutdown: Arc::new(|| {
                // SAFETY: raise(3) only sends a signal to the calling
                // thread; it touches no memory of ours.
                unsafe {
                    libc::raise(libc::SIGTERM);
                }
            }),
        }
    }
}

/// Makes a module's table: its functions and, through [`describe`], its
/// `_COPYRIGHT`, `_DESCRIPTION` and `_VERSION`.
pub type Opener = fn(&Lua, &Context) -> mlua::Result<Table>;

/// Every module: the name `require` takes, the global it sets, and its
/// opener. A module is one entry here and its `pub mod` line above
/// (`mysql.proto`: `("mysql.proto", "proto", proto::open)`).
const MODULES: &[(&str, &str, Opener)] = &[
    ("chassis", "chassis", chassis::open),
    ("glib2", "glib2", glib2::open),
    ("mysql.password", "password", password::open),
    ("mysql.proto", "proto", proto::open),
    ("mysql.tokenizer", "tokenizer", tokenizer::open),
    ("posix", "posix", posix::open),
];

/// Every module's `_COPYRIGHT`.
const COPYRIGHT: &str = "Copyright (C) the mysql-proxy authors; \
    the API is MySQL Proxy 0.8's (Copyright (C) MySQL AB, Sun Microsystems, Inc)";

/// Registers every module in `package.preload` of `lua` (the host glue
/// calls it once, when it makes the runtime).
pub fn install(lua: &Lua, host: HostHandle) -> mlua::Result<()> {
    install_with(lua, Context::new(host))
}

/// [`install`] with the context given (tests choose what a shutdown does).
pub fn install_with(lua: &Lua, context: Context) -> mlua::Result<()> {
    let package: Table = lua.globals().raw_get("package")?;
    let preload: Table = package.raw_get("preload")?;
    for &(name, short, open) in MODULES {
        let context = context.clone();
        let loader = lua.create_function(move |lua, _: MultiValue| {
            let module = open(lua, &context)?;
            register(lua, short, module)
        })?;
        preload.raw_set(name, loader)?;
    }
    Ok(())
}

/// Sets a module's `_COPYRIGHT`, `_DESCRIPTION` and `_VERSION`.
pub fn describe(module: &Table, description: &str, version: &str) -> mlua::Result<()> {
    module.raw_set("_COPYRIGHT", COPYRIGHT)?;
    module.raw_set("_DESCRIPTION", description)?;
    module.raw_set("_VERSION", version)
}

/// What 0.8's `luaL_register(L, short, functions)` did with a module: the
/// table is `package.loaded[short]` if that is a table, else the global
/// `short` if that is a table, else a new one (here the opener's); the
/// functions go into it, and it becomes both `package.loaded[short]` and
/// the global `short`.
fn register(lua: &Lua, short: &str, module: Table) -> mlua::Result<Table> {
    let globals = lua.globals();
    let package: Table = globals.raw_get("package")?;
    let loaded: Table = package.raw_get("loaded")?;
    let target = match (
        loaded.raw_get::<Value>(short)?,
        globals.raw_get::<Value>(short)?,
    ) {
        (Value::Table(table), _) | (_, Value::Table(table)) => table,
        _ => module.clone(),
    };
    if target != module {
        for pair in module.pairs::<Value, Value>() {
            let (key, value) = pair?;
            target.raw_set(key, value)?;
        }
    }
    loaded.raw_set(short, &target)?;
    globals.raw_set(short, &target)?;
    Ok(target)
}

/// Why a module's function did not answer: an error to raise in the
/// script (worded by the function), or a failure of Lua itself (out of
/// memory), passed on as it is.
pub(crate) enum Failure {
    Raise(String),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Failure {
    fn from(error: mlua::Error) -> Self {
        Failure::Lua(error)
    }
}

/// A module's function as scripts call it: `answer` gets the arguments and
/// returns one value (nil returns nothing) or the message of the error it
/// raises, located at the script's line (see `queries::raising`).
pub(crate) fn function<F>(lua: &Lua, answer: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &MultiValue) -> Result<Value, Failure> + Send + 'static,
{
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let answer = match answer(lua, &args) {
            Ok(value) => Ok(value),
            Err(Failure::Raise(message)) => Err(message),
            Err(Failure::Lua(error)) => return Err(error),
        };
        reply(lua, answer)
    })?;
    raising(lua, inner)
}

/// Lua 5.1's `luaL_argerror` message for argument `narg` (1-based) of the
/// function the script called: its name as the script called it, read from
/// the frame of the function of [`function`] (level 1 from the Rust code
/// answering), or `?` when Lua has none (a metamethod, say); one less and
/// `calling ... on bad self` in a method call, as Lua counts.
pub(crate) fn bad_argument(lua: &Lua, narg: usize, extra: &str) -> Failure {
    Failure::Raise(crate::queries::argument_error(lua, narg, extra))
}

/// Lua 5.1's `luaL_typerror`: argument `narg` is not a `expected`.
pub(crate) fn type_error(lua: &Lua, args: &MultiValue, narg: usize, expected: &str) -> Failure {
    let got = argument(args, narg).map_or("no value", type_name);
    bad_argument(lua, narg, &format!("{expected} expected, got {got}"))
}

/// Argument `narg` (1-based), `None` when the call had fewer.
pub(crate) fn argument(args: &MultiValue, narg: usize) -> Option<&Value> {
    args.get(narg.checked_sub(1)?)
}

/// `luaL_checklstring`: a string, or a number in its string form.
pub(crate) fn check_string(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
) -> Result<LuaString, Failure> {
    match argument(args, narg) {
        Some(Value::String(string)) => Ok(string.clone()),
        Some(value @ (Value::Integer(_) | Value::Number(_))) => lua
            .coerce_string(value.clone())?
            .ok_or_else(|| type_error(lua, args, narg, "string")),
        _ => Err(type_error(lua, args, narg, "string")),
    }
}

/// `luaL_optstring`: [`check_string`], or `default` for nil or no value.
pub(crate) fn opt_string(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
    default: &str,
) -> Result<LuaString, Failure> {
    match argument(args, narg) {
        None | Some(Value::Nil) => Ok(lua.create_string(default)?),
        Some(_) => check_string(lua, args, narg),
    }
}

/// `luaL_checkinteger`: a number (truncated toward zero, as Lua 5.1 does
/// on 64-bit machines) or a string Lua converts to one. A number out of
/// the range of `i64` is an argument error here (C's conversion was
/// undefined).
pub(crate) fn check_integer(lua: &Lua, args: &MultiValue, narg: usize) -> Result<i64, Failure> {
    let number = match argument(args, narg) {
        Some(Value::Integer(n)) => return Ok(*n),
        Some(value @ (Value::Number(_) | Value::String(_))) => lua.coerce_number(value.clone())?,
        _ => None,
    };
    let Some(number) = number else {
        return Err(type_error(lua, args, narg, "number"));
    };
    let truncated = number.trunc();
    // i64::MAX as f64 rounds up to 2^63, itself out of range.
    if truncated.is_nan() || truncated < i64::MIN as f64 || truncated >= i64::MAX as f64 {
        return Err(bad_argument(lua, narg, "number out of range"));
    }
    Ok(truncated as i64)
}

/// A count as a Lua number.
pub(crate) fn count(n: usize) -> Value {
    i64::try_from(n).map_or(Value::Number(n as f64), Value::Integer)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mysql_proxy_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
    use mysql_proxy_plugin_abi::abi_stable::std_types::{RArc, ROk, RResult, RStr, RString, RVec};
    use mysql_proxy_plugin_abi::{
        BackendInfo, BackendState_NE, BackendType_NE, HostFfi, HostFfi_TO, LogLevel,
        ResultSetResponse, SqlError,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A host recording its log lines.
    #[derive(Clone, Default)]
    pub(crate) struct TestHost {
        pub(crate) lines: Arc<Mutex<Vec<(LogLevel, String)>>>,
    }

    impl TestHost {
        pub(crate) fn lines(&self) -> Vec<(LogLevel, String)> {
            self.lines.lock().unwrap().clone()
        }
    }

    impl HostFfi for TestHost {
        fn log(&self, level: LogLevel, message: RStr<'_>) {
            self.lines
                .lock()
                .unwrap()
                .push((level, message.as_str().to_string()));
        }
        fn backends(&self) -> RVec<BackendInfo> {
            RVec::new()
        }
        fn add_backend(&self, _: RStr<'_>, _: BackendType_NE) -> RResult<u32, RString> {
            ROk(0)
        }
        fn set_backend_state(
            &self,
            _: u32,
            _: BackendState_NE,
            _: RStr<'_>,
        ) -> RResult<(), RString> {
            ROk(())
        }
        fn set_option(&self, _: RStr<'_>, _: RStr<'_>) -> RResult<(), RString> {
            ROk(())
        }
        fn connections(&self) -> ResultSetResponse {
            ResultSetResponse::default()
        }
        fn kill(&self, _: u64, _: bool) -> RResult<(), SqlError> {
            ROk(())
        }
    }

    /// Lua helpers: `fails(f, message)` checks that `f` raises a string
    /// error located in the test chunk and equal, after the location, to
    /// `message`.
    const HELPERS: &str = r#"
        function fails(f, message)
            local ok, err = pcall(f)
            assert(not ok, "no error, expected: " .. message)
            assert(type(err) == "string", "the error is a " .. type(err))
            local rest = err:match("^test:%d+: (.*)$")
            assert(rest, "the error has no location: " .. err)
            assert(rest == message, "unexpected error: " .. err)
        end
    "#;

    /// A Lua state with the modules installed on `host`, the helpers, and
    /// a shutdown counted in the returned counter.
    pub(crate) fn lua_with(host: &TestHost) -> (Lua, Arc<AtomicUsize>) {
        let lua = Lua::new();
        lua.load(HELPERS).set_name("=helpers").exec().unwrap();
        let shutdowns = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&shutdowns);
        let context = Context {
            host: HostFfi_TO::from_ptr(RArc::new(host.clone()), TD_Opaque),
            shutdown: Arc::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
        };
        install_with(&lua, context).unwrap();
        (lua, shutdowns)
    }

    /// A Lua state with the modules installed on a host nobody reads.
    pub(crate) fn lua() -> Lua {
        lua_with(&TestHost::default()).0
    }

    /// Runs `script` (chunk name `test`) and fails with Lua's message.
    pub(crate) fn exec(lua: &Lua, script: &str) {
        if let Err(error) = lua.load(script).set_name("=test").exec() {
            panic!("{error}");
        }
    }

    #[test]
    fn every_module_is_required_by_its_name_and_sets_its_global() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local modules = {
                { "chassis", "chassis", "LuaChassis 0.2" },
                { "glib2", "glib2", "LuaGlib2 0.1" },
                { "mysql.password", "password", "LuaMySQLPassword 0.1" },
                { "mysql.tokenizer", "tokenizer", "LuaMySQLTokenizer 0.1" },
                { "posix", "posix", "LuaPosix 0.1" },
            }
            for _, m in ipairs(modules) do
                local name, short, version = m[1], m[2], m[3]
                assert(rawget(_G, short) == nil, short .. " is set before require")
                local module = require(name)
                assert(type(module) == "table", name)
                assert(module._VERSION == version, name .. ": " .. tostring(module._VERSION))
                assert(type(module._COPYRIGHT) == "string", name)
                assert(type(module._DESCRIPTION) == "string", name)
                assert(rawget(_G, short) == module, short .. " is not the module")
                assert(package.loaded[name] == module, name .. " is not cached")
                assert(package.loaded[short] == module, short .. " is not cached")
                assert(require(name) == module, name .. " is loaded again")
            end
            "#,
        );
    }

    #[test]
    fn a_module_is_opened_once_and_fills_the_table_already_there() {
        let lua = lua();
        exec(
            &lua,
            r#"
            glib2 = { mine = 1 }
            local module = require("glib2")
            assert(module == glib2 and module.mine == 1 and module.md5)
            package.loaded["glib2"] = nil
            glib2 = nil
            local again = require("glib2")
            assert(again ~= module and again == glib2)
            assert(package.loaded["not.a.module"] == nil)
            local ok, err = pcall(require, "mysql.nothing")
            assert(not ok and err:find("module 'mysql.nothing' not found", 1, true))
            "#,
        );
    }

    #[test]
    fn argument_errors_name_the_function_as_called() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local glib2 = require("glib2")
            fails(function() glib2.md5() end, "bad argument #1 to 'md5' (string expected, got no value)")
            local digest = glib2.md5
            fails(function() digest({}) end, "bad argument #1 to 'digest' (string expected, got table)")
            fails(function() glib2:md5() end, "calling 'md5' on bad self (string expected, got table)")
            fails(function() glib2.usleep("x") end, "bad argument #1 to 'usleep' (number expected, got string)")
            fails(function() glib2.usleep(1e300) end, "bad argument #1 to 'usleep' (number out of range)")
            "#,
        );
    }

    #[test]
    fn a_script_of_the_runtime_requires_them_into_the_real_globals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.lua");
        std::fs::write(
            &path,
            "require('mysql.tokenizer')\n\
             function read_query()\n\
               print('query', #tokenizer.tokenize('select 1'))\n\
               return rawget(_G, 'tokenizer') and 1 or 0\n\
             end\n\
             require('chassis')",
        )
        .unwrap();
        let host = TestHost::default();
        let runtime = crate::runtime::Runtime::new().unwrap();
        let handle = HostFfi_TO::from_ptr(RArc::new(host.clone()), TD_Opaque);
        runtime.with_lua(|lua| install(lua, handle)).unwrap();
        let mut connection = runtime.connection(&path);
        let outcome = runtime.call_hook(&mut connection, "read_query", None, |_, _, _| {
            Ok(MultiValue::new())
        });
        assert_eq!(outcome, Ok(crate::runtime::Outcome::Returned(Some(1))));
        // The script's chunk is named by its path: a file source.
        let expected = format!("({}:3) query\t2", path.display());
        assert_eq!(host.lines(), vec![(LogLevel::Message, expected)]);
    }
}
