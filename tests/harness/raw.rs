//! A minimal blocking MySQL protocol client for commands no real client sends on
//! demand (COM_FIELD_LIST, COM_STATISTICS, COM_RESET_CONNECTION, COM_SET_OPTION,
//! cursors and COM_STMT_*, raw COM_*), and for sending malformed bytes on purpose.
//!
//! It speaks protocol 41 with `mysql_native_password` (and the auth switch to it),
//! without CLIENT_DEPRECATE_EOF, SSL or compression.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::client::Endpoint;

/// Command bytes used by the tests.
pub mod cmd {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PING: u8 = 0x0e;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1a;
    pub const SET_OPTION: u8 = 0x1b;
    pub const STMT_FETCH: u8 = 0x1c;
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// Server status flags (in OK and EOF packets).
pub mod status {
    pub const AUTOCOMMIT: u16 = 0x0002;
    pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
    pub const CURSOR_EXISTS: u16 = 0x0040;
    pub const LAST_ROW_SENT: u16 = 0x0080;
}

/// Column types of the binary protocol the tests encode or decode.
pub mod column_type {
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const NULL: u8 = 6;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const YEAR: u8 = 13;
    pub const VARCHAR: u8 = 15;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
}

/// COM_STMT_EXECUTE flag: open a read-only cursor (rows come by COM_STMT_FETCH).
pub const CURSOR_TYPE_READ_ONLY: u8 = 1;
/// COM_SET_OPTION arguments.
pub const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
pub const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_LONG_FLAG: u32 = 1 << 2;
const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
const CLIENT_TRANSACTIONS: u32 = 1 << 13;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
pub const CLIENT_MULTI_STATEMENTS: u32 = 1 << 16;
pub const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
/// The largest payload of one physical packet; a packet this long continues in the next.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;
/// How long [`RawConn`] waits for the server by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const NATIVE_PASSWORD: &str = "mysql_native_password";

/// A server ERR packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl ServerError {
    /// Parses an ERR payload (`0xff`, code, `#` + SQLSTATE, message).
    pub fn parse(payload: &[u8]) -> Option<ServerError> {
        if payload.first() != Some(&0xff) || payload.len() < 3 {
            return None;
        }
        let code = u16::from_le_bytes([payload[1], payload[2]]);
        let rest = &payload[3..];
        let (state, message) = match rest.first() {
            Some(b'#') if rest.len() >= 6 => (&rest[1..6], &rest[6..]),
            _ => (&b""[..], rest),
        };
        Some(ServerError {
            code,
            state: String::from_utf8_lossy(state).into_owned(),
            message: String::from_utf8_lossy(message).into_owned(),
        })
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERROR {} ({}): {}", self.code, self.state, self.message)
    }
}

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum RawError {
    Io(io::Error),
    Server(ServerError),
    Protocol(String),
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawError::Io(e) => write!(f, "I/O: {e}"),
            RawError::Server(e) => write!(f, "{e}"),
            RawError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for RawError {}

impl From<io::Error> for RawError {
    fn from(e: io::Error) -> Self {
        RawError::Io(e)
    }
}

/// The server greeting's fields the tests look at.
#[derive(Clone, Debug)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    pub charset: u8,
    pub status: u16,
    pub auth_plugin: String,
    pub scramble: Vec<u8>,
}

/// A column definition's fields the tests look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: u8,
    pub flags: u16,
}

/// One result of a COM_QUERY: an OK (no columns) or a text result set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
    pub affected_rows: u64,
    /// Status flags of the OK or of the EOF that ended the rows.
    pub status: u16,
}

/// A prepared statement, as COM_STMT_PREPARE described it.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub id: u32,
    pub params: u16,
    pub columns: Vec<Column>,
}

/// A COM_STMT_EXECUTE parameter.
#[derive(Clone, Debug)]
pub enum Param {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
    /// Sent before with COM_STMT_SEND_LONG_DATA: only its type goes in the execute.
    LongData,
}

/// The answer to COM_STMT_EXECUTE: an OK, or column definitions followed by
/// binary rows (none when a cursor was opened).
#[derive(Clone, Debug)]
pub struct StmtResult {
    pub columns: Vec<Column>,
    /// Binary row payloads, undecoded (see [`decode_binary_row`]).
    pub rows: Vec<Vec<u8>>,
    pub affected_rows: u64,
    /// Status flags of the OK, or of the EOF after the columns (cursor) or rows.
    pub status: u16,
}

/// A value of a binary row, for the column types [`decode_binary_row`] knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BinValue {
    Null,
    Int(i64),
    UInt(u64),
    Bytes(Vec<u8>),
}

