//! `proxy.response` (MySQL Proxy 0.8): the table a hook fills before it
//! returns `PROXY_SEND_RESULT`, turned into the plugin ABI's [`Response`],
//! read the way 0.8 read it.
//!
//! `type` chooses the reply (a Lua number: `MYSQLD_PACKET_OK` 0,
//! `MYSQLD_PACKET_ERR` 255 or `MYSQLD_PACKET_RAW` 250; anything else is a
//! failure):
//!
//! - OK with a `resultset` table: a text result set. `resultset.fields` is a
//!   non-empty array of `{ name = , type = }` (a missing name reads
//!   `no-field-name`, a missing type `MYSQL_TYPE_STRING`, each with a
//!   warning); `resultset.rows` an array of row arrays, of which exactly as
//!   many values are read as there are fields: nil is SQL NULL, strings are
//!   sent as their bytes, numbers as Lua writes them (`1`, `1.5`, `1e+20`),
//!   anything else (a boolean, a table) as NULL.
//! - OK without one: an OK packet with `affected_rows` and `insert_id`
//!   (default 0).
//! - ERR: `errmsg` (cut to 512 bytes), `errcode` (default 1105) and
//!   `sqlstate` (default `07000`). Without a string `errmsg` the client gets
//!   `(lua) proxy.response.errmsg is nil` instead.
//! - RAW: `packets`, an array of strings sent as packet payloads as given
//!   (the host frames them); the array ends at its first nil.
//!
//! Arrays are read raw (no metamethods) and from index 1 up to the first
//! nil, as `ipairs` walks them; named fields are read as `t.name` reads
//! them.
//!
//! Where 0.8 aborted the process or sent undefined bytes, this module does
//! what a script's author would expect instead, and says so on the item
//! concerned: a malformed result set or packet list is a failure (the
//! client gets the usual "handling proxy.response failed" error), a short
//! `sqlstate` is padded, an `errcode` that does not fit in two bytes is
//! replaced by 1105. One deliberate difference where 0.8's behaviour was
//! well defined: row values keep every byte, where 0.8 cut them at the
//! first NUL byte (it handled them as C strings).

use mlua::{Lua, Table, Value};
use mysql_proxy_plugin_abi::abi_stable::std_types::{RNone, ROption, RSome, RString, RVec};
use mysql_proxy_plugin_abi::{OkResponse, Response, ResponseColumn, ResultSetResponse, SqlError};

/// `proxy.MYSQLD_PACKET_*`: the values `proxy.response.type` may take.
const PACKET_OK: f64 = 0.0;
const PACKET_RAW: f64 = 250.0;
const PACKET_ERR: f64 = 255.0;

/// ER_UNKNOWN_ERROR: the code of every error the proxy makes up, and the
/// default `errcode`.
const ER_UNKNOWN_ERROR: u16 = 1105;
/// "Dynamic SQL error": MySQL Proxy 0.8's SQLSTATE for errors of its own,
/// and the default `sqlstate`.
const DEFAULT_SQL_STATE: &str = "07000";
/// The longest message 0.8 put in an ERR packet (a client's buffer for the
/// message is no longer, MYSQL_ERRMSG_SIZE).
const ERRMSG_MAX_BYTES: usize = 512;
/// `MYSQL_TYPE_STRING`, the type of a field that names none.
const MYSQL_TYPE_STRING: u8 = 254;
/// The name of a field that has none.
const NO_FIELD_NAME: &str = "no-field-name";

/// What the client sees when `proxy.response` cannot be sent.
pub const HANDLING_FAILED: &str = "(lua) handling proxy.response failed, check error-log";
/// What the client sees for an ERR response without a message.
pub const ERRMSG_NIL: &str = "(lua) proxy.response.errmsg is nil";

