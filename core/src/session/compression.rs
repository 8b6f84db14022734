//! A client that speaks the compressed protocol unasked. The proxy does
//! not offer compression yet (CLIENT_COMPRESS is masked), so a client that
//! compresses anyway (Connector/Python does) is told so in a frame it can
//! read, and its connection ends.

use bytes::BytesMut;
use mysql_proxy_plugin_abi::SqlError;
use mysql_proxy_protocol::codec::{self, HEADER_LEN};

use super::lifecycle::Phase;
use super::reply;
use super::state::{ClientStage, Session};
use crate::error::SessionError;

impl Session {
    /// Whether the client's first command, `payload`, is a compressed frame
    /// although its login asked for compression that was not offered (only
    /// that first command is looked at).
    pub(super) fn compresses_unasked(&mut self, payload: &[u8]) -> bool {
        std::mem::take(&mut self.check_compression) && is_compressed_frame(payload)
    }

    /// The client speaks the compressed protocol, which its greeting did not
    /// offer: it is told so in a frame it can read (a compressed frame
    /// carrying the ERR uncompressed), and the connection ends. Clients that
    /// honour the greeting never get here: they have a plain session.
    pub(super) async fn refuse_compression(&mut self) -> Phase {
        let error = SqlError::new(
            1235,
            "42000",
            "(proxy) the compressed protocol is not supported yet: connect without compression",
        );
        let mut inner = BytesMut::new();
        codec::encode_packet(1, &reply::error_payload(&error, true), &mut inner);
        let mut framed = BytesMut::with_capacity(inner.len() + COMPRESSED_HEADER_LEN);
        // Compressed length, compressed sequence id, uncompressed length (0:
        // the payload is not compressed).
        framed.extend_from_slice(&u32::try_from(inner.len()).unwrap_or(0).to_le_bytes()[..3]);
        framed.extend_from_slice(&[1, 0, 0, 0]);
        framed.extend_from_slice(&inner);
        let _ = self.client.write_all(&framed).await;
        self.stage = ClientStage::MidResponse;
        Phase::Disconnect(Some(SessionError::ClientCompressed))
    }
}

/// The header of a frame of the compressed protocol: compressed length (3
/// bytes), sequence id, uncompressed length (3 bytes).
const COMPRESSED_HEADER_LEN: usize = 7;

/// Whether a command packet read as plain is in fact a frame of the
/// compressed protocol. Read as plain, the frame's compressed length was
/// taken for a packet length, so the payload is the 3-byte uncompressed
/// length followed by the first bytes of the frame's content: uncompressed
/// (length 0), one packet with sequence id 0 as long as the payload; else a
/// zlib stream (its two header bytes are checked as zlib checks them).
fn is_compressed_frame(payload: &[u8]) -> bool {
    let (Some(uncompressed), Some(rest)) = (payload.get(..3), payload.get(3..)) else {
        return false;
    };
    if uncompressed == [0, 0, 0] {
        return codec::parse_header(rest)
            .is_some_and(|(len, seq)| seq == 0 && len + HEADER_LEN == payload.len());
    }
    match rest {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_frames_are_told_from_plain_commands() {
        // A compressed frame read as a plain packet: the frame's compressed
        // length (the length of its content) is taken for the packet's, so
        // the payload is the uncompressed length (0: not compressed) and
        // the content but its last 3 bytes. Content: one COM_QUERY packet
        // with sequence id 0.
        let query = b"\x03SELECT 1";
        let mut inner = BytesMut::new();
        codec::encode_packet(0, query, &mut inner);
        let mut payload = vec![0, 0, 0];
        payload.extend_from_slice(&inner[..inner.len() - 3]);
        assert!(is_compressed_frame(&payload));
        // A zlib stream (default compression's header bytes).
        assert!(is_compressed_frame(&[9, 0, 0, 0x78, 0x9c, 1, 2]));
        // Plain commands.
        assert!(!is_compressed_frame(query));
        assert!(!is_compressed_frame(b"\x0e"));
        assert!(!is_compressed_frame(b"\x03SELECT 'a long query text'"));
    }
}
