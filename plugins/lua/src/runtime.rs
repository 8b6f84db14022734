//! The script runtime of MySQL Proxy 0.8, as its scripts rely on it: one Lua
//! 5.1 state for the whole process, every hook call serialised by one lock;
//! a script compiled once per version of its file and instantiated for each
//! connection, whose globals are the connection's own (an environment
//! falling back to `_G`); the `proxy` table shared, with its constants and
//! `proxy.global`, but any other key (`queries`, `connection`, `response`,
//! whatever a script sets) redirected to the current connection's private
//! table; hooks looked up by name at every call.
//!
//! A file is compiled the way 0.8 compiled it: its text placed after
//! `return function() ` on the first line and followed by `end`, the chunk
//! named by the path, so error locations read `[string "<path>"]:<line>:`
//! with the file's own line numbers. It is compiled again when a new
//! connection finds its modification time or size changed; connections
//! that ran the old version keep it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use mlua::{Function, Lua, LuaString, MultiValue, Table, Value};

use crate::connection::{SessionAccess, SessionOps, SessionSlot, SlotCell};
use crate::constants::{PROXY_CONSTANTS, PROXY_VERSION};
use crate::watchdog::Watchdog;

/// Sets up `_G.proxy` and returns the table whose `current` field points
/// its redirection at a connection's private table (set by Rust with a raw
/// store, the cheapest way to re-point it at every hook call), and the
/// function that makes a connection's `proxy.connection` object, which
/// reads and writes through the session slot.
const PROXY_PRELUDE: &str = r#"
local constants, version, slot = ...
-- As the state had it: scripts may replace the global.
local error = error
-- Lua's print writes to a C stream that a proxy running as a service
-- buffers in blocks (its stdout a pipe or a file): a script's output
-- would show at exit. Each print is flushed, as on a terminal.
local lua_print, stdout = print, io.stdout
print = function(...)
    lua_print(...)
    stdout:flush()
end
local redirect = {}
local proxy = { global = { config = {} } }
for name, value in pairs(constants) do proxy[name] = value end
proxy.PROXY_VERSION = version
setmetatable(proxy, {
    __index = function(_, key)
        local current = redirect.current
        if current then return current[key] end
    end,
    __newindex = function(_, key, value)
        local current = redirect.current
        if current == nil then
            error("proxy." .. tostring(key) .. " can only be set by a connection's hook", 2)
        end
        current[key] = value
    end,
})
local connection_mt = {
    __index = function(_, key)
        local ok, value = slot:get(key)
        if not ok then error(value, 2) end
        return value
    end,
    __newindex = function(_, key, value)
        local ok, message = slot:set(key, value)
        if not ok then error(message, 2) end
    end,
}
_G.proxy = proxy
return redirect, function() return setmetatable({}, connection_mt) end
"#;

/// Why a script could not run for a connection, or what its hook raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// The file could not be read or compiled (the client is told "failed
    /// to load" where it can be, as 0.8 does).
    Load(String),
    /// Its top-level statements raised an error ("failed to execute").
    Execute(String),
    /// A hook raised an error: logged, and the hook counts as having
    /// returned nothing.
    Hook { hook: String, message: String },
    /// The hook (or the script's top level in its first call) ran longer
    /// than the time limit and was stopped: the client gets an error.
    Stopped { hook: String, message: String },
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptError::Load(message) => write!(f, "failed to load: {message}"),
            ScriptError::Execute(message) => write!(f, "failed to execute: {message}"),
            ScriptError::Hook { hook, message } | ScriptError::Stopped { hook, message } => {
                write!(f, "({hook}) {message}")
            }
        }
    }
}

impl std::error::Error for ScriptError {}

/// What a hook call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The script defines no such hook (neither in the connection's
    /// globals nor in `_G`).
    Absent,
    /// The hook returned this number (a decision such as
    /// `PROXY_SEND_RESULT`), or something else (`None`: no decision).
    Returned(Option<i64>),
}

