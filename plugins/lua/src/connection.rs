//! `proxy.connection` (MySQL Proxy 0.8's connection object): the session
//! as a script reads and changes it. The object a script holds is a plain
//! table of the connection's own; its reads and writes go to one userdata
//! for the whole Lua state, a [`SessionSlot`], which the runtime points at
//! the [`SessionAccess`] of the hook being run (borrowing the host's
//! session) for the length of that hook only. One slot made once, rather
//! than a userdata made for each hook call, keeps a hook call from
//! allocating (and the garbage collector from running) for it.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::Arc;

use mlua::{Function, Lua, Table, UserData, UserDataMethods, Value};
use mysql_proxy_plugin_abi::abi_stable::std_types::{RNone, RSome};
use mysql_proxy_plugin_abi::Session;

use crate::queries::{raising, reply};

/// What the plugin saw of the connection that the host's session does not
/// keep: the server's challenge (from its handshake) and the client's
/// answer to it (from its auth response).
#[derive(Debug, Default, Clone)]
pub struct Captured {
    pub scramble: Vec<u8>,
    pub auth_response: Vec<u8>,
    /// The auth plugin the server's handshake named.
    pub greeting_auth_plugin: Vec<u8>,
    /// Set once the server accepted the login: the server socket's
    /// `username` and `scrambled_password` are the client's from then on.
    pub server_logged_in: bool,
}

/// The session of the hook being run, as `proxy.connection` reaches it.
pub struct SessionAccess<'a, 'b> {
    pub session: &'a mut Session<'b>,
    pub captured: &'a Captured,
}

/// A side of the connection, for its socket object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// What `proxy.connection` does with the session of the hook being run.
pub(crate) trait SessionOps {
    fn get(&self, lua: &Lua, key: &str) -> mlua::Result<Value>;
    fn set(&mut self, key: &str, value: Value) -> mlua::Result<()>;
}

/// Where the session of the hook being run is: set and cleared by the
/// runtime from Rust (no Lua call), read by the [`SessionSlot`] userdata.
#[derive(Default)]
pub(crate) struct SlotCell {
    pub(crate) current: Cell<Option<NonNull<dyn SessionOps>>>,
    /// The `client` and `server` socket objects made during the hook
    /// being run: a script reading `proxy.connection.server` several
    /// times in a hook gets one object (making one is most of what a
    /// read costs). Cleared when the hook ends or writes to the session.
    sockets: RefCell<[Option<Table>; 2]>,
}

impl SlotCell {
    /// Forgets the socket objects: the hook ended or changed the session.
    pub(crate) fn forget_sockets(&self) {
        *self.sockets.borrow_mut() = [None, None];
    }
}

// SAFETY: the pointer is set, cleared and followed only under the
// runtime's lock, on the thread holding it, while the hook it was set for
// runs; the runtime clears it before that hook's session goes away
// (runtime.rs, `SlotGuard`). No two threads reach it at once: the lock
// serialises every use of the Lua state.
unsafe impl Send for SlotCell {}
// SAFETY: as for `Send`.
unsafe impl Sync for SlotCell {}

/// The userdata every `proxy.connection` object reaches: it leads to the
/// session of the hook being run, and to none between hooks.
pub(crate) struct SessionSlot(pub(crate) Arc<SlotCell>);

