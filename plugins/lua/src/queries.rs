//! `proxy.queries` (MySQL Proxy 0.8's injection queue): the queries a
//! script queues for the server with `append`, `prepend` and `reset`,
//! which the host then sends one at a time, calling `read_query_result`
//! for each.
//!
//! The queue lives in a [`Queries`] handle: the host keeps one per
//! connection and puts it in the connection's private table as
//! `proxy.queries` ([`Queries::install`]); the script's calls change the
//! same queue the host reads, so what `read_query_result` appends,
//! prepends or resets is what the host finds when it takes the next entry
//! ([`Queries::pop_front`]). The host turns an entry into the plugin ABI's
//! [`Injection`] with [`to_injection`].
//!
//! How it behaves, and the choices MySQL Proxy 0.8 left to us:
//!
//! - `proxy.queries` is a userdata, as in 0.8, with the methods `append`,
//!   `prepend`, `reset` and `len` (documented by 0.8 but missing from it:
//!   it returns the same as `#proxy.queries`). Reading another key gives
//!   nil; writing any key raises Lua's own "attempt to index" error, as in
//!   0.8 (its metatable had no `__newindex` either).
//! - `append(id, packet [, opts])` reads its arguments the way 0.8 read
//!   them with Lua's auxiliary library: `id` is a number or a string Lua
//!   converts to one, truncated toward zero (as 0.8's Lua did on 64-bit
//!   machines) and kept whole as an `i64` (0.8 kept a C `int`); `packet` is
//!   a string, or a number taken in its string form, kept byte for byte
//!   whatever its size (the host splits it into packets); `opts` is nil,
//!   absent or a table whose `resultset_is_needed` (read like any field,
//!   metamethods included) is nil or a boolean.
//! - Errors are worded as Lua's `luaL_argerror` words them and raised as a
//!   string located at the script's line: `bad argument #1 to 'append'
//!   (number expected, got string)`. As in Lua, arguments are counted with
//!   `self` but one less in a method call (`proxy.queries:append(...)`),
//!   so that `id` is #1 there, and a bad `self` reads `calling 'append' on
//!   bad self (...)`. A `resultset_is_needed` that is not a boolean is an
//!   argument error on `opts` (`resultset_is_needed = yes, expected a
//!   boolean`); an `opts` that is not a table is a type error (`table
//!   expected, got string`).
//! - Each entry records when it was queued: an injection's `query_time`
//!   and `response_time` count from the `append` or `prepend` call, as in
//!   0.8.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use mlua::{
    Function, Lua, MetaMethod, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value,
};
use mysql_proxy_plugin_abi::Injection;

/// A query a script queued, as the host sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The script's id for it, handed back as `inj.id`.
    pub id: i64,
    /// The command payload, first byte the `COM_*` code, as the script gave
    /// it.
    pub packet: Vec<u8>,
    /// Whether the script asked for the whole response
    /// (`resultset_is_needed = true`): the host buffers it and
    /// `read_query_result` decides whether the client sees it.
    pub resultset_is_needed: bool,
    /// When `append` or `prepend` queued it: the start of `inj.query_time`
    /// and `inj.response_time`.
    pub queued_at: Instant,
}

/// The plugin ABI's form of a queued query, for the host to send.
pub fn to_injection(queued: &Queued) -> Injection {
    Injection {
        id: queued.id,
        payload: queued.packet.clone().into(),
        buffer_result: queued.resultset_is_needed,
    }
}

/// A connection's injection queue, and the userdata scripts see as
/// `proxy.queries`. A handle: its clones share one queue, so that the host
/// keeps one and the script's `proxy.queries` is another.
///
/// How the host runs it (0.8's order):
///
/// ```text
/// before read_query:   queries.reset(); queries.install(&private)?;
/// after PROXY_SEND_QUERY:
///     while let Some(entry) = queries.pop_front() {
///         send to_injection(&entry), then call read_query_result(inj):
///         proxy.queries holds the entries after this one, and what the
///         hook appends, prepends or resets is what the next pop finds
///     }
/// ```
#[derive(Clone, Default)]
pub struct Queries {
    queue: Arc<Mutex<VecDeque<Queued>>>,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.lock().iter()).finish()
    }
}