/// A compiled version of a script file.
struct Compiled {
    modified: Option<SystemTime>,
    size: u64,
    /// Running it returns the function holding the file's body.
    loader: Function,
}

struct Inner {
    lua: Lua,
    /// Its `current` field points `proxy`'s redirection at a connection's
    /// private table.
    redirect: Table,
    /// Where `proxy.connection` objects find the hook's session.
    slot: Arc<SlotCell>,
    /// Names used at every hook call, made into Lua strings once.
    keys: Keys,
    /// Makes a connection's `proxy.connection` object.
    new_connection: Function,
    scripts: HashMap<PathBuf, Compiled>,
}

/// The process's Lua state and its compiled scripts.
pub struct Runtime {
    inner: Mutex<Inner>,
    watchdog: Arc<Watchdog>,
}

/// One connection's side of a script: its globals and its private part of
/// `proxy`, made at its first hook call.
pub struct Connection {
    script: PathBuf,
    scope: Option<Scope>,
}

struct Scope {
    /// The connection's globals (falling back to `_G`).
    env: Table,
    /// What `proxy.<key>` reaches for this connection.
    private: Table,
}

impl Runtime {
    /// A Lua 5.1 state with every standard library (0.8 opened them all,
    /// `debug` included, and scripts use it) and the `proxy` table.
    pub fn new() -> mlua::Result<Self> {
        // SAFETY: the unsafe part of "unsafe_new" is the `debug` library
        // (and C modules through `package.loadlib`), which let a script
        // break Lua's own invariants; MySQL Proxy's scripts had both, and
        // the scripts are the operator's own code.
        let lua = unsafe { Lua::unsafe_new() };
        let constants = lua.create_table()?;
        for (name, value) in PROXY_CONSTANTS {
            constants.set(*name, *value)?;
        }
        let slot = Arc::new(SlotCell::default());
        let (redirect, new_connection): (Table, Function) = lua
            .load(PROXY_PRELUDE)
            .set_name("=proxy")
            .call((constants, PROXY_VERSION, SessionSlot(Arc::clone(&slot))))?;
        let keys = Keys::new(&lua)?;
        let watchdog = Watchdog::install(&lua)?;
        Ok(Self {
            watchdog,
            inner: Mutex::new(Inner {
                lua,
                redirect,
                slot,
                keys,
                new_connection,
                scripts: HashMap::new(),
            }),
        })
    }

    /// How long a hook call (or a chunk of the debug port) may run before
    /// it is stopped; zero for no limit.
    pub fn set_time_limit(&self, limit: std::time::Duration) {
        self.watchdog.set_limit(limit);
    }

    /// A new connection running `script` (nothing runs until its first
    /// hook call).
    pub fn connection(&self, script: &Path) -> Connection {
        Connection {
            script: script.to_path_buf(),
            scope: None,
        }
    }

