//! Response tracking: tells when the server's answer to one client command
//! is complete, so the proxy can relay packets without decoding them.
//!
//! This is the proxy's hot path. The tracker sees each *physical* packet as
//! it passes (its header's payload length and at most
//! [`TRACKER_PREFIX_LEN`] leading payload bytes), never allocates, never
//! copies, and is `Copy`. It only follows the grammar of the response:
//!
//! ```text
//! result set := OK | ERR | LOCAL INFILE request
//!             | column-count column-def* [EOF] row* (EOF | OK-as-EOF | ERR)
//! ```
//!
//! repeated while the terminator carries `SERVER_MORE_RESULTS_EXISTS`, plus
//! the shapes specific to COM_STMT_PREPARE, COM_FIELD_LIST, COM_CHANGE_USER,
//! COM_BINLOG_DUMP and single-packet answers.

use crate::codec::{self, HEADER_LEN, MAX_PAYLOAD_CHUNK};
use crate::constants::{
    CapabilityFlags, Command, StatusFlags, AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER, EOF_HEADER,
    ERR_HEADER, LOCAL_INFILE_HEADER, OK_HEADER,
};
use crate::lenenc::{DecodeError, Reader};

/// How many leading payload bytes of each physical packet the tracker needs:
/// enough for any OK/EOF/ERR, column-count or prepare-OK prefix (the longest,
/// an OK with two 9-byte lenenc ints and the status, is 21 bytes).
pub const TRACKER_PREFIX_LEN: usize = 32;

/// A classic EOF packet is shorter than this; a longer `0xFE` packet is a
/// row (or, with DEPRECATE_EOF, an OK).
const EOF_MAX_LEN: usize = 9;

/// What the proxy should do after relaying a server packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The response continues: keep relaying server packets.
    More,
    /// The response is complete: the next packet comes from the client.
    Done,
    /// The server asked for a local file (`LOAD DATA LOCAL`): relay the
    /// client's data up to and including its empty packet, then call
    /// [`ResponseTracker::resume_after_local_infile`].
    LocalInfile,
    /// COM_CHANGE_USER entered an authentication exchange (auth switch or
    /// more-data packet): relay the client's answer, then keep feeding
    /// server packets.
    AuthExchange,
}

/// Which response grammar applies, from the command byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// COM_QUERY, COM_PROCESS_INFO, COM_STMT_BULK_EXECUTE.
    ResultSet,
    /// COM_STMT_EXECUTE: like `ResultSet`, but may open a cursor.
    Execute,
    Prepare,
    Fetch,
    FieldList,
    ChangeUser,
    BinlogDump,
    /// Everything whose answer is one packet.
    Single,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the first packet of a (next) result.
    First,
    ColumnDefs {
        remaining: u64,
    },
    /// The classic EOF after column definitions.
    ColumnsEof,
    Rows,
    /// LOCAL INFILE requested; the client sends next.
    AwaitInfileData,
    PrepareParams {
        remaining: u16,
        columns: u16,
    },
    PrepareParamsEof {
        columns: u16,
    },
    PrepareColumns {
        remaining: u16,
    },
    PrepareColumnsEof,
    /// COM_FIELD_LIST column definitions.
    FieldDefs,
    /// COM_CHANGE_USER authentication round trips.
    Auth,
    Done,
}

/// Sans-IO state machine following the server's response to one command.
#[derive(Debug, Clone, Copy)]
pub struct ResponseTracker {
    kind: Kind,
    state: State,
    capabilities: CapabilityFlags,
    /// The previous physical packet was a full `0xFFFFFF` chunk, so the next
    /// one continues it and must not be interpreted.
    continuation: bool,
    /// Outcome of a logical packet whose first chunk has been seen but
    /// whose continuation chunks are still arriving.
    pending: Step,
    last_status: StatusFlags,
    /// Warning count of the last OK/EOF seen.
    last_warnings: u16,
    /// Row packets seen, and their size with headers.
    rows: u64,
    row_bytes: u64,
    error: bool,
}

fn invalid(what: &'static str) -> DecodeError {
    DecodeError::Invalid { what }
}

impl ResponseTracker {
    /// Starts tracking the response to command byte `command`, with the
    /// capabilities negotiated between client and server.
    pub fn new(command: u8, capabilities: CapabilityFlags) -> Self {
        use Command as C;
        let kind = match Command::from_u8(command) {
            Some(C::Query | C::ProcessInfo | C::StmtBulkExecute) => Kind::ResultSet,
            Some(C::StmtExecute) => Kind::Execute,
            Some(C::StmtPrepare) => Kind::Prepare,
            Some(C::StmtFetch) => Kind::Fetch,
            Some(C::FieldList) => Kind::FieldList,
            Some(C::ChangeUser) => Kind::ChangeUser,
            Some(C::BinlogDump | C::BinlogDumpGtid) => Kind::BinlogDump,
            _ => Kind::Single,
        };
        let state = match kind {
            Kind::Fetch => State::Rows,
            Kind::FieldList => State::FieldDefs,
            _ => State::First,
        };
        ResponseTracker {
            kind,
            state,
            capabilities,
            continuation: false,
            pending: Step::More,
            last_status: StatusFlags::empty(),
            last_warnings: 0,
            rows: 0,
            row_bytes: 0,
            error: false,
        }
    }

    /// False for the commands the server never answers.
    pub fn expects_response(command: u8) -> bool {
        !matches!(
            Command::from_u8(command),
            Some(Command::StmtSendLongData | Command::StmtClose | Command::Quit)
        )
    }

    /// Status flags of the last OK/EOF seen (the final one once `Done`).
    pub fn last_status(&self) -> StatusFlags {
        self.last_status
    }