/// Why `proxy.response` could not be turned into a reply. `Display` is the
/// detail for the log; [`ResponseError::client_error`] is what the client
/// is sent instead.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseError {
    /// `proxy.response` itself is not a table (only from [`from_value`]).
    NotATable { found: &'static str },
    /// `type` is missing or not a number. Numeric strings are refused too:
    /// `type` has to be one of the `proxy.MYSQLD_PACKET_*` constants.
    TypeNotNumber { found: &'static str },
    /// `type` is a number other than OK (0), ERR (255) and RAW (250).
    UnknownType(f64),
    /// An OK with a `resultset` whose `fields` is not a table (0.8 aborted
    /// the process).
    FieldsNotTable { found: &'static str },
    /// An OK with a `resultset` without fields: a result set has at least
    /// one column (0.8 aborted the process).
    NoFields,
    /// `resultset.fields[index]` (1-based) is neither a table nor nil.
    FieldNotTable { index: usize, found: &'static str },
    /// An OK with a `resultset` whose `rows` is not a table (0.8 aborted
    /// the process).
    RowsNotTable { found: &'static str },
    /// `resultset.rows[index]` (1-based) is neither a table nor nil.
    RowNotTable { index: usize, found: &'static str },
    /// A RAW response whose `packets` is not a table.
    PacketsNotTable { found: &'static str },
    /// `packets[index]` (1-based) is neither a string nor nil (0.8 aborted
    /// the process).
    PacketNotString { index: usize, found: &'static str },
    /// An ERR response whose `errmsg` is neither a string nor a number.
    /// 0.8 answered `(lua) proxy.response.errmsg is nil` (code 1105,
    /// SQLSTATE `07000`, whatever `errcode` and `sqlstate` said) as a reply
    /// like any other; the client gets the same, and as an error here it
    /// reaches the log too.
    ErrmsgNotString { found: &'static str },
    /// Reading the table raised a Lua error (a metamethod of the script's,
    /// or memory).
    Lua(String),
}

impl ResponseError {
    /// The ERR the client is sent instead of the response: code 1105,
    /// SQLSTATE `07000`, and 0.8's message (`(lua) proxy.response.errmsg is
    /// nil` for an ERR without a message, `(lua) handling proxy.response
    /// failed, check error-log` for everything else).
    pub fn client_error(&self) -> SqlError {
        let message = match self {
            ResponseError::ErrmsgNotString { .. } => ERRMSG_NIL,
            _ => HANDLING_FAILED,
        };
        SqlError::new(ER_UNKNOWN_ERROR, DEFAULT_SQL_STATE, message)
    }
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::NotATable { found } => {
                write!(f, "proxy.response has to be a table, got {found}")
            }
            ResponseError::TypeNotNumber { found } => write!(
                f,
                "proxy.response.type has to be a number (proxy.MYSQLD_PACKET_OK, \
                 proxy.MYSQLD_PACKET_ERR or proxy.MYSQLD_PACKET_RAW), got {found}"
            ),
            ResponseError::UnknownType(kind) => write!(
                f,
                "proxy.response.type is {kind}, not one of proxy.MYSQLD_PACKET_OK (0), \
                 proxy.MYSQLD_PACKET_ERR (255) or proxy.MYSQLD_PACKET_RAW (250)"
            ),
            ResponseError::FieldsNotTable { found } => write!(
                f,
                "proxy.response.resultset.fields has to be a table, got {found}"
            ),
            ResponseError::NoFields => write!(
                f,
                "proxy.response.resultset.fields is empty: a result set needs at least one field"
            ),
            ResponseError::FieldNotTable { index, found } => write!(
                f,
                "proxy.response.resultset.fields[{index}] has to be a table, got {found}"
            ),
            ResponseError::RowsNotTable { found } => write!(
                f,
                "proxy.response.resultset.rows has to be a table, got {found}"
            ),
            ResponseError::RowNotTable { index, found } => write!(
                f,
                "proxy.response.resultset.rows[{index}] has to be a table, got {found}"
            ),
            ResponseError::PacketsNotTable { found } => write!(
                f,
                "proxy.response.packets has to be a table of strings, got {found}"
            ),
            ResponseError::PacketNotString { index, found } => write!(
                f,
                "proxy.response.packets[{index}] has to be a string, got {found}"
            ),
            ResponseError::ErrmsgNotString { found } => {
                write!(f, "proxy.response.errmsg has to be a string, got {found}")
            }
            ResponseError::Lua(message) => {
                write!(f, "reading proxy.response raised an error: {message}")
            }
        }
    }
}

impl std::error::Error for ResponseError {}

impl From<mlua::Error> for ResponseError {
    fn from(error: mlua::Error) -> Self {
        ResponseError::Lua(error.to_string())
    }
}

/// Reads the `proxy.response` table of a hook that returned
/// `PROXY_SEND_RESULT`: the reply to send, and warnings for the log (a
/// field without a name, an `errcode` that is not a number, ...), which
/// do not stop the reply. `lua` is the state the table belongs to: numbers
/// are written with its own conversion.
///
/// On an error, the host logs it and sends [`ResponseError::client_error`]
/// instead.
pub fn from_lua(lua: &Lua, response: &Table) -> Result<(Response, Vec<String>), ResponseError> {
    let mut reader = Reader {
        lua,
        warnings: Vec::new(),
    };
    let kind = match response.get::<Value>("type")? {
        Value::Integer(kind) => kind as f64,
        Value::Number(kind) => kind,
        other => {
            return Err(ResponseError::TypeNotNumber {
                found: lua_type(&other),
            })
        }
    };
    let reply = if kind == PACKET_OK {
        reader.ok(response)?
    } else if kind == PACKET_ERR {
        reader.error(response)?
    } else if kind == PACKET_RAW {
        reader.raw(response)?
    } else {
        return Err(ResponseError::UnknownType(kind));
    };
    Ok((reply, reader.warnings))
}

/// [`from_lua`] for whatever `proxy.response` holds, which a script may
/// have replaced by something other than a table (a failure).
pub fn from_value(lua: &Lua, response: &Value) -> Result<(Response, Vec<String>), ResponseError> {
    match response {
        Value::Table(table) => from_lua(lua, table),
        other => Err(ResponseError::NotATable {
            found: lua_type(other),
        }),
    }
}

/// One reading of `proxy.response`, collecting warnings on the way.
struct Reader<'a> {
    lua: &'a Lua,
    warnings: Vec<String>,
}

impl Reader<'_> {
    /// `type = MYSQLD_PACKET_OK`: a result set if `resultset` is a table, an
    /// OK packet otherwise.
    fn ok(&mut self, response: &Table) -> Result<Response, ResponseError> {
        match response.get::<Value>("resultset")? {
            Value::Table(resultset) => return self.result_set(&resultset),
            Value::Nil => {}
            // 0.8 silently sent an OK; the warning points at the likely typo.
            other => self.warnings.push(format!(
                "proxy.response.resultset is a {}, not a table: sending an OK packet",
                lua_type(&other)
            )),
        }
        Ok(Response::Ok(OkResponse {
            affected_rows: self.count(response, "affected_rows")?,
            last_insert_id: self.count(response, "insert_id")?,
            warnings: 0,
            info: RString::new(),
        }))
    }

    /// `affected_rows` or `insert_id`: a number (or a string Lua reads as
    /// one), 0 when nil. A fraction is dropped (the packet holds an
    /// integer); a negative or non-finite number, which 0.8 put in an
    /// unsigned integer as it was, is 0 with a warning, as is anything
    /// that is no number.
    fn count(&mut self, response: &Table, key: &str) -> Result<u64, ResponseError> {
        let value = response.get::<Value>(key)?;
        if value.is_nil() {
            return Ok(0);
        }
        match self.number(&value)? {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(n.trunc() as u64),
            _ => {
                let shown = self.shown(&value)?;
                self.warnings.push(format!(
                    "proxy.response.{key} is {shown}, not a count: sending 0"
                ));
                Ok(0)
            }
        }
    }

    /// An OK's `resultset`: its fields, then its rows.
    fn result_set(&mut self, resultset: &Table) -> Result<Response, ResponseError> {
        let fields = match resultset.get::<Value>("fields")? {
            Value::Table(fields) => fields,
            other => {
                return Err(ResponseError::FieldsNotTable {
                    found: lua_type(&other),
                })
            }
        };
        let mut columns = Vec::new();
        for index in 1usize.. {
            match fields.raw_get::<Value>(index)? {
                Value::Nil => break,
                Value::Table(field) => columns.push(self.column(&field, index)?),
                other => {
                    return Err(ResponseError::FieldNotTable {
                        index,
                        found: lua_type(&other),
                    })
                }
            }
        }
        if columns.is_empty() {
            return Err(ResponseError::NoFields);
        }

        let rows = match resultset.get::<Value>("rows")? {
            Value::Table(rows) => rows,
            other => {
                return Err(ResponseError::RowsNotTable {
                    found: lua_type(&other),
                })
            }
        };
        let mut values = Vec::new();
        for index in 1usize.. {
            let row = match rows.raw_get::<Value>(index)? {
                Value::Nil => break,
                Value::Table(row) => row,
                other => {
                    return Err(ResponseError::RowNotTable {
                        index,
                        found: lua_type(&other),
                    })
                }
            };
            // Exactly one value per field: a row's extra values are not
            // read, its missing ones are NULL.
            let mut cells = RVec::with_capacity(columns.len());
            for column in 1..=columns.len() {
                cells.push(self.cell(row.raw_get::<Value>(column)?)?);
            }
            values.push(cells);
        }

        Ok(Response::ResultSet(ResultSetResponse {
            columns: columns.into(),
            rows: values.into(),
        }))
    }

    /// `fields[index]`: its name (a string, or a number as Lua writes it;
    /// otherwise `no-field-name`) and its type (a `MYSQL_TYPE_*` number;
    /// otherwise `MYSQL_TYPE_STRING`), each default with a warning as in
    /// 0.8. A fraction is dropped; a type that does not fit the packet's
    /// byte is `MYSQL_TYPE_STRING` too, with a warning.
    fn column(&mut self, field: &Table, index: usize) -> Result<ResponseColumn, ResponseError> {
        let name_value = field.get::<Value>("name")?;
        let name = match self.text(&name_value)? {
            Some(bytes) => self.utf8(&bytes, || {
                format!("proxy.response.resultset.fields[{index}].name")
            }),
            None => {
                self.warnings.push(format!(
                    "proxy.response.resultset.fields[{index}].name is not a string (is {}): \
                     using {NO_FIELD_NAME}",
                    lua_type(&name_value)
                ));
                NO_FIELD_NAME.to_owned()
            }
        };

        let type_value = field.get::<Value>("type")?;
        let column_type = match self.number(&type_value)? {
            Some(n) if (0.0..=255.0).contains(&n.trunc()) => n.trunc() as u8,
            Some(_) => {
                let shown = self.shown(&type_value)?;
                self.warnings.push(format!(
                    "proxy.response.resultset.fields[{index}].type is {shown}, not a \
                     MYSQL_TYPE_*: using MYSQL_TYPE_STRING"
                ));
                MYSQL_TYPE_STRING
            }
            None => {
                self.warnings.push(format!(
                    "proxy.response.resultset.fields[{index}].type is not a number (is {}): \
                     using MYSQL_TYPE_STRING",
                    lua_type(&type_value)
                ));
                MYSQL_TYPE_STRING
            }
        };

        Ok(ResponseColumn {
            name: name.into(),
            column_type,
        })
    }

    /// One value of a row: nil and anything that is neither a string nor a
    /// number are NULL (booleans too, as in 0.8); strings keep all their
    /// bytes (0.8 cut them at the first NUL byte).
    fn cell(&mut self, value: Value) -> Result<ROption<RVec<u8>>, ResponseError> {
        Ok(match self.text(&value)? {
            Some(bytes) => RSome(bytes.into()),
            None => RNone,
        })
    }

    /// `type = MYSQLD_PACKET_ERR`: `errmsg`, `errcode` and `sqlstate`. The
    /// message is read first: without one, the others do not matter.
    fn error(&mut self, response: &Table) -> Result<Response, ResponseError> {
        let message_value = response.get::<Value>("errmsg")?;
        let message = match self.text(&message_value)? {
            Some(bytes) => self.error_message(&bytes),
            None => {
                return Err(ResponseError::ErrmsgNotString {
                    found: lua_type(&message_value),
                })
            }
        };
        let code = self.error_code(response)?;
        let sql_state = self.sql_state(response)?;
        Ok(Response::Error(SqlError {
            code,
            sql_state: sql_state.into(),
            message: message.into(),
        }))
    }

    /// `errmsg` (a string, or a number as Lua writes it: Lua's C API
    /// counts numbers as strings): at most 512 bytes, as 0.8 sent. The ABI's message is UTF-8, so a
    /// message that is not has its invalid bytes replaced (with a warning),
    /// and the cut falls on a character boundary at or before 512 bytes.
    fn error_message(&mut self, bytes: &[u8]) -> String {
        let mut message = self.utf8(bytes, || "proxy.response.errmsg".to_owned());
        let mut end = message.len().min(ERRMSG_MAX_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message
    }

    /// `errcode`: a number or a string Lua reads as one, 1105 when nil.
    /// A fraction is dropped; a value that does not fit the packet's two
    /// bytes (of which 0.8 sent the low ones), or that is no number at
    /// all, is 1105 with a warning.
    fn error_code(&mut self, response: &Table) -> Result<u16, ResponseError> {
        let value = response.get::<Value>("errcode")?;
        if value.is_nil() {
            return Ok(ER_UNKNOWN_ERROR);
        }
        match self.number(&value)? {
            Some(n) if (0.0..=f64::from(u16::MAX)).contains(&n.trunc()) => Ok(n.trunc() as u16),
            _ => {
                let shown = self.shown(&value)?;
                self.warnings.push(format!(
                    "proxy.response.errcode is {shown}, not an error code (0 to 65535): \
                     using {ER_UNKNOWN_ERROR}"
                ));
                Ok(ER_UNKNOWN_ERROR)
            }
        }
    }

    /// `sqlstate`: five ASCII bytes, `07000` when nil. 0.8 sent the first
    /// five bytes of the string (or of the number as Lua writes it), and
    /// whatever followed in memory when it was shorter. Here, each with a
    /// warning: a longer string is cut to five bytes; a shorter, non-empty
    /// one is padded with `0` (`HY` becomes `HY000`, the class's generic
    /// state); a number from 0 to 99999 is written with five digits (`7000`
    /// becomes `07000`, as the author of `sqlstate = 07000` meant);
    /// anything else (an empty string, another number, other bytes than
    /// ASCII, another type) is `07000`. Exactly five ASCII bytes is what the
    /// host sends unchanged.
    fn sql_state(&mut self, response: &Table) -> Result<String, ResponseError> {
        let value = response.get::<Value>("sqlstate")?;
        let bytes = match &value {
            Value::Nil => return Ok(DEFAULT_SQL_STATE.to_owned()),
            Value::String(text) => text.as_bytes().to_vec(),
            Value::Integer(_) | Value::Number(_) => {
                let n = self.number(&value)?.unwrap_or(f64::NAN);
                if !(n.fract() == 0.0 && (0.0..=99_999.0).contains(&n)) {
                    return self.default_sql_state(&value);
                }
                let state = format!("{:05}", n as u32);
                if self.text(&value)?.as_deref() != Some(state.as_bytes()) {
                    let shown = self.shown(&value)?;
                    self.warnings.push(format!(
                        "proxy.response.sqlstate is {shown}: sending {state}"
                    ));
                }
                return Ok(state);
            }
            _ => return self.default_sql_state(&value),
        };
        let state = match bytes.len() {
            0 => return self.default_sql_state(&value),
            1..=4 => {
                let mut padded = bytes.clone();
                padded.resize(5, b'0');
                padded
            }
            _ => bytes.iter().take(5).copied().collect(),
        };
        match String::from_utf8(state) {
            Ok(state) if state.is_ascii() => {
                if state.len() != bytes.len() {
                    self.warnings.push(format!(
                        "proxy.response.sqlstate {:?} is not 5 characters long: sending {state}",
                        String::from_utf8_lossy(&bytes)
                    ));
                }
                Ok(state)
            }
            _ => self.default_sql_state(&value),
        }
    }

    /// `07000` in place of an unusable `sqlstate`, with a warning.
    fn default_sql_state(&mut self, value: &Value) -> Result<String, ResponseError> {
        let shown = self.shown(value)?;
        self.warnings.push(format!(
            "proxy.response.sqlstate is {shown}, not a SQLSTATE: using {DEFAULT_SQL_STATE}"
        ));
        Ok(DEFAULT_SQL_STATE.to_owned())
    }

    /// `type = MYSQLD_PACKET_RAW`: `packets[1]`, `packets[2]`, ... up to
    /// the first nil, each a payload sent as given. An empty array sends
    /// nothing, which is right for the commands a client expects no answer
    /// to (COM_STMT_CLOSE, ...). A number is refused like any other
    /// non-string: a packet is bytes, not a value to write out.
    fn raw(&mut self, response: &Table) -> Result<Response, ResponseError> {
        let packets = match response.get::<Value>("packets")? {
            Value::Table(packets) => packets,
            other => {
                return Err(ResponseError::PacketsNotTable {
                    found: lua_type(&other),
                })
            }
        };
        let mut payloads = Vec::new();
        for index in 1usize.. {
            match packets.raw_get::<Value>(index)? {
                Value::Nil => break,
                Value::String(payload) => payloads.push(RVec::from(payload.as_bytes().to_vec())),
                other => {
                    return Err(ResponseError::PacketNotString {
                        index,
                        found: lua_type(&other),
                    })
                }
            }
        }
        Ok(Response::Raw(payloads.into()))
    }

    /// A string's bytes, or a number as Lua writes it (`1`, `1.5`,
    /// `1e+20`: Lua 5.1's own conversion, "%.14g"); `None` for anything
    /// else, as Lua's `lua_isstring` tells them apart.
    fn text(&self, value: &Value) -> Result<Option<Vec<u8>>, ResponseError> {
        Ok(match value {
            Value::String(text) => Some(text.as_bytes().to_vec()),
            Value::Integer(_) | Value::Number(_) => self
                .lua
                .coerce_string(value.clone())?
                .map(|text| text.as_bytes().to_vec()),
            _ => None,
        })
    }

    /// A number, or a string Lua reads as one (`"12"`, `" 0x10 "`), as
    /// Lua's `lua_isnumber` tells them apart; `None` for anything else.
    fn number(&self, value: &Value) -> Result<Option<f64>, ResponseError> {
        Ok(match value {
            Value::Integer(n) => Some(*n as f64),
            Value::Number(n) => Some(*n),
            Value::String(_) => self.lua.coerce_number(value.clone())?,
            _ => None,
        })
    }

    /// A value for a warning: a number as Lua writes it, a string quoted,
    /// anything else by its type.
    fn shown(&self, value: &Value) -> Result<String, ResponseError> {
        Ok(match value {
            Value::String(text) => format!("{:?}", String::from_utf8_lossy(&text.as_bytes())),
            Value::Integer(_) | Value::Number(_) => match self.text(value)? {
                Some(text) => format!("the number {}", String::from_utf8_lossy(&text)),
                None => "a number".to_owned(),
            },
            other => format!("a {}", lua_type(other)),
        })
    }

    /// Bytes as the UTF-8 the ABI's strings are: invalid sequences become
    /// U+FFFD, with a warning naming `what`.
    fn utf8(&mut self, bytes: &[u8], what: impl FnOnce() -> String) -> String {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                self.warnings.push(format!(
                    "{} is not UTF-8: its invalid bytes are sent as U+FFFD",
                    what()
                ));
                String::from_utf8_lossy(bytes).into_owned()
            }
        }
    }
}

/// A value's type as Lua 5.1 names it (mlua tells integral numbers apart;
/// Lua 5.1 does not).
fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        Value::LightUserData(_) | Value::UserData(_) | Value::Error(_) => "userdata",
        other => other.type_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::PROXY_CONSTANTS;

    type Read = Result<(Response, Vec<String>), ResponseError>;

    /// Evaluates `code` (which returns the response table) in a fresh Lua
    /// 5.1 state with the `proxy` constants, and reads the table.
    fn read(code: &str) -> Read {
        let lua = Lua::new();
        let proxy = lua.create_table().unwrap();
        for (name, value) in PROXY_CONSTANTS {
            proxy.set(*name, *value).unwrap();
        }
        lua.globals().set("proxy", proxy).unwrap();
        let table: Table = lua.load(code).eval().unwrap();
        from_lua(&lua, &table)
    }

    /// The reply, checking there was no warning.
    fn quiet(code: &str) -> Response {
        let (response, warnings) = read(code).unwrap();
        assert_eq!(warnings, Vec::<String>::new(), "for {code}");
        response
    }

    /// The reply and its warnings, checking there was at least one.
    fn warned(code: &str) -> (Response, Vec<String>) {
        let (response, warnings) = read(code).unwrap();
        assert!(!warnings.is_empty(), "no warning for {code}");
        (response, warnings)
    }

    fn failure(code: &str) -> ResponseError {
        match read(code) {
            Err(error) => error,
            Ok(reply) => panic!("{code} gave {reply:?}"),
        }
    }

    fn ok(response: Response) -> OkResponse {
        match response {
            Response::Ok(ok) => ok,
            other => panic!("not an OK: {other:?}"),
        }
    }

    fn result_set(response: Response) -> ResultSetResponse {
        match response {
            Response::ResultSet(result) => result,
            other => panic!("not a result set: {other:?}"),
        }
    }

    fn error(response: Response) -> SqlError {
        match response {
            Response::Error(error) => error,
            other => panic!("not an error: {other:?}"),
        }
    }

    fn raw(response: Response) -> Vec<Vec<u8>> {
        match response {
            Response::Raw(packets) => packets.iter().map(|p| p.to_vec()).collect(),
            other => panic!("not raw: {other:?}"),
        }
    }

    /// The rows of a result set as plain vectors.
    fn rows(result: &ResultSetResponse) -> Vec<Vec<Option<Vec<u8>>>> {
        result
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| cell.as_ref().into_option().map(|v| v.to_vec()))
                    .collect()
            })
            .collect()
    }

    fn cell(text: &[u8]) -> Option<Vec<u8>> {
        Some(text.to_vec())
    }

    /// The values of a one-column result set whose rows are `values`
    /// (Lua expressions, one row each).
    fn column_values(values: &[&str]) -> Vec<Option<Vec<u8>>> {
        let rows: Vec<String> = values.iter().map(|v| format!("{{ {v} }}")).collect();
        let code = format!(
            "return {{ type = 0, resultset = {{ fields = {{ {{ name = 'v', type = 253 }} }}, \
             rows = {{ {} }} }} }}",
            rows.join(", ")
        );
        let result = result_set(quiet(&code));
        rows_of(&result)
            .into_iter()
            .map(|mut row| row.remove(0))
            .collect()
    }

    fn rows_of(result: &ResultSetResponse) -> Vec<Vec<Option<Vec<u8>>>> {
        let all = rows(result);
        assert!(all.iter().all(|row| row.len() == result.columns.len()));
        all
    }

    // ---- type ----

    #[test]
    fn type_is_required_and_a_number() {
        for (code, found) in [
            ("return {}", "nil"),
            ("return { type = '0' }", "string"),
            ("return { type = true }", "boolean"),
            ("return { type = {} }", "table"),
        ] {
            assert_eq!(
                failure(code),
                ResponseError::TypeNotNumber { found },
                "{code}"
            );
        }
    }

    #[test]
    fn type_is_ok_err_or_raw_only() {
        for kind in ["1", "2", "254", "251", "0.5", "-1", "1/0", "0/0"] {
            let code = format!("return {{ type = {kind} }}");
            assert!(
                matches!(failure(&code), ResponseError::UnknownType(_)),
                "{code}"
            );
        }
        assert_eq!(
            failure("return { type = 254 }"),
            ResponseError::UnknownType(254.0)
        );
    }

    #[test]
    fn the_constants_name_the_types() {
        assert!(matches!(
            quiet("return { type = proxy.MYSQLD_PACKET_OK }"),
            Response::Ok(_)
        ));
        assert!(matches!(
            quiet("return { type = proxy.MYSQLD_PACKET_ERR, errmsg = 'x' }"),
            Response::Error(_)
        ));
        assert!(matches!(
            quiet("return { type = proxy.MYSQLD_PACKET_RAW, packets = {} }"),
            Response::Raw(_)
        ));
    }

    // ---- OK ----

    #[test]
    fn ok_defaults_to_zero_counts() {
        assert_eq!(ok(quiet("return { type = 0 }")), OkResponse::default());
    }

    #[test]
    fn ok_carries_affected_rows_and_insert_id() {
        let reply = ok(quiet(
            "return { type = 0, affected_rows = 3, insert_id = 9007199254740992 }",
        ));
        assert_eq!(reply.affected_rows, 3);
        assert_eq!(reply.last_insert_id, 1 << 53);
        assert_eq!(reply.warnings, 0);
        assert_eq!(reply.info.as_str(), "");
    }

    #[test]
    fn ok_counts_read_numeric_strings_and_drop_fractions() {
        let reply = ok(quiet(
            "return { type = 0, affected_rows = ' 12 ', insert_id = 7.9 }",
        ));
        assert_eq!((reply.affected_rows, reply.last_insert_id), (12, 7));
        let reply = ok(quiet("return { type = 0, affected_rows = '0x10' }"));
        assert_eq!(reply.affected_rows, 16);
    }

    #[test]
    fn ok_counts_that_are_no_counts_are_zero_with_a_warning() {
        for value in ["-1", "'abc'", "true", "{}", "1/0", "0/0"] {
            let code =
                format!("return {{ type = 0, affected_rows = {value}, insert_id = {value} }}");
            let (reply, warnings) = warned(&code);
            assert_eq!(ok(reply), OkResponse::default(), "{code}");
            assert_eq!(warnings.len(), 2, "{code}: {warnings:?}");
            assert!(warnings[0].contains("proxy.response.affected_rows"));
            assert!(warnings[1].contains("proxy.response.insert_id"));
        }
    }

    #[test]
    fn ok_with_a_resultset_that_is_no_table_is_a_plain_ok_with_a_warning() {
        let (reply, warnings) = warned("return { type = 0, resultset = true, affected_rows = 2 }");
        assert_eq!(ok(reply).affected_rows, 2);
        assert!(
            warnings[0].contains("resultset is a boolean"),
            "{warnings:?}"
        );
    }

    // ---- result sets ----

    #[test]
    fn a_result_set_has_its_fields_and_rows() {
        let result = result_set(quiet(
            "return { type = proxy.MYSQLD_PACKET_OK, resultset = {
                fields = {
                    { name = 'id', type = proxy.MYSQL_TYPE_LONG },
                    { name = 'name', type = proxy.MYSQL_TYPE_VAR_STRING },
                },
                rows = { { 1, 'one' }, { 2, 'two' } },
            } }",
        ));
        assert_eq!(
            result.columns.to_vec(),
            vec![
                ResponseColumn {
                    name: "id".into(),
                    column_type: 3
                },
                ResponseColumn {
                    name: "name".into(),
                    column_type: 253
                },
            ]
        );
        assert_eq!(
            rows_of(&result),
            vec![
                vec![cell(b"1"), cell(b"one")],
                vec![cell(b"2"), cell(b"two")],
            ]
        );
    }

    #[test]
    fn a_result_set_may_have_no_rows() {
        let result = result_set(quiet(
            "return { type = 0, resultset = { fields = { { name = 'a', type = 253 } }, rows = {} } }",
        ));
        assert_eq!(result.columns.len(), 1);
        assert!(result.rows.is_empty());
    }

    #[test]
    fn a_field_without_a_name_is_no_field_name_with_a_warning() {
        let (reply, warnings) = warned(
            "return { type = 0, resultset = { fields = { { type = 3 }, { name = true, type = 3 } }, rows = {} } }",
        );
        let result = result_set(reply);
        assert_eq!(result.columns[0].name.as_str(), "no-field-name");
        assert_eq!(result.columns[1].name.as_str(), "no-field-name");
        assert_eq!(result.columns[0].column_type, 3);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("fields[1].name") && warnings[0].contains("nil"));
        assert!(warnings[1].contains("fields[2].name") && warnings[1].contains("boolean"));
    }

    #[test]
    fn a_field_without_a_type_is_a_string_with_a_warning() {
        let (reply, warnings) = warned(
            "return { type = 0, resultset = { fields = { { name = 'a' }, { name = 'b', type = 'x' } }, rows = {} } }",
        );
        let result = result_set(reply);
        assert_eq!(result.columns[0].column_type, MYSQL_TYPE_STRING);
        assert_eq!(result.columns[1].column_type, MYSQL_TYPE_STRING);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("fields[1].type") && warnings[0].contains("nil"));
        assert!(warnings[1].contains("fields[2].type") && warnings[1].contains("string"));
    }

    #[test]
    fn a_field_type_out_of_a_byte_is_a_string_with_a_warning() {
        for value in ["256", "-1", "1/0", "0/0"] {
            let code = format!(
                "return {{ type = 0, resultset = {{ fields = {{ {{ name = 'a', type = {value} }} }}, rows = {{}} }} }}"
            );
            let (reply, warnings) = warned(&code);
            assert_eq!(
                result_set(reply).columns[0].column_type,
                MYSQL_TYPE_STRING,
                "{code}"
            );
            assert!(warnings[0].contains("fields[1].type"), "{warnings:?}");
        }
    }

    #[test]
    fn field_names_and_types_are_converted_as_lua_converts_them() {
        let result = result_set(quiet(
            "return { type = 0, resultset = { fields = {
                { name = 1, type = '8' }, { name = 1.5, type = 3.9 }, { name = '', type = 255 },
            }, rows = {} } }",
        ));
        let columns: Vec<(String, u8)> = result
            .columns
            .iter()
            .map(|c| (c.name.to_string(), c.column_type))
            .collect();
        assert_eq!(
            columns,
            vec![("1".into(), 8), ("1.5".into(), 3), (String::new(), 255)]
        );
    }

    #[test]
    fn a_field_name_that_is_not_utf8_is_replaced_with_a_warning() {
        let (reply, warnings) = warned(
            "return { type = 0, resultset = { fields = { { name = 'a\\255b', type = 253 } }, rows = {} } }",
        );
        assert_eq!(result_set(reply).columns[0].name.as_str(), "a\u{FFFD}b");
        assert!(warnings[0].contains("fields[1].name is not UTF-8"));
    }

    #[test]
    fn rows_have_exactly_one_value_per_field() {
        let result = result_set(quiet(
            "return { type = 0, resultset = {
                fields = { { name = 'a', type = 253 }, { name = 'b', type = 253 } },
                rows = { { 'x' }, {}, { 'x', 'y', 'z' }, { nil, 'y' } },
            } }",
        ));
        assert_eq!(
            rows_of(&result),
            vec![
                vec![cell(b"x"), None],
                vec![None, None],
                vec![cell(b"x"), cell(b"y")],
                vec![None, cell(b"y")],
            ]
        );
    }

    #[test]
    fn row_values_that_are_no_string_nor_number_are_null() {
        assert_eq!(
            column_values(&[
                "nil",
                "true",
                "false",
                "{}",
                "print",
                "coroutine.create(function() end)",
                "newproxy()",
            ]),
            vec![None; 7]
        );
    }

    #[test]
    fn numbers_are_written_as_lua_writes_them() {
        assert_eq!(
            column_values(&[
                "1", "1.5", "1e20", "-3", "0.1", "1/3", "2^53", "1e15", "1e14", "-0.5", "1/0",
                "-1/0",
            ]),
            [
                "1",
                "1.5",
                "1e+20",
                "-3",
                "0.1",
                "0.33333333333333",
                "9.007199254741e+15",
                "1e+15",
                "1e+14",
                "-0.5",
                "inf",
                "-inf",
            ]
            .iter()
            .map(|text| cell(text.as_bytes()))
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn row_strings_keep_every_byte() {
        assert_eq!(
            column_values(&[r"'a\0b'", r"'\255\254\0'", "''", r"'\0'", "'é'"]),
            vec![
                cell(b"a\0b"),
                cell(b"\xff\xfe\0"),
                cell(b""),
                cell(b"\0"),
                cell("é".as_bytes()),
            ]
        );
    }

    #[test]
    fn a_long_row_value_is_whole() {
        let values = column_values(&["string.rep('x', 100000)"]);
        assert_eq!(values, vec![Some(vec![b'x'; 100_000])]);
    }

    #[test]
    fn fields_and_rows_end_at_the_first_nil() {
        let result = result_set(quiet(
            "return { type = 0, resultset = {
                fields = { { name = 'a', type = 253 }, nil, { name = 'c', type = 253 } },
                rows = { { 'r1' }, { 'r2' }, nil, { 'r4' } },
            } }",
        ));
        assert_eq!(result.columns.len(), 1);
        assert_eq!(rows_of(&result), vec![vec![cell(b"r1")], vec![cell(b"r2")]]);
    }

    #[test]
    fn a_result_set_needs_fields() {
        for (code, expected) in [
            (
                "return { type = 0, resultset = { rows = {} } }",
                ResponseError::FieldsNotTable { found: "nil" },
            ),
            (
                "return { type = 0, resultset = { fields = 'a', rows = {} } }",
                ResponseError::FieldsNotTable { found: "string" },
            ),
            (
                "return { type = 0, resultset = { fields = {}, rows = {} } }",
                ResponseError::NoFields,
            ),
            (
                "return { type = 0, resultset = { fields = { nil, { name = 'b' } }, rows = {} } }",
                ResponseError::NoFields,
            ),
            (
                "return { type = 0, resultset = { fields = { { name = 'a' }, 'b' }, rows = {} } }",
                ResponseError::FieldNotTable {
                    index: 2,
                    found: "string",
                },
            ),
        ] {
            assert_eq!(failure(code), expected, "{code}");
        }
    }

    #[test]
    fn a_result_set_needs_a_table_of_row_tables() {
        for (code, expected) in [
            (
                "return { type = 0, resultset = { fields = { { name = 'a' } } } }",
                ResponseError::RowsNotTable { found: "nil" },
            ),
            (
                "return { type = 0, resultset = { fields = { { name = 'a' } }, rows = 1 } }",
                ResponseError::RowsNotTable { found: "number" },
            ),
            (
                "return { type = 0, resultset = { fields = { { name = 'a' } }, rows = { { 1 }, 'x' } } }",
                ResponseError::RowNotTable {
                    index: 2,
                    found: "string",
                },
            ),
            (
                "return { type = 0, resultset = { fields = { { name = 'a' } }, rows = { true } } }",
                ResponseError::RowNotTable {
                    index: 1,
                    found: "boolean",
                },
            ),
        ] {
            assert_eq!(failure(code), expected, "{code}");
        }
    }

    // ---- ERR ----

    #[test]
    fn an_error_has_its_message_code_and_state() {
        assert_eq!(
            error(quiet(
                "return { type = proxy.MYSQLD_PACKET_ERR, errmsg = 'no such table', errcode = 1146, sqlstate = '42S02' }",
            )),
            SqlError::new(1146, "42S02", "no such table")
        );
    }

    #[test]
    fn an_error_defaults_to_1105_and_07000() {
        assert_eq!(
            error(quiet("return { type = 255, errmsg = 'no' }")),
            SqlError::new(1105, "07000", "no")
        );
    }

    #[test]
    fn an_error_without_a_message_is_errmsg_is_nil() {
        for (code, found) in [
            (
                "return { type = 255, errcode = 1045, sqlstate = '28000' }",
                "nil",
            ),
            ("return { type = 255, errmsg = false }", "boolean"),
            ("return { type = 255, errmsg = {} }", "table"),
        ] {
            let failed = failure(code);
            assert_eq!(failed, ResponseError::ErrmsgNotString { found }, "{code}");
            assert_eq!(
                failed.client_error(),
                SqlError::new(1105, "07000", "(lua) proxy.response.errmsg is nil")
            );
        }
    }

    #[test]
    fn a_number_as_message_is_written_as_lua_writes_it() {
        assert_eq!(
            error(quiet("return { type = 255, errmsg = 1e20 }"))
                .message
                .as_str(),
            "1e+20"
        );
    }

    #[test]
    fn the_message_is_cut_to_512_bytes() {
        let message = error(quiet(
            "return { type = 255, errmsg = string.rep('x', 600) }",
        ))
        .message;
        assert_eq!(message.as_str(), "x".repeat(512));
        let message = error(quiet(
            "return { type = 255, errmsg = string.rep('x', 512) }",
        ))
        .message;
        assert_eq!(message.len(), 512);
        let message = error(quiet("return { type = 255, errmsg = '' }")).message;
        assert_eq!(message.as_str(), "");
    }

    #[test]
    fn the_cut_does_not_split_a_character() {
        // 'é' is two bytes: 511 of them would end in its middle.
        let message = error(quiet(
            "return { type = 255, errmsg = 'x' .. string.rep('\\195\\169', 300) }",
        ))
        .message;
        assert_eq!(message.as_str(), format!("x{}", "é".repeat(255)));
    }

    #[test]
    fn the_message_keeps_nul_bytes() {
        assert_eq!(
            error(quiet("return { type = 255, errmsg = 'a\\0b' }"))
                .message
                .as_str(),
            "a\0b"
        );
    }

    #[test]
    fn a_message_that_is_not_utf8_is_replaced_with_a_warning() {
        let (reply, warnings) = warned("return { type = 255, errmsg = 'bad \\255\\254 bytes' }");
        assert_eq!(error(reply).message.as_str(), "bad \u{FFFD}\u{FFFD} bytes");
        assert!(warnings[0].contains("errmsg is not UTF-8"));
        let (reply, _) = warned("return { type = 255, errmsg = string.rep('\\255', 600) }");
        let message = error(reply).message;
        assert_eq!(message.as_str(), "\u{FFFD}".repeat(170));
        assert!(message.len() <= 512);
    }

    #[test]
    fn the_code_may_be_a_numeric_string_and_loses_its_fraction() {
        for (value, expected) in [
            ("1045", 1045),
            ("'1045'", 1045),
            ("' 0x10 '", 16),
            ("1045.9", 1045),
            ("0", 0),
            ("65535", 65535),
        ] {
            let code = format!("return {{ type = 255, errmsg = 'e', errcode = {value} }}");
            assert_eq!(error(quiet(&code)).code, expected, "{code}");
        }
    }

    #[test]
    fn a_code_that_is_no_code_is_1105_with_a_warning() {
        for value in ["'abc'", "true", "{}", "65536", "-1", "1/0", "0/0"] {
            let code = format!("return {{ type = 255, errmsg = 'e', errcode = {value} }}");
            let (reply, warnings) = warned(&code);
            assert_eq!(error(reply).code, 1105, "{code}");
            assert!(
                warnings[0].contains("proxy.response.errcode"),
                "{warnings:?}"
            );
        }
    }

    #[test]
    fn the_state_is_five_bytes() {
        for (value, expected, warns) in [
            ("'HY000'", "HY000", false),
            ("42000", "42000", false),
            ("7000", "07000", true),
            ("0", "00000", true),
            ("'HY'", "HY000", true),
            ("'4'", "40000", true),
            ("'4200012'", "42000", true),
            ("123456", "07000", true),
            ("1.5", "07000", true),
            ("-1", "07000", true),
            ("''", "07000", true),
            ("true", "07000", true),
            ("{}", "07000", true),
            ("'\\200\\200\\200\\200\\200'", "07000", true),
            ("'ab\\200'", "07000", true),
            ("'42S02\\255'", "42S02", true),
        ] {
            let code = format!("return {{ type = 255, errmsg = 'e', sqlstate = {value} }}");
            let (reply, warnings) = read(&code).unwrap();
            assert_eq!(error(reply).sql_state.as_str(), expected, "{code}");
            assert_eq!(!warnings.is_empty(), warns, "{code}: {warnings:?}");
            assert!(warnings.iter().all(|w| w.contains("sqlstate")));
        }
    }

    #[test]
    fn without_a_message_the_code_and_state_are_not_read() {
        // No warnings about them: the error says what is wrong.
        assert_eq!(
            failure("return { type = 255, errcode = 'x', sqlstate = true }"),
            ResponseError::ErrmsgNotString { found: "nil" }
        );
    }

    // ---- RAW ----

    #[test]
    fn raw_packets_are_sent_as_given() {
        assert_eq!(
            raw(quiet(
                "return { type = proxy.MYSQLD_PACKET_RAW, packets = { '\\0\\0\\0\\2\\0\\0\\0', '\\255\\254x', '' } }",
            )),
            vec![b"\0\0\0\x02\0\0\0".to_vec(), b"\xff\xfex".to_vec(), Vec::new()]
        );
    }

    #[test]
    fn raw_packets_end_at_the_first_nil() {
        assert_eq!(
            raw(quiet(
                "return { type = 250, packets = { 'a', 'b', nil, 'd' } }"
            )),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            raw(quiet("return { type = 250, packets = {} }")),
            Vec::<Vec<u8>>::new()
        );
    }

    #[test]
    fn a_large_raw_packet_is_whole() {
        let packets = raw(quiet(
            "return { type = 250, packets = { string.rep('\\0', 16 * 1024 * 1024 + 1) } }",
        ));
        assert_eq!(packets, vec![vec![0u8; 16 * 1024 * 1024 + 1]]);
    }

    #[test]
    fn raw_needs_a_table_of_strings() {
        for (code, expected) in [
            (
                "return { type = 250 }",
                ResponseError::PacketsNotTable { found: "nil" },
            ),
            (
                "return { type = 250, packets = 'abc' }",
                ResponseError::PacketsNotTable { found: "string" },
            ),
            (
                "return { type = 250, packets = { 'a', 1 } }",
                ResponseError::PacketNotString {
                    index: 2,
                    found: "number",
                },
            ),
            (
                "return { type = 250, packets = { {} } }",
                ResponseError::PacketNotString {
                    index: 1,
                    found: "table",
                },
            ),
        ] {
            assert_eq!(failure(code), expected, "{code}");
        }
    }

    // ---- failures as the client and the log see them ----

    #[test]
    fn failures_tell_the_client_to_check_the_log() {
        for failed in [
            failure("return {}"),
            failure("return { type = 3 }"),
            failure("return { type = 0, resultset = {} }"),
            failure("return { type = 250 }"),
        ] {
            assert_eq!(
                failed.client_error(),
                SqlError::new(
                    1105,
                    "07000",
                    "(lua) handling proxy.response failed, check error-log"
                )
            );
        }
    }

    #[test]
    fn failures_say_what_is_wrong_in_the_log() {
        assert_eq!(
            failure(
                "return { type = 0, resultset = { fields = { { name = 'a' } }, rows = { 1 } } }"
            )
            .to_string(),
            "proxy.response.resultset.rows[1] has to be a table, got number"
        );
        assert_eq!(
            failure("return { type = 3 }").to_string(),
            "proxy.response.type is 3, not one of proxy.MYSQLD_PACKET_OK (0), \
             proxy.MYSQLD_PACKET_ERR (255) or proxy.MYSQLD_PACKET_RAW (250)"
        );
        assert_eq!(
            failure("return { type = 255 }").to_string(),
            "proxy.response.errmsg has to be a string, got nil"
        );
    }

    #[test]
    fn a_metamethod_error_is_a_failure() {
        let failed = failure(
            "return setmetatable({}, { __index = function(_, key) error('no ' .. key) end })",
        );
        match &failed {
            ResponseError::Lua(message) => assert!(message.contains("no type"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(failed.client_error().message.as_str(), HANDLING_FAILED);
    }

    #[test]
    fn named_fields_honour_metamethods() {
        // A script may build its response from a prototype.
        assert_eq!(
            error(quiet(
                "local proto = { type = 255, errcode = 1045 }
                 return setmetatable({ errmsg = 'denied' }, { __index = proto })",
            )),
            SqlError::new(1045, "07000", "denied")
        );
    }

    #[test]
    fn a_response_that_is_no_table_is_a_failure() {
        let lua = Lua::new();
        for (value, found) in [
            (Value::Nil, "nil"),
            (Value::Boolean(true), "boolean"),
            (Value::Integer(2), "number"),
        ] {
            let failed = from_value(&lua, &value).unwrap_err();
            assert_eq!(failed, ResponseError::NotATable { found });
            assert_eq!(failed.client_error().message.as_str(), HANDLING_FAILED);
        }
        let table: Value = lua.load("return { type = 0 }").eval().unwrap();
        assert!(matches!(from_value(&lua, &table), Ok((Response::Ok(_), _))));
    }
}
