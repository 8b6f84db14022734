//! Generic response packets: OK, ERR and EOF, which end most exchanges.

use bytes::{BufMut, Bytes, BytesMut};

use super::share;
use crate::constants::{CapabilityFlags, StatusFlags, EOF_HEADER, ERR_HEADER, OK_HEADER};
use crate::lenenc::{lenenc_bytes_len, lenenc_int_len, put_lenenc_bytes, put_lenenc_int};
use crate::lenenc::{DecodeError, Reader};

/// OK packet (`0x00`), or the `0xFE` form that replaces the EOF at the end
/// of a result set when `CLIENT_DEPRECATE_EOF` is negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkPacket {
    /// `OK_HEADER` (0x00) or `EOF_HEADER` (0xFE, end of rows under
    /// DEPRECATE_EOF). Kept so a re-encoded packet keeps its role.
    pub header: u8,
    pub affected_rows: u64,
    pub last_insert_id: u64,
    /// Only on the wire with `PROTOCOL_41` or `TRANSACTIONS`.
    pub status: StatusFlags,
    /// Only on the wire with `PROTOCOL_41`.
    pub warnings: u16,
    /// Human-readable info ("Rows matched: 1 ..."). `None` when absent on
    /// the wire: with `SESSION_TRACK` servers omit the field entirely unless
    /// there is a message or a state change, and some other servers send it
    /// empty, so presence is kept to re-encode either faithfully.
    pub info: Option<Bytes>,
    /// Raw session-state-change block (without its lenenc length), present
    /// with `SESSION_TRACK` when status has `SESSION_STATE_CHANGED`.
    pub session_state_info: Option<Bytes>,
}

impl OkPacket {
    const WHAT: &'static str = "OK packet";

    /// A plain OK (`0x00` header) with no info.
    pub fn new(
        affected_rows: u64,
        last_insert_id: u64,
        status: StatusFlags,
        warnings: u16,
    ) -> Self {
        OkPacket {
            header: OK_HEADER,
            affected_rows,
            last_insert_id,
            status,
            warnings,
            info: None,
            session_state_info: None,
        }
    }

    /// The `0xFE`-headed OK that ends a result set under DEPRECATE_EOF.
    pub fn end_of_rows(status: StatusFlags, warnings: u16) -> Self {
        OkPacket {
            header: EOF_HEADER,
            ..OkPacket::new(0, 0, status, warnings)
        }
    }

    /// `capabilities` are the ones negotiated for the connection; they decide
    /// which optional fields are on the wire.
    pub fn decode(payload: &Bytes, capabilities: CapabilityFlags) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, Self::WHAT);
        let header = r.u8()?;
        // An 0xFE packet of 0xFFFFFF bytes or more is a row, not an OK.
        let is_ok = header == OK_HEADER
            || (header == EOF_HEADER && payload.len() < crate::codec::MAX_PAYLOAD_CHUNK);
        if !is_ok {
            return Err(r.invalid());
        }
        r.set_context("OK packet affected_rows");
        let affected_rows = r.lenenc_int()?;
        r.set_context("OK packet last_insert_id");
        let last_insert_id = r.lenenc_int()?;
        r.set_context("OK packet status");
        let mut status = StatusFlags::empty();
        let mut warnings = 0;
        if capabilities.contains(CapabilityFlags::PROTOCOL_41) {
            status = StatusFlags(r.u16_le()?);
            warnings = r.u16_le()?;
        } else if capabilities.contains(CapabilityFlags::TRANSACTIONS) {
            status = StatusFlags(r.u16_le()?);
        }
        let mut info = None;
        let mut session_state_info = None;
        if capabilities.contains(CapabilityFlags::SESSION_TRACK) {
            r.set_context("OK packet info");
            if !r.is_empty() {
                info = Some(share(payload, r.lenenc_bytes()?));
            }
            r.set_context("OK packet session_state_info");
            if status.contains(StatusFlags::SESSION_STATE_CHANGED) && !r.is_empty() {
                session_state_info = Some(share(payload, r.lenenc_bytes()?));
            }
            r.finish()?;
        } else {
            let rest = r.rest();
            if !rest.is_empty() {
                info = Some(share(payload, rest));
            }
        }
        Ok(OkPacket {
            header,
            affected_rows,
            last_insert_id,
            status,
            warnings,
            info,
            session_state_info,
        })
    }

    pub fn encode(&self, capabilities: CapabilityFlags, out: &mut BytesMut) {
        out.reserve(self.encoded_len_hint());
        out.put_u8(self.header);
        put_lenenc_int(out, self.affected_rows);
        put_lenenc_int(out, self.last_insert_id);
        if capabilities.contains(CapabilityFlags::PROTOCOL_41) {
            out.put_u16_le(self.status.0);
            out.put_u16_le(self.warnings);
        } else if capabilities.contains(CapabilityFlags::TRANSACTIONS) {
            out.put_u16_le(self.status.0);
        }
        if capabilities.contains(CapabilityFlags::SESSION_TRACK) {
            // The info field is positional: it must be written (possibly
            // empty) whenever the state block follows.
            if self.info.is_some() || self.session_state_info.is_some() {
                put_lenenc_bytes(out, self.info.as_deref().unwrap_or_default());
            }
            if let Some(s) = &self.session_state_info {
                put_lenenc_bytes(out, s);
            }
        } else if let Some(info) = &self.info {
            out.put_slice(info);
        }
    }

    pub fn to_bytes(&self, capabilities: CapabilityFlags) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(capabilities, &mut out);
        out.freeze()
    }

    /// The info message, empty when absent.
    pub fn info_bytes(&self) -> &[u8] {
        self.info.as_deref().unwrap_or_default()
    }

    fn encoded_len_hint(&self) -> usize {
        1 + lenenc_int_len(self.affected_rows)
            + lenenc_int_len(self.last_insert_id)
            + 4
            + self.info.as_ref().map_or(0, |i| lenenc_bytes_len(i.len()))
            + self
                .session_state_info
                .as_ref()
                .map_or(0, |i| lenenc_bytes_len(i.len()))
    }
}

