//! `proxy.global.backends` (MySQL Proxy 0.8's backend list): the host's
//! backends as scripts read them (`#proxy.global.backends`, and
//! `proxy.global.backends[i]` with its address, state, type, clients and
//! pool) and change them (`state`, `uuid`, the pool's idle limits).
//!
//! [`install`] puts it in `proxy.global` once, when the runtime is made.
//! Every read goes to the host at the time of the read, through the live
//! views of `HostFfi::backends`: a backend object a script keeps shows
//! the backend as it is now, and backends the host registers later are
//! counted.
//!
//! How it behaves, and the choices MySQL Proxy 0.8 left to us:
//!
//! - The list and every object in it are userdata, as in 0.8. The list is
//!   indexed by number only (1-based; a numeric string or a float is read
//!   as Lua converts it, truncated): out of range gives nil, any other key
//!   raises an error, and `pairs` / `ipairs` refuse it, as they did.
//!   Each read of `proxy.global.backends[i]` makes a new object (as in
//!   0.8), all showing the same backend.
//! - `state` reads `BACKEND_STATE_UNKNOWN` (0), `_UP` (1) or `_DOWN` (2).
//!   The host's `Offline` (a backend an operator took out: no new clients)
//!   reads as `_DOWN`, which 0.8's scripts already skip when they choose a
//!   backend; so does a state of a newer host this plugin does not know.
//! - Writing `state` sets the host's state through
//!   `HostFfi::set_backend_state`, with the reason "set by a Lua
//!   script". The value is read as 0.8 read it (Lua's `lua_tointeger`: a
//!   number truncated, a numeric string converted, anything else 0, i.e.
//!   `_UNKNOWN`). 0.8 stored any integer, but the host has no state for
//!   the others: a number other than 0, 1 or 2 raises an error and
//!   changes nothing. Writing the state the backend already reads changes
//!   nothing either (no call to the host, no log line for a script that
//!   sets it at every query; an offline backend written `_DOWN` stays
//!   offline). A refusal of the host is raised as an error.
//! - `type` reads `BACKEND_TYPE_RW` (1) or `_RO` (2) (`_UNKNOWN`, 0, for a
//!   type of a newer host).
//! - `uuid` and the pool's `max_idle_connections` and
//!   `min_idle_connections` have no counterpart in the host: this module
//!   keeps them, per backend index, for the scripts to read back (the
//!   host's pool limits are its own settings, which they do not change).
//!   `uuid` takes a string (a number in its string form, as 0.8's
//!   `lua_isstring` accepted) or nil, and reads nil when empty; another
//!   type raises an error. The pool's limits read 0 until set and take
//!   any value as `lua_tointeger` reads it, as in 0.8.
//! - `pool.users[name].cur_idle_connections` is the backend's idle pooled
//!   connections for every user: the host counts its pool per backend,
//!   not per user (0.8's count could be another user's too, through its
//!   pool's fallback).
//! - Reading a key an object does not have gives nil. Writing a key an
//!   object does not take raises `proxy.global.backends[...].<key> is not
//!   writable` (`...pool.<key>`, `...pool.users.<key>`,
//!   `...pool.users[...].<key>` below it).
//! - Errors are raised as strings located at the script's line, as 0.8's
//!   `luaL_error` raised them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mlua::{Lua, MetaMethod, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value};
use mysql_proxy_plugin_abi::abi_stable::nonexhaustive_enum::NonExhaustive;
use mysql_proxy_plugin_abi::abi_stable::std_types::RResult;
use mysql_proxy_plugin_abi::{
    BackendInfo, BackendState, BackendState_NE, BackendType, BackendType_NE, HostHandle,
};

use crate::connection::address;
use crate::object::{key_bytes, not_writable, object_fields, Object};
use crate::queries::type_name;

