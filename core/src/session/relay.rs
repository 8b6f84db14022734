//! Relaying a server response: the data path.
//!
//! The response is never decoded into packets on its way through. The relay
//! walks packet headers in the server connection's read buffer, shows the
//! response tracker only each packet's length and first bytes (rows it
//! passes over in one sweep of their headers), and writes
//! whatever it has scanned to the client in one write per read. Packets of
//! any size stream through a buffer of bounded size; rows are not parsed.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mysql_proxy_plugin_abi::{
    abi_stable::nonexhaustive_enum::NonExhaustive,
    abi_stable::sabi_trait::TD_Opaque,
    abi_stable::std_types::{RSlice, RVec},
    InjectedResult, InjectedResultFfi, InjectedResultFfi_TO, Injection, ResultDecision, ResultKind,
    ResultKind_NE, SqlError,
};
use mysql_proxy_protocol::codec::{self, HEADER_LEN};
use mysql_proxy_protocol::constants::{ERR_HEADER, OK_HEADER};
use mysql_proxy_protocol::lenenc::Reader;
use mysql_proxy_protocol::tracker::{ResponseTracker, Step, TRACKER_PREFIX_LEN};

use super::state::{client_error, read_mail, ClientStage, Session};
use crate::error::SessionError;
use crate::net::{Conn, ConnError, Interrupt, RawPacket, RESPONSE_PATIENCE};

/// Where a relayed response goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Sink {
    /// Streamed to the client as it arrives.
    Client,
    /// Kept whole, for a hook to decide about.
    Buffer,
    /// Read and dropped (the client already has its response).
    Discard,
}

/// What the relay saw of a response.
#[derive(Default)]
pub(super) struct Summary {
    /// Server status and warning count of the final OK/EOF.
    pub status: u16,
    pub warnings: u16,
    /// Row packets, and their size with headers.
    pub rows: u64,
    pub row_bytes: u64,
    pub is_error: bool,
    /// The first packet's payload prefix (`first_prefix_len` bytes): kept
    /// in place, not allocated, since every response has one.
    first_prefix: [u8; TRACKER_PREFIX_LEN],
    first_prefix_len: usize,
    pub bytes: u64,
    /// The response's raw frames, for [`Sink::Buffer`].
    pub buffered: BytesMut,
    /// The response outgrew the session's buffered-result limit: it was
    /// read to its end and dropped.
    pub overflowed: bool,
    /// When the first bytes of the response arrived.
    pub first_at: Option<Instant>,
}

impl Summary {
    /// The server's status after this response, `before` being the status
    /// before it: an ERR carries none, and the server's status does not
    /// change for it (a statement failing in a transaction leaves the
    /// transaction open), so the last OK/EOF's if the response had one
    /// (earlier results of a multi-statement), else `before`.
    pub fn status_after(&self, before: u16) -> u16 {
        if self.is_error && self.status == 0 {
            before
        } else {
            self.status
        }
    }

    /// Records the arrival and the leading bytes (at most
    /// [`TRACKER_PREFIX_LEN`]) of the response's first packet.
    fn note_first_packet(&mut self, prefix: &[u8]) {
        self.first_at = Some(Instant::now());
        for (slot, byte) in self.first_prefix.iter_mut().zip(prefix) {
            *slot = *byte;
        }
        self.first_prefix_len = prefix.len().min(TRACKER_PREFIX_LEN);
    }
}

/// One of two sides.
pub(super) enum Either<C, S> {
    Client(C),
    Server(S),
}

/// Waits for the next complete packet from whichever side sends first.
pub(super) async fn next_packet_either(
    client: &mut Conn,
    server: &mut Conn,
) -> Result<Either<RawPacket, RawPacket>, Either<ConnError, ConnError>> {
    tokio::select! {
        packet = client.read_packet() => packet.map(Either::Client).map_err(Either::Client),
        packet = server.read_packet() => packet.map(Either::Server).map_err(Either::Server),
    }
}

