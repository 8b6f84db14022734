//! The injection object MySQL Proxy 0.8 hands to `read_query_result(inj)`:
//! an injected query's id, the packet sent, its timings, and the result
//! object `inj.resultset` with the server's answer (status, counts, flags,
//! and, when the script asked for `resultset_is_needed`, the first packet,
//! the column definitions and an iterator over the rows).
//!
//! The host builds one with [`create`] from the [`InjectedResult`] of the
//! hook call and an [`InjectionMeta`] (what the result alone does not say),
//! and passes it as the hook's argument.
//!
//! How it behaves, and the choices MySQL Proxy 0.8 left to us:
//!
//! - Every object is a userdata, as in 0.8 (`type(inj) == "userdata"`), and
//!   read-only: reading a key it does not have gives nil, writing any key
//!   raises `<path>.<key> is not writable` (e.g. `inj.resultset.x is not
//!   writable`). `inj.resultset`, `.fields`, `.fields[i]` and `.rows` make a
//!   new object at each read, all sharing the same data.
//! - Errors are raised as 0.8's `luaL_error` raised them: a string carrying
//!   the script's file and line, so that `pcall` hands the script a string
//!   (not one of mlua's error userdata).
//! - The objects own what they show: the query as a Lua string, the
//!   response's packets copied into one buffer, at creation; they stay
//!   valid as long as Lua holds them, after the hook call has returned.
//! - The packets are parsed lazily, once, at the first read of `fields` or
//!   `rows` (a script that only reads the status pays nothing). A malformed
//!   response raises an error there, never earlier: the column count and
//!   definitions at `fields` (and `rows`), the framing of the rows (where
//!   they end) at `rows`, a row's content when the iterator reaches it.
//! - A response of several result sets (a CALL, multi-statements): `fields`
//!   and `rows` are the first result set's, as in 0.8; `row_count`,
//!   `bytes`, `warning_count` and `flags` are what the host counted over
//!   the whole response (its final OK or EOF for the last two).
//! - MySQL Proxy 0.8's quirk about non-query commands is kept: for a
//!   command other than COM_QUERY and COM_STMT_EXECUTE, `query_status`
//!   reads 0 (OK) even after an ERR, and `affected_rows` and `insert_id`
//!   read 0. For those two commands, `query_status` is nil when the answer
//!   was neither an OK, an ERR nor a result set (a LOCAL INFILE request).
//! - COM_FIELD_LIST, whose answer is column definitions without a column
//!   count, gets them as `fields` and no rows (`rows` is nil); 0.8 read
//!   them as a result set and made no sense of them.
//! - `rows` of a COM_STMT_EXECUTE result set (binary rows) raises
//!   `.resultset.rows isn't available for the binary rows of
//!   COM_STMT_EXECUTE`; its OK or ERR has `rows` nil like any other.
//! - An ERR in place of a row (a query killed while sending its rows) ends
//!   the rows. MariaDB's progress reports (ERR packets of code 0xFFFF) are
//!   left out of the packets. With cached result-set metadata (MySQL's
//!   optional metadata, MariaDB's metadata cache), a result set sent
//!   without its column definitions has rows but `fields` raises an error.
//! - 0.8 wrote a log line when a script read an unknown key of `inj`; this
//!   module has no logger, and reads nil silently.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use mlua::{
    Function, Lua, LuaString, MetaMethod, MultiValue, UserData, UserDataFields, UserDataMethods,
    Value,
};
use mysql_proxy_plugin_abi::{InjectedResult, ResultKind};

use crate::object::{key_bytes, object_fields, Object};
use mysql_proxy_protocol::codec::MAX_PAYLOAD_CHUNK;
use mysql_proxy_protocol::constants::{
    CapabilityFlags, Command, StatusFlags, EOF_HEADER, ERR_HEADER,
};
use mysql_proxy_protocol::lenenc::Reader;
use mysql_proxy_protocol::packets::{ColumnDefinition41, EofPacket, TextRow};

/// What the host knows about an injection besides its [`InjectedResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectionMeta {
    /// The command the response answers: the first byte of the query
    /// (`COM_QUERY`, `COM_STMT_EXECUTE`, ...). It decides how the response
    /// reads: 0.8's quirk for non-query commands, binary rows, the answer
    /// to COM_FIELD_LIST.
    pub command: u8,
    /// Whether the injection asked for `resultset_is_needed`, so that the
    /// response was buffered and its packets are in the result; without
    /// it, `raw`, `fields` and `rows` raise an error.
    pub buffered: bool,
    /// The capabilities in effect on the server connection (what the server
    /// offered and the client asked for): they decide the packets' layout
    /// (`DEPRECATE_EOF`, MariaDB's extended metadata, optional metadata,
    /// progress reports).
    pub capabilities: CapabilityFlags,
}

/// `inj` for `read_query_result(inj)`: a userdata owning a copy of what it
/// shows (see the module's documentation for how it reads).
pub fn create(lua: &Lua, result: &InjectedResult<'_>, meta: &InjectionMeta) -> mlua::Result<Value> {
    let kind = match result.kind().as_enum() {
        Ok(ResultKind::Ok) => Kind::Ok,
        Ok(ResultKind::Error) => Kind::Error,
        Ok(ResultKind::ResultSet) => Kind::ResultSet,
        // `Other`, and kinds of a newer host this plugin does not know.
        _ => Kind::Other,
    };
    let packets = if meta.buffered {
        own_packets(
            result.packets().iter().map(|packet| packet.as_slice()),
            meta.capabilities,
        )
    } else {
        Vec::new()
    };
    let response = Response {
        command: meta.command,
        buffered: meta.buffered,
        capabilities: meta.capabilities,
        kind,
        affected_rows: result.affected_rows(),
        insert_id: result.last_insert_id(),
        warnings: result.warnings(),
        status: StatusFlags(result.server_status()),
        row_count: result.row_count(),
        bytes: result.bytes(),
        packets,
        shape: OnceLock::new(),
    };
    let injection = Injection {
        id: result.id(),
        query: lua.create_string(result.query().as_slice())?,
        query_time: result.query_time_us(),
        response_time: result.response_time_us(),
        response: Arc::new(response),
    };
    lua.create_userdata(injection).map(Value::UserData)
}