/// The `proxy` constants this module reads and writes (constants.rs has
/// them by name for scripts).
const BACKEND_STATE_UNKNOWN: i64 = 0;
const BACKEND_STATE_UP: i64 = 1;
const BACKEND_STATE_DOWN: i64 = 2;
const BACKEND_TYPE_UNKNOWN: i64 = 0;
const BACKEND_TYPE_RW: i64 = 1;
const BACKEND_TYPE_RO: i64 = 2;

/// Why the host's log says a backend's state changed.
const STATE_REASON: &str = "set by a Lua script";

/// Sets `proxy.global.backends` to the host's backends (the host glue
/// calls it once, when it makes the runtime: `proxy.global` is shared by
/// every connection). Raw access: `proxy` redirects other keys to the
/// current connection.
pub fn install(lua: &Lua, host: HostHandle) -> mlua::Result<()> {
    let proxy: Table = lua.globals().raw_get("proxy")?;
    let global: Table = proxy.raw_get("global")?;
    let backends = Backends {
        host,
        kept: Kept::default(),
    };
    global.raw_set("backends", backends)
}

/// What scripts set on a backend that the host does not keep.
#[derive(Debug, Default, Clone)]
struct Scripted {
    /// `uuid`: `None` reads nil (0.8: an empty uuid reads nil).
    uuid: Option<Vec<u8>>,
    max_idle_connections: i64,
    min_idle_connections: i64,
}

/// [`Scripted`] by backend index, shared by the list and every object made
/// from it.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<HashMap<u32, Scripted>>>);

impl Kept {
    /// The map; a panic elsewhere while it was held cannot have left an
    /// entry half written (every change is one assignment).
    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Scripted>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read<R>(&self, ndx: u32, read: impl FnOnce(&Scripted) -> R) -> R {
        match self.lock().get(&ndx) {
            Some(scripted) => read(scripted),
            None => read(&Scripted::default()),
        }
    }

    fn write(&self, ndx: u32, write: impl FnOnce(&mut Scripted)) {
        write(self.lock().entry(ndx).or_default());
    }
}

/// A value read as Lua 5.1's `lua_tointeger` reads it, as 0.8 read what
/// scripts assigned: a number truncated, a numeric string converted,
/// anything else 0.
fn to_integer(lua: &Lua, value: Value) -> mlua::Result<i64> {
    Ok(match value {
        Value::Integer(n) => n,
        value @ (Value::Number(_) | Value::String(_)) => {
            lua.coerce_number(value)?.map_or(0, |n| n as i64)
        }
        _ => 0,
    })
}

/// A count as a Lua number.
fn count(n: u64) -> Value {
    i64::try_from(n).map_or(Value::Number(n as f64), Value::Integer)
}

/// The host's state as 0.8's scripts know it (see the module's
/// documentation).
fn script_state(state: &BackendState_NE) -> i64 {
    match state.as_enum() {
        Ok(BackendState::Unknown) => BACKEND_STATE_UNKNOWN,
        Ok(BackendState::Up) => BACKEND_STATE_UP,
        // Offline, and states of a newer host: not to be given clients.
        _ => BACKEND_STATE_DOWN,
    }
}

/// The host's type as 0.8's scripts know it.
fn script_type(backend_type: &BackendType_NE) -> i64 {
    match backend_type.as_enum() {
        Ok(BackendType::ReadWrite) => BACKEND_TYPE_RW,
        Ok(BackendType::ReadOnly) => BACKEND_TYPE_RO,
        _ => BACKEND_TYPE_UNKNOWN,
    }
}

/// `proxy.global.backends`.
struct Backends {
    host: HostHandle,
    kept: Kept,
}

impl UserData for Backends {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Lua 5.1 passes `#u` a second operand (nil): taken and ignored.
        methods.add_meta_method(MetaMethod::Len, |_, this, _: MultiValue| {
            Ok(count(this.host.backends().len() as u64))
        });
    }
}