    /// Calls hook `hook` of the connection's script with the arguments
    /// `args` builds (it also gets the connection's private part of
    /// `proxy`, to prepare, e.g. `proxy.queries`), `proxy.connection`
    /// reaching `session` meanwhile. The
    /// first call instantiates the script for the connection (compiling
    /// the file first if it is new or changed), and fails as 0.8 does if
    /// that fails. During the call `proxy` points at the connection's
    /// private table (see [`Runtime::with_private`] to prepare it, e.g.
    /// empty `proxy.queries`, or read it afterwards).
    pub fn call_hook(
        &self,
        connection: &mut Connection,
        hook: &str,
        session: Option<SessionAccess<'_, '_>>,
        args: impl FnOnce(&Lua, &Table, &Keys) -> mlua::Result<MultiValue>,
    ) -> Result<Outcome, ScriptError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let loader = match connection.scope {
            Some(_) => None,
            None => Some(inner.compiled(&connection.script)?),
        };
        let inner = &*inner;
        let mut session = session;
        // Dropped (the slot cleared) before `session` is.
        let _pointed = session.as_mut().map(|session| inner.point_slot(session));
        let armed = self.watchdog.arm();
        let outcome = (|| {
            if let Some(loader) = loader {
                connection.scope = Some(inner.instantiate(loader)?);
            }
            let Some(instance) = &connection.scope else {
                return Ok(Outcome::Absent);
            };
            inner
                .call(instance, hook, args)
                .map_err(|error| ScriptError::Hook {
                    hook: hook.to_string(),
                    message: message_of(&error),
                })
        })();
        match outcome {
            Err(ScriptError::Hook { message, .. } | ScriptError::Execute(message))
                if armed.stopped_at().is_some() =>
            {
                Err(ScriptError::Stopped {
                    hook: hook.to_string(),
                    message,
                })
            }
            other => other,
        }
    }

    /// Runs `work` on the connection's private part of `proxy` (its
    /// `queries`, `response`, ...), under the lock; `None` if the script
    /// has not run for the connection yet.
    pub fn with_private<R>(
        &self,
        connection: &Connection,
        work: impl FnOnce(&Lua, &Table) -> mlua::Result<R>,
    ) -> Option<mlua::Result<R>> {
        let scope = connection.scope.as_ref()?;
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Some(work(&inner.lua, &scope.private))
    }

    /// Runs `work` on the Lua state, under the lock (to install what lives
    /// in `_G`, such as `proxy.global.backends`).
    pub fn with_lua<R>(&self, work: impl FnOnce(&Lua) -> R) -> R {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        work(&inner.lua)
    }

    /// Runs `chunk` (compiled under its own text as name, as 0.8's debug
    /// plugin did) in `_G`, outside any connection (`proxy.global` and
    /// the constants reachable, no `proxy.connection`), and hands the
    /// first value it returns (nil for none) to `read`, under the lock.
    /// A compile or run-time error is its message.
    pub fn evaluate<R>(
        &self,
        chunk: &str,
        read: impl FnOnce(&Lua, Value) -> mlua::Result<R>,
    ) -> Result<R, String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let lua = &inner.lua;
        let _armed = self.watchdog.arm();
        let run = || -> mlua::Result<R> {
            inner.point_proxy_at(None)?;
            let function = lua.load(chunk).set_name(chunk).into_function()?;
            let returned = function.call::<MultiValue>(())?;
            read(lua, returned.into_iter().next().unwrap_or(Value::Nil))
        };
        run().map_err(|error| message_of(&error))
    }

    /// Releases what the connection holds in the Lua state (after its
    /// `disconnect_client`).
    pub fn close(&self, connection: Connection) {
        // The tables are released under the lock: Lua values are only
        // touched while it is held.
        let _inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        drop(connection.scope);
    }
}

impl Inner {
    /// The script's body run once for a new connection, in globals of its
    /// own.
    fn instantiate(&self, loader: Function) -> Result<Scope, ScriptError> {
        let lua = &self.lua;
        let load_error = |error: mlua::Error| ScriptError::Load(message_of(&error));
        let body: Function = loader.call(()).map_err(load_error)?;
        let env = lua.create_table().map_err(load_error)?;
        let fallback = lua.create_table().map_err(load_error)?;
        fallback.set("__index", lua.globals()).map_err(load_error)?;
        env.set_metatable(Some(fallback)).map_err(load_error)?;
        let setfenv: Function = lua.globals().get("setfenv").map_err(load_error)?;
        setfenv
            .call::<()>((body.clone(), env.clone()))
            .map_err(load_error)?;
        let private = lua.create_table().map_err(load_error)?;
        private
            .set(
                "connection",
                self.new_connection.call::<Table>(()).map_err(load_error)?,
            )
            .map_err(load_error)?;
        // The top level runs with `proxy` pointed at the connection: a
        // script may use `proxy.connection` or set `proxy.x` there too.
        self.point_proxy_at(Some(&private)).map_err(load_error)?;
        let ran = body.call::<()>(());
        let _ = self.point_proxy_at(None);
        ran.map_err(|error| ScriptError::Execute(message_of(&error)))?;
        Ok(Scope { env, private })
    }