    /// Warning count of the last OK/EOF seen (the final one once `Done`).
    pub fn last_warnings(&self) -> u16 {
        self.last_warnings
    }

    /// Row packets of every result set so far, and their total size with
    /// headers (a row of several chunks counts once, with all its bytes).
    pub fn rows(&self) -> (u64, u64) {
        (self.rows, self.row_bytes)
    }

    /// True if the response ended with an ERR packet.
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// True once the response is complete (including all chunks).
    pub fn is_done(&self) -> bool {
        self.state == State::Done && !self.continuation
    }

    /// After `Step::LocalInfile`, once the client's file data (ending with
    /// an empty packet) has been relayed: the server's OK/ERR follows, and
    /// with multi-statements possibly further results.
    pub fn resume_after_local_infile(&mut self) {
        if self.state == State::AwaitInfileData {
            self.state = State::First;
        }
    }

    /// Feeds one physical packet from the server: its header's payload
    /// length and its first `min(payload_len, TRACKER_PREFIX_LEN)` bytes.
    pub fn on_server_packet(
        &mut self,
        payload_len: usize,
        prefix: &[u8],
    ) -> Result<Step, DecodeError> {
        if self.continuation {
            // Middle or end of a large logical packet already interpreted
            // from its first chunk.
            self.continuation = payload_len == MAX_PAYLOAD_CHUNK;
            if self.state == State::Rows {
                self.count_row_bytes(payload_len);
            }
            if self.continuation {
                return Ok(Step::More);
            }
            let step = self.pending;
            self.pending = Step::More;
            return Ok(step);
        }
        let step = self.on_logical_packet(payload_len, prefix)?;
        if payload_len == MAX_PAYLOAD_CHUNK {
            // Whatever this packet means only takes effect after its last
            // chunk has been relayed.
            self.continuation = true;
            self.pending = step;
            return Ok(Step::More);
        }
        Ok(step)
    }

    /// The length of the plain rows at the start of `frames` (raw frames:
    /// headers and payloads), while the response is in its rows: what
    /// [`on_server_packet`](Self::on_server_packet) would answer
    /// `Step::More` to without changing state (but the row counts), found
    /// at a fraction of its cost, since most of a large response is rows. Stops before a packet
    /// that is not wholly in `frames` and before any that could be more
    /// than a row (a terminator, an ERR, an empty or chunked packet), which
    /// go to `on_server_packet`.
    pub fn skip_rows(&mut self, frames: &[u8]) -> usize {
        if self.state != State::Rows || self.continuation {
            return 0;
        }
        let mut pos = 0;
        // Whole frames only: one cut short is left to `on_server_packet`.
        for frame in codec::frames(frames) {
            let len = frame.payload.len();
            let plain_row = len < MAX_PAYLOAD_CHUNK
                && match frame.payload.first() {
                    // An empty packet, or an ERR.
                    Some(&ERR_HEADER) | None => false,
                    Some(&EOF_HEADER) => !self.is_terminator_len(len),
                    Some(_) => true,
                };
            if !plain_row {
                break;
            }
            self.rows += 1;
            pos += frame.wire_len();
        }
        self.row_bytes += pos as u64;
        pos
    }

    /// Adds a row packet's size with its header. Saturating: a length
    /// comes from the peer (a header says at most 16 MiB, but the tracker
    /// is also fed lengths by callers it cannot vouch for).
    fn count_row_bytes(&mut self, payload_len: usize) {
        let size = (payload_len as u64).saturating_add(HEADER_LEN as u64);
        self.row_bytes = self.row_bytes.saturating_add(size);
    }