impl Object for Backends {
    const PATH: &'static str = "proxy.global.backends";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        let index = match key {
            Value::Integer(n) => Some(*n),
            Value::Number(_) | Value::String(_) => lua.coerce_number(key.clone())?.map(|n| {
                // Truncated as Lua's lua_tointeger did (NaN: 0, out of range).
                n as i64
            }),
            _ => None,
        };
        let Some(index) = index else {
            return Ok(Err(format!(
                "{}[...]: number expected, got {}",
                Self::PATH,
                type_name(key)
            )));
        };
        let found = index
            .checked_sub(1)
            .and_then(|ndx| usize::try_from(ndx).ok())
            .and_then(|ndx| self.host.backends().into_iter().nth(ndx));
        let Some(info) = found else {
            return Ok(Ok(Value::Nil));
        };
        let backend = Backend {
            info: Arc::new(info),
            host: self.host.clone(),
            kept: self.kept.clone(),
        };
        Ok(Ok(Value::UserData(lua.create_userdata(backend)?)))
    }
}

/// `proxy.global.backends[i]`: the host's live view of the backend.
struct Backend {
    info: Arc<BackendInfo>,
    host: HostHandle,
    kept: Kept,
}

impl UserData for Backend {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }
}

impl Object for Backend {
    const PATH: &'static str = "proxy.global.backends[...]";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        let Some(key) = key_bytes(key) else {
            return Ok(Ok(Value::Nil));
        };
        let info = &self.info;
        let value = match &*key {
            b"dst" => Value::Table(address(lua, info.address().as_str())?),
            b"state" => Value::Integer(script_state(&info.state())),
            b"type" => Value::Integer(script_type(&info.backend_type())),
            b"connected_clients" => count(info.connected_clients()),
            b"uuid" => match self.kept.read(info.ndx(), |kept| kept.uuid.clone()) {
                Some(uuid) => Value::String(lua.create_string(uuid)?),
                None => Value::Nil,
            },
            b"pool" => Value::UserData(lua.create_userdata(Pool {
                info: Arc::clone(&self.info),
                kept: self.kept.clone(),
            })?),
            _ => Value::Nil,
        };
        Ok(Ok(value))
    }

    fn set(&self, lua: &Lua, key: &Value, value: Value) -> mlua::Result<Result<(), String>> {
        let ndx = self.info.ndx();
        match key_bytes(key).as_deref() {
            Some(b"state") => {
                let wanted = to_integer(lua, value)?;
                let state = match wanted {
                    BACKEND_STATE_UNKNOWN => BackendState::Unknown,
                    BACKEND_STATE_UP => BackendState::Up,
                    BACKEND_STATE_DOWN => BackendState::Down,
                    other => {
                        return Ok(Err(format!(
                            "{}.state = {other}: not a backend state \
                             (proxy.BACKEND_STATE_UNKNOWN, _UP or _DOWN)",
                            Self::PATH
                        )))
                    }
                };
                if script_state(&self.info.state()) == wanted {
                    return Ok(Ok(()));
                }
                match self.host.set_backend_state(
                    ndx,
                    NonExhaustive::new(state),
                    STATE_REASON.into(),
                ) {
                    RResult::ROk(()) => Ok(Ok(())),
                    RResult::RErr(message) => Ok(Err(format!("{}.state: {message}", Self::PATH))),
                }
            }
            Some(b"uuid") => {
                let uuid = match value {
                    Value::Nil => None,
                    Value::String(uuid) => Some(uuid.as_bytes().to_vec()),
                    number @ (Value::Integer(_) | Value::Number(_)) => lua
                        .coerce_string(number)?
                        .map(|uuid| uuid.as_bytes().to_vec()),
                    other => {
                        return Ok(Err(format!(
                            "{}.uuid has to be a string or nil, got {}",
                            Self::PATH,
                            type_name(&other)
                        )))
                    }
                };
                let uuid = uuid.filter(|uuid| !uuid.is_empty());
                self.kept.write(ndx, |kept| kept.uuid = uuid);
                Ok(Ok(()))
            }
            _ => Ok(Err(not_writable(Self::PATH, key))),
        }
    }
}