/// An authenticated connection in the command phase (or, from [`RawConn::open`],
/// one that has only read the server's greeting).
pub struct RawConn {
    stream: TcpStream,
    seq: u8,
    pub greeting: Greeting,
    /// Capabilities the client sent in its auth response.
    pub capabilities: u32,
}

impl RawConn {
    /// Connects and authenticates (`db` is sent with CLIENT_CONNECT_WITH_DB).
    pub fn connect(
        endpoint: &Endpoint,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<RawConn, RawError> {
        RawConn::connect_with(endpoint, user, password, db, 0)
    }

    /// Like [`RawConn::connect`], also asking for the capability flags `extra`
    /// (e.g. [`CLIENT_MULTI_STATEMENTS`]) if the server offers them.
    pub fn connect_with(
        endpoint: &Endpoint,
        user: &str,
        password: &str,
        db: Option<&str>,
        extra: u32,
    ) -> Result<RawConn, RawError> {
        let mut conn = RawConn::open(endpoint)?;
        conn.login(user, password, db, extra)?;
        Ok(conn)
    }

    /// Connects and reads the server's greeting, nothing more: the caller sends
    /// the auth response (or anything else) itself.
    pub fn open(endpoint: &Endpoint) -> Result<RawConn, RawError> {
        RawConn::open_extended(endpoint).map(|(conn, _)| conn)
    }

    /// Sends the auth response after [`RawConn::open`] and completes the login.
    pub fn login(
        &mut self,
        user: &str,
        password: &str,
        db: Option<&str>,
        extra: u32,
    ) -> Result<(), RawError> {
        let auth = native_password(password.as_bytes(), &self.greeting.scramble);
        let response = self.auth_response(user, &auth, db, extra, NATIVE_PASSWORD);
        self.write_packet(&response)?;
        self.finish_login(password)
    }

    /// Sends an auth response for `user` that proposes auth plugin `plugin`
    /// with no auth data, and returns the server's reply (for a plugin the
    /// account does not use, an auth switch request) without answering it.
    pub fn propose_auth_plugin(&mut self, user: &str, plugin: &str) -> Result<Vec<u8>, RawError> {
        let response = self.auth_response(user, &[], None, 0, plugin);
        self.write_packet(&response)?;
        self.read_packet()
    }

    /// The handshake response payload, with the capabilities the server
    /// offers of the usual client set and `extra` (recorded in
    /// `self.capabilities`).
    fn auth_response(
        &mut self,
        user: &str,
        auth: &[u8],
        db: Option<&str>,
        extra: u32,
        plugin: &str,
    ) -> Vec<u8> {
        let mut caps = CLIENT_LONG_PASSWORD
            | CLIENT_LONG_FLAG
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH
            | extra;
        if db.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        caps &= self.greeting.capabilities | CLIENT_LONG_PASSWORD;
        self.capabilities = caps;
        let mut p = Vec::new();
        p.extend_from_slice(&caps.to_le_bytes());
        p.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
        p.push(45); // utf8mb4_general_ci
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(auth.len() as u8);
        p.extend_from_slice(auth);
        if let Some(db) = db.filter(|_| caps & CLIENT_CONNECT_WITH_DB != 0) {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            p.extend_from_slice(plugin.as_bytes());
            p.push(0);
        }
        p
    }

    /// Sends one command (sequence id 0) without reading the reply.
    pub fn send_command(&mut self, command: u8, arg: &[u8]) -> Result<(), RawError> {
        let mut payload = Vec::with_capacity(arg.len() + 1);
        payload.push(command);
        payload.extend_from_slice(arg);
        self.seq = 0;
        self.write_packet(&payload)
    }

    /// Sends a command whose reply is OK or ERR; returns the OK payload.
    pub fn simple_command(&mut self, command: u8, arg: &[u8]) -> Result<Vec<u8>, RawError> {
        self.send_command(command, arg)?;
        let reply = self.read_packet()?;
        match reply.first() {
            Some(0x00) => Ok(reply),
            Some(0xff) => Err(server_error(&reply)),
            _ => Err(RawError::Protocol(format!(
                "expected OK or ERR, got {reply:02x?}"
            ))),
        }
    }

    /// COM_PING.
    pub fn ping(&mut self) -> Result<(), RawError> {
        self.simple_command(cmd::PING, &[]).map(drop)
    }

    /// COM_INIT_DB.
    pub fn init_db(&mut self, db: &str) -> Result<(), RawError> {
        self.simple_command(cmd::INIT_DB, db.as_bytes()).map(drop)
    }

    /// COM_RESET_CONNECTION.
    pub fn reset_connection(&mut self) -> Result<(), RawError> {
        self.simple_command(cmd::RESET_CONNECTION, &[]).map(drop)
    }

    /// COM_STATISTICS: the server's one-line status string.
    pub fn statistics(&mut self) -> Result<String, RawError> {
        self.send_command(cmd::STATISTICS, &[])?;
        let reply = self.read_packet()?;
        if reply.first() == Some(&0xff) {
            return Err(server_error(&reply));
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// COM_FIELD_LIST: the names of the columns of `table` matching `wildcard`.
    pub fn field_list(&mut self, table: &str, wildcard: &str) -> Result<Vec<String>, RawError> {
        let mut arg = table.as_bytes().to_vec();
        arg.push(0);
        arg.extend_from_slice(wildcard.as_bytes());
        self.send_command(cmd::FIELD_LIST, &arg)?;
        let mut names = Vec::new();
        loop {
            let packet = self.read_packet()?;
            match packet.first() {
                Some(0xff) => return Err(server_error(&packet)),
                Some(0xfe) if packet.len() < 9 => return Ok(names),
                _ => names.push(column_name(&packet)?),
            }
        }
    }

    /// COM_QUERY; returns the rows of a text result set as strings (NULL as
    /// `None`), or an empty list for an OK.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, RawError> {
        self.send_command(cmd::QUERY, sql.as_bytes())?;
        let first = self.read_packet()?;
        match first.first() {
            Some(0x00) => return Ok(Vec::new()),
            Some(0xff) => return Err(server_error(&first)),
            _ => {}
        }
        let mut pos = 0;
        let columns = read_lenenc_int(&first, &mut pos)
            .ok_or_else(|| RawError::Protocol("bad column count".into()))?;
        for _ in 0..columns {
            self.read_packet()?;
        }
        let eof = self.read_packet()?;
        if eof.first() != Some(&0xfe) {
            return Err(RawError::Protocol(format!(
                "expected EOF after columns, got {eof:02x?}"
            )));
        }
        let mut rows = Vec::new();
        loop {
            let packet = self.read_packet()?;
            match packet.first() {
                Some(0xfe) if packet.len() < 9 => return Ok(rows),
                Some(0xff) => return Err(server_error(&packet)),
                _ => {}
            }
            let mut pos = 0;
            let mut row = Vec::new();
            for _ in 0..columns {
                if packet.get(pos) == Some(&0xfb) {
                    pos += 1;
                    row.push(None);
                } else {
                    let value = read_lenenc_bytes(&packet, &mut pos)
                        .ok_or_else(|| RawError::Protocol("bad row".into()))?;
                    row.push(Some(String::from_utf8_lossy(value).into_owned()));
                }
            }
            rows.push(row);
        }
    }

    /// COM_QUIT, then waits for the server to close the connection.
    pub fn quit(mut self) -> Result<(), RawError> {
        self.send_command(cmd::QUIT, &[])?;
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// COM_QUERY; every result it produced (several with multi-statements, as
    /// long as SERVER_MORE_RESULTS_EXISTS says more follow). An ERR ends it as
    /// the error.
    pub fn query_results(&mut self, sql: &str) -> Result<Vec<TextResult>, RawError> {
        self.send_command(cmd::QUERY, sql.as_bytes())?;
        let mut results = Vec::new();
        loop {
            let result = self.read_text_result()?;
            let more = result.status & status::MORE_RESULTS_EXISTS != 0;
            results.push(result);
            if !more {
                return Ok(results);
            }
        }
    }

    fn read_text_result(&mut self) -> Result<TextResult, RawError> {
        let first = self.read_packet()?;
        match first.first() {
            Some(0x00) => {
                let (affected_rows, status) = parse_ok(&first)?;
                return Ok(TextResult {
                    columns: Vec::new(),
                    rows: Vec::new(),
                    affected_rows,
                    status,
                });
            }
            Some(0xff) => return Err(server_error(&first)),
            Some(0xfb) => return Err(RawError::Protocol("LOCAL INFILE request".into())),
            _ => {}
        }
        let columns = self.read_columns(column_count(&first)?)?;
        self.read_eof("after column definitions")?;
        let mut rows = Vec::new();
        loop {
            let packet = self.read_packet()?;
            if is_eof(&packet) {
                return Ok(TextResult {
                    columns,
                    rows,
                    affected_rows: 0,
                    status: eof_status(&packet),
                });
            }
            if packet.first() == Some(&0xff) {
                return Err(server_error(&packet));
            }
            let mut pos = 0;
            let mut row = Vec::with_capacity(columns.len());
            for _ in 0..columns.len() {
                if packet.get(pos) == Some(&0xfb) {
                    pos += 1;
                    row.push(None);
                } else {
                    let value = read_lenenc_bytes(&packet, &mut pos)
                        .ok_or_else(|| RawError::Protocol(format!("bad text row {packet:02x?}")))?;
                    row.push(Some(String::from_utf8_lossy(value).into_owned()));
                }
            }
            rows.push(row);
        }
    }

    /// COM_SET_OPTION; returns the server's reply payload (EOF, or OK) as is.
    pub fn set_option(&mut self, option: u16) -> Result<Vec<u8>, RawError> {
        self.send_command(cmd::SET_OPTION, &option.to_le_bytes())?;
        let reply = self.read_packet()?;
        if reply.first() == Some(&0xff) {
            return Err(server_error(&reply));
        }
        Ok(reply)
    }

    /// COM_STMT_PREPARE: the statement id, parameter count and result columns.
    pub fn prepare(&mut self, sql: &str) -> Result<Prepared, RawError> {
        self.send_command(cmd::STMT_PREPARE, sql.as_bytes())?;
        let ok = self.read_packet()?;
        match ok.first() {
            Some(0x00) if ok.len() >= 12 => {}
            Some(0xff) => return Err(server_error(&ok)),
            _ => {
                return Err(RawError::Protocol(format!(
                    "expected COM_STMT_PREPARE OK, got {ok:02x?}"
                )))
            }
        }
        let id = u32::from_le_bytes([ok[1], ok[2], ok[3], ok[4]]);
        let columns = u16::from_le_bytes([ok[5], ok[6]]);
        let params = u16::from_le_bytes([ok[7], ok[8]]);
        if params > 0 {
            self.read_columns(params.into())?;
            self.read_eof("after parameter definitions")?;
        }
        let columns = if columns > 0 {
            let columns = self.read_columns(columns.into())?;
            self.read_eof("after column definitions")?;
            columns
        } else {
            Vec::new()
        };
        Ok(Prepared {
            id,
            params,
            columns,
        })
    }

    /// COM_STMT_EXECUTE with `flags` (e.g. [`CURSOR_TYPE_READ_ONLY`]) and the
    /// parameters bound anew. With a cursor open, the rows stay on the server.
    pub fn execute(
        &mut self,
        stmt: &Prepared,
        flags: u8,
        params: &[Param],
    ) -> Result<StmtResult, RawError> {
        if params.len() != usize::from(stmt.params) {
            return Err(RawError::Protocol(format!(
                "{} parameters for a statement with {}",
                params.len(),
                stmt.params
            )));
        }
        let mut arg = Vec::new();
        arg.extend_from_slice(&stmt.id.to_le_bytes());
        arg.push(flags);
        arg.extend_from_slice(&1u32.to_le_bytes());
        if !params.is_empty() {
            let mut nulls = vec![0u8; params.len().div_ceil(8)];
            for (i, param) in params.iter().enumerate() {
                if matches!(param, Param::Null) {
                    nulls[i / 8] |= 1 << (i % 8);
                }
            }
            arg.extend_from_slice(&nulls);
            arg.push(1); // new_params_bound_flag
            for param in params {
                let kind = match param {
                    Param::Null => column_type::NULL,
                    Param::Int(_) => column_type::LONGLONG,
                    Param::Bytes(_) => column_type::VAR_STRING,
                    Param::LongData => column_type::BLOB,
                };
                arg.extend_from_slice(&[kind, 0]);
            }
            for param in params {
                match param {
                    Param::Int(v) => arg.extend_from_slice(&v.to_le_bytes()),
                    Param::Bytes(b) => {
                        write_lenenc_int(&mut arg, b.len() as u64);
                        arg.extend_from_slice(b);
                    }
                    Param::Null | Param::LongData => {}
                }
            }
        }
        self.send_command(cmd::STMT_EXECUTE, &arg)?;
        let first = self.read_packet()?;
        match first.first() {
            Some(0x00) => {
                let (affected_rows, status) = parse_ok(&first)?;
                return Ok(StmtResult {
                    columns: Vec::new(),
                    rows: Vec::new(),
                    affected_rows,
                    status,
                });
            }
            Some(0xff) => return Err(server_error(&first)),
            _ => {}
        }
        let columns = self.read_columns(column_count(&first)?)?;
        let eof = self.read_eof("after column definitions")?;
        let status = eof_status(&eof);
        if status & status::CURSOR_EXISTS != 0 {
            return Ok(StmtResult {
                columns,
                rows: Vec::new(),
                affected_rows: 0,
                status,
            });
        }
        let (rows, status) = self.read_binary_rows()?;
        Ok(StmtResult {
            columns,
            rows,
            affected_rows: 0,
            status,
        })
    }

    /// COM_STMT_FETCH of up to `rows` rows from the statement's open cursor:
    /// the binary row payloads and the status of the EOF that ends them.
    pub fn fetch(&mut self, stmt_id: u32, rows: u32) -> Result<(Vec<Vec<u8>>, u16), RawError> {
        let mut arg = stmt_id.to_le_bytes().to_vec();
        arg.extend_from_slice(&rows.to_le_bytes());
        self.send_command(cmd::STMT_FETCH, &arg)?;
        self.read_binary_rows()
    }

    fn read_binary_rows(&mut self) -> Result<(Vec<Vec<u8>>, u16), RawError> {
        let mut rows = Vec::new();
        loop {
            let packet = self.read_packet()?;
            match packet.first() {
                _ if is_eof(&packet) => return Ok((rows, eof_status(&packet))),
                Some(0xff) => return Err(server_error(&packet)),
                Some(0x00) => rows.push(packet),
                _ => {
                    return Err(RawError::Protocol(format!(
                        "expected a binary row, got {packet:02x?}"
                    )))
                }
            }
        }
    }

    /// COM_STMT_SEND_LONG_DATA (the server sends no reply).
    pub fn send_long_data(
        &mut self,
        stmt_id: u32,
        param: u16,
        data: &[u8],
    ) -> Result<(), RawError> {
        let mut arg = stmt_id.to_le_bytes().to_vec();
        arg.extend_from_slice(&param.to_le_bytes());
        arg.extend_from_slice(data);
        self.send_command(cmd::STMT_SEND_LONG_DATA, &arg)
    }

    /// COM_STMT_RESET (OK or ERR).
    pub fn stmt_reset(&mut self, stmt_id: u32) -> Result<(), RawError> {
        self.simple_command(cmd::STMT_RESET, &stmt_id.to_le_bytes())
            .map(drop)
    }

    /// COM_STMT_CLOSE (the server sends no reply).
    pub fn stmt_close(&mut self, stmt_id: u32) -> Result<(), RawError> {
        self.send_command(cmd::STMT_CLOSE, &stmt_id.to_le_bytes())
    }

    fn read_columns(&mut self, count: u64) -> Result<Vec<Column>, RawError> {
        (0..count)
            .map(|_| parse_column(&self.read_packet()?))
            .collect()
    }

    fn read_eof(&mut self, what: &str) -> Result<Vec<u8>, RawError> {
        let eof = self.read_packet()?;
        if is_eof(&eof) {
            Ok(eof)
        } else if eof.first() == Some(&0xff) {
            Err(server_error(&eof))
        } else {
            Err(RawError::Protocol(format!(
                "expected EOF {what}, got {eof:02x?}"
            )))
        }
    }

    /// Sets the socket's read timeout (60 s by default).
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Writes `bytes` as they are: no framing, the sequence id is left alone.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The socket, e.g. to close it in a particular way.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Half-closes the connection: the peer reads end-of-stream, replies can still arrive.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }

    /// Reads everything the peer sends until it closes the connection or the
    /// read timeout passes; returns the bytes and how the stream ended.
    pub fn drain(&mut self) -> (Vec<u8>, StreamEnd) {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return (received, StreamEnd::Closed),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let end = match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => StreamEnd::TimedOut,
                        io::ErrorKind::ConnectionReset => StreamEnd::Reset,
                        kind => StreamEnd::Failed(kind),
                    };
                    return (received, end);
                }
            }
        }
    }

    /// Reads one logical packet (joining 0xFFFFFF-byte continuations); checks the sequence id.
    pub fn read_packet(&mut self) -> Result<Vec<u8>, RawError> {
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; 4];
            self.stream.read_exact(&mut header)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            if header[3] != self.seq {
                return Err(RawError::Protocol(format!(
                    "sequence id {} where {} was expected",
                    header[3], self.seq
                )));
            }
            self.seq = self.seq.wrapping_add(1);
            let start = payload.len();
            payload.resize(start + len, 0);
            self.stream.read_exact(&mut payload[start..])?;
            if len < MAX_PAYLOAD {
                return Ok(payload);
            }
        }
    }

    /// Reads one physical packet whatever its sequence id: (sequence id, payload).
    /// For peers that may answer out of turn, e.g. an error after a malformed packet.
    pub fn read_frame(&mut self) -> Result<(u8, Vec<u8>), RawError> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let mut payload = vec![0; len];
        self.stream.read_exact(&mut payload)?;
        Ok((header[3], payload))
    }

    /// Writes one logical packet, split into 0xFFFFFF-byte pieces as the protocol requires.
    pub fn write_packet(&mut self, payload: &[u8]) -> Result<(), RawError> {
        let mut rest = payload;
        loop {
            let len = rest.len().min(MAX_PAYLOAD);
            let mut frame = Vec::with_capacity(len + 4);
            frame.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
            frame.push(self.seq);
            frame.extend_from_slice(&rest[..len]);
            self.stream.write_all(&frame)?;
            self.seq = self.seq.wrapping_add(1);
            rest = &rest[len..];
            if len < MAX_PAYLOAD {
                return Ok(());
            }
        }
    }
}