    fn on_logical_packet(&mut self, len: usize, prefix: &[u8]) -> Result<Step, DecodeError> {
        let first = prefix.first().copied();
        match self.state {
            State::Done => Err(invalid(
                "ResponseTracker: server packet after end of response",
            )),
            State::AwaitInfileData => Err(invalid(
                "ResponseTracker: server packet while LOCAL INFILE data was expected",
            )),
            State::First => self.on_first(len, prefix),
            State::ColumnDefs { remaining } => {
                if first == Some(ERR_HEADER) {
                    return Ok(self.on_err(prefix));
                }
                let remaining = remaining.saturating_sub(1);
                self.state = if remaining == 0 {
                    self.after_column_defs()
                } else {
                    State::ColumnDefs { remaining }
                };
                Ok(Step::More)
            }
            State::ColumnsEof => match first {
                Some(EOF_HEADER) if len < EOF_MAX_LEN => {
                    let status = self.record_eof(prefix)?;
                    let cursor = self.kind == Kind::Execute
                        && status.contains(StatusFlags::CURSOR_EXISTS)
                        && !status.contains(StatusFlags::MORE_RESULTS_EXISTS);
                    if cursor {
                        // Rows will come through COM_STMT_FETCH.
                        self.state = State::Done;
                        return Ok(Step::Done);
                    }
                    self.state = State::Rows;
                    Ok(Step::More)
                }
                Some(ERR_HEADER) => Ok(self.on_err(prefix)),
                _ => Err(invalid(
                    "ResponseTracker: expected EOF after column definitions",
                )),
            },
            State::Rows => {
                if first == Some(ERR_HEADER) {
                    return Ok(self.on_err(prefix));
                }
                if first == Some(EOF_HEADER) && self.is_terminator_len(len) {
                    let status = self.record_terminator(prefix)?;
                    if self.kind != Kind::Fetch && status.contains(StatusFlags::MORE_RESULTS_EXISTS)
                    {
                        self.state = State::First;
                        return Ok(Step::More);
                    }
                    self.state = State::Done;
                    return Ok(Step::Done);
                }
                self.rows += 1;
                self.count_row_bytes(len);
                Ok(Step::More)
            }
            State::PrepareParams { remaining, columns } => {
                if first == Some(ERR_HEADER) {
                    return Ok(self.on_err(prefix));
                }
                let remaining = remaining.saturating_sub(1);
                if remaining > 0 {
                    self.state = State::PrepareParams { remaining, columns };
                    return Ok(Step::More);
                }
                if self.deprecate_eof() {
                    Ok(self.prepare_columns(columns))
                } else {
                    self.state = State::PrepareParamsEof { columns };
                    Ok(Step::More)
                }
            }
            State::PrepareParamsEof { columns } => match first {
                Some(EOF_HEADER) if len < EOF_MAX_LEN => {
                    self.record_eof(prefix)?;
                    Ok(self.prepare_columns(columns))
                }
                Some(ERR_HEADER) => Ok(self.on_err(prefix)),
                _ => Err(invalid(
                    "ResponseTracker: expected EOF after parameter definitions",
                )),
            },
            State::PrepareColumns { remaining } => {
                if first == Some(ERR_HEADER) {
                    return Ok(self.on_err(prefix));
                }
                let remaining = remaining.saturating_sub(1);
                if remaining > 0 {
                    self.state = State::PrepareColumns { remaining };
                    return Ok(Step::More);
                }
                if self.deprecate_eof() {
                    self.state = State::Done;
                    Ok(Step::Done)
                } else {
                    self.state = State::PrepareColumnsEof;
                    Ok(Step::More)
                }
            }
            State::PrepareColumnsEof => match first {
                Some(EOF_HEADER) if len < EOF_MAX_LEN => {
                    self.record_eof(prefix)?;
                    self.state = State::Done;
                    Ok(Step::Done)
                }
                Some(ERR_HEADER) => Ok(self.on_err(prefix)),
                _ => Err(invalid(
                    "ResponseTracker: expected EOF after column definitions",
                )),
            },
            State::FieldDefs => match first {
                Some(ERR_HEADER) => Ok(self.on_err(prefix)),
                Some(EOF_HEADER) if self.is_terminator_len(len) => {
                    self.record_terminator(prefix)?;
                    self.state = State::Done;
                    Ok(Step::Done)
                }
                _ => Ok(Step::More),
            },
            State::Auth => match first {
                Some(OK_HEADER) => self.on_ok(prefix),
                Some(ERR_HEADER) => Ok(self.on_err(prefix)),
                _ => Ok(Step::AuthExchange),
            },
        }
    }

    /// The first packet of a response (or of the next result).
    fn on_first(&mut self, len: usize, prefix: &[u8]) -> Result<Step, DecodeError> {
        let Some(&first) = prefix.first() else {
            return Err(invalid("ResponseTracker: empty response packet"));
        };
        if first == ERR_HEADER {
            return Ok(self.on_err(prefix));
        }
        match self.kind {
            Kind::ResultSet | Kind::Execute => match first {
                OK_HEADER => {
                    let step = self.on_ok(prefix)?;
                    if self.last_status.contains(StatusFlags::MORE_RESULTS_EXISTS) {
                        self.state = State::First;
                        return Ok(Step::More);
                    }
                    Ok(step)
                }
                LOCAL_INFILE_HEADER => {
                    self.state = State::AwaitInfileData;
                    Ok(Step::LocalInfile)
                }
                _ => self.on_column_count(len, prefix),
            },
            Kind::Prepare => match first {
                OK_HEADER => self.on_prepare_ok(len, prefix),
                _ => Err(invalid("ResponseTracker: expected COM_STMT_PREPARE OK")),
            },
            Kind::ChangeUser => match first {
                OK_HEADER => self.on_ok(prefix),
                AUTH_SWITCH_HEADER | AUTH_MORE_DATA_HEADER => {
                    self.state = State::Auth;
                    Ok(Step::AuthExchange)
                }
                _ => Err(invalid(
                    "ResponseTracker: unexpected COM_CHANGE_USER response",
                )),
            },
            Kind::BinlogDump => {
                // Events stream until the connection closes, except that a
                // non-blocking dump (BINLOG_DUMP_NON_BLOCK) ends with EOF.
                if first == EOF_HEADER && len < EOF_MAX_LEN {
                    self.record_eof(prefix)?;
                    self.state = State::Done;
                    return Ok(Step::Done);
                }
                Ok(Step::More)
            }
            Kind::Single => {
                if first == OK_HEADER {
                    return self.on_ok(prefix);
                }
                // COM_SET_OPTION answers with EOF (an OK under
                // DEPRECATE_EOF); COM_STATISTICS with a bare string.
                if first == EOF_HEADER && self.is_terminator_len(len) {
                    self.record_terminator(prefix)?;
                }
                self.state = State::Done;
                Ok(Step::Done)
            }
            // These start in other states and never reach `First`.
            Kind::Fetch | Kind::FieldList => Err(invalid("ResponseTracker: internal state")),
        }
    }

    fn on_column_count(&mut self, len: usize, prefix: &[u8]) -> Result<Step, DecodeError> {
        let mut r = Reader::with_context(prefix, "ResponseTracker column count");
        let count = r.lenenc_int_lenient()?;
        if count == 0 {
            return Err(r.invalid());
        }
        // Optional "metadata follows" byte (MySQL
        // OPTIONAL_RESULTSET_METADATA, MariaDB CACHE_METADATA); when it
        // is 0 the column definitions are omitted.
        let mut metadata = true;
        match len.checked_sub(r.position()) {
            Some(0) => {}
            Some(1) if self.optional_metadata() => metadata = r.u8()? != 0,
            _ => return Err(r.invalid()),
        }
        self.state = if metadata {
            State::ColumnDefs { remaining: count }
        } else {
            self.after_column_defs()
        };
        Ok(Step::More)
    }