impl Queries {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this queue the connection's `proxy.queries` (`private` being
    /// the table [`crate::runtime::Runtime::with_private`] hands over).
    /// MySQL Proxy 0.8 set it again before each hook, so that a script
    /// that assigned something else to `proxy.queries` finds the queue
    /// again at the next hook; the host may do the same.
    pub fn install(&self, private: &Table) -> mlua::Result<()> {
        private.raw_set("queries", self.clone())
    }

    /// Number of entries queued.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Takes the head of the queue, leaving the rest for the script to see
    /// (and change) in `read_query_result`.
    pub fn pop_front(&self) -> Option<Queued> {
        self.lock().pop_front()
    }

    /// Takes every entry out, in queue order, leaving the queue empty.
    pub fn take(&self) -> Vec<Queued> {
        self.lock().drain(..).collect()
    }

    /// Puts entries taken out with [`Queries::take`] back at the head, in
    /// their order, ahead of anything queued since (what the script
    /// appended goes after them, as if they had never left).
    pub fn put_back(&self, entries: Vec<Queued>) {
        let mut queue = self.lock();
        for entry in entries.into_iter().rev() {
            queue.push_front(entry);
        }
    }

    /// Removes every entry (`proxy.queries:reset()`; 0.8 emptied the queue
    /// before every `read_query`).
    pub fn reset(&self) {
        self.lock().clear();
    }

    fn push(&self, end: End, queued: Queued) {
        let mut queue = self.lock();
        match end {
            End::Head => queue.push_front(queued),
            End::Tail => queue.push_back(queued),
        }
    }