/// How the stream ended for [`RawConn::drain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// End of stream: the peer closed the connection.
    Closed,
    /// The peer reset the connection.
    Reset,
    /// Nothing more arrived within the read timeout; the connection is still open.
    TimedOut,
    Failed(io::ErrorKind),
}

/// Splits bytes read from a connection into (sequence id, payload) frames;
/// `None` if they do not end on a frame boundary.
pub fn split_frames(mut bytes: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let header = bytes.get(..4)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let payload = bytes.get(4..4 + len)?;
        frames.push((header[3], payload.to_vec()));
        bytes = &bytes[4 + len..];
    }
    Some(frames)
}

/// Decodes a binary-protocol row (`0x00`, NULL bitmap, values) for integer and
/// string-like columns; other column types are a protocol error here.
pub fn decode_binary_row(columns: &[Column], row: &[u8]) -> Result<Vec<BinValue>, RawError> {
    let bad = |why: &str| RawError::Protocol(format!("binary row: {why}: {row:02x?}"));
    if row.first() != Some(&0x00) {
        return Err(bad("no 0x00 header"));
    }
    let bitmap_len = (columns.len() + 7 + 2) / 8;
    let bitmap = row
        .get(1..1 + bitmap_len)
        .ok_or_else(|| bad("short NULL bitmap"))?;
    let mut pos = 1 + bitmap_len;
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let bit = i + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            values.push(BinValue::Null);
            continue;
        }
        let width = match column.column_type {
            column_type::TINY => 1,
            column_type::SHORT | column_type::YEAR => 2,
            column_type::LONG | column_type::INT24 => 4,
            column_type::LONGLONG => 8,
            _ => 0,
        };
        if width == 0 {
            let string_like = matches!(column.column_type, 0 | 15 | 245..=254);
            if !string_like {
                return Err(bad(&format!("column type {}", column.column_type)));
            }
            let bytes = read_lenenc_bytes(row, &mut pos).ok_or_else(|| bad("bad string"))?;
            values.push(BinValue::Bytes(bytes.to_vec()));
            continue;
        }
        let bytes = row
            .get(pos..pos + width)
            .ok_or_else(|| bad("short integer"))?;
        pos += width;
        let mut raw = [0u8; 8];
        raw[..width].copy_from_slice(bytes);
        let unsigned = u64::from_le_bytes(raw);
        let value = if column.flags & UNSIGNED_FLAG != 0 {
            BinValue::UInt(unsigned)
        } else {
            // Sign-extend from `width` bytes.
            let shift = 64 - 8 * width as u32;
            BinValue::Int(((unsigned << shift) as i64) >> shift)
        };
        values.push(value);
    }
    if pos != row.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(values)
}