    /// Looks the hook up (the connection's globals, then `_G`) and calls it.
    fn call(
        &self,
        instance: &Scope,
        hook: &str,
        args: impl FnOnce(&Lua, &Table, &Keys) -> mlua::Result<MultiValue>,
    ) -> mlua::Result<Outcome> {
        let lua = &self.lua;
        // The connection's globals, then `_G`, read raw (a metamethod call
        // per lookup would cost more than the rest of a hook call that
        // does little).
        let name = self.keys.hook(lua, hook)?;
        let found = match instance.env.raw_get::<Value>(&name)? {
            Value::Nil => lua.globals().raw_get::<Value>(&name)?,
            found => found,
        };
        let Value::Function(function) = found else {
            return Ok(Outcome::Absent);
        };
        // Left pointing at the connection after the call: no Lua runs
        // between hooks, and the next hook points it again.
        self.point_proxy_at(Some(&instance.private))?;
        let returned = args(lua, &instance.private, &self.keys)
            .and_then(|args| function.call::<MultiValue>(args));
        Ok(Outcome::Returned(
            returned?
                .into_iter()
                .next()
                .and_then(|value| decision(&value)),
        ))
    }

    /// The loader of the file's current version, compiled if the file is new
    /// to the cache or changed since (its modification time or size).
    fn compiled(&mut self, path: &Path) -> Result<Function, ScriptError> {
        let load_error = |message: String| ScriptError::Load(message);
        let metadata = std::fs::metadata(path)
            .map_err(|error| load_error(format!("{}: {error}", path.display())))?;
        let (modified, size) = (metadata.modified().ok(), metadata.len());
        if let Some(compiled) = self.scripts.get(path) {
            if compiled.modified == modified && compiled.size == size {
                return Ok(compiled.loader.clone());
            }
        }
        let text = std::fs::read(path)
            .map_err(|error| load_error(format!("{}: {error}", path.display())))?;
        let mut source = b"return function() ".to_vec();
        source.extend_from_slice(&text);
        source.extend_from_slice(b"\nend");
        let loader = self
            .lua
            .load(source)
            .set_name(path.display().to_string())
            .into_function()
            .map_err(|error| load_error(message_of(&error)))?;
        self.scripts.insert(
            path.to_path_buf(),
            Compiled {
                modified,
                size,
                loader: loader.clone(),
            },
        );
        Ok(loader)
    }

    fn point_proxy_at(&self, private: Option<&Table>) -> mlua::Result<()> {
        self.redirect.raw_set(&self.keys.current, private)
    }

    /// Points the session slot at `session` until the guard is dropped.
    fn point_slot(&self, session: &mut (dyn SessionOps + '_)) -> SlotGuard<'_> {
        let pointer: NonNull<dyn SessionOps + '_> = NonNull::from(session);
        // SAFETY: only the lifetime is erased. The guard clears the slot
        // when dropped, which the caller does before `session` goes away,
        // and the slot is followed only under the runtime's lock meanwhile
        // (connection.rs, `SlotCell`).
        let pointer: NonNull<dyn SessionOps + 'static> = unsafe { std::mem::transmute(pointer) };
        self.slot.current.set(Some(pointer));
        SlotGuard { slot: &self.slot }
    }
}

/// Clears the session slot when dropped: the session it points at lives
/// no longer than the hook call.
struct SlotGuard<'a> {
    slot: &'a SlotCell,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slot.current.set(None);
        self.slot.forget_sockets();
    }
}