/// ERR packet (`0xFF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    pub code: u16,
    /// The 5-character SQLSTATE, present (after a `#` marker) in the 4.1
    /// protocol; absent in pre-4.1 errors and in errors sent before the
    /// handshake completed.
    pub sql_state: Option<[u8; 5]>,
    pub message: Bytes,
}

impl ErrPacket {
    const WHAT: &'static str = "ERR packet";

    /// An ERR in 4.1 form. `sqlstate` must be 5 ASCII characters; anything
    /// else is replaced by the generic `HY000`.
    pub fn new(code: u16, sqlstate: &str, message: &str) -> Self {
        let state = match <[u8; 5]>::try_from(sqlstate.as_bytes()) {
            Ok(s) if s.is_ascii() => s,
            _ => *b"HY000",
        };
        ErrPacket {
            code,
            sql_state: Some(state),
            message: Bytes::copy_from_slice(message.as_bytes()),
        }
    }

    /// Decodes an ERR packet; the 4.1 form is recognised by its `#` marker.
    ///
    /// MariaDB progress reports (code 0xFFFF, only with
    /// `MARIADB_CLIENT_PROGRESS`) share the header and decode here too; check
    /// [`ErrPacket::is_progress_report`].
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, Self::WHAT);
        if r.u8()? != ERR_HEADER {
            return Err(r.invalid());
        }
        r.set_context("ERR packet code");
        let code = r.u16_le()?;
        r.set_context("ERR packet sql_state");
        let sql_state = if r.peek() == Some(b'#') {
            let [_, a, b, c, d, e] = r.array::<6>()?;
            Some([a, b, c, d, e])
        } else {
            None
        };
        let message = share(payload, r.rest());
        Ok(ErrPacket {
            code,
            sql_state,
            message,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(9 + self.message.len());
        out.put_u8(ERR_HEADER);
        out.put_u16_le(self.code);
        if let Some(state) = &self.sql_state {
            out.put_u8(b'#');
            out.put_slice(state);
        }
        out.put_slice(&self.message);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// True for a MariaDB progress report rather than a real error.
    pub fn is_progress_report(&self) -> bool {
        self.code == 0xFFFF
    }

    /// SQLSTATE as text (`HY000` when absent).
    pub fn sql_state_str(&self) -> &str {
        self.sql_state
            .as_ref()
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or("HY000")
    }

    /// The message as text, with invalid UTF-8 replaced.
    pub fn message_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.message)
    }
}

impl std::fmt::Display for ErrPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code,
            self.sql_state_str(),
            self.message_lossy()
        )
    }
}

/// Classic EOF packet (`0xFE`, warnings, status): 5 bytes.
///
/// The pre-4.1 one-byte form is not accepted: no supported server sends it
/// to a 4.1 client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EofPacket {
    pub warnings: u16,
    pub status: StatusFlags,
}

impl EofPacket {
    const WHAT: &'static str = "EOF packet";
    pub const LEN: usize = 5;