impl UserData for SessionSlot {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Both answer `(ok, value or message)`: the Lua side raises the
        // message at the script's line (runtime.rs, the prelude).
        methods.add_method("get", |lua, this, key: mlua::LuaString| {
            let socket = match key.as_bytes().as_ref() {
                b"client" => Some(0),
                b"server" => Some(1),
                _ => None,
            };
            let cached =
                socket.and_then(|side| this.0.sockets.borrow().get(side).cloned().flatten());
            if let Some(object) = cached {
                return reply(lua, Ok(Value::Table(object)));
            }
            let got = this
                .0
                .current
                .get()
                .ok_or_else(outside_a_hook)
                .and_then(|session| {
                    // SAFETY: see `unsafe impl Send for SlotCell`: the session
                    // is alive while the pointer is set.
                    unsafe { session.as_ref() }.get(lua, &key.to_str()?)
                });
            if let (Some(side), Ok(Value::Table(object))) = (socket, &got) {
                if let Some(slot) = this.0.sockets.borrow_mut().get_mut(side) {
                    *slot = Some(object.clone());
                }
            }
            reply(lua, got.map_err(|error| message(&error)))
        });
        methods.add_method(
            "set",
            |lua, this, (key, value): (mlua::LuaString, Value)| {
                this.0.forget_sockets();
                let set =
                    this.0
                        .current
                        .get()
                        .ok_or_else(outside_a_hook)
                        .and_then(|mut session| {
                            // SAFETY: as above; nothing else holds the session meanwhile.
                            unsafe { session.as_mut() }.set(&key.to_str()?, value)
                        });
                reply(
                    lua,
                    set.map(|()| Value::Nil).map_err(|error| message(&error)),
                )
            },
        );
    }
}

/// The text of an error raised from Rust.
fn message(error: &mlua::Error) -> String {
    match error {
        mlua::Error::RuntimeError(message) => message.clone(),
        other => other.to_string(),
    }
}

fn outside_a_hook() -> mlua::Error {
    mlua::Error::runtime("proxy.connection is only usable while a hook runs")
}

impl SessionOps for SessionAccess<'_, '_> {
    fn get(&self, lua: &Lua, key: &str) -> mlua::Result<Value> {
        match key {
            "backend_ndx" => Ok(Value::Integer(
                self.session
                    .backend_ndx()
                    .into_option()
                    .map_or(0, |ndx| i64::from(ndx) + 1),
            )),
            "client" => self.socket(lua, Side::Client),
            "server" if self.session.has_server() => self.socket(lua, Side::Server),
            "default_db" | "thread_id" | "mysqld_version" => Err(mlua::Error::runtime(format!(
                "proxy.connection.{key} is deprecated, use proxy.connection.client.{key} or \
                 proxy.connection.server.{key} instead"
            ))),
            _ => Ok(Value::Nil),
        }
    }

    fn set(&mut self, key: &str, value: Value) -> mlua::Result<()> {
        match (key, value) {
            ("backend_ndx", value) => {
                let ndx = match value {
                    Value::Integer(n) => n,
                    Value::Number(n) if n.fract() == 0.0 => n as i64,
                    _ => {
                        return Err(mlua::Error::runtime(
                            "proxy.connection.backend_ndx needs a number",
                        ))
                    }
                };
                // 1-based for scripts; 0 parks the server connection.
                match u32::try_from(ndx) {
                    Ok(0) => self.session.set_backend_ndx(RNone),
                    Ok(n) => self.session.set_backend_ndx(RSome(n - 1)),
                    Err(_) => {
                        return Err(mlua::Error::runtime(format!(
                            "proxy.connection.backend_ndx = {ndx}: no such backend"
                        )))
                    }
                }
                Ok(())
            }
            ("connection_close", Value::Boolean(close)) => {
                self.session.set_close_after_reply(close);
                Ok(())
            }
            ("connection_close", _) => Err(mlua::Error::runtime(
                "proxy.connection.connection_close needs a boolean",
            )),
            (key, _) => Err(mlua::Error::runtime(format!(
                "proxy.connection.{key} is not writable"
            ))),
        }
    }
}