/// Relays the server's response to the command just sent until the tracker
/// says it is complete.
pub(super) async fn relay_response(
    session: &mut Session,
    mut tracker: ResponseTracker,
    sink: Sink,
) -> Result<Summary, SessionError> {
    let Some(server) = session.server.as_mut() else {
        return Err(SessionError::NoServerConnection);
    };
    let client = &mut session.client;
    let stage = &mut session.stage;
    let buffer_limit = session.context.buffered_result_limit;
    let mut summary = Summary::default();
    // Bytes of the current packet's payload not yet passed through.
    let mut pending_body = 0usize;
    let mut step = Step::More;
    let mut watching_client = true;
    loop {
        let buf = &server.conn.buf;
        let mut pos = 0usize;
        loop {
            if pending_body > 0 {
                let take = pending_body.min(buf.len() - pos);
                pos += take;
                pending_body -= take;
                if pending_body > 0 {
                    break;
                }
                continue;
            }
            if step != Step::More {
                // Stop at the boundary: what follows needs a decision first.
                break;
            }
            pos += tracker.skip_rows(buf.get(pos..).unwrap_or_default());
            let Some((len, _seq)) = codec::parse_header(buf.get(pos..).unwrap_or_default()) else {
                break;
            };
            let prefix_len = len.min(TRACKER_PREFIX_LEN);
            let prefix_start = pos + HEADER_LEN;
            let Some(prefix) = buf.get(prefix_start..prefix_start + prefix_len) else {
                break;
            };
            if summary.first_at.is_none() {
                summary.note_first_packet(prefix);
            }
            step = tracker.on_server_packet(len, prefix).map_err(|error| {
                SessionError::BackendProtocol {
                    backend: server.name().to_string(),
                    message: error.to_string(),
                }
            })?;
            pos = prefix_start;
            pending_body = len;
        }
        if pos > 0 {
            let scanned = buf.get(..pos).unwrap_or_default();
            match sink {
                Sink::Client => {
                    // From here on an error can no longer be told to the
                    // client: it would land inside the response.
                    *stage = ClientStage::MidResponse;
                    client.write_all(scanned).await.map_err(client_error)?
                }
                Sink::Buffer if !summary.overflowed => {
                    let size = (summary.buffered.len() + scanned.len()) as u64;
                    if buffer_limit > 0 && size > buffer_limit {
                        // Read on to the end (the server connection stays
                        // usable), keeping nothing.
                        summary.overflowed = true;
                        summary.buffered = BytesMut::new();
                    } else {
                        summary.buffered.extend_from_slice(scanned);
                    }
                }
                Sink::Buffer => {}
                Sink::Discard => {}
            }
            summary.bytes += pos as u64;
            server.conn.consume(pos);
        }
        if pending_body == 0 {
            match step {
                Step::Done => {
                    summary.status = tracker.last_status().0;
                    summary.warnings = tracker.last_warnings();
                    (summary.rows, summary.row_bytes) = tracker.rows();
                    summary.is_error = tracker.is_error();
                    return Ok(summary);
                }
                Step::LocalInfile => {
                    relay_local_infile(client, &mut server.conn).await.map_err(
                        |side| match side {
                            Either::Client(error) => client_error(error),
                            Either::Server(error) => server.error(error),
                        },
                    )?;
                    tracker.resume_after_local_infile();
                    step = Step::More;
                    continue;
                }
                Step::AuthExchange => {
                    step = Step::More;
                    if server.conn.buf.is_empty() {
                        // The server waits for the client's next auth round,
                        // or sends more by itself: relay whichever comes.
                        tokio::select! {
                            packet = client.read_packet() => {
                                let packet = packet.map_err(client_error)?;
                                server.conn.write_all(&packet.raw).await.map_err(|e| server.error(e))?;
                            }
                            filled = server.conn.fill() => { filled.map_err(|e| server.error(e))?; }
                        }
                    }
                    continue;
                }
                Step::More => {}
            }
        }
        // The client owes nothing while its response is on the way: if it
        // closes meanwhile, the session ends then rather than when the
        // server answers (which may be never). A KILL ends it too.
        let mail = session.mailbox.mail_flag();
        let lasting = session.command_shown;
        let filled =
            server
                .conn
                .fill_unless_interrupted(client, &mut watching_client, mail, lasting);
        match filled.await.map_err(|e| server.error(e))? {
            Ok(_) => {}
            Err(Interrupt::Lasting) => {
                // Worth showing in the process list now (a quick command
                // costs no lock for it).
                if let Some(command) = &session.command {
                    session
                        .mailbox
                        .show_lasting_command(command, RESPONSE_PATIENCE.as_secs());
                }
                session.command_shown = true;
            }
            Err(Interrupt::ClientClosed) => return Err(SessionError::ClientClosed),
            Err(Interrupt::Mail) => {
                if let Some(end) = read_mail(&session.mailbox) {
                    return Err(end);
                }
            }
        }
    }
}

