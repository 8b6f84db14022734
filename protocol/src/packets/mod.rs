//! Message layer: typed views of individual MySQL packets.
//!
//! Every type decodes from a payload held as `Bytes` (string fields are
//! shared slices of it, not copies) and encodes back into a `BytesMut`.
//! Decoders keep exactly what is needed for `encode(decode(x)) == x` to hold
//! byte for byte, and reject what they could not reproduce; the proxy only
//! re-encodes packets a hook changed, so this keeps pass-through and edited
//! traffic indistinguishable.
//!
//! Encoders write what the fields say; where the wire layout depends on the
//! negotiated capabilities, they take the same capabilities as the decoder.

mod command;
mod generic;
mod handshake;
mod resultset;
mod stmt;

pub use command::{
    ComChangeUser, ComInitDb, ComPing, ComQuery, ComQuit, ComResetConnection, ComSetOption,
};
pub use generic::{EofPacket, ErrPacket, OkPacket};
pub use handshake::{
    parse_connect_attrs, AuthMoreData, AuthSwitchRequest, AuthSwitchResponse, HandshakeResponse41,
    HandshakeV10, SslRequest,
};
pub use resultset::{
    simple_column, BinaryRow, ColumnDefinition41, ResultSetBuilder, ResultSetError, RowsWriter,
    TextRow,
};
pub use stmt::StmtPrepareOk;

use bytes::Bytes;

/// Turns a sub-slice of `payload` (as returned by a [`crate::lenenc::Reader`]
/// over it) into a shared `Bytes` without copying. Falls back to a copy if
/// `s` does not point into `payload`, so it can never panic.
pub(crate) fn share(payload: &Bytes, s: &[u8]) -> Bytes {
    if s.is_empty() {
        return Bytes::new();
    }
    let base = payload.as_ptr() as usize;
    let p = s.as_ptr() as usize;
    match p.checked_sub(base) {
        Some(off) if off.saturating_add(s.len()) <= payload.len() => {
            payload.slice(off..off + s.len())
        }
        _ => Bytes::copy_from_slice(s),
    }
}
