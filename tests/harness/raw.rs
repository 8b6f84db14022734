//! A minimal blocking MySQL protocol client for commands no real client sends on
//! demand (COM_FIELD_LIST, COM_STATISTICS, COM_RESET_CONNECTION, raw COM_*).
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
    pub const RESET_CONNECTION: u8 = 0x1f;
}

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_LONG_FLAG: u32 = 1 << 2;
const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
const CLIENT_PROTOCOL_41: u32 = 1 << 9;
const CLIENT_TRANSACTIONS: u32 = 1 << 13;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
const MAX_PAYLOAD: usize = 0xFF_FFFF;
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

/// An authenticated connection in the command phase.
pub struct RawConn {
    stream: TcpStream,
    seq: u8,
    pub greeting: Greeting,
}

impl RawConn {
    /// Connects and authenticates (`db` is sent with CLIENT_CONNECT_WITH_DB).
    pub fn connect(
        endpoint: &Endpoint,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<RawConn, RawError> {
        let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_write_timeout(Some(Duration::from_secs(60)))?;
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
        };
        let first = conn.read_packet()?;
        if let Some(err) = ServerError::parse(&first) {
            return Err(RawError::Server(err));
        }
        conn.greeting = parse_greeting(&first)?;
        conn.authenticate(user, password, db)?;
        Ok(conn)
    }

    fn authenticate(
        &mut self,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<(), RawError> {
        let mut caps = CLIENT_LONG_PASSWORD
            | CLIENT_LONG_FLAG
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH;
        if db.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        caps &= self.greeting.capabilities | CLIENT_LONG_PASSWORD;
        let auth = native_password(password.as_bytes(), &self.greeting.scramble);
        let mut p = Vec::new();
        p.extend_from_slice(&caps.to_le_bytes());
        p.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
        p.push(45); // utf8mb4_general_ci
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(auth.len() as u8);
        p.extend_from_slice(&auth);
        if let Some(db) = db.filter(|_| caps & CLIENT_CONNECT_WITH_DB != 0) {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            p.extend_from_slice(NATIVE_PASSWORD.as_bytes());
            p.push(0);
        }
        self.write_packet(&p)?;
        loop {
            let reply = self.read_packet()?;
            match reply.first() {
                Some(0x00) => break,
                Some(0xff) => return Err(server_error(&reply)),
                Some(0xfe) => {
                    // Auth switch request: plugin name NUL, new scramble (NUL-terminated).
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
        Ok(())
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

fn read_lenenc_int(p: &[u8], pos: &mut usize) -> Option<u64> {
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

fn read_lenenc_bytes<'a>(p: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(read_lenenc_int(p, pos)?).ok()?;
    let bytes = p.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(bytes)
}