/// The names a hook call uses, as Lua strings made once: a `&str` key is
/// hashed into Lua's string table at every use.
pub struct Keys {
    current: LuaString,
    pub queries: LuaString,
    pub response: LuaString,
    hooks: Vec<(&'static str, LuaString)>,
}

impl Keys {
    fn new(lua: &Lua) -> mlua::Result<Self> {
        let hooks = [
            "connect_server",
            "read_handshake",
            "read_auth",
            "read_auth_result",
            "read_query",
            "read_query_result",
            "disconnect_client",
        ]
        .into_iter()
        .map(|name| Ok((name, lua.create_string(name)?)))
        .collect::<mlua::Result<_>>()?;
        Ok(Self {
            current: lua.create_string("current")?,
            queries: lua.create_string("queries")?,
            response: lua.create_string("response")?,
            hooks,
        })
    }

    /// The hook's name as a Lua string (made now for a name not listed).
    fn hook(&self, lua: &Lua, name: &str) -> mlua::Result<LuaString> {
        match self.hooks.iter().find(|(known, _)| *known == name) {
            Some((_, key)) => Ok(key.clone()),
            None => lua.create_string(name),
        }
    }
}

/// A hook's return value as a decision: a number, or nothing.
fn decision(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        Value::Number(n) if n.fract() == 0.0 && n.is_finite() => Some(*n as i64),
        _ => None,
    }
}