/// `proxy.global.backends[i].pool`.
struct Pool {
    info: Arc<BackendInfo>,
    kept: Kept,
}

impl UserData for Pool {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }
}

impl Object for Pool {
    const PATH: &'static str = "proxy.global.backends[...].pool";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        let Some(key) = key_bytes(key) else {
            return Ok(Ok(Value::Nil));
        };
        let ndx = self.info.ndx();
        let value = match &*key {
            b"max_idle_connections" => {
                Value::Integer(self.kept.read(ndx, |kept| kept.max_idle_connections))
            }
            b"min_idle_connections" => {
                Value::Integer(self.kept.read(ndx, |kept| kept.min_idle_connections))
            }
            b"users" => Value::UserData(lua.create_userdata(Users(Arc::clone(&self.info)))?),
            _ => Value::Nil,
        };
        Ok(Ok(value))
    }

    fn set(&self, lua: &Lua, key: &Value, value: Value) -> mlua::Result<Result<(), String>> {
        let ndx = self.info.ndx();
        match key_bytes(key).as_deref() {
            Some(b"max_idle_connections") => {
                let n = to_integer(lua, value)?;
                self.kept.write(ndx, |kept| kept.max_idle_connections = n);
                Ok(Ok(()))
            }
            Some(b"min_idle_connections") => {
                let n = to_integer(lua, value)?;
                self.kept.write(ndx, |kept| kept.min_idle_connections = n);
                Ok(Ok(()))
            }
            _ => Ok(Err(not_writable(Self::PATH, key))),
        }
    }
}

/// `proxy.global.backends[i].pool.users`: indexed by user name.
struct Users(Arc<BackendInfo>);

impl UserData for Users {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }
}

impl Object for Users {
    const PATH: &'static str = "proxy.global.backends[...].pool.users";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        // Any name: the host's count is the same for every user. A number
        // is a name as 0.8 read keys (in its string form).
        Ok(Ok(match key {
            Value::String(_) | Value::Integer(_) | Value::Number(_) => {
                Value::UserData(lua.create_userdata(User(Arc::clone(&self.0)))?)
            }
            _ => Value::Nil,
        }))
    }
}

/// `proxy.global.backends[i].pool.users[name]`.
struct User(Arc<BackendInfo>);

impl UserData for User {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }
}

impl Object for User {
    const PATH: &'static str = "proxy.global.backends[...].pool.users[...]";