    fn on_prepare_ok(&mut self, len: usize, prefix: &[u8]) -> Result<Step, DecodeError> {
        let mut r = Reader::with_context(prefix, "ResponseTracker COM_STMT_PREPARE OK");
        r.fixed(5)?; // header + statement id
        let mut columns = r.u16_le()?;
        let mut params = r.u16_le()?;
        // MySQL OPTIONAL_RESULTSET_METADATA appends a metadata-follows byte
        // after the 12-byte packet; 0 means no definitions at all.
        if self.optional_metadata() && len > 12 && prefix.get(12) == Some(&0) {
            columns = 0;
            params = 0;
        }
        if params > 0 {
            self.state = State::PrepareParams {
                remaining: params,
                columns,
            };
            return Ok(Step::More);
        }
        Ok(self.prepare_columns(columns))
    }

    fn prepare_columns(&mut self, columns: u16) -> Step {
        if columns == 0 {
            self.state = State::Done;
            Step::Done
        } else {
            self.state = State::PrepareColumns { remaining: columns };
            Step::More
        }
    }

    fn after_column_defs(&self) -> State {
        if self.deprecate_eof() {
            State::Rows
        } else {
            State::ColumnsEof
        }
    }

    /// A complete OK: records its status and ends the response.
    fn on_ok(&mut self, prefix: &[u8]) -> Result<Step, DecodeError> {
        self.record_ok(prefix)?;
        self.state = State::Done;
        Ok(Step::Done)
    }

    fn on_err(&mut self, prefix: &[u8]) -> Step {
        // A MariaDB progress report looks like an ERR with code 0xFFFF and
        // does not end anything.
        if self
            .capabilities
            .contains(CapabilityFlags::MARIADB_CLIENT_PROGRESS)
            && prefix.get(1..3) == Some(&[0xFF, 0xFF][..])
        {
            return Step::More;
        }
        self.error = true;
        self.state = State::Done;
        Step::Done
    }

    fn deprecate_eof(&self) -> bool {
        self.capabilities.contains(CapabilityFlags::DEPRECATE_EOF)
    }

    fn optional_metadata(&self) -> bool {
        self.capabilities.intersects(
            CapabilityFlags::OPTIONAL_RESULTSET_METADATA
                | CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA,
        )
    }

    /// Whether a `0xFE`-leading packet of this length ends rows: a classic
    /// EOF is under 9 bytes; with DEPRECATE_EOF the OK replacing it can be
    /// longer, but a row starting with 0xFE (an 8-byte lenenc length) is at
    /// least 0xFFFFFF bytes.
    fn is_terminator_len(&self, len: usize) -> bool {
        if self.deprecate_eof() {
            len < MAX_PAYLOAD_CHUNK
        } else {
            len < EOF_MAX_LEN
        }
    }

    fn record_terminator(&mut self, prefix: &[u8]) -> Result<StatusFlags, DecodeError> {
        if self.deprecate_eof() {
            self.record_ok(prefix)
        } else {
            self.record_eof(prefix)
        }
    }

    /// Records an OK's (either header) status and warning count, after its
    /// two lenenc ints; returns the status.
    fn record_ok(&mut self, prefix: &[u8]) -> Result<StatusFlags, DecodeError> {
        let mut r = Reader::with_context(prefix, "ResponseTracker OK packet");
        r.u8()?;
        r.lenenc_int_lenient()?;
        r.lenenc_int_lenient()?;
        let (status, warnings) = if self.capabilities.contains(CapabilityFlags::PROTOCOL_41) {
            // Some servers end an OK after its status: no warnings then.
            (StatusFlags(r.u16_le()?), r.u16_le().unwrap_or(0))
        } else if self.capabilities.contains(CapabilityFlags::TRANSACTIONS) {
            (StatusFlags(r.u16_le()?), 0)
        } else {
            (StatusFlags::empty(), 0)
        };
        self.last_status = status;
        self.last_warnings = warnings;
        Ok(status)
    }