impl SessionAccess<'_, '_> {
    /// A socket object: a read-only table of the side's fields (built on
    /// each read of `proxy.connection.client` / `.server`).
    fn socket(&self, lua: &Lua, side: Side) -> mlua::Result<Value> {
        let session = &self.session;
        let socket = lua.create_table()?;
        let default_db = match side {
            Side::Client => session.default_db(),
            Side::Server => session.server_default_db(),
        };
        socket.set("default_db", lua.create_string(default_db.as_str())?)?;
        let (src, dst) = match side {
            Side::Client => (
                Some(session.client_address().to_string()),
                Some(session.local_address().to_string()),
            ),
            // The proxy's own address toward the server is not kept.
            Side::Server => (None, Some(session.server_address().to_string())),
        };
        if let Some(src) = src.filter(|a| !a.is_empty()) {
            socket.set("src", address(lua, &src)?)?;
        }
        if let Some(dst) = dst.filter(|a| !a.is_empty()) {
            socket.set("dst", address(lua, &dst)?)?;
        }
        let logged_in = match side {
            Side::Client => {
                !self.captured.auth_response.is_empty() || !session.username().is_empty()
            }
            Side::Server => self.captured.server_logged_in,
        };
        if logged_in {
            socket.set("username", lua.create_string(session.username().as_str())?)?;
            socket.set(
                "scrambled_password",
                lua.create_string(&self.captured.auth_response)?,
            )?;
        }
        let auth_plugin = session.auth_plugin_name();
        if !auth_plugin.is_empty() {
            socket.set("auth_plugin_name", lua.create_string(auth_plugin.as_str())?)?;
        } else if !self.captured.greeting_auth_plugin.is_empty() {
            socket.set(
                "auth_plugin_name",
                lua.create_string(&self.captured.greeting_auth_plugin)?,
            )?;
        }
        let version = session.server_version();
        if !version.is_empty() {
            socket.set("mysqld_version", version_number(version.as_str()))?;
            socket.set("thread_id", session.server_thread_id())?;
            socket.set(
                "scramble_buffer",
                lua.create_string(&self.captured.scramble)?,
            )?;
        }
        // The object is an empty table reading through to the fields, so
        // that every assignment reaches `__newindex` and is refused. The
        // metamethods are made once per state: a socket object is made
        // at each hook that reads one.
        let (fields_metatable, refuse_write) = socket_metamethods(lua)?;
        socket.set_metatable(Some(fields_metatable))?;
        let object = lua.create_table()?;
        let metatable = lua.create_table()?;
        metatable.raw_set("__index", socket)?;
        metatable.raw_set("__newindex", refuse_write)?;
        object.set_metatable(Some(metatable))?;
        Ok(Value::Table(object))
    }
}

/// Where [`socket_metamethods`] keeps its two values in a Lua state.
const SOCKET_METAMETHODS_KEY: &str = "mysql-proxy-lua.connection.socket";

/// The metatable of a socket object's fields (reading `.address`, removed
/// in 0.8, raises 0.8's error; another missing key reads nil) and the
/// `__newindex` refusing every write, made once per Lua state.
fn socket_metamethods(lua: &Lua) -> mlua::Result<(Table, Function)> {
    if let Value::Table(made) = lua.named_registry_value::<Value>(SOCKET_METAMETHODS_KEY)? {
        return Ok((made.raw_get(1)?, made.raw_get(2)?));
    }
    let missing = lua.create_function(|lua, (_, key): (Value, mlua::LuaString)| {
        if key.as_bytes().as_ref() == b"address" {
            let deprecated = ".address is deprecated. Use .src.name or .dst.name instead";
            return reply(lua, Err(deprecated.to_string()));
        }
        reply(lua, Ok(Value::Nil))
    })?;
    let fields_metatable = lua.create_table()?;
    fields_metatable.raw_set("__index", raising(lua, missing)?)?;
    let refuse = lua.create_function(|lua, (_, key, _): (Value, mlua::LuaString, Value)| {
        let refused = format!(
            "proxy.connection socket field {} is not writable",
            key.to_string_lossy()
        );
        reply(lua, Err(refused))
    })?;
    let refuse_write = raising(lua, refuse)?;
    let made = lua.create_table()?;
    made.raw_set(1, &fields_metatable)?;
    made.raw_set(2, &refuse_write)?;
    lua.set_named_registry_value(SOCKET_METAMETHODS_KEY, made)?;
    Ok((fields_metatable, refuse_write))
}

