//! Property tests for the stream-level pieces: the framing codec and the
//! response tracker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use mysql_proxy_protocol::codec::{encode_packet, parse_header, Packet, PacketCodec};
use mysql_proxy_protocol::constants::{CapabilityFlags as Caps, ColumnType, StatusFlags};
use mysql_proxy_protocol::packets::{simple_column, OkPacket, ResultSetBuilder};
use mysql_proxy_protocol::tracker::{ResponseTracker, Step, TRACKER_PREFIX_LEN};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const CASES: u32 = 2000;

/// Feeds `wire` to a codec in pieces whose sizes cycle through `splits`.
fn decode_all(
    codec: &mut PacketCodec,
    wire: &[u8],
    splits: &[usize],
) -> (Vec<Packet>, BytesMut, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < wire.len() {
        let n = splits[i % splits.len()].clamp(1, wire.len() - pos);
        i += 1;
        buf.extend_from_slice(&wire[pos..pos + n]);
        pos += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(_) => return (out, buf, true),
            }
        }
    }
    (out, buf, false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn codec_round_trip(packets in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..300)), 0..10),
                        splits in prop::collection::vec(1usize..64, 1..8)) {
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for (seq, payload) in &packets {
            encode_packet(*seq, payload, &mut wire);
            expected.push(Packet::new(*seq, Bytes::copy_from_slice(payload)));
        }
        let mut codec = PacketCodec::new(1 << 20);
        let (got, rest, failed) = decode_all(&mut codec, &wire, &splits);
        prop_assert!(!failed);
        prop_assert!(rest.is_empty());
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn codec_arbitrary_bytes(wire in prop::collection::vec(any::<u8>(), 0..400),
                             splits in prop::collection::vec(1usize..64, 1..8),
                             max in 0usize..200) {
        let mut codec = PacketCodec::new(max);
        let (got, rest, failed) = decode_all(&mut codec, &wire, &splits);
        // Every decoded packet is re-encoded to exactly the bytes consumed.
        let mut re = BytesMut::new();
        for p in &got {
            prop_assert!(p.payload.len() <= max);
            encode_packet(p.seq, &p.payload, &mut re);
        }
        prop_assert_eq!(&re[..], &wire[..re.len()]);
        if !failed {
            prop_assert_eq!(re.len() + rest.len(), wire.len());
            // Whatever is left is an incomplete packet.
            if let Some((len, _)) = parse_header(&rest) {
                prop_assert!(rest.len() < 4 + len);
            }
        }
    }

    #[test]
    fn tracker_never_panics(command in prop_oneof![any::<u8>(), 0u8..32],
                            caps in any::<u64>(),
                            packets in prop::collection::vec(
                                (prop_oneof![0usize..40, Just(0xFF_FFFF), any::<usize>()],
                                 prop::collection::vec(any::<u8>(), 0..TRACKER_PREFIX_LEN)),
                                0..40),
                            infile_resume in any::<bool>()) {
        let mut t = ResponseTracker::new(command, Caps(caps));
        for (len, prefix) in &packets {
            match t.on_server_packet(*len, prefix) {
                Ok(Step::LocalInfile) if infile_resume => t.resume_after_local_infile(),
                Ok(_) => {}
                Err(_) => break,
            }
            let _ = (t.last_status(), t.is_error(), t.is_done());
        }
    }

    /// Sequences of results produced by the builder (plus plain OKs) chained
    /// with MORE_RESULTS_EXISTS are tracked as one response that ends
    /// exactly at its last packet.
    #[test]
    fn tracker_follows_builder_output(
        results in prop::collection::vec(
            prop_oneof![
                Just(None),
                (1usize..6, 0usize..6).prop_map(Some),
            ],
            1..5),
        deprecate in any::<bool>(),
        execute in any::<bool>(),
    ) {
        let mut caps = Caps::PROTOCOL_41 | Caps::TRANSACTIONS | Caps::MULTI_RESULTS;
        caps.set(Caps::DEPRECATE_EOF, deprecate);
        let mut packets: Vec<Bytes> = Vec::new();
        let last = results.len() - 1;
        for (i, r) in results.iter().enumerate() {
            let status = if i == last {
                StatusFlags::AUTOCOMMIT
            } else {
                StatusFlags::AUTOCOMMIT | StatusFlags::MORE_RESULTS_EXISTS
            };
            match r {
                None => packets.push(OkPacket::new(1, 0, status, 0).to_bytes(caps)),
                Some((cols, rows)) => {
                    let columns = (0..*cols)
                        .map(|c| simple_column(&format!("c{c}"), ColumnType::VarString))
                        .collect();
                    let mut w = ResultSetBuilder::new(columns, deprecate).rows();
                    for r in 0..*rows {
                        let v = r.to_string();
                        let vals = vec![Some(v.as_bytes()); *cols];
                        w.row(&vals).unwrap();
                    }
                    let mut out = w.finish(status);
                    if i != last {
                        // `finish` refuses to announce more results; patch
                        // the terminator as a server would set it.
                        let term = out.pop().unwrap();
                        let mut t = term.to_vec();
                        // Status sits at bytes 3..5 in both EOF and OK-as-EOF.
                        t[3] |= StatusFlags::MORE_RESULTS_EXISTS.0 as u8;
                        out.push(Bytes::from(t));
                    }
                    packets.extend(out);
                }
            }
        }
        let cmd = if execute { 23 } else { 3 };
        let mut t = ResponseTracker::new(cmd, caps);
        for (i, p) in packets.iter().enumerate() {
            let step = t.on_server_packet(p.len(), &p[..p.len().min(TRACKER_PREFIX_LEN)]).unwrap();
            let want = if i + 1 == packets.len() { Step::Done } else { Step::More };
            prop_assert_eq!(step, want, "packet {} of {}", i, packets.len());
        }
        prop_assert_eq!(t.last_status(), StatusFlags::AUTOCOMMIT);
    }
}