const COM_QUERY: u8 = Command::Query as u8;
const COM_FIELD_LIST: u8 = Command::FieldList as u8;
const COM_STMT_EXECUTE: u8 = Command::StmtExecute as u8;

/// `proxy.MYSQLD_PACKET_OK` and `proxy.MYSQLD_PACKET_ERR`.
const MYSQLD_PACKET_OK: i64 = 0;
const MYSQLD_PACKET_ERR: i64 = 255;

/// A classic EOF packet is shorter than this; a longer `0xFE` packet is a
/// row.
const EOF_MAX_LEN: usize = 9;

/// 0.8's messages for what needs `resultset_is_needed`.
const FIELDS_NOT_BUFFERED: &str =
    ".resultset.fields isn't available if 'resultset_is_needed ~= true'";
const ROWS_NOT_BUFFERED: &str = ".resultset.rows isn't available if 'resultset_is_needed ~= true'";
const RAW_NOT_BUFFERED: &str = ".resultset.raw isn't available if 'resultset_is_needed ~= true'";
const BINARY_ROWS: &str = ".resultset.rows isn't available for the binary rows of COM_STMT_EXECUTE";

/// How the response began (the host's [`ResultKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ok,
    Error,
    ResultSet,
    Other,
}

/// The response, owned, shared by every object made from one `inj`.
struct Response {
    command: u8,
    buffered: bool,
    capabilities: CapabilityFlags,
    kind: Kind,
    affected_rows: u64,
    insert_id: u64,
    warnings: u16,
    status: StatusFlags,
    row_count: u64,
    bytes: u64,
    /// The payloads, when buffered (slices of one buffer).
    packets: Vec<Bytes>,
    /// The packets' layout, parsed at the first read of `fields` or `rows`:
    /// either may never be read.
    shape: OnceLock<Result<Shape, String>>,
}

/// Where the columns and rows are in the packets.
struct Shape {
    /// The column definitions (none for an OK or ERR); `None` when the
    /// server left them out (cached metadata).
    columns: Option<Arc<Vec<ColumnDefinition41>>>,
    /// Values per row.
    column_count: usize,
    /// The row packets' indices; `None` when the response has no rows
    /// section; an error when the rows are not framed as they should be
    /// (kept apart so that `fields` still reads).
    rows: Result<Option<Range<usize>>, String>,
}

impl Response {
    /// Whether 0.8 computed the status for this command (QUIRK: it did for
    /// these two only).
    fn is_query(&self) -> bool {
        self.command == COM_QUERY || self.command == COM_STMT_EXECUTE
    }

    /// `affected_rows` or `insert_id`: nil after a result set, 0 for
    /// non-query commands (QUIRK).
    fn ok_count(&self, n: u64) -> Value {
        match (self.is_query(), self.kind) {
            (false, _) => Value::Integer(0),
            (true, Kind::ResultSet) => Value::Nil,
            (true, _) => number(n),
        }
    }

    fn shape(&self) -> &Result<Shape, String> {
        self.shape
            .get_or_init(|| parse_shape(&self.packets, self.kind, self.command, self.capabilities))
    }
}

/// The payloads copied into one buffer (one allocation for the whole
/// response), without MariaDB's progress reports: they may come at any
/// point of a response and are not part of it for a script.
fn own_packets<'a>(
    payloads: impl Iterator<Item = &'a [u8]> + Clone,
    capabilities: CapabilityFlags,
) -> Vec<Bytes> {
    let progress = capabilities.contains(CapabilityFlags::MARIADB_CLIENT_PROGRESS);
    let kept =
        payloads.filter(|payload| !(progress && payload.starts_with(&[ERR_HEADER, 0xFF, 0xFF])));
    let mut buffer = BytesMut::with_capacity(kept.clone().map(<[u8]>::len).sum());
    kept.map(|payload| {
        buffer.put_slice(payload);
        buffer.split().freeze()
    })
    .collect()
}

/// Reads where the result set's parts are: the column count, the column
/// definitions, the EOF after them (not with `DEPRECATE_EOF`), and the
/// rows up to the first terminator (the first result set's only).
fn parse_shape(
    packets: &[Bytes],
    kind: Kind,
    command: u8,
    capabilities: CapabilityFlags,
) -> Result<Shape, String> {
    if kind != Kind::ResultSet {
        return Ok(Shape {
            columns: Some(Arc::new(Vec::new())),
            column_count: 0,
            rows: Ok(None),
        });
    }
    let deprecate_eof = capabilities.contains(CapabilityFlags::DEPRECATE_EOF);
    if command == COM_FIELD_LIST {
        return parse_field_list(packets, capabilities, deprecate_eof);
    }
    let first = packets.first().ok_or("the response has no packets")?;
    let mut reader = Reader::with_context(first, "column count");
    let count = reader.lenenc_int().map_err(|error| error.to_string())?;
    if count == 0 {
        return Err("a result set of 0 columns".into());
    }
    // With optional metadata a byte follows the count: 0 when the column
    // definitions are left out.
    let optional_metadata = capabilities.intersects(
        CapabilityFlags::OPTIONAL_RESULTSET_METADATA
            | CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA,
    );
    let with_metadata = match reader.remaining() {
        0 => true,
        1 if optional_metadata => reader.u8().map_err(|error| error.to_string())? != 0,
        _ => return Err("column count: unexpected trailing bytes".into()),
    };
    let column_count = usize::try_from(count).map_err(|_| format!("{count} columns"))?;
    let mut next = 1;
    let columns = if with_metadata {
        // Bounds the allocation by what was received.
        if column_count >= packets.len() {
            return Err(format!(
                "{column_count} columns announced, {} packets received",
                packets.len()
            ));
        }
        let mut columns = Vec::with_capacity(column_count);
        for (i, packet) in packets.iter().enumerate().skip(1).take(column_count) {
            let column = ColumnDefinition41::decode(packet, capabilities)
                .map_err(|error| format!("column definition {i}: {error}"))?;
            columns.push(column);
        }
        next += column_count;
        Some(Arc::new(columns))
    } else {
        None
    };
    // An ERR in place of the EOF (the statement failed after its columns
    // were sent) is left to the rows, which it ends at once.
    let at_err = packets
        .get(next)
        .is_some_and(|packet| packet.first() == Some(&ERR_HEADER));
    if !deprecate_eof && !at_err {
        let eof = packets
            .get(next)
            .ok_or("no EOF after the column definitions")?;
        EofPacket::decode(eof).map_err(|error| format!("after the column definitions: {error}"))?;
        next += 1;
    }
    Ok(Shape {
        columns,
        column_count,
        rows: rows_section(packets, next, deprecate_eof).map(Some),
    })
}