    /// Records a classic EOF's status and warning count; returns the
    /// status.
    fn record_eof(&mut self, prefix: &[u8]) -> Result<StatusFlags, DecodeError> {
        let (status, warnings) = if self.capabilities.contains(CapabilityFlags::PROTOCOL_41) {
            let mut r = Reader::with_context(prefix, "ResponseTracker EOF packet");
            r.u8()?;
            let warnings = r.u16_le()?;
            (StatusFlags(r.u16_le()?), warnings)
        } else {
            // Pre-4.1 EOF is the bare 0xFE byte.
            (StatusFlags::empty(), 0)
        };
        self.last_status = status;
        self.last_warnings = warnings;
        Ok(status)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::constants::Command as C;

    const BASE: CapabilityFlags = CapabilityFlags(
        CapabilityFlags::PROTOCOL_41.0
            | CapabilityFlags::TRANSACTIONS.0
            | CapabilityFlags::MULTI_RESULTS.0
            | CapabilityFlags::PS_MULTI_RESULTS.0
            | CapabilityFlags::SESSION_TRACK.0,
    );
    const DEPRECATE: CapabilityFlags = CapabilityFlags(BASE.0 | CapabilityFlags::DEPRECATE_EOF.0);

    const AUTOCOMMIT: u16 = StatusFlags::AUTOCOMMIT.0;
    const MORE: u16 = StatusFlags::MORE_RESULTS_EXISTS.0;

    fn ok(status: u16) -> Vec<u8> {
        let [a, b] = status.to_le_bytes();
        vec![0x00, 0, 0, a, b, 0, 0]
    }
    fn ok_as_eof(status: u16) -> Vec<u8> {
        let [a, b] = status.to_le_bytes();
        vec![0xFE, 0, 0, a, b, 0, 0]
    }
    fn eof(status: u16) -> Vec<u8> {
        let [a, b] = status.to_le_bytes();
        vec![0xFE, 0, 0, a, b]
    }
    fn err() -> Vec<u8> {
        b"\xff\x7a\x04#42S02Table 'x' doesn't exist".to_vec()
    }
    fn coldef(name: &str) -> Vec<u8> {
        let mut v = b"\x03def\x04test\x01t\x01t".to_vec();
        v.push(name.len() as u8);
        v.extend_from_slice(name.as_bytes());
        v.push(name.len() as u8);
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&[0x0c, 45, 0, 0xff, 0, 0, 0, 253, 0, 0, 0, 0, 0]);
        v
    }
    fn row(vals: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for s in vals {
            v.push(s.len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        v
    }

    /// Feeds logical payloads (split into physical chunks like the codec
    /// would) and returns the step after each *logical* packet.
    fn feed(t: &mut ResponseTracker, packets: &[Vec<u8>]) -> Vec<Step> {
        packets.iter().map(|p| feed_one(t, p)).collect()
    }

    fn feed_one(t: &mut ResponseTracker, p: &[u8]) -> Step {
        let mut rest = p;
        loop {
            let n = rest.len().min(MAX_PAYLOAD_CHUNK);
            let chunk = &rest[..n];
            let step = t
                .on_server_packet(n, &chunk[..n.min(TRACKER_PREFIX_LEN)])
                .unwrap();
            rest = &rest[n..];
            if n < MAX_PAYLOAD_CHUNK {
                return step;
            }
            assert_eq!(step, Step::More, "mid-packet chunk must not end anything");
        }
    }

    fn result_set(caps: CapabilityFlags, cols: usize, rows: usize, status: u16) -> Vec<Vec<u8>> {
        let mut v = vec![vec![cols as u8]];
        for i in 0..cols {
            v.push(coldef(&format!("c{i}")));
        }
        let deprecate = caps.contains(CapabilityFlags::DEPRECATE_EOF);
        if !deprecate {
            v.push(eof(AUTOCOMMIT));
        }
        for i in 0..rows {
            let s = i.to_string();
            v.push(row(&vec![s.as_str(); cols]));
        }
        v.push(if deprecate {
            ok_as_eof(status)
        } else {
            eof(status)
        });
        v
    }

    fn expect_done_at_end(steps: &[Step]) {
        let (last, init) = steps.split_last().unwrap();
        assert_eq!(*last, Step::Done);
        assert!(init.iter().all(|s| *s == Step::More), "{steps:?}");
    }

    /// Frames logical payloads the way the codec would.
    fn frames(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        for (seq, p) in packets.iter().enumerate() {
            crate::codec::encode_packet(seq as u8, p, &mut out);
        }
        out.to_vec()
    }

    /// Walks raw frames packet by packet, as the relay does, optionally
    /// letting `skip_rows` pass rows first; returns every step that is not
    /// `More` with the offset of the packet that gave it, and the tracker.
    fn walk(
        mut t: ResponseTracker,
        frames: &[u8],
        skip: bool,
    ) -> (Vec<(usize, Step)>, ResponseTracker) {
        let mut pos = 0;
        let mut steps = Vec::new();
        while pos < frames.len() {
            if skip {
                pos += t.skip_rows(&frames[pos..]);
                if pos == frames.len() {
                    break;
                }
            }
            let (len, _) = crate::codec::parse_header(&frames[pos..]).unwrap();
            let start = pos + HEADER_LEN;
            let prefix = &frames[start..start + len.min(TRACKER_PREFIX_LEN)];
            match t.on_server_packet(len, prefix) {
                Ok(Step::More) => {}
                Ok(step) => steps.push((pos, step)),
                Err(_) => {
                    steps.push((pos, Step::Done));
                    break;
                }
            }
            pos = start + len;
        }
        (steps, t)
    }

    #[test]
    fn skipping_rows_changes_nothing_but_the_cost() {
        let fe_row = {
            // A row whose first value is NULL-free and starts with 0xFE
            // would need a 2^24-byte value; a 0xFE *after* the first byte
            // is common and must not matter.
            let mut r = row(&["a"]);
            r.push(0xFE);
            r
        };
        for caps in [BASE, DEPRECATE] {
            let mut responses = vec![
                result_set(caps, 2, 0, AUTOCOMMIT),
                result_set(caps, 1, 100, AUTOCOMMIT),
                result_set(caps, 3, 7, AUTOCOMMIT | MORE)
                    .into_iter()
                    .chain(result_set(caps, 1, 5, AUTOCOMMIT))
                    .collect(),
            ];
            let mut with_err = result_set(caps, 1, 4, AUTOCOMMIT);
            with_err.pop();
            with_err.push(err());
            responses.push(with_err);
            let mut with_odd_rows = result_set(caps, 1, 2, AUTOCOMMIT);
            with_odd_rows.insert(with_odd_rows.len() - 1, fe_row.clone());
            if caps == BASE {
                // Without DEPRECATE_EOF only a short 0xFE packet ends rows.
                with_odd_rows.insert(with_odd_rows.len() - 1, vec![0xFE; EOF_MAX_LEN]);
            }
            responses.push(with_odd_rows);
            let mut big_row = result_set(caps, 1, 2, AUTOCOMMIT);
            big_row.insert(big_row.len() - 1, vec![b'x'; MAX_PAYLOAD_CHUNK + 10]);
            responses.push(big_row);
            for packets in &responses {
                let frames = frames(packets);
                let tracker = ResponseTracker::new(C::Query as u8, caps);
                let (plain, plain_end) = walk(tracker, &frames, false);
                let (skipping, skipping_end) = walk(tracker, &frames, true);
                assert_eq!(plain, skipping);
                assert_eq!(format!("{plain_end:?}"), format!("{skipping_end:?}"));
                // Every response here ends, and only at its last packet.
                let last = frames.len() - HEADER_LEN - packets.last().unwrap().len();
                assert_eq!(plain.last(), Some(&(last, Step::Done)), "{packets:?}");
            }
        }
    }

    #[test]
    fn rows_are_skipped_only_whole_and_only_in_the_rows() {
        let mut t = ResponseTracker::new(C::Query as u8, DEPRECATE);
        let frames = frames(&result_set(DEPRECATE, 1, 3, AUTOCOMMIT));
        // Before the column count: nothing is a row yet.
        assert_eq!(t.skip_rows(&frames), 0);
        feed(&mut t, &[vec![1], coldef("c0")]);
        let rows_at = HEADER_LEN + 1 + HEADER_LEN + coldef("c0").len();
        let rows = &frames[rows_at..];
        let row_frame = HEADER_LEN + row(&["0"]).len();
        assert_eq!(t.skip_rows(rows), 3 * row_frame);
        // A row cut short stops the skipping before it.
        assert_eq!(t.skip_rows(&rows[..2 * row_frame + 3]), 2 * row_frame);
        assert_eq!(t.skip_rows(&rows[..row_frame - 1]), 0);
    }

    #[test]
    fn rows_and_warnings_are_counted_however_the_rows_pass() {
        for caps in [BASE, DEPRECATE] {
            // Two result sets (3 rows, then 2), the last terminator with 7
            // warnings; each row 2 bytes of payload.
            let mut packets = result_set(caps, 1, 3, AUTOCOMMIT | MORE);
            packets.extend(result_set(caps, 1, 2, AUTOCOMMIT));
            let last = packets.len() - 1;
            // EOF: warnings right after the header; OK: after its two
            // lenenc ints and the status.
            let at = if caps == DEPRECATE { 5 } else { 1 };
            packets[last][at] = 7;
            let frames = frames(&packets);
            for skipping in [false, true] {
                let (_, end) = walk(
                    ResponseTracker::new(C::Query as u8, caps),
                    &frames,
                    skipping,
                );
                assert_eq!(end.rows(), (5, 5 * (HEADER_LEN as u64 + 2)));
                assert_eq!(end.last_warnings(), 7, "{caps:?}");
            }
            // An OK carries its warnings after the status.
            let mut t = ResponseTracker::new(C::Query as u8, caps);
            let steps = feed(&mut t, &[vec![0x00, 1, 0, 2, 0, 3, 0]]);
            assert_eq!(steps, [Step::Done]);
            assert_eq!((t.last_warnings(), t.rows()), (3, (0, 0)));
        }
    }

    #[test]
    fn simple_commands() {
        for cmd in [
            C::Ping,
            C::InitDb,
            C::ResetConnection,
            C::StmtReset,
            C::Refresh,
        ] {
            let mut t = ResponseTracker::new(cmd as u8, BASE);
            assert_eq!(feed(&mut t, &[ok(AUTOCOMMIT | 1)]), vec![Step::Done]);
            assert_eq!(t.last_status(), StatusFlags(AUTOCOMMIT | 1));
            assert!(!t.is_error());
            assert!(t.is_done());
            assert!(t.on_server_packet(7, &ok(0)).is_err());
        }
        let mut t = ResponseTracker::new(C::InitDb as u8, BASE);
        assert_eq!(feed(&mut t, &[err()]), vec![Step::Done]);
        assert!(t.is_error());
        let mut t = ResponseTracker::new(C::Statistics as u8, BASE);
        assert_eq!(
            feed(&mut t, &[b"Uptime: 5  Threads: 1".to_vec()]),
            vec![Step::Done]
        );
        let mut t = ResponseTracker::new(C::SetOption as u8, BASE);
        assert_eq!(feed(&mut t, &[eof(AUTOCOMMIT)]), vec![Step::Done]);
        assert_eq!(t.last_status(), StatusFlags::AUTOCOMMIT);
        let mut t = ResponseTracker::new(200, BASE);
        assert_eq!(feed(&mut t, &[err()]), vec![Step::Done]);
        assert!(!ResponseTracker::expects_response(C::StmtClose as u8));
        assert!(!ResponseTracker::expects_response(
            C::StmtSendLongData as u8
        ));
        assert!(!ResponseTracker::expects_response(C::Quit as u8));
        assert!(ResponseTracker::expects_response(C::Query as u8));
    }

    #[test]
    fn query_result_sets() {
        for caps in [BASE, DEPRECATE] {
            for (cols, rows) in [(1, 0), (1, 3), (3, 2)] {
                let mut t = ResponseTracker::new(C::Query as u8, caps);
                let steps = feed(&mut t, &result_set(caps, cols, rows, AUTOCOMMIT | 1));
                expect_done_at_end(&steps);
                assert_eq!(t.last_status(), StatusFlags(AUTOCOMMIT | 1));
            }
            // OK and ERR alone.
            let mut t = ResponseTracker::new(C::Query as u8, caps);
            assert_eq!(feed(&mut t, &[ok(AUTOCOMMIT)]), vec![Step::Done]);
            let mut t = ResponseTracker::new(C::Query as u8, caps);
            assert_eq!(feed(&mut t, &[err()]), vec![Step::Done]);
            assert!(t.is_error());
            // ERR in the middle of rows.
            let mut t = ResponseTracker::new(C::Query as u8, caps);
            let mut seq = result_set(caps, 2, 2, 0);
            seq.pop();
            seq.push(err());
            expect_done_at_end(&feed(&mut t, &seq));
            assert!(t.is_error());
        }
    }

    #[test]
    fn multi_results() {
        for caps in [BASE, DEPRECATE] {
            // CALL p(): two result sets then the final OK.
            let mut seq = result_set(caps, 2, 1, AUTOCOMMIT | MORE);
            seq.extend(result_set(caps, 1, 2, AUTOCOMMIT | MORE));
            seq.push(ok(AUTOCOMMIT));
            let mut t = ResponseTracker::new(C::Query as u8, caps);
            expect_done_at_end(&feed(&mut t, &seq));
            assert_eq!(t.last_status(), StatusFlags::AUTOCOMMIT);

            // "INSERT ...; SELECT ...; DO 1" with an ERR at the end.
            let mut seq = vec![ok(AUTOCOMMIT | MORE)];
            seq.extend(result_set(caps, 1, 1, AUTOCOMMIT | MORE));
            seq.push(err());
            let mut t = ResponseTracker::new(C::Query as u8, caps);
            expect_done_at_end(&feed(&mut t, &seq));
            assert!(t.is_error());
        }
    }

    #[test]
    fn big_rows_and_continuations() {
        // A row whose first value is longer than 2^24: it starts with 0xFE
        // (8-byte lenenc) and spans several chunks.
        let len = MAX_PAYLOAD_CHUNK + 10;
        let mut big = vec![0xFE];
        big.extend_from_slice(&(len as u64).to_le_bytes());
        big.resize(9 + len, b'x');
        for caps in [BASE, DEPRECATE] {
            let mut seq = result_set(caps, 1, 1, AUTOCOMMIT);
            seq.insert(seq.len() - 1, big.clone());
            let mut t = ResponseTracker::new(C::Query as u8, caps);
            expect_done_at_end(&feed(&mut t, &seq));
        }
        // A row of exactly 0xFFFFFF bytes is followed by an empty chunk,
        // which must not be taken for anything.
        let mut exact = vec![0xFC, 0xFF, 0xFF];
        exact.resize(MAX_PAYLOAD_CHUNK, b'y');
        let mut seq = result_set(BASE, 1, 0, AUTOCOMMIT);
        seq.insert(seq.len() - 1, exact);
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        expect_done_at_end(&feed(&mut t, &seq));
        // A big single-packet answer ends only after its last chunk.
        let mut t = ResponseTracker::new(C::Statistics as u8, BASE);
        let stats = vec![b'U'; MAX_PAYLOAD_CHUNK];
        assert_eq!(
            t.on_server_packet(MAX_PAYLOAD_CHUNK, &stats[..32]).unwrap(),
            Step::More
        );
        assert!(!t.is_done());
        assert_eq!(t.on_server_packet(0, &[]).unwrap(), Step::Done);
        assert!(t.is_done());
    }

    #[test]
    fn cursors() {
        // COM_STMT_EXECUTE with a read-only cursor: the EOF after the column
        // definitions carries CURSOR_EXISTS and ends the response.
        let cursor = StatusFlags::CURSOR_EXISTS.0 | AUTOCOMMIT;
        let mut t = ResponseTracker::new(C::StmtExecute as u8, BASE);
        let seq = vec![vec![1], coldef("a"), eof(cursor)];
        expect_done_at_end(&feed(&mut t, &seq));
        assert!(t.last_status().contains(StatusFlags::CURSOR_EXISTS));
        // With DEPRECATE_EOF the cursor is announced by an OK-as-EOF.
        let mut t = ResponseTracker::new(C::StmtExecute as u8, DEPRECATE);
        let seq = vec![vec![1], coldef("a"), ok_as_eof(cursor)];
        expect_done_at_end(&feed(&mut t, &seq));
        // The same EOF after a COM_QUERY's columns is not a cursor.
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        let seq = vec![vec![1], coldef("a"), eof(cursor)];
        assert_eq!(feed(&mut t, &seq), vec![Step::More; 3]);
        // COM_STMT_FETCH: binary rows then EOF (or OK-as-EOF).
        let last = StatusFlags::LAST_ROW_SENT.0 | cursor;
        for caps in [BASE, DEPRECATE] {
            let term = if caps == BASE {
                eof(last)
            } else {
                ok_as_eof(last)
            };
            let mut t = ResponseTracker::new(C::StmtFetch as u8, caps);
            let seq = vec![vec![0, 0, 1, 0, 0, 0], vec![0, 0, 2, 0, 0, 0], term];
            expect_done_at_end(&feed(&mut t, &seq));
            assert!(t.last_status().contains(StatusFlags::LAST_ROW_SENT));
        }
        let mut t = ResponseTracker::new(C::StmtFetch as u8, BASE);
        assert_eq!(feed(&mut t, &[err()]), vec![Step::Done]);
        assert!(t.is_error());
    }

    #[test]
    fn binary_result_set() {
        for caps in [BASE, DEPRECATE] {
            let mut seq = result_set(caps, 2, 0, AUTOCOMMIT);
            let term = seq.pop().unwrap();
            seq.push(vec![0, 0, 1, 0, 0, 0, 1, b'a']);
            seq.push(term);
            let mut t = ResponseTracker::new(C::StmtExecute as u8, caps);
            expect_done_at_end(&feed(&mut t, &seq));
        }
    }

    fn prepare_ok(cols: u16, params: u16) -> Vec<u8> {
        let mut v = vec![0, 1, 0, 0, 0];
        v.extend_from_slice(&cols.to_le_bytes());
        v.extend_from_slice(&params.to_le_bytes());
        v.extend_from_slice(&[0, 0, 0]);
        v
    }

    #[test]
    fn prepare() {
        for caps in [BASE, DEPRECATE] {
            let with_eof = caps == BASE;
            for (cols, params) in [(0u16, 0u16), (2, 0), (0, 3), (2, 3)] {
                let mut seq = vec![prepare_ok(cols, params)];
                for _ in 0..params {
                    seq.push(coldef("?"));
                }
                if params > 0 && with_eof {
                    seq.push(eof(AUTOCOMMIT));
                }
                for _ in 0..cols {
                    seq.push(coldef("c"));
                }
                if cols > 0 && with_eof {
                    seq.push(eof(AUTOCOMMIT));
                }
                let mut t = ResponseTracker::new(C::StmtPrepare as u8, caps);
                expect_done_at_end(&feed(&mut t, &seq));
                assert!(!t.is_error());
            }
        }
        let mut t = ResponseTracker::new(C::StmtPrepare as u8, BASE);
        assert_eq!(feed(&mut t, &[err()]), vec![Step::Done]);
        assert!(t.is_error());
        let mut t = ResponseTracker::new(C::StmtPrepare as u8, BASE);
        assert!(t.on_server_packet(5, &[0, 1, 0, 0, 0]).is_err());
    }

    #[test]
    fn local_infile() {
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        assert_eq!(
            feed(&mut t, &[b"\xfb/tmp/data.csv".to_vec()]),
            vec![Step::LocalInfile]
        );
        // The server must not speak before the client's data was relayed.
        let mut early = t;
        assert!(early.on_server_packet(7, &ok(0)).is_err());
        t.resume_after_local_infile();
        assert_eq!(feed(&mut t, &[ok(AUTOCOMMIT)]), vec![Step::Done]);

        // In a multi-statement batch, more results follow the OK.
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        assert_eq!(feed(&mut t, &[b"\xfbf".to_vec()]), vec![Step::LocalInfile]);
        t.resume_after_local_infile();
        let mut seq = vec![ok(MORE)];
        seq.extend(result_set(BASE, 1, 1, 0));
        expect_done_at_end(&feed(&mut t, &seq));
    }

    #[test]
    fn field_list() {
        for caps in [BASE, DEPRECATE] {
            let term = if caps == BASE { eof(2) } else { ok_as_eof(2) };
            let mut t = ResponseTracker::new(C::FieldList as u8, caps);
            let seq = vec![coldef("a"), coldef("b"), term];
            expect_done_at_end(&feed(&mut t, &seq));
        }
        let mut t = ResponseTracker::new(C::FieldList as u8, BASE);
        assert_eq!(feed(&mut t, &[err()]), vec![Step::Done]);
    }

    #[test]
    fn change_user() {
        let mut t = ResponseTracker::new(C::ChangeUser as u8, BASE);
        assert_eq!(feed(&mut t, &[ok(AUTOCOMMIT)]), vec![Step::Done]);
        let mut t = ResponseTracker::new(C::ChangeUser as u8, BASE);
        let switch = b"\xfemysql_native_password\0abcdefghijklmnopqrst\0".to_vec();
        assert_eq!(
            feed(&mut t, &[switch, vec![0x01, 0x04], ok(AUTOCOMMIT)]),
            vec![Step::AuthExchange, Step::AuthExchange, Step::Done]
        );
        let mut t = ResponseTracker::new(C::ChangeUser as u8, BASE);
        assert_eq!(
            feed(&mut t, &[vec![0x01, 0x03], err()]),
            vec![Step::AuthExchange, Step::Done]
        );
        assert!(t.is_error());
    }

    #[test]
    fn binlog_dump() {
        let mut t = ResponseTracker::new(C::BinlogDump as u8, BASE);
        let event = vec![0u8; 40];
        assert_eq!(feed(&mut t, &[event.clone(), event]), vec![Step::More; 2]);
        assert_eq!(feed(&mut t, &[eof(0)]), vec![Step::Done]);
        let mut t = ResponseTracker::new(C::BinlogDumpGtid as u8, BASE);
        assert_eq!(feed(&mut t, &[err()]), vec![Step::Done]);
    }

    #[test]
    fn progress_reports() {
        let caps = BASE | CapabilityFlags::MARIADB_CLIENT_PROGRESS;
        let progress = b"\xff\xff\xff\x01\x01\x10\x00\x00\x05stage".to_vec();
        let mut t = ResponseTracker::new(C::Query as u8, caps);
        assert_eq!(
            feed(&mut t, &[progress.clone(), ok(0)]),
            vec![Step::More, Step::Done]
        );
        assert!(!t.is_error());
        // Without the capability it would be a real error.
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        assert_eq!(feed(&mut t, &[progress]), vec![Step::Done]);
    }

    #[test]
    fn optional_metadata() {
        let caps = DEPRECATE | CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA;
        // Column count 2, metadata skipped, then rows and the terminator.
        let mut t = ResponseTracker::new(C::StmtExecute as u8, caps);
        let seq = vec![vec![2, 0], vec![0, 0, 1], ok_as_eof(0)];
        expect_done_at_end(&feed(&mut t, &seq));
        let mut t = ResponseTracker::new(C::StmtExecute as u8, caps);
        let seq = vec![vec![1, 1], coldef("a"), vec![0, 0, 1], ok_as_eof(0)];
        expect_done_at_end(&feed(&mut t, &seq));
    }

    #[test]
    fn malformed_input_errors() {
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        assert!(t.on_server_packet(3, &[0xFC, 0]).is_err());
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        assert!(t.on_server_packet(0, &[]).is_err());
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        // A "column count" with trailing bytes is not one.
        assert!(t.on_server_packet(10, b"\x05abcdefghi").is_err());
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        feed(&mut t, &[vec![1], coldef("a")]);
        assert!(t.on_server_packet(3, b"abc").is_err());
        let mut t = ResponseTracker::new(C::Query as u8, BASE);
        assert!(t.on_server_packet(2, &[0x00, 0x01]).is_err());
    }

    #[test]
    fn tracker_is_small_and_copy() {
        fn is_copy<T: Copy>() {}
        is_copy::<ResponseTracker>();
        assert!(std::mem::size_of::<ResponseTracker>() <= 48);
    }
}