/// The message of a Lua error, without mlua's wrapping (a runtime error's
/// own message carries the location and, for errors in callbacks, the
/// cause).
fn message_of(error: &mlua::Error) -> String {
    match error {
        mlua::Error::RuntimeError(message) | mlua::Error::SyntaxError { message, .. } => {
            message.clone()
        }
        mlua::Error::CallbackError { cause, .. } => message_of(cause),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A script file in a directory of its own (kept alive with it).
    fn script(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.lua");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// Calls a hook without arguments and returns what it returned.
    fn call(
        runtime: &Runtime,
        connection: &mut Connection,
        hook: &str,
    ) -> Result<Outcome, ScriptError> {
        runtime.call_hook(connection, hook, None, |_, _, _| Ok(MultiValue::new()))
    }

    /// A hook's return value read back as a number.
    fn number(outcome: Result<Outcome, ScriptError>) -> i64 {
        match outcome {
            Ok(Outcome::Returned(Some(n))) => n,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    #[test]
    fn the_language_is_lua_5_1_with_the_proxy_constants() {
        let (_dir, path) = script(
            "function read_query()\n\
               assert(_VERSION == 'Lua 5.1')\n\
               assert(proxy.MYSQLD_PACKET_EOF == nil)\n\
               assert(debug.traceback ~= nil)\n\
               return proxy.PROXY_VERSION + proxy.PROXY_SEND_RESULT\n\
             end",
        );
        let runtime = Runtime::new().unwrap();
        let mut connection = runtime.connection(&path);
        assert_eq!(
            number(call(&runtime, &mut connection, "read_query")),
            0x00805 + 2
        );
    }

    #[test]
    fn globals_are_per_connection_and_proxy_global_is_shared() {
        let (_dir, path) = script(
            "hits = (hits or 0) + 1\n\
             proxy.global.connections = (proxy.global.connections or 0) + 1\n\
             function read_query() return hits * 100 + proxy.global.connections end",
        );
        let runtime = Runtime::new().unwrap();
        let (mut first, mut second) = (runtime.connection(&path), runtime.connection(&path));
        assert_eq!(number(call(&runtime, &mut first, "read_query")), 101);
        assert_eq!(number(call(&runtime, &mut second, "read_query")), 102);
        // The top level ran once per connection.
        assert_eq!(number(call(&runtime, &mut first, "read_query")), 102);
    }

    #[test]
    fn other_keys_of_proxy_belong_to_the_current_connection() {
        let (_dir, path) = script(
            "function read_query() proxy.mine = (proxy.mine or 0) + 1 return proxy.mine end",
        );
        let runtime = Runtime::new().unwrap();
        let (mut first, mut second) = (runtime.connection(&path), runtime.connection(&path));
        assert_eq!(number(call(&runtime, &mut first, "read_query")), 1);
        assert_eq!(number(call(&runtime, &mut first, "read_query")), 2);
        assert_eq!(number(call(&runtime, &mut second, "read_query")), 1);
        let mine = runtime
            .with_private(&first, |_, private| private.get::<i64>("mine"))
            .unwrap()
            .unwrap();
        assert_eq!(mine, 2);
    }

    #[test]
    fn hooks_are_looked_up_at_each_call() {
        let (_dir, path) = script(
            "function connect_server()\n\
               function read_query() return 7 end\n\
             end",
        );
        let runtime = Runtime::new().unwrap();
        let mut connection = runtime.connection(&path);
        assert_eq!(
            call(&runtime, &mut connection, "read_query"),
            Ok(Outcome::Absent)
        );
        assert_eq!(
            call(&runtime, &mut connection, "connect_server"),
            Ok(Outcome::Returned(None))
        );
        assert_eq!(number(call(&runtime, &mut connection, "read_query")), 7);
    }

    #[test]
    fn a_changed_file_is_compiled_again_for_new_connections_only() {
        let (_dir, path) = script("function read_query() return 1 end");
        let runtime = Runtime::new().unwrap();
        let mut old = runtime.connection(&path);
        assert_eq!(number(call(&runtime, &mut old, "read_query")), 1);
        // Another size, so the change shows even within the same second.
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"function read_query() return 22 end")
            .unwrap();
        drop(file);
        let mut new = runtime.connection(&path);
        assert_eq!(number(call(&runtime, &mut new, "read_query")), 22);
        assert_eq!(number(call(&runtime, &mut old, "read_query")), 1);
    }

    #[test]
    fn errors_carry_the_file_and_its_line_numbers() {
        let (_dir, path) = script("x = 1\nfunction read_query()\n  error('boom')\nend");
        let runtime = Runtime::new().unwrap();
        let mut connection = runtime.connection(&path);
        let location = format!("[string \"{}\"]:3:", path.display());
        match call(&runtime, &mut connection, "read_query") {
            Err(ScriptError::Hook { hook, message }) => {
                assert_eq!(hook, "read_query");
                assert!(message.starts_with(&location), "{message}");
                assert!(message.contains("boom"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        let (_dir, broken) = script("x = 1\nfunction read_query(\nend");
        match call(&runtime, &mut runtime.connection(&broken), "read_query") {
            Err(ScriptError::Load(message)) => {
                let location = format!("[string \"{}\"]:3:", broken.display());
                assert!(message.starts_with(&location), "{message}");
            }
            other => panic!("{other:?}"),
        }

        let (_dir, failing) = script("x = 1\nerror('top level')");
        match call(&runtime, &mut runtime.connection(&failing), "read_query") {
            Err(ScriptError::Execute(message)) => {
                assert!(message.contains(":2: top level"), "{message}")
            }
            other => panic!("{other:?}"),
        }

        let mut missing = runtime.connection(Path::new("/nonexistent/script.lua"));
        assert!(matches!(
            call(&runtime, &mut missing, "read_query"),
            Err(ScriptError::Load(_))
        ));
    }

    #[test]
    fn a_hook_returning_no_number_decides_nothing() {
        let (_dir, path) = script(
            "function a() return 'x' end\n\
             function b() end\n\
             function c() return 2.5 end\n\
             function d() return proxy.PROXY_IGNORE_RESULT end",
        );
        let runtime = Runtime::new().unwrap();
        let mut connection = runtime.connection(&path);
        for hook in ["a", "b", "c"] {
            assert_eq!(
                call(&runtime, &mut connection, hook),
                Ok(Outcome::Returned(None))
            );
        }
        assert_eq!(number(call(&runtime, &mut connection, "d")), 4);
    }
}