    /// The queue; a panic elsewhere while it was held cannot have left it
    /// half changed (every change is one `VecDeque` call).
    fn lock(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where `append` and `prepend` queue.
#[derive(Clone, Copy)]
enum End {
    Head,
    Tail,
}

impl UserData for Queries {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with(MetaMethod::Index, |lua| {
            let methods = lua.create_table()?;
            let append = lua.create_function(|lua, args: MultiValue| {
                reply(lua, queue_entry(lua, &args, End::Tail)?)
            })?;
            let prepend = lua.create_function(|lua, args: MultiValue| {
                reply(lua, queue_entry(lua, &args, End::Head)?)
            })?;
            let reset = lua.create_function(|lua, args: MultiValue| {
                let answer = this(lua, &args).map(|queries| {
                    queries.reset();
                    Value::Nil
                });
                reply(lua, answer)
            })?;
            let len = lua.create_function(|lua, args: MultiValue| {
                let answer = this(lua, &args).map(|queries| count(queries.len()));
                reply(lua, answer)
            })?;
            methods.raw_set("append", raising(lua, append)?)?;
            methods.raw_set("prepend", raising(lua, prepend)?)?;
            methods.raw_set("reset", raising(lua, reset)?)?;
            methods.raw_set("len", raising(lua, len)?)?;
            Ok(methods)
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Lua 5.1 passes `#u` a second operand (nil): taken and ignored.
        methods.add_meta_method(MetaMethod::Len, |_, this, _: MultiValue| {
            Ok(count(this.len()))
        });
    }
}

/// `append` and `prepend`: the arguments checked in 0.8's order (`self`,
/// `id`, `packet`, `opts`), then the entry queued.
fn queue_entry(lua: &Lua, args: &MultiValue, end: End) -> mlua::Result<Result<Value, String>> {
    let queries = match this(lua, args) {
        Ok(queries) => queries,
        Err(message) => return Ok(Err(message)),
    };
    let id = match args.get(1) {
        Some(Value::Integer(id)) => *id,
        Some(value) => match lua.coerce_number(value.clone())? {
            // Lua 5.1's lua_tointeger on 64-bit machines: truncated.
            Some(id) => id as i64,
            None => return Ok(Err(type_error(lua, args, 2, "number"))),
        },
        None => return Ok(Err(type_error(lua, args, 2, "number"))),
    };
    let packet = match args.get(2) {
        Some(Value::String(packet)) => packet.as_bytes().to_vec(),
        // luaL_checklstring takes a number in its string form.
        Some(value @ (Value::Integer(_) | Value::Number(_))) => {
            match lua.coerce_string(value.clone())? {
                Some(packet) => packet.as_bytes().to_vec(),
                None => return Ok(Err(type_error(lua, args, 3, "string"))),
            }
        }
        _ => return Ok(Err(type_error(lua, args, 3, "string"))),
    };
    let resultset_is_needed = match args.get(3) {
        None | Some(Value::Nil) => false,
        Some(Value::Table(opts)) => match opts.get::<Value>("resultset_is_needed")? {
            Value::Nil => false,
            Value::Boolean(needed) => needed,
            other => {
                let shown = match &other {
                    Value::String(_) | Value::Integer(_) | Value::Number(_) => lua
                        .coerce_string(other.clone())?
                        .map(|shown| shown.to_string_lossy()),
                    _ => None,
                };
                let shown = shown.unwrap_or_else(|| type_name(&other).to_string());
                let message = format!("resultset_is_needed = {shown}, expected a boolean");
                return Ok(Err(argument_error(lua, 4, &message)));
            }
        },
        Some(_) => return Ok(Err(type_error(lua, args, 4, "table"))),
    };
    queries.push(
        end,
        Queued {
            id,
            packet,
            resultset_is_needed,
            queued_at: Instant::now(),
        },
    );
    Ok(Ok(Value::Nil))
}

/// The queue a method was called on (its first argument), or the error
/// for a bad `self`.
fn this(lua: &Lua, args: &MultiValue) -> Result<Queries, String> {
    let queries = match args.front() {
        Some(Value::UserData(object)) => object.borrow::<Queries>().ok().map(|q| q.clone()),
        _ => None,
    };
    queries.ok_or_else(|| type_error(lua, args, 1, "proxy.queries"))
}

/// A count as a Lua number.
fn count(n: usize) -> Value {
    i64::try_from(n).map_or(Value::Number(n as f64), Value::Integer)
}

/// Lua's `luaL_typerror`: argument `narg` (1-based, `self` included) is
/// not of the type `expected`.
fn type_error(lua: &Lua, args: &MultiValue, narg: usize, expected: &str) -> String {
    let got = args
        .get(narg.saturating_sub(1))
        .map_or("no value", type_name);
    argument_error(lua, narg, &format!("{expected} expected, got {got}"))
}

/// Lua 5.1's `luaL_argerror` message (without the location, which
/// [`raising`] adds): the method's name as the script called it, read
/// from the frame of the function the script called (the trampoline of
/// [`raising`], level 1 from this Rust function), and the argument counted
/// without `self` in a method call.
pub(crate) fn argument_error(lua: &Lua, narg: usize, extra: &str) -> String {
    let (name, method) = lua
        .inspect_stack(1, |frame| {
            let names = frame.names();
            (
                names.name.map(|name| name.into_owned()),
                names.name_what == Some("method"),
            )
        })
        .unwrap_or((None, false));
    let name = name.unwrap_or_else(|| "?".to_string());
    if method {
        if narg <= 1 {
            return format!("calling '{name}' on bad self ({extra})");
        }
        return format!("bad argument #{} to '{name}' ({extra})", narg - 1);
    }
    format!("bad argument #{narg} to '{name}' ({extra})")
}

/// A value's type as Lua names it (`type()`).
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// A Rust function's answer as the Lua side of [`raising`] reads it.
pub(crate) fn reply(lua: &Lua, answer: Result<Value, String>) -> mlua::Result<(bool, Value)> {
    match answer {
        Ok(value) => Ok((true, value)),
        Err(message) => Ok((false, Value::String(lua.create_string(message)?))),
    }
}

/// Turns a Rust function answering `(true, value)` or `(false, message)`
/// into the function scripts call, which returns the value or raises the
/// message with `error(message, 2)`: a string located at the script's line,
/// as Lua's `luaL_error` raised them in 0.8's C code. (An error returned
/// from Rust reaches Lua as a userdata, which `pcall` would hand scripts.)
const RAISING: &str = r#"
local answer, error = ...
return function(...)
    local ok, value = answer(...)
    if not ok then error(value, 2) end
    if value ~= nil then return value end
end
"#;

/// Where the compiled [`RAISING`] is kept in a Lua state.
const RAISING_KEY: &str = "mysql-proxy-lua.queries.raising";

/// See [`RAISING`].
pub(crate) fn raising(lua: &Lua, answer: Function) -> mlua::Result<Function> {
    let make = match lua.named_registry_value::<Value>(RAISING_KEY)? {
        Value::Function(make) => make,
        _ => {
            let make = lua
                .load(RAISING)
                .set_name("=mysql-proxy raising")
                .into_function()?;
            lua.set_named_registry_value(RAISING_KEY, &make)?;
            make
        }
    };
    // `error` as the state had it at the start, whatever scripts do to
    // `_G.error` later.
    let error: Function = lua.globals().raw_get("error")?;
    make.call((answer, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    /// A Lua state with the helpers and `proxy.queries` set to `queries`.
    fn lua_with(queries: &Queries) -> Lua {
        let lua = Lua::new();
        lua.load(HELPERS).set_name("=helpers").exec().unwrap();
        let proxy = lua.create_table().unwrap();
        queries.install(&proxy).unwrap();
        lua.globals().set("proxy", proxy).unwrap();
        lua
    }

    /// Runs `script` (chunk name `test`) and fails with Lua's message.
    fn exec(lua: &Lua, script: &str) {
        if let Err(error) = lua.load(script).set_name("=test").exec() {
            panic!("{error}");
        }
    }

    fn ids(queries: &Queries) -> Vec<i64> {
        queries.take().iter().map(|entry| entry.id).collect()
    }

    #[test]
    fn append_prepend_reset_and_length() {
        let queries = Queries::new();
        let lua = lua_with(&queries);
        exec(
            &lua,
            r#"
            local q = proxy.queries
            assert(type(q) == "userdata")
            assert(#q == 0 and q:len() == 0)
            q:append(2, "\3SELECT 2")
            q:append(3, "\3SELECT 3", { resultset_is_needed = true })
            q:prepend(1, "\3SELECT 1", { resultset_is_needed = false })
            assert(#q == 3 and q:len() == 3)
            assert(select('#', q:append(4, "\3SELECT 4")) == 0, "append returns nothing")
            q:reset()
            assert(#q == 0)
            q:append(5, "\14")
            q:prepend(4, "\3SELECT 4", {})
            q:append(6, "\3SELECT 6", { resultset_is_needed = nil })
            assert(q.no_such_method == nil)
            "#,
        );
        let entries = queries.take();
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.id, e.packet.clone(), e.resultset_is_needed))
            .collect();
        assert_eq!(
            got,
            [
                (4, b"\x03SELECT 4".to_vec(), false),
                (5, b"\x0e".to_vec(), false),
                (6, b"\x03SELECT 6".to_vec(), false),
            ]
        );
        assert!(queries.is_empty());
    }

    #[test]
    fn resultset_is_needed_is_kept_per_entry() {
        let queries = Queries::new();
        let lua = lua_with(&queries);
        exec(
            &lua,
            r#"
            proxy.queries:append(1, "\3a", { resultset_is_needed = true })
            proxy.queries:append(2, "\3b", { resultset_is_needed = false, other = 1 })
            -- read like any field: through the table's metamethods
            local opts = setmetatable({}, { __index = { resultset_is_needed = true } })
            proxy.queries:prepend(0, "\3c", opts)
            "#,
        );
        let needed: Vec<_> = queries
            .take()
            .iter()
            .map(|e| (e.id, e.resultset_is_needed))
            .collect();
        assert_eq!(needed, [(0, true), (1, true), (2, false)]);
    }

    #[test]
    fn ids_and_packets_are_read_as_lua_reads_them() {
        let queries = Queries::new();
        let lua = lua_with(&queries);
        exec(
            &lua,
            r#"
            proxy.queries:append(-7, "\3")
            proxy.queries:append(2.9, "\3")      -- truncated
            proxy.queries:append(-2.9, "\3")     -- toward zero
            proxy.queries:append("42", "\3")     -- a numeric string
            proxy.queries:append(" 0x10 ", "\3") -- as Lua converts it
            proxy.queries:append(2^40, "\3")     -- beyond 32 bits
            proxy.queries:append(1, 123)         -- a number as its string
            proxy.queries:append(1, 1.5)
            "#,
        );
        let entries = queries.take();
        let ids: Vec<_> = entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, [-7, 2, -2, 42, 16, 1 << 40, 1, 1]);
        assert_eq!(entries[6].packet, b"123");
        assert_eq!(entries[7].packet, b"1.5");
    }

    #[test]
    fn packets_are_kept_byte_for_byte_whatever_their_size() {
        let queries = Queries::new();
        let lua = lua_with(&queries);
        let mut big = vec![3u8];
        big.extend((0..(16 << 20) + 10).map(|i| (i % 251) as u8));
        lua.globals()
            .set("big", lua.create_string(&big).unwrap())
            .unwrap();
        let odd = b"\x03\x00\xff\xfe\x80 not utf-8 \xc3\x28".to_vec();
        lua.globals()
            .set("odd", lua.create_string(&odd).unwrap())
            .unwrap();
        exec(
            &lua,
            r#"
            proxy.queries:append(1, big, { resultset_is_needed = true })
            proxy.queries:append(2, odd)
            proxy.queries:append(3, "")
            "#,
        );
        let entries = queries.take();
        assert_eq!(entries[0].packet, big);
        assert_eq!(entries[1].packet, odd);
        assert_eq!(entries[2].packet, b"");
        let injection = to_injection(&entries[0]);
        assert_eq!(injection.id, 1);
        assert_eq!(injection.payload.as_slice(), big.as_slice());
        assert!(injection.buffer_result);
        let injection = to_injection(&entries[1]);
        assert_eq!((injection.id, injection.buffer_result), (2, false));
        assert_eq!(injection.payload.as_slice(), odd.as_slice());
    }

    #[test]
    fn bad_arguments_raise_luas_argument_errors() {
        let lua = lua_with(&Queries::new());
        exec(
            &lua,
            r#"
            local q = proxy.queries
            -- in a method call `id` is argument #1
            fails(function() q:append("x", "\3") end,
                "bad argument #1 to 'append' (number expected, got string)")
            fails(function() q:append() end,
                "bad argument #1 to 'append' (number expected, got no value)")
            fails(function() q:prepend(nil, "\3") end,
                "bad argument #1 to 'prepend' (number expected, got nil)")
            fails(function() q:append({}, "\3") end,
                "bad argument #1 to 'append' (number expected, got table)")
            fails(function() q:append(1) end,
                "bad argument #2 to 'append' (string expected, got no value)")
            fails(function() q:append(1, true) end,
                "bad argument #2 to 'append' (string expected, got boolean)")
            fails(function() q:prepend(1, {}) end,
                "bad argument #2 to 'prepend' (string expected, got table)")
            fails(function() q:append(1, "\3", "yes") end,
                "bad argument #3 to 'append' (table expected, got string)")
            fails(function() q:append(1, "\3", true) end,
                "bad argument #3 to 'append' (table expected, got boolean)")
            fails(function() q:prepend(1, "\3", 1) end,
                "bad argument #3 to 'prepend' (table expected, got number)")
            fails(function() q:append(1, "\3", { resultset_is_needed = "yes" }) end,
                "bad argument #3 to 'append' (resultset_is_needed = yes, expected a boolean)")
            fails(function() q:append(1, "\3", { resultset_is_needed = 1 }) end,
                "bad argument #3 to 'append' (resultset_is_needed = 1, expected a boolean)")
            fails(function() q:prepend(1, "\3", { resultset_is_needed = {} }) end,
                "bad argument #3 to 'prepend' (resultset_is_needed = table, expected a boolean)")
            -- called as a field, `self` counts
            fails(function() q.append(q, "x", "\3") end,
                "bad argument #2 to 'append' (number expected, got string)")
            fails(function() q.append(q, 1, "\3", 5) end,
                "bad argument #4 to 'append' (table expected, got number)")
            -- a bad self
            fails(function() q.append({}, 1, "\3") end,
                "bad argument #1 to 'append' (proxy.queries expected, got table)")
            fails(function() q.reset() end,
                "bad argument #1 to 'reset' (proxy.queries expected, got no value)")
            fails(function() q.len(1) end,
                "bad argument #1 to 'len' (proxy.queries expected, got number)")
            local other = setmetatable({}, { __index = { append = q.append } })
            fails(function() other:append(1, "\3") end,
                "calling 'append' on bad self (proxy.queries expected, got table)")
            assert(#q == 0, "nothing was queued")
            "#,
        );
    }

    #[test]
    fn errors_carry_the_scripts_line() {
        let lua = lua_with(&Queries::new());
        let error = lua
            .load("\n\nproxy.queries:append('x', '')")
            .set_name("=script.lua")
            .exec()
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(
                "script.lua:3: bad argument #1 to 'append' (number expected, got string)"
            ),
            "{message}"
        );
    }

    #[test]
    fn proxy_queries_is_not_writable() {
        let lua = lua_with(&Queries::new());
        exec(
            &lua,
            r#"
            local ok, err = pcall(function() proxy.queries.append = 1 end)
            assert(not ok and tostring(err):find("attempt to index"), tostring(err))
            "#,
        );
    }

    #[test]
    fn the_host_pops_the_head_and_sees_the_scripts_changes() {
        let queries = Queries::new();
        let lua = lua_with(&queries);
        exec(
            &lua,
            r#"
            proxy.queries:append(1, "\3a")
            proxy.queries:append(2, "\3b")
            proxy.queries:append(3, "\3c")
            function read_query_result(inj)
                if inj.id == 1 then
                    assert(#proxy.queries == 2, "the rest is queued")
                    proxy.queries:prepend(10, "\3x")
                    proxy.queries:append(11, "\3y")
                elseif inj.id == 10 then
                    proxy.queries:reset()
                    proxy.queries:append(20, "\3z")
                end
            end
            "#,
        );
        let hook: Function = lua.globals().get("read_query_result").unwrap();
        let mut sent = Vec::new();
        while let Some(entry) = queries.pop_front() {
            sent.push(entry.id);
            let inj = lua.create_table().unwrap();
            inj.set("id", entry.id).unwrap();
            hook.call::<()>(inj).unwrap();
        }
        assert_eq!(sent, [1, 10, 20]);
    }

    #[test]
    fn taken_entries_go_back_ahead_of_new_ones() {
        let queries = Queries::new();
        let lua = lua_with(&queries);
        exec(
            &lua,
            "proxy.queries:append(1, 'a') proxy.queries:append(2, 'b') proxy.queries:append(3, 'c')",
        );
        let mut taken = queries.take();
        assert!(queries.is_empty());
        let head = taken.remove(0);
        assert_eq!(head.id, 1);
        exec(
            &lua,
            "assert(#proxy.queries == 0) proxy.queries:append(4, 'd')",
        );
        queries.put_back(taken);
        exec(&lua, "assert(proxy.queries:len() == 3)");
        assert_eq!(ids(&queries), [2, 3, 4]);
    }

    #[test]
    fn entries_record_when_they_were_queued() {
        let queries = Queries::new();
        let lua = lua_with(&queries);
        let before = Instant::now();
        exec(&lua, "proxy.queries:append(1, 'a')");
        std::thread::sleep(Duration::from_millis(5));
        let middle = Instant::now();
        exec(&lua, "proxy.queries:prepend(2, 'b')");
        let after = Instant::now();
        let entries = queries.take();
        let (first, second) = (&entries[1], &entries[0]);
        assert!(before <= first.queued_at && first.queued_at <= middle);
        assert!(middle <= second.queued_at && second.queued_at <= after);
    }
}