    pub fn new(warnings: u16, status: StatusFlags) -> Self {
        EofPacket { warnings, status }
    }

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, Self::WHAT);
        if r.u8()? != EOF_HEADER {
            return Err(r.invalid());
        }
        let warnings = r.u16_le()?;
        let status = StatusFlags(r.u16_le()?);
        r.finish()?;
        Ok(EofPacket { warnings, status })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(Self::LEN);
        out.put_u8(EOF_HEADER);
        out.put_u16_le(self.warnings);
        out.put_u16_le(self.status.0);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CAPS_41: CapabilityFlags = CapabilityFlags(
        CapabilityFlags::PROTOCOL_41.0
            | CapabilityFlags::TRANSACTIONS.0
            | CapabilityFlags::SESSION_TRACK.0,
    );

    fn rt_ok(bytes: &[u8], caps: CapabilityFlags) -> OkPacket {
        let b = Bytes::copy_from_slice(bytes);
        let ok = OkPacket::decode(&b, caps).unwrap();
        assert_eq!(&ok.to_bytes(caps)[..], bytes);
        ok
    }

    #[test]
    fn ok_forms() {
        // MariaDB OK after INSERT: 1 row, id 5, autocommit.
        let ok = rt_ok(&[0, 1, 5, 2, 0, 0, 0], CAPS_41);
        assert_eq!((ok.affected_rows, ok.last_insert_id), (1, 5));
        assert_eq!(ok.status, StatusFlags::AUTOCOMMIT);
        assert_eq!(ok.info, None);

        // With an info message under SESSION_TRACK.
        let mut wire = vec![0, 3, 0, 0x22, 0, 1, 0];
        let msg = b"Rows matched: 3  Changed: 3  Warnings: 1";
        wire.push(msg.len() as u8);
        wire.extend_from_slice(msg);
        let ok = rt_ok(&wire, CAPS_41);
        assert_eq!(ok.info_bytes(), msg);
        assert_eq!(ok.warnings, 1);

        // Session state change (USE db): empty info then the state block.
        let state = [0x01, 0x05, 0x04, b't', b'e', b's', b't'];
        let mut wire = vec![0, 0, 0, 0x02, 0x40, 0, 0, 0, state.len() as u8];
        wire.extend_from_slice(&state);
        let ok = rt_ok(&wire, CAPS_41);
        assert_eq!(ok.session_state_info.as_deref(), Some(&state[..]));

        // Empty info present without state change (some servers do this).
        let ok = rt_ok(&[0, 0, 0, 2, 0, 0, 0, 0], CAPS_41);
        assert_eq!(ok.info.as_deref(), Some(&b""[..]));

        // Without SESSION_TRACK the info is the rest of the packet.
        let caps = CapabilityFlags::PROTOCOL_41;
        let ok = rt_ok(b"\x00\x00\x00\x02\x00\x00\x00hello", caps);
        assert_eq!(ok.info_bytes(), b"hello");

        // DEPRECATE_EOF end of rows.
        let ok = rt_ok(&[0xFE, 0, 0, 0x22, 0, 0, 0], CAPS_41);
        assert_eq!(ok, OkPacket::end_of_rows(StatusFlags(0x22), 0));

        // Trailing garbage under SESSION_TRACK is rejected.
        let b = Bytes::from_static(&[0, 0, 0, 2, 0, 0, 0, 0, 9]);
        assert!(OkPacket::decode(&b, CAPS_41).is_err());
        let b = Bytes::from_static(&[0xFF, 0, 0]);
        assert!(OkPacket::decode(&b, CAPS_41).is_err());
    }

    #[test]
    fn err_forms() {
        let wire = b"\xff\x7a\x04#42S02Table 'test.nope' doesn't exist";
        let b = Bytes::from_static(wire);
        let e = ErrPacket::decode(&b).unwrap();
        assert_eq!(e.code, 1146);
        assert_eq!(e.sql_state_str(), "42S02");
        assert_eq!(&e.to_bytes()[..], &wire[..]);
        assert_eq!(
            e.to_string(),
            "ERROR 1146 (42S02): Table 'test.nope' doesn't exist"
        );

        // Pre-handshake form (no SQLSTATE).
        let wire = b"\xff\x10\x04Too many connections";
        let e = ErrPacket::decode(&Bytes::from_static(wire)).unwrap();
        assert_eq!(e.sql_state, None);
        assert_eq!(&e.to_bytes()[..], &wire[..]);

        let e = ErrPacket::new(1045, "28000", "Access denied");
        assert_eq!(&e.to_bytes()[..], b"\xff\x15\x04#28000Access denied");
        assert_eq!(ErrPacket::new(1, "bad", "x").sql_state_str(), "HY000");
        assert!(ErrPacket::decode(&Bytes::from_static(b"\xff\x01\x00#12")).is_err());
    }

    #[test]
    fn eof() {
        let e = EofPacket::decode(&[0xFE, 1, 0, 2, 0]).unwrap();
        assert_eq!(e, EofPacket::new(1, StatusFlags::AUTOCOMMIT));
        assert_eq!(&e.to_bytes()[..], &[0xFE, 1, 0, 2, 0]);
        assert!(EofPacket::decode(&[0xFE]).is_err());
        assert!(EofPacket::decode(&[0xFE, 1, 0, 2, 0, 0]).is_err());
    }
}