    fn get(&self, _: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        Ok(Ok(match key_bytes(key).as_deref() {
            Some(b"cur_idle_connections") => count(self.0.idle_connections()),
            _ => Value::Nil,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::PROXY_CONSTANTS;
    use mysql_proxy_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
    use mysql_proxy_plugin_abi::abi_stable::std_types::{RArc, RErr, ROk, RStr, RString, RVec};
    use mysql_proxy_plugin_abi::{
        BackendInfoFfi, BackendInfoFfi_TO, HostFfi, HostFfi_TO, LogLevel, ResultSetResponse,
        SqlError,
    };

    /// A backend as the test host keeps it.
    #[derive(Clone)]
    struct TestBackend {
        address: String,
        state: BackendState,
        backend_type: BackendType,
        connected_clients: u64,
        idle_connections: u64,
    }

    impl TestBackend {
        fn new(address: &str, backend_type: BackendType) -> Self {
            TestBackend {
                address: address.to_string(),
                state: BackendState::Unknown,
                backend_type,
                connected_clients: 0,
                idle_connections: 0,
            }
        }
    }

    /// A host whose backends a test changes while scripts read them.
    #[derive(Clone, Default)]
    struct TestHost {
        backends: Arc<Mutex<Vec<TestBackend>>>,
        /// Every `set_backend_state` call.
        changes: Arc<Mutex<Vec<(u32, BackendState, String)>>>,
        /// Makes `set_backend_state` fail.
        refuse: Arc<Mutex<bool>>,
    }

    impl TestHost {
        fn with(backends: Vec<TestBackend>) -> Self {
            let host = TestHost::default();
            *host.backends.lock().unwrap() = backends;
            host
        }

        fn change(&self, ndx: usize, change: impl FnOnce(&mut TestBackend)) {
            change(&mut self.backends.lock().unwrap()[ndx]);
        }

        fn changes(&self) -> Vec<(u32, BackendState, String)> {
            self.changes.lock().unwrap().clone()
        }
    }

    /// A live view of one of the test host's backends (its address, which
    /// never changes, copied).
    struct View {
        host: TestHost,
        ndx: u32,
        address: String,
    }

    impl View {
        fn backend(&self) -> TestBackend {
            self.host.backends.lock().unwrap()[self.ndx as usize].clone()
        }
    }

    impl BackendInfoFfi for View {
        fn ndx(&self) -> u32 {
            self.ndx
        }
        fn address(&self) -> RStr<'_> {
            self.address.as_str().into()
        }
        fn state(&self) -> BackendState_NE {
            NonExhaustive::new(self.backend().state)
        }
        fn backend_type(&self) -> BackendType_NE {
            NonExhaustive::new(self.backend().backend_type)
        }
        fn connected_clients(&self) -> u64 {
            self.backend().connected_clients
        }
        fn idle_connections(&self) -> u64 {
            self.backend().idle_connections
        }
        fn weight(&self) -> u32 {
            1
        }
        fn connects(&self) -> u64 {
            0
        }
        fn connect_failures(&self) -> u64 {
            0
        }
        fn queries(&self) -> u64 {
            0
        }
        fn bytes(&self) -> u64 {
            0
        }
        fn errors(&self) -> u64 {
            0
        }
        fn state_since(&self) -> u64 {
            0
        }
        fn state_reason(&self) -> RString {
            RString::new()
        }
    }

    impl HostFfi for TestHost {
        fn log(&self, _: LogLevel, _: RStr<'_>) {}
        fn backends(&self) -> RVec<BackendInfo> {
            let backends = self.backends.lock().unwrap().clone();
            (0u32..)
                .zip(backends)
                .map(|(ndx, backend)| {
                    let view = View {
                        host: self.clone(),
                        ndx,
                        address: backend.address,
                    };
                    BackendInfoFfi_TO::from_value(view, TD_Opaque)
                })
                .collect()
        }
        fn add_backend(
            &self,
            address: RStr<'_>,
            backend_type: BackendType_NE,
        ) -> RResult<u32, RString> {
            let mut backends = self.backends.lock().unwrap();
            let backend_type = backend_type.into_enum().unwrap();
            backends.push(TestBackend::new(address.as_str(), backend_type));
            ROk(backends.len() as u32 - 1)
        }
        fn set_backend_state(
            &self,
            ndx: u32,
            state: BackendState_NE,
            reason: RStr<'_>,
        ) -> RResult<(), RString> {
            if *self.refuse.lock().unwrap() {
                return RErr("the host said no".into());
            }
            let state = state.into_enum().unwrap();
            self.changes
                .lock()
                .unwrap()
                .push((ndx, state, reason.to_string()));
            self.change(ndx as usize, |backend| backend.state = state);
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

    /// Three backends: two read/write (IPv4, IPv6), one read-only (a Unix
    /// socket).
    fn host() -> TestHost {
        TestHost::with(vec![
            TestBackend::new("127.0.0.1:3306", BackendType::ReadWrite),
            TestBackend::new("[::1]:3307", BackendType::ReadWrite),
            TestBackend::new("/run/mysqld/mysqld.sock", BackendType::ReadOnly),
        ])
    }

    /// Lua helpers: `fails(f, message)` checks that `f` raises a string
    /// error located in the test chunk and containing `message`.
    const HELPERS: &str = r#"
        function fails(f, message)
            local ok, err = pcall(f)
            assert(not ok, "no error, expected: " .. message)
            assert(type(err) == "string", "the error is a " .. type(err))
            assert(err:match("^test:%d+: "), "the error has no location: " .. err)
            assert(err:find(message, 1, true), "unexpected error: " .. err)
        end
    "#;

    /// A Lua state with `proxy` as the runtime makes it (its constants,
    /// `proxy.global`, a metatable refusing other keys) and the backends
    /// installed.
    fn lua_with(host: &TestHost) -> Lua {
        let lua = Lua::new();
        lua.load(HELPERS).set_name("=helpers").exec().unwrap();
        lua.load(
            r#"
            local constants = ...
            proxy = { global = { config = {} } }
            for name, value in pairs(constants) do proxy[name] = value end
            setmetatable(proxy, { __newindex = function() error("not here") end })
            "#,
        )
        .call::<()>(PROXY_CONSTANTS.iter().copied().collect::<HashMap<_, _>>())
        .unwrap();
        let handle = HostFfi_TO::from_ptr(RArc::new(host.clone()), TD_Opaque);
        install(&lua, handle).unwrap();
        lua
    }

    /// Runs `script` (chunk name `test`) and fails with Lua's message.
    fn exec(lua: &Lua, script: &str) {
        if let Err(error) = lua.load(script).set_name("=test").exec() {
            panic!("{error}");
        }
    }

    #[test]
    fn the_constants_are_the_proxy_tables() {
        let find = |name| {
            PROXY_CONSTANTS
                .iter()
                .find(|(constant, _)| *constant == name)
                .map(|(_, value)| *value)
        };
        assert_eq!(find("BACKEND_STATE_UNKNOWN"), Some(BACKEND_STATE_UNKNOWN));
        assert_eq!(find("BACKEND_STATE_UP"), Some(BACKEND_STATE_UP));
        assert_eq!(find("BACKEND_STATE_DOWN"), Some(BACKEND_STATE_DOWN));
        assert_eq!(find("BACKEND_TYPE_UNKNOWN"), Some(BACKEND_TYPE_UNKNOWN));
        assert_eq!(find("BACKEND_TYPE_RW"), Some(BACKEND_TYPE_RW));
        assert_eq!(find("BACKEND_TYPE_RO"), Some(BACKEND_TYPE_RO));
    }

    #[test]
    fn the_list_is_indexed_from_1_and_counted_live() {
        let host = host();
        let lua = lua_with(&host);
        exec(
            &lua,
            r#"
            local backends = proxy.global.backends
            assert(type(backends) == "userdata")
            assert(#backends == 3)
            assert(backends[0] == nil and backends[4] == nil and backends[-1] == nil)
            assert(backends[1].dst.name == "127.0.0.1:3306")
            assert(backends[3].dst.name == "/run/mysqld/mysqld.sock")
            -- as Lua converts numbers: numeric strings, floats truncated
            assert(backends["2"].dst.name == "[::1]:3307")
            assert(backends[2.7].dst.name == "[::1]:3307")
            assert(backends[0/0] == nil and backends[2^70] == nil)
            local names = {}
            for i = 1, #backends do names[#names + 1] = backends[i].dst.name end
            assert(#names == 3)
            fails(function() return backends.foo end,
                "proxy.global.backends[...]: number expected, got string")
            fails(function() return backends[true] end,
                "proxy.global.backends[...]: number expected, got boolean")
            fails(function() backends[1] = {} end,
                "proxy.global.backends[1] is not writable")
            assert(not pcall(pairs, backends), "pairs refuses it")
            assert(not pcall(ipairs, backends), "ipairs refuses it")
            "#,
        );
        host.add_backend(
            "10.0.0.9:3306".into(),
            NonExhaustive::new(BackendType::ReadOnly),
        )
        .unwrap();
        exec(
            &lua,
            "assert(#proxy.global.backends == 4)\n\
             assert(proxy.global.backends[4].dst.name == '10.0.0.9:3306')",
        );
    }

    #[test]
    fn fields_read_the_host_at_each_access() {
        let host = host();
        host.change(0, |backend| {
            backend.state = BackendState::Up;
            backend.connected_clients = 5;
        });
        let lua = lua_with(&host);
        exec(
            &lua,
            r#"
            kept = proxy.global.backends[1]
            local b = kept
            assert(b.state == proxy.BACKEND_STATE_UP)
            assert(b.type == proxy.BACKEND_TYPE_RW)
            assert(b.connected_clients == 5)
            assert(b.uuid == nil)
            assert(b.dst.address == "127.0.0.1" and b.dst.port == 3306 and b.dst.type == 2)
            local v6 = proxy.global.backends[2].dst
            assert(v6.address == "::1" and v6.port == 3307 and v6.type == 10)
            local unix = proxy.global.backends[3]
            assert(unix.type == proxy.BACKEND_TYPE_RO)
            assert(unix.dst.address == "/run/mysqld/mysqld.sock" and unix.dst.port == nil)
            assert(unix.dst.type == 1)
            assert(unix.state == proxy.BACKEND_STATE_UNKNOWN)
            assert(b.no_such_field == nil and b[1] == nil)
            assert(type(b) == "userdata" and type(b.pool) == "userdata")
            "#,
        );
        host.change(0, |backend| {
            backend.state = BackendState::Down;
            backend.connected_clients = 7;
        });
        exec(
            &lua,
            "assert(kept.state == proxy.BACKEND_STATE_DOWN)\n\
             assert(kept.connected_clients == 7)",
        );
        // Offline (no new clients) reads as DOWN, which scripts skip.
        host.change(0, |backend| backend.state = BackendState::Offline);
        exec(&lua, "assert(kept.state == proxy.BACKEND_STATE_DOWN)");
    }

    #[test]
    fn writing_state_sets_the_hosts() {
        let host = host();
        let lua = lua_with(&host);
        exec(
            &lua,
            r#"
            local b = proxy.global.backends[2]
            b.state = proxy.BACKEND_STATE_DOWN
            assert(b.state == proxy.BACKEND_STATE_DOWN)
            b.state = proxy.BACKEND_STATE_DOWN   -- already: nothing to do
            b.state = "1"                         -- as lua_tointeger reads it
            assert(proxy.global.backends[2].state == proxy.BACKEND_STATE_UP)
            b.state = 1.9                         -- truncated: UP again, nothing to do
            b.state = nil                         -- 0: UNKNOWN
            assert(b.state == proxy.BACKEND_STATE_UNKNOWN)
            "#,
        );
        let reason = STATE_REASON.to_string();
        assert_eq!(
            host.changes(),
            [
                (1, BackendState::Down, reason.clone()),
                (1, BackendState::Up, reason.clone()),
                (1, BackendState::Unknown, reason),
            ]
        );
        host.change(0, |backend| backend.state = BackendState::Offline);
        exec(
            &lua,
            r#"
            local b = proxy.global.backends[1]
            b.state = proxy.BACKEND_STATE_DOWN   -- reads DOWN already: stays offline
            fails(function() b.state = 3 end,
                "proxy.global.backends[...].state = 3: not a backend state")
            fails(function() b.state = -1 end,
                "proxy.global.backends[...].state = -1: not a backend state")
            "#,
        );
        assert_eq!(host.changes().len(), 3);
        assert_eq!(
            host.backends.lock().unwrap()[0].state,
            BackendState::Offline
        );
        *host.refuse.lock().unwrap() = true;
        exec(
            &lua,
            r#"
            fails(function() proxy.global.backends[1].state = proxy.BACKEND_STATE_UP end,
                "proxy.global.backends[...].state: the host said no")
            "#,
        );
    }

    #[test]
    fn uuid_is_kept_per_backend() {
        let host = host();
        let lua = lua_with(&host);
        lua.globals()
            .set("odd", lua.create_string(b"\xff\x00uuid").unwrap())
            .unwrap();
        exec(
            &lua,
            r#"
            local backends = proxy.global.backends
            backends[1].uuid = "8a5e2b5c-1111"
            assert(backends[1].uuid == "8a5e2b5c-1111", "kept across objects")
            assert(backends[2].uuid == nil, "per backend")
            backends[2].uuid = odd
            assert(backends[2].uuid == odd, "byte for byte")
            backends[2].uuid = 42
            assert(backends[2].uuid == "42", "a number as its string")
            backends[2].uuid = ""
            assert(backends[2].uuid == nil, "empty reads nil")
            backends[1].uuid = nil
            assert(backends[1].uuid == nil)
            fails(function() backends[1].uuid = {} end,
                "proxy.global.backends[...].uuid has to be a string or nil, got table")
            fails(function() backends[1].uuid = true end,
                "proxy.global.backends[...].uuid has to be a string or nil, got boolean")
            "#,
        );
    }

    #[test]
    fn the_pool_keeps_its_limits_and_counts_idle_connections_live() {
        let host = host();
        host.change(1, |backend| backend.idle_connections = 4);
        let lua = lua_with(&host);
        exec(
            &lua,
            r#"
            local pool = proxy.global.backends[2].pool
            assert(pool.max_idle_connections == 0 and pool.min_idle_connections == 0)
            pool.max_idle_connections = 8
            pool.min_idle_connections = 2.7
            local again = proxy.global.backends[2].pool
            assert(again.max_idle_connections == 8 and again.min_idle_connections == 2)
            assert(proxy.global.backends[1].pool.max_idle_connections == 0, "per backend")
            pool.max_idle_connections = "12"
            assert(pool.max_idle_connections == 12)
            pool.min_idle_connections = "many"     -- lua_tointeger: 0
            assert(pool.min_idle_connections == 0)
            assert(pool.no_such_field == nil)
            user = pool.users["app"]
            assert(user.cur_idle_connections == 4)
            assert(pool.users.root.cur_idle_connections == 4, "the host counts every user")
            assert(user.no_such_field == nil and pool.users[true] == nil)
            assert(proxy.global.backends[1].pool.users.app.cur_idle_connections == 0)
            "#,
        );
        host.change(1, |backend| backend.idle_connections = 1);
        exec(&lua, "assert(user.cur_idle_connections == 1)");
    }

    #[test]
    fn other_fields_are_not_writable() {
        let lua = lua_with(&host());
        exec(
            &lua,
            r#"
            local b = proxy.global.backends[1]
            for _, key in ipairs({ "dst", "type", "connected_clients", "pool", "foo" }) do
                fails(function() b[key] = 1 end,
                    "proxy.global.backends[...]." .. key .. " is not writable")
            end
            fails(function() b[1] = 1 end, "proxy.global.backends[...][1] is not writable")
            fails(function() b.pool.users = 1 end,
                "proxy.global.backends[...].pool.users is not writable")
            fails(function() b.pool.users.app = 1 end,
                "proxy.global.backends[...].pool.users.app is not writable")
            fails(function() b.pool.users.app.cur_idle_connections = 1 end,
                "proxy.global.backends[...].pool.users[...].cur_idle_connections is not writable")
            "#,
        );
    }

    #[test]
    fn errors_carry_the_scripts_line() {
        let lua = lua_with(&host());
        let error = lua
            .load("\n\nproxy.global.backends[1].foo = 1")
            .set_name("=script.lua")
            .exec()
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("script.lua:3: proxy.global.backends[...].foo is not writable"),
            "{message}"
        );
    }
}