/// COM_FIELD_LIST's answer: column definitions up to an EOF.
fn parse_field_list(
    packets: &[Bytes],
    capabilities: CapabilityFlags,
    deprecate_eof: bool,
) -> Result<Shape, String> {
    let definitions = rows_section(packets, 0, deprecate_eof)?;
    let columns = packets
        .get(definitions)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, packet)| {
            ColumnDefinition41::decode(packet, capabilities)
                .map_err(|error| format!("column definition {}: {error}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shape {
        column_count: columns.len(),
        columns: Some(Arc::new(columns)),
        rows: Ok(None),
    })
}

/// The packets from `start` up to (not including) the one that ends them:
/// an EOF (with `DEPRECATE_EOF`, the OK that replaces it) or an ERR.
fn rows_section(
    packets: &[Bytes],
    start: usize,
    deprecate_eof: bool,
) -> Result<Range<usize>, String> {
    for (i, packet) in packets.iter().enumerate().skip(start) {
        let ends = match packet.first() {
            Some(&ERR_HEADER) => true,
            // A row may begin with 0xFE (an 8-byte length), but it is then
            // at least 0xFFFFFF bytes long.
            Some(&EOF_HEADER) if deprecate_eof => packet.len() < MAX_PAYLOAD_CHUNK,
            Some(&EOF_HEADER) => packet.len() < EOF_MAX_LEN,
            _ => false,
        };
        if ends {
            return Ok(start..i);
        }
    }
    Err("the rows end without an EOF".into())
}

/// A getter's answer as the Lua side of [`raising`] reads it.
fn reply(lua: &Lua, value: Result<Value, String>) -> mlua::Result<(bool, Value)> {
    match value {
        Ok(value) => Ok((true, value)),
        Err(message) => Ok((false, Value::String(lua.create_string(message)?))),
    }
}

/// Turns a Rust function answering `(true, value)` or `(false, message)`
/// into one returning the value or raising the message with `error(message,
/// 2)`: a string error located at the script's line, as 0.8's `luaL_error`
/// raised them. (An error returned from Rust reaches Lua as a userdata.)
const RAISING: &str = r#"
local get = ...
return function(...)
    local ok, value = get(...)
    if not ok then error(value, 2) end
    return value
end
"#;

/// Where the compiled [`RAISING`] is kept in a Lua state.
const RAISING_KEY: &str = "mysql-proxy-lua.injection.raising";

fn raising(lua: &Lua, get: Function) -> mlua::Result<Function> {
    let make = match lua.named_registry_value::<Value>(RAISING_KEY)? {
        Value::Function(make) => make,
        _ => {
            let make = lua
                .load(RAISING)
                .set_name("=mysql-proxy injection")
                .into_function()?;
            lua.set_named_registry_value(RAISING_KEY, &make)?;
            make
        }
    };
    make.call(get)
}

/// A count as a Lua number (a double in Lua 5.1 either way).
fn number(n: u64) -> Value {
    i64::try_from(n).map_or(Value::Number(n as f64), Value::Integer)
}

/// `inj`.
struct Injection {
    id: i64,
    query: LuaString,
    query_time: u64,
    response_time: u64,
    response: Arc<Response>,
}

impl UserData for Injection {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }
}

impl Object for Injection {
    const PATH: &'static str = "inj";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        let Some(key) = key_bytes(key) else {
            return Ok(Ok(Value::Nil));
        };
        let value = match &*key {
            // `type` is 0.8's deprecated name of `id`.
            b"id" | b"type" => Value::Integer(self.id),
            b"query" => Value::String(self.query.clone()),
            b"query_time" => number(self.query_time),
            b"response_time" => number(self.response_time),
            b"resultset" => {
                Value::UserData(lua.create_userdata(ResultSet(Arc::clone(&self.response)))?)
            }
            _ => Value::Nil,
        };
        Ok(Ok(value))
    }
}

/// `inj.resultset`.
struct ResultSet(Arc<Response>);

impl UserData for ResultSet {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }
}