/// LOAD DATA LOCAL INFILE: relays the client's file packets to the server up
/// to and including the empty packet that ends them.
async fn relay_local_infile(
    client: &mut Conn,
    server: &mut Conn,
) -> Result<(), Either<ConnError, ConnError>> {
    loop {
        let packet = client.read_packet().await.map_err(Either::Client)?;
        server
            .write_all(&packet.raw)
            .await
            .map_err(Either::Server)?;
        if packet.payload.is_empty() {
            return Ok(());
        }
    }
}

/// The server's response to one injected query, as `read_query_result`
/// reads it (through [`InjectedResultFfi`]).
pub(super) struct InjectionResult {
    pub id: i64,
    pub query: RVec<u8>,
    pub kind: ResultKind,
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
    pub server_status: u16,
    pub row_count: u64,
    pub bytes: u64,
    pub query_time_us: u64,
    pub response_time_us: u64,
    pub packets: RVec<RVec<u8>>,
}

impl InjectionResult {
    /// The result as the hook receives it.
    pub fn for_hook(&self) -> InjectedResult<'_> {
        InjectedResultFfi_TO::from_ptr(self, TD_Opaque)
    }
}

impl InjectedResultFfi for InjectionResult {
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

/// What running one injection produced.
pub(super) struct InjectionOutcome {
    /// The result for `read_query_result`; `None` when the command has no
    /// response.
    pub result: Option<InjectionResult>,
    /// The response already went to the client.
    pub streamed_to_client: bool,
    /// The response's raw frames, when buffered.
    pub raw: Bytes,
    /// The result was to be buffered and outgrew the limit: dropped.
    pub overflowed: bool,
}

/// Sends one injected query and relays its response: buffered if the
/// injection asked for it, else streamed to the client (or discarded when the
/// client already has its response).
pub(super) async fn run_injection(
    session: &mut Session,
    injection: &Injection,
    replied: bool,
) -> Result<InjectionOutcome, SessionError> {
    let Some(server) = session.server.as_mut() else {
        return Err(SessionError::NoServerConnection);
    };
    let command = injection.payload.first().copied().unwrap_or(0);
    let framed = codec::frame(0, injection.payload.as_slice());
    let sent_at = Instant::now();
    server
        .conn
        .write_all(&framed)
        .await
        .map_err(|e| server.error(e))?;
    if !ResponseTracker::expects_response(command) {
        return Ok(InjectionOutcome {
            result: None,
            streamed_to_client: false,
            raw: Bytes::new(),
            overflowed: false,
        });
    }
    let sink = match (injection.buffer_result, replied) {
        (true, _) => Sink::Buffer,
        (false, false) => Sink::Client,
        (false, true) => Sink::Discard,
    };
    let tracker = ResponseTracker::new(command, session.capabilities);
    let summary = relay_response(session, tracker, sink).await?;
    let done_at = Instant::now();
    let raw = summary.buffered.clone().freeze();
    let (kind, affected_rows, last_insert_id) = classify(&summary);
    let result = InjectionResult {
        id: injection.id,
        query: injection.payload.clone(),
        kind,
        affected_rows,
        last_insert_id,
        warnings: summary.warnings,
        server_status: summary.status_after(session.state.server_status),
        row_count: summary.rows,
        bytes: summary.row_bytes,
        query_time_us: micros(summary.first_at.unwrap_or(done_at) - sent_at),
        response_time_us: micros(done_at - sent_at),
        packets: split_payloads(&raw),
    };
    Ok(InjectionOutcome {
        result: Some(result),
        streamed_to_client: sink == Sink::Client,
        raw,
        overflowed: summary.overflowed,
    })
}

/// Applies `read_query_result`'s decision; returns whether the client has
/// now had its response.
pub(super) async fn apply_result_decision(
    session: &mut Session,
    decision: Result<Option<ResultDecision>, SqlError>,
    result: &InjectionResult,
    raw: Bytes,
    replied: bool,
) -> Result<bool, SessionError> {
    let buffered = !raw.is_empty();
    match decision {
        Err(error) if !replied => {
            session
                .send_response(&mysql_proxy_plugin_abi::Response::Error(error))
                .await?;
            Ok(true)
        }
        Ok(Some(ResultDecision::Forward)) if buffered && !replied => {
            session.stage = ClientStage::MidResponse;
            session.client.write_all(&raw).await.map_err(client_error)?;
            Ok(true)
        }
        Ok(Some(ResultDecision::Replace(response))) if buffered && !replied => {
            session.send_response(&response).await?;
            Ok(true)
        }
        Ok(Some(ResultDecision::Ignore)) | Ok(Some(ResultDecision::Forward)) if !buffered => {
            Ok(replied)
        }
        Ok(Some(ResultDecision::Ignore)) => Ok(replied),
        _ => {
            slog::warn!(
                session.context.logger,
                "result of injected query {} dropped: the client already has its response",
                result.id
            );
            Ok(replied)
        }
    }
}

/// How a response ended, and the OK packet's counts if it was one.
fn classify(summary: &Summary) -> (ResultKind, u64, u64) {
    let prefix = summary.first_prefix.get(..summary.first_prefix_len);
    match prefix.unwrap_or_default().split_first() {
        Some((&OK_HEADER, rest)) => {
            let mut reader = Reader::new(rest);
            let affected = reader.lenenc_int().unwrap_or(0);
            let insert_id = reader.lenenc_int().unwrap_or(0);
            (ResultKind::Ok, affected, insert_id)
        }
        Some((&ERR_HEADER, _)) => (ResultKind::Error, 0, 0),
        // A column count: a length-encoded integer (0xfb is LOCAL INFILE's
        // header, 0xfe EOF's).
        Some((0x01..=0xfa, _)) | Some((0xfc..=0xfd, _)) => (ResultKind::ResultSet, 0, 0),
        _ => (ResultKind::Other, 0, 0),
    }
}

/// The payloads of the packets in raw frames (continuations joined); a
/// packet cut short at the end is left out.
fn split_payloads(raw: &[u8]) -> RVec<RVec<u8>> {
    let mut payloads = RVec::new();
    let mut frames = codec::frames(raw);
    loop {
        let mut payload = Vec::new();
        if frames.join_packet(&mut payload).is_none() {
            return payloads;
        }
        payloads.push(RVec::from(payload));
    }
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_packet(payload: &[u8]) -> Summary {
        let mut summary = Summary::default();
        summary.note_first_packet(payload);
        summary
    }

    #[test]
    fn buffered_frames_split_into_joined_payloads() {
        let big: Vec<u8> = (0..codec::MAX_PAYLOAD_CHUNK + 3).map(|i| i as u8).collect();
        let mut raw = BytesMut::new();
        let next = codec::encode_packet(1, b"\x01", &mut raw);
        let next = codec::encode_packet(next, &big, &mut raw);
        let next = codec::encode_packet(next, b"", &mut raw);
        let whole = raw.len();
        codec::encode_packet(next, b"cut short", &mut raw);
        let payloads = split_payloads(&raw[..raw.len() - 1]);
        assert_eq!(payloads.len(), 3);
        assert_eq!(payloads[0].as_slice(), b"\x01");
        assert!(payloads[1].as_slice() == &big[..]);
        assert!(payloads[2].is_empty());
        assert_eq!(split_payloads(&raw[..whole]).len(), 3);
        assert_eq!(split_payloads(&raw).len(), 4);
        assert!(split_payloads(&[]).is_empty());
    }

    #[test]
    fn a_response_is_classified_by_its_first_packet() {
        // OK: 3 affected rows, last insert id 300 (a 2-byte lenenc int).
        let ok = first_packet(&[0x00, 3, 0xfc, 0x2c, 0x01, 0x02, 0x00, 0, 0]);
        assert!(matches!(classify(&ok), (ResultKind::Ok, 3, 300)));
        let err = first_packet(b"\xff\x7a\x04#42S02Table 'x' doesn't exist");
        assert!(matches!(classify(&err), (ResultKind::Error, 0, 0)));
        let columns = first_packet(&[2]);
        assert!(matches!(classify(&columns), (ResultKind::ResultSet, 0, 0)));
        assert!(matches!(
            classify(&Summary::default()),
            (ResultKind::Other, 0, 0)
        ));
    }
}