/// Column flag: an unsigned integer.
const UNSIGNED_FLAG: u16 = 0x0020;

/// An OK payload's affected rows and status flags.
fn parse_ok(p: &[u8]) -> Result<(u64, u16), RawError> {
    let bad = || RawError::Protocol(format!("malformed OK {p:02x?}"));
    let mut pos = 1;
    let affected = read_lenenc_int(p, &mut pos).ok_or_else(bad)?;
    read_lenenc_int(p, &mut pos).ok_or_else(bad)?;
    let status = p.get(pos..pos + 2).ok_or_else(bad)?;
    Ok((affected, u16::from_le_bytes([status[0], status[1]])))
}

/// A classic EOF packet (a longer `0xFE` packet is a row).
fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

/// Status flags of an EOF payload (`0xFE`, warnings, status).
fn eof_status(p: &[u8]) -> u16 {
    match p.get(3..5) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn column_count(p: &[u8]) -> Result<u64, RawError> {
    let mut pos = 0;
    match read_lenenc_int(p, &mut pos) {
        Some(count) if count > 0 && pos == p.len() => Ok(count),
        _ => Err(RawError::Protocol(format!("bad column count {p:02x?}"))),
    }
}

/// ColumnDefinition41: catalog, schema, table, org_table, name, org_name, then
/// the fixed fields (charset, length, type, flags, decimals).
fn parse_column(p: &[u8]) -> Result<Column, RawError> {
    let bad = || RawError::Protocol(format!("malformed column definition {p:02x?}"));
    let mut pos = 0;
    let mut name = b"".as_slice();
    for i in 0..6 {
        let field = read_lenenc_bytes(p, &mut pos).ok_or_else(bad)?;
        if i == 4 {
            name = field;
        }
    }
    read_lenenc_int(p, &mut pos).ok_or_else(bad)?;
    let fixed = p.get(pos..pos + 9).ok_or_else(bad)?;
    Ok(Column {
        name: String::from_utf8_lossy(name).into_owned(),
        column_type: fixed[6],
        flags: u16::from_le_bytes([fixed[7], fixed[8]]),
    })
}

fn write_lenenc_int(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xfa => out.push(v as u8),
        0xfb..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn server_error(payload: &[u8]) -> RawError {
    match ServerError::parse(payload) {
        Some(e) => RawError::Server(e),
        None => RawError::Protocol(format!("malformed ERR {payload:02x?}")),
    }
}

/// Handshake v10: version, thread id, scramble (8 + 12..13 bytes), capabilities,
/// charset, status, plugin name.
fn parse_greeting(p: &[u8]) -> Result<Greeting, RawError> {
    let bad = || RawError::Protocol(format!("malformed greeting {p:02x?}"));
    if p.first() != Some(&10) {
        return Err(bad());
    }
    let nul = p[1..].iter().position(|&b| b == 0).ok_or_else(bad)? + 1;
    let server_version = String::from_utf8_lossy(&p[1..nul]).into_owned();
    let mut pos = nul + 1;
    let fixed = p
        .get(pos..pos + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10)
        .ok_or_else(bad)?;
    let connection_id = u32::from_le_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
    let mut scramble = fixed[4..12].to_vec();
    let cap_low = u16::from_le_bytes([fixed[13], fixed[14]]) as u32;
    let charset = fixed[15];
    let status = u16::from_le_bytes([fixed[16], fixed[17]]);
    let cap_high = u16::from_le_bytes([fixed[18], fixed[19]]) as u32;
    let auth_len = fixed[20] as usize;
    pos += fixed.len();
    let capabilities = cap_low | (cap_high << 16);
    let mut auth_plugin = String::new();
    if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let part2 = auth_len.saturating_sub(8).max(13);
        let bytes = p.get(pos..pos + part2).ok_or_else(bad)?;
        scramble.extend_from_slice(bytes.strip_suffix(&[0]).unwrap_or(bytes));
        pos += part2;
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        let rest = p.get(pos..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        auth_plugin = String::from_utf8_lossy(&rest[..end]).into_owned();
    }
    Ok(Greeting {
        server_version,
        connection_id,
        capabilities,
        charset,
        status,
        auth_plugin,
        scramble,
    })
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`; empty for no password.
pub fn native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut hasher = Sha1::new();
    hasher.update(scramble);
    hasher.update(stage2);
    let mix = hasher.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// The `name` field (5th length-encoded string) of a ColumnDefinition41.
fn column_name(p: &[u8]) -> Result<String, RawError> {
    let mut pos = 0;
    let mut field = b"".as_slice();
    for _ in 0..5 {
        field = read_lenenc_bytes(p, &mut pos)
            .ok_or_else(|| RawError::Protocol(format!("malformed column definition {p:02x?}")))?;
    }
    Ok(String::from_utf8_lossy(field).into_owned())
}

pub fn read_lenenc_int(p: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *p.get(*pos)?;
    let width = match first {
        0..=0xfa => {
            *pos += 1;
            return Some(first as u64);
        }
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = p.get(*pos + 1..*pos + 1 + width)?;
    let mut value = [0u8; 8];
    value[..width].copy_from_slice(bytes);
    *pos += 1 + width;
    Some(u64::from_le_bytes(value))
}

pub fn read_lenenc_bytes<'a>(p: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(read_lenenc_int(p, pos)?).ok()?;
    let bytes = p.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(bytes)
}

// ------------------------------------------------ 64-bit (MariaDB) capabilities

/// Bit 0 in MariaDB's reading: `CLIENT_MYSQL` (MySQL's `CLIENT_LONG_PASSWORD`).
/// A MariaDB server clears it in its greeting, and a MariaDB-aware client in
/// its auth response, to say that the extended capabilities (the upper 32
/// bits) follow in the reserved bytes.
pub const CLIENT_MYSQL: u64 = 1;
/// MariaDB's extended column metadata (a data type or format name per column
/// definition, e.g. `json`): extended capability, bit 35 of the 64.
pub const MARIADB_CLIENT_EXTENDED_METADATA: u64 = 1 << 35;
/// Connect attributes follow the auth plugin name in the auth response.
pub const CLIENT_CONNECT_ATTRS: u64 = 1 << 20;

impl RawConn {
    /// Like [`RawConn::open`], also returning the greeting's capabilities as
    /// 64 bits: with MariaDB's extended capabilities (the last four of the
    /// ten reserved bytes) in the upper half when the greeting clears bit 0
    /// ([`CLIENT_MYSQL`]), as MariaDB's does.
    pub fn open_extended(endpoint: &Endpoint) -> Result<(RawConn, u64), RawError> {
        let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))?;
        stream.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
        stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut conn = RawConn {
            stream,
            seq: 0,
            greeting: Greeting {
                server_version: String::new(),
                connection_id: 0,
                capabilities: 0,
                charset: 0,
                status: 0,
                auth_plugin: String::new(),
                scramble: Vec::new(),
            },
            capabilities: 0,
        };
        let first = conn.read_packet()?;
        if let Some(err) = ServerError::parse(&first) {
            return Err(RawError::Server(err));
        }
        conn.greeting = parse_greeting(&first)?;
        let capabilities = greeting_capabilities64(&first)?;
        Ok((conn, capabilities))
    }

    /// Sends a HandshakeResponse41 with exactly `capabilities`, nothing
    /// removed that the greeting did not offer (so a test can ask for what
    /// it was not offered): the lower 32 bits in the flags field, the upper
    /// 32 in the last four filler bytes when bit 0 ([`CLIENT_MYSQL`]) is
    /// clear, as a MariaDB-aware client sends them. `db` goes with
    /// CLIENT_CONNECT_WITH_DB, `attrs` (key, value) with
    /// [`CLIENT_CONNECT_ATTRS`]. Then completes the login like
    /// [`RawConn::login`] (auth switch to `mysql_native_password` included).
    pub fn login_extended(
        &mut self,
        user: &str,
        password: &str,
        db: Option<&str>,
        capabilities: u64,
        attrs: &[(&str, &str)],
    ) -> Result<(), RawError> {
        let lower = capabilities as u32;
        self.capabilities = lower;
        let mut p = Vec::new();
        p.extend_from_slice(&lower.to_le_bytes());
        p.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
        p.push(45); // utf8mb4_general_ci
        p.extend_from_slice(&[0; 19]);
        if capabilities & CLIENT_MYSQL == 0 {
            p.extend_from_slice(&((capabilities >> 32) as u32).to_le_bytes());
        } else {
            p.extend_from_slice(&[0; 4]);
        }
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        let auth = native_password(password.as_bytes(), &self.greeting.scramble);
        if lower & CLIENT_SECURE_CONNECTION != 0 {
            p.push(auth.len() as u8);
            p.extend_from_slice(&auth);
        } else {
            p.extend_from_slice(&auth);
            p.push(0);
        }
        if let Some(db) = db.filter(|_| lower & CLIENT_CONNECT_WITH_DB != 0) {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        if lower & CLIENT_PLUGIN_AUTH != 0 {
            p.extend_from_slice(NATIVE_PASSWORD.as_bytes());
            p.push(0);
        }
        if capabilities & CLIENT_CONNECT_ATTRS != 0 {
            let mut block = Vec::new();
            for (key, value) in attrs {
                write_lenenc_int(&mut block, key.len() as u64);
                block.extend_from_slice(key.as_bytes());
                write_lenenc_int(&mut block, value.len() as u64);
                block.extend_from_slice(value.as_bytes());
            }
            write_lenenc_int(&mut p, block.len() as u64);
            p.extend_from_slice(&block);
        }
        self.write_packet(&p)?;
        self.finish_login(password)
    }

    /// The rest of a login after the auth response: auth switches to
    /// `mysql_native_password` answered, until OK (or the server's ERR).
    fn finish_login(&mut self, password: &str) -> Result<(), RawError> {
        loop {
            let reply = self.read_packet()?;
            match reply.first() {
                Some(0x00) => return Ok(()),
                Some(0xff) => return Err(server_error(&reply)),
                Some(0xfe) => {
                    let body = &reply[1..];
                    let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                    let plugin = String::from_utf8_lossy(&body[..nul]).into_owned();
                    if plugin != NATIVE_PASSWORD {
                        return Err(RawError::Protocol(format!("auth switch to {plugin}")));
                    }
                    let mut scramble = body.get(nul + 1..).unwrap_or_default().to_vec();
                    if scramble.last() == Some(&0) {
                        scramble.pop();
                    }
                    self.write_packet(&native_password(password.as_bytes(), &scramble))?;
                }
                _ => {
                    return Err(RawError::Protocol(format!(
                        "unexpected auth reply {reply:02x?}"
                    )))
                }
            }
        }
    }
}

/// A greeting's capabilities as 64 bits (see [`RawConn::open_extended`]).
fn greeting_capabilities64(p: &[u8]) -> Result<u64, RawError> {
    let bad = || RawError::Protocol(format!("malformed greeting {p:02x?}"));
    let nul = p
        .get(1..)
        .and_then(|rest| rest.iter().position(|&b| b == 0));
    let pos = nul.ok_or_else(bad)? + 2;
    // Thread id, scramble part 1, filler, then what is read here.
    let fixed = p.get(pos + 13..pos + 31).ok_or_else(bad)?;
    let lower = u32::from_le_bytes([fixed[0], fixed[1], fixed[5], fixed[6]]);
    let upper = if u64::from(lower) & CLIENT_MYSQL == 0 {
        u32::from_le_bytes([fixed[14], fixed[15], fixed[16], fixed[17]])
    } else {
        0
    };
    Ok(u64::from(lower) | (u64::from(upper) << 32))
}
