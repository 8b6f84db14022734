//! A light MySQL protocol client for the benchmarks: connect, handshake and
//! authenticate (a user without password, database `test`), run a text query
//! whose result is streamed and counted without being decoded, COM_QUIT.
//!
//! It exists so that the benchmark process stays small and cheap next to what
//! it measures: one read buffer per connection (dropped for idle connections),
//! packet headers walked in place, row payloads skipped unread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_LONG_FLAG: u32 = 1 << 2;
const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
const CLIENT_PROTOCOL_41: u32 = 1 << 9;
const CLIENT_TRANSACTIONS: u32 = 1 << 13;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const HEADER: usize = 4;
const MAX_CHUNK: usize = 0xFF_FFFF;

/// An authenticated connection in the command phase.
pub struct LightConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

/// What a streamed result was.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResultCount {
    pub rows: u64,
    /// Bytes on the wire, headers included.
    pub bytes: u64,
}

fn protocol(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn server_error(payload: &[u8]) -> io::Error {
    let code = payload
        .get(1..3)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .unwrap_or(0);
    let text = payload
        .get(3..)
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    io::Error::other(format!("server error {code}: {text}"))
}

impl LightConn {
    /// Connects to `addr` and logs in as `user` (no password) into `db`;
    /// `buf_size` is the read buffer (grown when a small packet needs more).
    pub fn connect(
        addr: SocketAddr,
        user: &str,
        db: &str,
        buf_size: usize,
        timeout: Duration,
    ) -> io::Result<LightConn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = LightConn {
            stream,
            buf: vec![0; buf_size.max(1024)],
            start: 0,
            end: 0,
        };
        let (greeting, _) = conn.read_small()?;
        match greeting.first() {
            Some(10) => {}
            Some(0xff) => return Err(server_error(&greeting)),
            _ => return Err(protocol(format!("unexpected greeting {greeting:02x?}"))),
        }
        let server_caps = greeting_capabilities(&greeting)?;
        let caps = (CLIENT_LONG_PASSWORD
            | CLIENT_LONG_FLAG
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH)
            & (server_caps | CLIENT_LONG_PASSWORD);
        if caps & CLIENT_PROTOCOL_41 == 0 {
            return Err(protocol("server without CLIENT_PROTOCOL_41"));
        }
        let mut p = Vec::with_capacity(96);
        p.extend_from_slice(&caps.to_le_bytes());
        p.extend_from_slice(&(MAX_CHUNK as u32).to_le_bytes());
        p.push(45); // utf8mb4_general_ci
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(0); // empty auth response: no password
        if caps & CLIENT_CONNECT_WITH_DB != 0 {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            p.extend_from_slice(b"mysql_native_password\0");
        }
        conn.write_packet(1, &p)?;
        let mut seq = 2u8;
        loop {
            let (reply, reply_seq) = conn.read_small()?;
            match reply.first() {
                Some(0x00) => return Ok(conn),
                Some(0xff) => return Err(server_error(&reply)),
                // Auth switch (or more data): the answer for no password is empty.
                Some(0xfe) | Some(0x01) => {
                    seq = reply_seq.wrapping_add(1);
                    conn.write_packet(seq, &[])?;
                }
                _ => {
                    return Err(protocol(format!(
                        "unexpected auth reply {reply:02x?} (seq {seq})"
                    )))
                }
            }
        }
    }

    /// Gives up the read buffer and keeps only the socket (an idle connection).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// COM_QUERY; streams the response (OK, or a text result set) to its end
    /// without decoding rows. An ERR becomes an error.
    pub fn query(&mut self, sql: &str) -> io::Result<ResultCount> {
        let mut payload = Vec::with_capacity(sql.len() + 1);
        payload.push(COM_QUERY);
        payload.extend_from_slice(sql.as_bytes());
        self.write_packet(0, &payload)?;
        let mut count = ResultCount::default();
        let (len, first) = self.head()?;
        count.bytes += (HEADER + len) as u64;
        match first {
            Some(0x00) => {
                self.skip(len)?;
                return Ok(count);
            }
            Some(0xff) => {
                let payload = self.take(len)?;
                return Err(server_error(&payload));
            }
            Some(0xfb) => return Err(protocol("LOCAL INFILE request not supported")),
            _ => self.skip(len)?,
        }
        // Column definitions up to their EOF, then rows up to the final EOF.
        let mut eofs = 0;
        let mut continuation = false;
        loop {
            let (len, first) = self.head()?;
            count.bytes += (HEADER + len) as u64;
            if !continuation {
                match first {
                    Some(0xfe) if len < 9 => {
                        self.skip(len)?;
                        eofs += 1;
                        if eofs == 2 {
                            return Ok(count);
                        }
                        continue;
                    }
                    Some(0xff) => {
                        let payload = self.take(len)?;
                        return Err(server_error(&payload));
                    }
                    _ => {
                        if eofs == 1 {
                            count.rows += 1;
                        }
                    }
                }
            }
            continuation = len == MAX_CHUNK;
            self.skip(len)?;
        }
    }

    /// COM_QUIT, then waits (bounded by the socket timeout) for the other side
    /// to close.
    pub fn quit(mut self) -> io::Result<()> {
        self.write_packet(0, &[COM_QUIT])?;
        let mut scratch = [0u8; 64];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn write_packet(&mut self, seq: u8, payload: &[u8]) -> io::Result<()> {
        if payload.len() >= MAX_CHUNK {
            return Err(protocol("packet too large for the light client"));
        }
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
        frame.push(seq);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)
    }

    /// Reads more bytes into the buffer (compacting it first); EOF is an error.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the other side",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// Consumes the next packet's header; returns its length and first payload
    /// byte (buffered, not consumed).
    fn head(&mut self) -> io::Result<(usize, Option<u8>)> {
        while self.end - self.start < HEADER + 1 {
            // An empty packet has no first byte: a header alone is enough.
            if self.end - self.start >= HEADER && self.buf[self.start..self.start + 3] == [0, 0, 0]
            {
                break;
            }
            self.fill()?;
        }
        let h = &self.buf[self.start..self.start + HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        self.start += HEADER;
        let first = (len > 0).then(|| self.buf[self.start]);
        Ok((len, first))
    }

    /// Skips `len` payload bytes, reading (and discarding) what is not buffered.
    fn skip(&mut self, mut len: usize) -> io::Result<()> {
        loop {
            let have = (self.end - self.start).min(len);
            self.start += have;
            len -= have;
            if len == 0 {
                return Ok(());
            }
            self.start = 0;
            self.end = 0;
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a packet",
                ));
            }
            self.end = n;
        }
    }

    /// Takes `len` payload bytes as a vector (small packets only).
    fn take(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.end - self.start < len {
            self.fill()?;
        }
        let out = self.buf[self.start..self.start + len].to_vec();
        self.start += len;
        Ok(out)
    }

    /// Reads one whole small packet: (payload, sequence id).
    fn read_small(&mut self) -> io::Result<(Vec<u8>, u8)> {
        while self.end - self.start < HEADER {
            self.fill()?;
        }
        let seq = self.buf[self.start + 3];
        let (len, _) = self.head()?;
        Ok((self.take(len)?, seq))
    }
}

/// Capability flags of a protocol-10 greeting.
fn greeting_capabilities(p: &[u8]) -> io::Result<u32> {
    let bad = || protocol(format!("malformed greeting {p:02x?}"));
    let nul = p
        .get(1..)
        .and_then(|r| r.iter().position(|&b| b == 0))
        .ok_or_else(bad)?
        + 1;
    // version NUL, thread id (4), scramble (8), filler (1), caps low (2),
    // charset (1), status (2), caps high (2).
    let fixed = p.get(nul + 1..nul + 1 + 20).ok_or_else(bad)?;
    let low = u16::from_le_bytes([fixed[13], fixed[14]]) as u32;
    let high = u16::from_le_bytes([fixed[18], fixed[19]]) as u32;
    Ok(low | (high << 16))
}
