//! Fuzz target: feeds arbitrary bytes to every decoder, the framing codec
//! and the response tracker. Nothing may panic, and whatever decodes must
//! re-encode to the exact input bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mysql_proxy_protocol::codec::{encode_packet, PacketCodec};
use mysql_proxy_protocol::constants::{CapabilityFlags, ColumnType};
use mysql_proxy_protocol::packets::*;
use mysql_proxy_protocol::tracker::{ResponseTracker, Step, TRACKER_PREFIX_LEN};
use tokio_util::codec::Decoder;

fn same<T>(input: &Bytes, decoded: Result<T, mysql_proxy_protocol::DecodeError>, enc: impl Fn(&T) -> Bytes) {
    if let Ok(v) = decoded {
        assert_eq!(&enc(&v)[..], &input[..], "re-encoding differs");
    }
}

fn decoders(caps: CapabilityFlags, p: &Bytes) {
    same(p, HandshakeV10::decode(p), HandshakeV10::to_bytes);
    same(p, HandshakeResponse41::decode(p), HandshakeResponse41::to_bytes);
    same(p, SslRequest::decode(p), SslRequest::to_bytes);
    same(p, OkPacket::decode(p, caps), |v| v.to_bytes(caps));
    same(p, ErrPacket::decode(p), ErrPacket::to_bytes);
    same(p, EofPacket::decode(p), EofPacket::to_bytes);
    same(p, ColumnDefinition41::decode(p, caps), ColumnDefinition41::to_bytes);
    same(p, StmtPrepareOk::decode(p), StmtPrepareOk::to_bytes);
    same(p, AuthSwitchRequest::decode(p), AuthSwitchRequest::to_bytes);
    same(p, AuthMoreData::decode(p), AuthMoreData::to_bytes);
    let n = usize::from(caps.0 as u8 % 16);
    same(p, TextRow::decode(p, n), TextRow::to_bytes);
    let types: Vec<ColumnType> = (0..n)
        .filter_map(|i| ColumnType::from_u8(((caps.0 >> (8 + i)) as u8).wrapping_mul(37)))
        .collect();
    same(p, BinaryRow::decode_types(p, types.iter().copied()), |v| {
        let mut out = BytesMut::new();
        v.encode_types(types.iter().copied(), &mut out);
        out.freeze()
    });
    if let Ok(r) = HandshakeResponse41::decode(p) {
        let _ = r.connect_attrs();
    }
}

fn codec(data: &[u8], step: usize) {
    let mut codec = PacketCodec::new(4096);
    let mut buf = BytesMut::new();
    let mut re = BytesMut::new();
    for chunk in data.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(p)) = codec.decode(&mut buf) {
            encode_packet(p.seq, &p.payload, &mut re);
        }
    }
    assert_eq!(&re[..], &data[..re.len()], "codec re-encoding differs");
}

fn tracker(command: u8, caps: CapabilityFlags, mut data: &[u8]) {
    let mut t = ResponseTracker::new(command, caps);
    // Each record: 1 length byte (0xFF = a full 0xFFFFFF chunk), then that
    // many bytes of which the first TRACKER_PREFIX_LEN are the prefix.
    while let Some((&len, rest)) = data.split_first() {
        let payload_len = if len == 0xFF { 0xFF_FFFF } else { usize::from(len) };
        let take = payload_len.min(TRACKER_PREFIX_LEN).min(rest.len());
        let (prefix, tail) = rest.split_at(take);
        data = tail;
        match t.on_server_packet(payload_len, prefix) {
            Ok(Step::LocalInfile) => t.resume_after_local_infile(),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let caps = CapabilityFlags(u64::from_le_bytes([
        head[1], head[2], head[3], head[4], head[5], head[6], head[7], head[8],
    ]));
    let payload = Bytes::copy_from_slice(rest);
    decoders(caps, &payload);
    codec(rest, usize::from(head[0] % 17));
    tracker(head[0], caps, rest);
});