impl Object for ResultSet {
    const PATH: &'static str = "inj.resultset";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        let Some(key) = key_bytes(key) else {
            return Ok(Ok(Value::Nil));
        };
        let response = &*self.0;
        let value = match &*key {
            b"query_status" => match (response.is_query(), response.kind) {
                (false, _) | (true, Kind::Ok | Kind::ResultSet) => Value::Integer(MYSQLD_PACKET_OK),
                (true, Kind::Error) => Value::Integer(MYSQLD_PACKET_ERR),
                (true, Kind::Other) => Value::Nil,
            },
            b"affected_rows" => response.ok_count(response.affected_rows),
            b"insert_id" => response.ok_count(response.insert_id),
            b"warning_count" => Value::Integer(i64::from(response.warnings)),
            b"flags" => {
                let flags = lua.create_table_with_capacity(0, 4)?;
                for (name, flag) in [
                    ("in_trans", StatusFlags::IN_TRANS),
                    ("auto_commit", StatusFlags::AUTOCOMMIT),
                    ("no_good_index_used", StatusFlags::NO_GOOD_INDEX_USED),
                    ("no_index_used", StatusFlags::NO_INDEX_USED),
                ] {
                    flags.raw_set(name, response.status.contains(flag))?;
                }
                Value::Table(flags)
            }
            b"row_count" => number(response.row_count),
            b"bytes" => number(response.bytes),
            b"raw" => {
                if !response.buffered {
                    return Ok(Err(RAW_NOT_BUFFERED.into()));
                }
                match response.packets.first() {
                    Some(packet) => Value::String(lua.create_string(packet)?),
                    None => Value::Nil,
                }
            }
            b"fields" => {
                if !response.buffered {
                    return Ok(Err(FIELDS_NOT_BUFFERED.into()));
                }
                match response.shape() {
                    Ok(Shape {
                        columns: Some(columns),
                        ..
                    }) => Value::UserData(lua.create_userdata(Fields(Arc::clone(columns)))?),
                    Ok(Shape { columns: None, .. }) => {
                        return Ok(Err(".resultset.fields: the server sent no column \
                                       definitions (cached metadata)"
                            .into()))
                    }
                    Err(error) => {
                        return Ok(Err(format!(
                            ".resultset.fields: malformed response: {error}"
                        )))
                    }
                }
            }
            b"rows" => {
                if !response.buffered {
                    return Ok(Err(ROWS_NOT_BUFFERED.into()));
                }
                if response.command == COM_STMT_EXECUTE && response.kind == Kind::ResultSet {
                    return Ok(Err(BINARY_ROWS.into()));
                }
                let malformed =
                    |error: &str| format!(".resultset.rows: malformed response: {error}");
                match response.shape() {
                    Err(error) => return Ok(Err(malformed(error))),
                    Ok(shape) => match &shape.rows {
                        Err(error) => return Ok(Err(malformed(error))),
                        Ok(None) => Value::Nil,
                        Ok(Some(rows)) => Value::Function(rows_iterator(
                            lua,
                            Arc::clone(&self.0),
                            rows.clone(),
                            shape.column_count,
                        )?),
                    },
                }
            }
            _ => Value::Nil,
        };
        Ok(Ok(value))
    }
}

/// The function `for row in inj.resultset.rows do` calls: each call
/// returns the next row as a table of strings (`row[1..n]`, nil for SQL
/// NULL), then nil.
fn rows_iterator(
    lua: &Lua,
    response: Arc<Response>,
    rows: Range<usize>,
    column_count: usize,
) -> mlua::Result<Function> {
    let next = AtomicUsize::new(rows.start);
    let next_row = lua.create_function(move |lua, _: MultiValue| {
        let i = next.load(Ordering::Relaxed);
        let Some(packet) = response.packets.get(i).filter(|_| i < rows.end) else {
            return reply(lua, Ok(Value::Nil));
        };
        let row = match TextRow::decode(packet, column_count) {
            Ok(row) => row,
            Err(error) => {
                // The iteration ends with the error.
                next.store(rows.end, Ordering::Relaxed);
                let n = i - rows.start + 1;
                return reply(
                    lua,
                    Err(format!(".resultset.rows: malformed row {n}: {error}")),
                );
            }
        };
        next.store(i + 1, Ordering::Relaxed);
        let table = lua.create_table_with_capacity(row.values.len(), 0)?;
        for (i, value) in row.values.iter().enumerate() {
            if let Some(value) = value {
                table.raw_set(i + 1, lua.create_string(value)?)?;
            }
        }
        reply(lua, Ok(Value::Table(table)))
    })?;
    raising(lua, next_row)
}

/// `inj.resultset.fields`: `#fields` and `fields[i]`, 1-based.
struct Fields(Arc<Vec<ColumnDefinition41>>);

impl UserData for Fields {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Len, |_, this, _: MultiValue| Ok(this.0.len()));
    }
}

impl Object for Fields {
    const PATH: &'static str = "inj.resultset.fields";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        let index = match *key {
            Value::Integer(i) => i,
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => n as i64,
            _ => return Ok(Ok(Value::Nil)),
        };
        let column = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.0.get(i));
        Ok(Ok(match column {
            Some(column) => Value::UserData(lua.create_userdata(Field(column.clone()))?),
            None => Value::Nil,
        }))
    }
}

/// `inj.resultset.fields[i]`.
struct Field(ColumnDefinition41);

impl UserData for Field {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        object_fields(fields);
    }
}