/// An address object: `name` as given (`ip:port`, `[ip6]:port` or a
/// socket path), `address` (the IP or the path), `port` (nil for a Unix
/// socket) and `type` (the address family: 2 IPv4, 10 IPv6, 1 Unix).
pub(crate) fn address(lua: &Lua, name: &str) -> mlua::Result<mlua::Table> {
    let table = lua.create_table()?;
    table.set("name", name)?;
    let parsed = name
        .rsplit_once(':')
        .and_then(|(host, port)| port.parse::<u16>().ok().map(|port| (host, port)));
    match parsed {
        Some((host, port)) => {
            let ipv6 = host.starts_with('[');
            table.set(
                "address",
                host.trim_start_matches('[').trim_end_matches(']'),
            )?;
            table.set("port", port)?;
            table.set("type", if ipv6 { 10 } else { 2 })?;
        }
        None => {
            table.set("address", name)?;
            table.set("type", 1)?;
        }
    }
    Ok(table)
}

/// A server version string as MySQL Proxy gives it to scripts: the leading
/// `major.minor.patch` as one number, e.g. `5.0.45-log` is 50045.
fn version_number(version: &str) -> i64 {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|part| part.parse::<i64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    major * 10_000 + minor * 100 + patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Outcome, Runtime, ScriptError};
    use mlua::MultiValue;
    use mysql_proxy_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
    use mysql_proxy_plugin_abi::abi_stable::std_types::{ROption, RStr};
    use mysql_proxy_plugin_abi::{SessionFfi, SessionFfi_TO};

    /// A host session as a test sets it up.
    #[derive(Default)]
    struct TestSession {
        backend_ndx: Option<u32>,
        has_server: bool,
        close: bool,
        /// Every `set_backend_ndx` call.
        swaps: Vec<Option<u32>>,
    }

    impl SessionFfi for TestSession {
        fn connection_id(&self) -> u64 {
            9
        }
        fn listener_ndx(&self) -> u32 {
            0
        }
        fn client_address(&self) -> RStr<'_> {
            "127.0.0.1:50000".into()
        }
        fn local_address(&self) -> RStr<'_> {
            "127.0.0.1:4040".into()
        }
        fn backend_ndx(&self) -> ROption<u32> {
            self.backend_ndx.into()
        }
        fn server_address(&self) -> RStr<'_> {
            "[::1]:3306".into()
        }
        fn server_thread_id(&self) -> u32 {
            77
        }
        fn server_version(&self) -> RStr<'_> {
            "5.0.45-log".into()
        }
        fn server_capabilities(&self) -> u64 {
            0
        }
        fn client_capabilities(&self) -> u64 {
            0
        }
        fn username(&self) -> RStr<'_> {
            "app".into()
        }
        fn default_db(&self) -> RStr<'_> {
            "shop".into()
        }
        fn auth_plugin_name(&self) -> RStr<'_> {
            "mysql_native_password".into()
        }
        fn server_status(&self) -> u16 {
            2
        }
        fn close_after_reply(&self) -> bool {
            self.close
        }
        fn set_close_after_reply(&mut self, close: bool) {
            self.close = close;
        }
        fn set_backend_ndx(&mut self, ndx: ROption<u32>) {
            let ndx = ndx.into_option();
            self.swaps.push(ndx);
            self.backend_ndx = ndx;
            self.has_server = ndx.is_some();
        }
        fn has_server(&self) -> bool {
            self.has_server
        }
        fn server_default_db(&self) -> RStr<'_> {
            "other".into()
        }
    }

    /// Runs hook `read_query` of `script` once with `session`.
    fn run(script: &str, session: &mut TestSession) -> Result<Outcome, ScriptError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.lua");
        std::fs::write(&path, script).unwrap();
        let runtime = Runtime::new().unwrap();
        let mut connection = runtime.connection(&path);
        let captured = Captured {
            scramble: b"0123456789abcdefghij".to_vec(),
            auth_response: vec![0, 1, 2, 0xff],
            greeting_auth_plugin: Vec::new(),
            server_logged_in: true,
        };
        let mut session = SessionFfi_TO::from_ptr(session, TD_Opaque);
        let access = SessionAccess {
            session: &mut session,
            captured: &captured,
        };
        runtime.call_hook(&mut connection, "read_query", Some(access), |_, _, _| {
            Ok(MultiValue::new())
        })
    }

    #[test]
    fn scripts_read_the_session_through_proxy_connection() {
        let mut session = TestSession {
            backend_ndx: Some(1),
            has_server: true,
            ..TestSession::default()
        };
        let outcome = run(
            "function read_query()\n\
               local c = proxy.connection\n\
               assert(c.backend_ndx == 2, 'backend_ndx is 1-based')\n\
               assert(c.client.username == 'app' and c.client.default_db == 'shop')\n\
               assert(c.client.scrambled_password == '\\0\\1\\2\\255')\n\
               assert(c.client.src.name == '127.0.0.1:50000' and c.client.src.port == 50000)\n\
               assert(c.client.src.type == 2 and c.client.dst.port == 4040)\n\
               assert(c.server.dst.address == '::1' and c.server.dst.type == 10)\n\
               assert(c.server.mysqld_version == 50045 and c.server.thread_id == 77)\n\
               assert(c.server.default_db == 'other')\n\
               assert(#c.server.scramble_buffer == 20)\n\
               assert(c.server.no_such_field == nil and c.no_such_key == nil)\n\
               return 1\n\
             end",
            &mut session,
        );
        assert_eq!(outcome, Ok(Outcome::Returned(Some(1))));
    }

    #[test]
    fn scripts_change_the_session_through_proxy_connection() {
        let mut session = TestSession {
            has_server: true,
            backend_ndx: Some(0),
            ..TestSession::default()
        };
        let outcome = run(
            "function read_query()\n\
               proxy.connection.backend_ndx = 0\n\
               assert(proxy.connection.server == nil, 'parked')\n\
               proxy.connection.backend_ndx = 3\n\
               assert(proxy.connection.server ~= nil, 'taken')\n\
               proxy.connection.connection_close = true\n\
             end",
            &mut session,
        );
        assert_eq!(outcome, Ok(Outcome::Returned(None)));
        assert_eq!(session.swaps, [None, Some(2)]);
        assert!(session.close);
    }

    #[test]
    fn removed_and_read_only_keys_raise_mysql_proxys_errors() {
        for (line, expected) in [
            (
                "local x = proxy.connection.default_db",
                "use proxy.connection.client.default_db",
            ),
            ("local x = proxy.connection.thread_id", "deprecated"),
            (
                "local x = proxy.connection.client.address",
                ".address is deprecated",
            ),
            (
                "proxy.connection.foo = 1",
                "proxy.connection.foo is not writable",
            ),
            ("proxy.connection.connection_close = 1", "needs a boolean"),
            ("proxy.connection.client.username = 'x'", "is not writable"),
        ] {
            let script = format!("function read_query()\n{line}\nend");
            match run(&script, &mut TestSession::default()) {
                Err(ScriptError::Hook { message, .. }) => {
                    assert!(message.contains(expected), "{line}: {message}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn versions_read_as_mysql_proxy_reads_them() {
        assert_eq!(version_number("5.0.45-log"), 50045);
        assert_eq!(version_number("10.11.19-MariaDB-0+deb12u1"), 101119);
        // MariaDB's replication-compatible prefix is what 0.8 saw.
        assert_eq!(version_number("5.5.5-10.11.19-MariaDB"), 50505);
        assert_eq!(version_number(""), 0);
    }
}