impl Object for Field {
    const PATH: &'static str = "inj.resultset.fields[...]";

    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>> {
        let Some(key) = key_bytes(key) else {
            return Ok(Ok(Value::Nil));
        };
        let column = &self.0;
        let text = match &*key {
            b"name" => &column.name,
            b"org_name" => &column.org_name,
            b"table" => &column.table,
            b"org_table" => &column.org_table,
            b"type" => return Ok(Ok(Value::Integer(i64::from(column.column_type.as_u8())))),
            _ => return Ok(Ok(Value::Nil)),
        };
        Ok(Ok(Value::String(lua.create_string(text)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_proxy_plugin_abi::abi_stable::nonexhaustive_enum::NonExhaustive;
    use mysql_proxy_plugin_abi::abi_stable::sabi_trait::TD_Opaque;
    use mysql_proxy_plugin_abi::abi_stable::std_types::{RSlice, RVec};
    use mysql_proxy_plugin_abi::{InjectedResultFfi, InjectedResultFfi_TO, ResultKind_NE};
    use mysql_proxy_protocol::constants::ColumnType;
    use mysql_proxy_protocol::packets::{simple_column, ErrPacket, OkPacket, ResultSetBuilder};

    /// What the host would hand to `read_query_result`.
    struct TestResult {
        id: i64,
        query: RVec<u8>,
        kind: ResultKind,
        affected_rows: u64,
        last_insert_id: u64,
        warnings: u16,
        server_status: u16,
        row_count: u64,
        bytes: u64,
        query_time_us: u64,
        response_time_us: u64,
        packets: RVec<RVec<u8>>,
    }

    impl TestResult {
        fn new(query: &[u8], kind: ResultKind, packets: &[Bytes]) -> Self {
            TestResult {
                id: 7,
                query: RVec::from(query.to_vec()),
                kind,
                affected_rows: 0,
                last_insert_id: 0,
                warnings: 0,
                server_status: StatusFlags::AUTOCOMMIT.0,
                row_count: 0,
                bytes: 0,
                query_time_us: 1500,
                response_time_us: 2500,
                packets: packets
                    .iter()
                    .map(|packet| RVec::from(packet.to_vec()))
                    .collect(),
            }
        }

        fn for_hook(&self) -> InjectedResult<'_> {
            InjectedResultFfi_TO::from_ptr(self, TD_Opaque)
        }
    }

    impl InjectedResultFfi for TestResult {
        fn id(&self) -> i64 {
            self.id
        }
        fn query(&self) -> RSlice<'_, u8> {
            self.query.as_rslice()
        }
        fn kind(&self) -> ResultKind_NE {
            NonExhaustive::new(self.kind)
        }
        fn affected_rows(&self) -> u64 {
            self.affected_rows
        }
        fn last_insert_id(&self) -> u64 {
            self.last_insert_id
        }
        fn warnings(&self) -> u16 {
            self.warnings
        }
        fn server_status(&self) -> u16 {
            self.server_status
        }
        fn row_count(&self) -> u64 {
            self.row_count
        }
        fn bytes(&self) -> u64 {
            self.bytes
        }
        fn query_time_us(&self) -> u64 {
            self.query_time_us
        }
        fn response_time_us(&self) -> u64 {
            self.response_time_us
        }
        fn packets(&self) -> RSlice<'_, RVec<u8>> {
            self.packets.as_rslice()
        }
    }

    const CAPS: CapabilityFlags = CapabilityFlags(
        CapabilityFlags::PROTOCOL_41.0
            | CapabilityFlags::TRANSACTIONS.0
            | CapabilityFlags::SECURE_CONNECTION.0,
    );
    const DEPRECATE_EOF: CapabilityFlags =
        CapabilityFlags(CAPS.0 | CapabilityFlags::DEPRECATE_EOF.0);

    fn meta(command: Command, buffered: bool, capabilities: CapabilityFlags) -> InjectionMeta {
        InjectionMeta {
            command: command.as_u8(),
            buffered,
            capabilities,
        }
    }

    /// Lua helpers for the tests: `fails(f, message)` checks that `f`
    /// raises a string error located in the test chunk and containing
    /// `message`.
    const HELPERS: &str = r#"
        function fails(f, message)
            local ok, err = pcall(f)
            assert(not ok, "no error, expected: " .. message)
            assert(type(err) == "string", "the error is a " .. type(err))
            assert(err:match("^test:%d+: "), "the error has no location: " .. err)
            assert(err:find(message, 1, true), "unexpected error: " .. err)
        end
        function collect(rows)
            local all = {}
            for row in rows do all[#all + 1] = row end
            return all
        end
    "#;

    /// A Lua state with the helpers and `inj` made of `result`, and the
    /// byte strings `strings` as globals.
    fn lua_with(result: &TestResult, meta: &InjectionMeta, strings: &[(&str, &[u8])]) -> Lua {
        let lua = Lua::new();
        lua.load(HELPERS).set_name("=helpers").exec().unwrap();
        let inj = create(&lua, &result.for_hook(), meta).unwrap();
        lua.globals().set("inj", inj).unwrap();
        for (name, bytes) in strings {
            let value = lua.create_string(bytes).unwrap();
            lua.globals().set(*name, value).unwrap();
        }
        lua
    }

    /// Runs `script` (chunk name `test`) and fails with Lua's message.
    fn exec(lua: &Lua, script: &str) {
        if let Err(error) = lua.load(script).set_name("=test").exec() {
            panic!("{error}");
        }
    }

    fn run(result: &TestResult, meta: &InjectionMeta, strings: &[(&str, &[u8])], script: &str) {
        exec(&lua_with(result, meta, strings), script);
    }

    /// `SELECT id, name`: an id column of table `things` (alias `t`) and a
    /// name column; rows with NULLs and bytes that are not UTF-8.
    fn result_set(deprecate_eof: bool) -> Vec<Bytes> {
        let mut id = simple_column("id", ColumnType::LongLong);
        id.table = Bytes::from_static(b"t");
        id.org_table = Bytes::from_static(b"things");
        id.org_name = Bytes::from_static(b"thing_id");
        let name = simple_column("name", ColumnType::VarString);
        let mut rows = ResultSetBuilder::new(vec![id, name], deprecate_eof).rows();
        rows.row(&[Some(&b"1"[..]), Some(&b"caf\xe9"[..])])
            .unwrap()
            .row(&[Some(&b"2"[..]), None])
            .unwrap()
            .row(&[None, Some(&b"\xff\x00\xfe"[..])])
            .unwrap();
        rows.finish(StatusFlags::AUTOCOMMIT | StatusFlags::IN_TRANS)
    }

    fn ok_packet() -> Bytes {
        let status = StatusFlags::IN_TRANS | StatusFlags::NO_INDEX_USED;
        OkPacket::new(3, 42, status, 1).to_bytes(CAPS)
    }

    #[test]
    fn an_ok_reads_as_in_0_8() {
        let ok = ok_packet();
        let mut result = TestResult::new(
            b"\x03UPDATE t SET a = '\xff'",
            ResultKind::Ok,
            std::slice::from_ref(&ok),
        );
        result.affected_rows = 3;
        result.last_insert_id = 42;
        result.warnings = 1;
        result.server_status = (StatusFlags::IN_TRANS | StatusFlags::NO_INDEX_USED).0;
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[("ok", &ok)],
            r#"
            assert(type(inj) == "userdata")
            assert(inj.id == 7 and inj.type == 7)
            assert(inj.query == "\3UPDATE t SET a = '\255'")
            assert(inj.query_time == 1500 and inj.response_time == 2500)
            assert(inj.resultsets == nil and inj.packet == nil and inj[1] == nil)
            local rs = inj.resultset
            assert(type(rs) == "userdata")
            assert(rs.query_status == 0)
            assert(rs.affected_rows == 3 and rs.insert_id == 42)
            assert(rs.warning_count == 1)
            local flags = rs.flags
            assert(type(flags) == "table")
            assert(flags.in_trans == true and flags.auto_commit == false)
            assert(flags.no_good_index_used == false and flags.no_index_used == true)
            assert(rs.row_count == 0 and rs.bytes == 0)
            assert(rs.raw == ok)
            assert(type(rs.fields) == "userdata" and #rs.fields == 0)
            assert(rs.fields[1] == nil)
            assert(rs.rows == nil)
            assert(rs.status == nil and rs[1] == nil)
            "#,
        );
    }

    #[test]
    fn an_err_reads_as_in_0_8() {
        let err = ErrPacket::new(1146, "42S02", "Table 'test.nope' doesn't exist").to_bytes();
        let result = TestResult::new(
            b"\x03SELECT * FROM nope",
            ResultKind::Error,
            std::slice::from_ref(&err),
        );
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[("err", &err)],
            r#"
            local rs = inj.resultset
            assert(rs.query_status == 255)
            assert(rs.affected_rows == 0 and rs.insert_id == 0)
            assert(rs.raw == err)
            assert(rs.raw:byte(1) == 255)
            assert(#rs.fields == 0 and rs.rows == nil)
            "#,
        );
    }

    #[test]
    fn non_query_commands_keep_0_8s_quirk() {
        // COM_INIT_DB failing: 0.8 reported OK.
        let err = ErrPacket::new(1049, "42000", "Unknown database 'nope'").to_bytes();
        let result = TestResult::new(b"\x02nope", ResultKind::Error, &[err]);
        run(
            &result,
            &meta(Command::InitDb, true, CAPS),
            &[],
            r#"
            local rs = inj.resultset
            assert(rs.query_status == 0)
            assert(rs.affected_rows == 0 and rs.insert_id == 0)
            "#,
        );
        // Counts of an OK to another command read 0 too.
        let mut result = TestResult::new(b"\x0e", ResultKind::Ok, &[ok_packet()]);
        result.affected_rows = 3;
        result.last_insert_id = 42;
        run(
            &result,
            &meta(Command::Ping, false, CAPS),
            &[],
            "assert(inj.resultset.affected_rows == 0 and inj.resultset.insert_id == 0)",
        );
        // A query answered with neither OK, ERR nor a result set.
        let result = TestResult::new(
            b"\x03LOAD DATA LOCAL INFILE 'x' INTO TABLE t",
            ResultKind::Other,
            &[],
        );
        run(
            &result,
            &meta(Command::Query, false, CAPS),
            &[],
            "assert(inj.resultset.query_status == nil)",
        );
    }

    #[test]
    fn a_result_set_with_nulls_and_bytes_that_are_not_utf8() {
        for capabilities in [CAPS, DEPRECATE_EOF] {
            let packets = result_set(capabilities == DEPRECATE_EOF);
            let mut result = TestResult::new(
                b"\x03SELECT id, name FROM things t",
                ResultKind::ResultSet,
                &packets,
            );
            result.row_count = 3;
            result.bytes = 3 * 4 + 8 + 5 + 8;
            result.server_status = (StatusFlags::AUTOCOMMIT | StatusFlags::IN_TRANS).0;
            run(
                &result,
                &meta(Command::Query, true, capabilities),
                &[],
                r#"
                local rs = inj.resultset
                assert(rs.query_status == 0)
                assert(rs.affected_rows == nil and rs.insert_id == nil)
                assert(rs.row_count == 3 and rs.bytes == 33)
                assert(rs.flags.in_trans and rs.flags.auto_commit)
                assert(rs.raw == "\2")
                local fields = rs.fields
                assert(#fields == 2)
                assert(fields[0] == nil and fields[3] == nil and fields[-1] == nil)
                assert(fields.name == nil and fields[1.5] == nil)
                local id = fields[1]
                assert(type(id) == "userdata")
                assert(id.name == "id" and id.org_name == "thing_id")
                assert(id.table == "t" and id.org_table == "things")
                assert(id.type == 8 and id.length == nil)
                local name = fields[2.0]
                assert(name.name == "name" and name.org_name == "name")
                assert(name.table == "" and name.org_table == "" and name.type == 253)

                assert(type(rs.rows) == "function")
                local rows = {}
                for row in inj.resultset.rows do rows[#rows + 1] = row end
                assert(#rows == 3)
                assert(rows[1][1] == "1" and rows[1][2] == "caf\233")
                assert(rows[2][1] == "2" and rows[2][2] == nil)
                assert(rows[3][1] == nil and rows[3][2] == "\255\0\254")
                assert(#rows[3][2] == 3)
                "#,
            );
        }
    }

    #[test]
    fn every_read_of_rows_starts_over() {
        let packets = result_set(false);
        let result = TestResult::new(b"\x03SELECT 1", ResultKind::ResultSet, &packets);
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            r#"
            local first, second = inj.resultset.rows, inj.resultset.rows
            assert(first()[1] == "1")
            assert(#collect(second) == 3)
            assert(first()[1] == "2")
            assert(first()[2] == "\255\0\254")
            assert(first() == nil and first() == nil)
            "#,
        );
        // No rows: the loop does not run.
        let rows = ResultSetBuilder::new(vec![simple_column("a", ColumnType::Long)], false).rows();
        assert_eq!(rows.row_count(), 0);
        let packets = rows.finish(StatusFlags::AUTOCOMMIT);
        let result = TestResult::new(b"\x03SELECT a FROM empty", ResultKind::ResultSet, &packets);
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            r#"
            assert(#inj.resultset.fields == 1)
            for row in inj.resultset.rows do error("a row") end
            "#,
        );
    }

    #[test]
    fn only_the_first_result_set_is_read() {
        // A CALL: two result sets, then the final OK.
        let mut packets = result_set(false);
        let last = packets.len() - 1;
        let more = StatusFlags::AUTOCOMMIT | StatusFlags::MORE_RESULTS_EXISTS;
        packets[last] = EofPacket::new(0, more).to_bytes();
        let mut second =
            ResultSetBuilder::new(vec![simple_column("other", ColumnType::Long)], false).rows();
        second.row(&[Some(&b"99"[..])]).unwrap();
        packets.extend(second.finish(more));
        packets.push(OkPacket::new(0, 0, StatusFlags::AUTOCOMMIT, 0).to_bytes(CAPS));
        let mut result = TestResult::new(b"\x03CALL p()", ResultKind::ResultSet, &packets);
        result.row_count = 4;
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            r#"
            local rs = inj.resultset
            assert(#rs.fields == 2 and rs.fields[1].name == "id")
            local rows = collect(rs.rows)
            assert(#rows == 3 and rows[3][2] == "\255\0\254")
            assert(rs.row_count == 4)
            "#,
        );
    }

    #[test]
    fn a_streamed_response_has_no_packets_to_show() {
        let mut result = TestResult::new(b"\x03SELECT 1", ResultKind::ResultSet, &[]);
        result.row_count = 1;
        run(
            &result,
            &meta(Command::Query, false, CAPS),
            &[],
            r#"
            local rs = inj.resultset
            assert(rs.query_status == 0 and rs.row_count == 1)
            assert(rs.affected_rows == nil)
            fails(function() return rs.raw end,
                ".resultset.raw isn't available if 'resultset_is_needed ~= true'")
            fails(function() return rs.fields end,
                ".resultset.fields isn't available if 'resultset_is_needed ~= true'")
            fails(function() return inj.resultset.rows end,
                ".resultset.rows isn't available if 'resultset_is_needed ~= true'")
            "#,
        );
    }

    #[test]
    fn binary_rows_are_refused() {
        let packets = result_set(false);
        let result = TestResult::new(
            b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00",
            ResultKind::ResultSet,
            &packets,
        );
        run(
            &result,
            &meta(Command::StmtExecute, true, CAPS),
            &[],
            r#"
            local rs = inj.resultset
            assert(rs.query_status == 0 and rs.affected_rows == nil)
            assert(#rs.fields == 2 and rs.fields[2].name == "name")
            fails(function() return rs.rows end,
                ".resultset.rows isn't available for the binary rows of COM_STMT_EXECUTE")
            "#,
        );
        // An executed INSERT: its OK is read as for COM_QUERY.
        let mut result = TestResult::new(
            b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00",
            ResultKind::Ok,
            &[ok_packet()],
        );
        result.affected_rows = 3;
        run(
            &result,
            &meta(Command::StmtExecute, true, CAPS),
            &[],
            r#"
            local rs = inj.resultset
            assert(rs.query_status == 0 and rs.affected_rows == 3 and rs.rows == nil)
            "#,
        );
        let err = ErrPacket::new(1062, "23000", "Duplicate entry").to_bytes();
        let result = TestResult::new(
            b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00",
            ResultKind::Error,
            &[err],
        );
        run(
            &result,
            &meta(Command::StmtExecute, true, CAPS),
            &[],
            "assert(inj.resultset.query_status == 255 and inj.resultset.rows == nil)",
        );
    }

    #[test]
    fn malformed_responses_raise_errors() {
        let packets = result_set(false);
        let column = packets[1].clone();
        let eof = EofPacket::new(0, StatusFlags::AUTOCOMMIT).to_bytes();
        let one = Bytes::from_static(&[1]);
        let truncated = column.slice(..column.len() - 3);
        let cases: Vec<(&str, Vec<Bytes>, &str)> = vec![
            (
                "fields",
                vec![Bytes::new()],
                "column count: unexpected end of packet",
            ),
            (
                "fields",
                vec![Bytes::from_static(&[0xfb])],
                "column count: invalid value",
            ),
            (
                "fields",
                vec![Bytes::from_static(&[0])],
                "a result set of 0 columns",
            ),
            (
                "rows",
                vec![Bytes::from_static(&[1, 0])],
                "column count: unexpected trailing bytes",
            ),
            (
                "fields",
                vec![Bytes::from_static(&[3]), column.clone()],
                "3 columns announced, 2 packets received",
            ),
            (
                "fields",
                vec![Bytes::from_static(&[0xfd, 0xff, 0xff, 0xff])],
                "16777215 columns announced",
            ),
            (
                "fields",
                vec![one.clone(), truncated],
                "column definition 1: ColumnDefinition41",
            ),
            (
                "rows",
                vec![one.clone(), column.clone()],
                "no EOF after the column definitions",
            ),
            (
                "fields",
                vec![one.clone(), column.clone(), Bytes::from_static(b"\xfe\x00")],
                "after the column definitions: EOF packet",
            ),
            (
                "rows",
                vec![
                    one.clone(),
                    column.clone(),
                    eof.clone(),
                    Bytes::from_static(b"\x011"),
                ],
                "the rows end without an EOF",
            ),
        ];
        for (key, packets, message) in cases {
            let result = TestResult::new(b"\x03SELECT a", ResultKind::ResultSet, &packets);
            let lua = lua_with(
                &result,
                &meta(Command::Query, true, CAPS),
                &[("message", message.as_bytes())],
            );
            lua.globals().set("key", key).unwrap();
            exec(
                &lua,
                r#"
                local prefix = ".resultset." .. key .. ": malformed response: "
                fails(function() return inj.resultset[key] end, prefix)
                fails(function() return inj.resultset[key] end, message)
                assert(inj.resultset.query_status == 0)
                "#,
            );
        }
        // The framing is right but a row is not: the iterator raises the
        // error when it reaches that row, and stops there.
        let packets = vec![
            one.clone(),
            column.clone(),
            eof.clone(),
            Bytes::from_static(b"\x011"),
            Bytes::from_static(b"\x05ab"),
            Bytes::from_static(b"\x012"),
            eof.clone(),
        ];
        let result = TestResult::new(b"\x03SELECT a", ResultKind::ResultSet, &packets);
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            r#"
            assert(#inj.resultset.fields == 1)
            local rows = inj.resultset.rows
            assert(rows()[1] == "1")
            -- (Not a tail call: the error is located at the caller.)
            fails(function() local row = rows() return row end,
                ".resultset.rows: malformed row 2: TextRow: unexpected end of packet")
            assert(rows() == nil)
            fails(function() for row in inj.resultset.rows do end end, "malformed row 2")
            "#,
        );
        // The rows are missing their end, but the fields still read.
        let packets = vec![one.clone(), column, eof, Bytes::from_static(b"\x011")];
        let result = TestResult::new(b"\x03SELECT a", ResultKind::ResultSet, &packets);
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            r#"assert(inj.resultset.fields[1].name == "id")"#,
        );
    }

    #[test]
    fn cut_packets_never_panic() {
        for capabilities in [CAPS, DEPRECATE_EOF] {
            let packets = result_set(capabilities == DEPRECATE_EOF);
            for (i, packet) in packets.iter().enumerate() {
                for len in 0..packet.len() {
                    let mut cut = packets.clone();
                    cut[i] = packet.slice(..len);
                    let result = TestResult::new(b"\x03SELECT 1", ResultKind::ResultSet, &cut);
                    run(
                        &result,
                        &meta(Command::Query, true, capabilities),
                        &[],
                        r#"
                        pcall(function()
                            local fields = inj.resultset.fields
                            for i = 1, #fields do local _ = fields[i].name end
                        end)
                        pcall(function() for row in inj.resultset.rows do end end)
                        "#,
                    );
                }
            }
        }
    }

    #[test]
    fn an_err_in_place_of_rows_ends_them() {
        let packets = result_set(false);
        let err = ErrPacket::new(1317, "70100", "Query execution was interrupted").to_bytes();
        // After the first row.
        let mut cut = packets[..5].to_vec();
        cut.push(err.clone());
        let result = TestResult::new(b"\x03SELECT 1", ResultKind::ResultSet, &cut);
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            r#"local rows = collect(inj.resultset.rows) assert(#rows == 1 and rows[1][1] == "1")"#,
        );
        // In place of the EOF after the column definitions.
        let mut cut = packets[..3].to_vec();
        cut.push(err);
        let result = TestResult::new(b"\x03SELECT 1", ResultKind::ResultSet, &cut);
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            "assert(#inj.resultset.fields == 2 and #collect(inj.resultset.rows) == 0)",
        );
    }

    #[test]
    fn objects_are_read_only() {
        let packets = result_set(false);
        let result = TestResult::new(b"\x03SELECT 1", ResultKind::ResultSet, &packets);
        run(
            &result,
            &meta(Command::Query, true, CAPS),
            &[],
            r#"
            fails(function() inj.id = 1 end, "inj.id is not writable")
            fails(function() inj.anything = 1 end, "inj.anything is not writable")
            fails(function() inj.resultset.rows = {} end, "inj.resultset.rows is not writable")
            fails(function() inj.resultset.fields[1] = 1 end,
                "inj.resultset.fields[1] is not writable")
            fails(function() inj.resultset.fields[1].name = "x" end,
                "inj.resultset.fields[...].name is not writable")
            assert(inj.id == 7 and inj.resultset.fields[1].name == "id")
            -- flags is a fresh table each time: writing to it changes nothing.
            inj.resultset.flags.auto_commit = false
            assert(inj.resultset.flags.auto_commit == true)
            "#,
        );
    }

    #[test]
    fn objects_outlive_the_hook_call() {
        let lua = Lua::new();
        {
            let packets = result_set(true);
            let result = TestResult::new(
                b"\x03SELECT id, name FROM things t",
                ResultKind::ResultSet,
                &packets,
            );
            let inj = create(
                &lua,
                &result.for_hook(),
                &meta(Command::Query, true, DEPRECATE_EOF),
            )
            .unwrap();
            lua.globals().set("inj", inj).unwrap();
        }
        exec(
            &lua,
            r#"
            kept_fields = inj.resultset.fields
            kept_field = kept_fields[2]
            kept_rows = inj.resultset.rows
            kept_query = inj.query
            inj = nil
            collectgarbage("collect")
            collectgarbage("collect")
            assert(#kept_fields == 2 and kept_fields[1].org_table == "things")
            assert(kept_field.name == "name")
            assert(kept_rows()[2] == "caf\233")
            assert(kept_query == "\3SELECT id, name FROM things t")
            "#,
        );
    }

    #[test]
    fn a_field_list_has_fields_and_no_rows() {
        for capabilities in [CAPS, DEPRECATE_EOF] {
            let mut first = simple_column("id", ColumnType::Long);
            first.default_values = Some(Bytes::from_static(b"\x010"));
            let second = simple_column("name", ColumnType::VarString);
            let end = if capabilities == DEPRECATE_EOF {
                OkPacket::end_of_rows(StatusFlags::AUTOCOMMIT, 0).to_bytes(capabilities)
            } else {
                EofPacket::new(0, StatusFlags::AUTOCOMMIT).to_bytes()
            };
            let packets = [first.to_bytes(), second.to_bytes(), end];
            let result = TestResult::new(b"\x04things\x00", ResultKind::ResultSet, &packets);
            run(
                &result,
                &meta(Command::FieldList, true, capabilities),
                &[],
                r#"
                local rs = inj.resultset
                assert(#rs.fields == 2 and rs.fields[1].name == "id" and rs.fields[2].type == 253)
                assert(rs.rows == nil)
                "#,
            );
        }
    }

    #[test]
    fn mariadb_progress_reports_are_left_out() {
        let progress = Bytes::from_static(b"\xff\xff\xff\x01\x01\x02\x10\x27\x00\x05stage");
        let ok = ok_packet();
        let result = TestResult::new(
            b"\x03ALTER TABLE t ADD c INT",
            ResultKind::Ok,
            &[progress.clone(), ok.clone()],
        );
        let capabilities = CAPS | CapabilityFlags::MARIADB_CLIENT_PROGRESS;
        run(
            &result,
            &meta(Command::Query, true, capabilities),
            &[("ok", &ok)],
            "assert(inj.resultset.raw == ok)",
        );
    }

    #[test]
    fn a_result_set_without_its_metadata_has_rows_only() {
        // MariaDB's metadata cache: the column count says no definitions
        // follow.
        let capabilities = DEPRECATE_EOF | CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA;
        let end = OkPacket::end_of_rows(StatusFlags::AUTOCOMMIT, 0).to_bytes(capabilities);
        let packets = [
            Bytes::from_static(&[2, 0]),
            Bytes::from_static(b"\x011\xfb"),
            end,
        ];
        let result = TestResult::new(b"\x03SELECT a, b FROM t", ResultKind::ResultSet, &packets);
        run(
            &result,
            &meta(Command::Query, true, capabilities),
            &[],
            r#"
            fails(function() return inj.resultset.fields end, "no column definitions")
            local rows = collect(inj.resultset.rows)
            assert(#rows == 1 and rows[1][1] == "1" and rows[1][2] == nil)
            "#,
        );
    }
}
