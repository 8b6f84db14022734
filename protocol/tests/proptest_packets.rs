//! Property tests for the message decoders: they never panic, whatever
//! decodes re-encodes to the same bytes, and generated values survive an
//! encode/decode round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use mysql_proxy_protocol::constants::{
    CapabilityFlags as Caps, ColumnFlags, ColumnType, StatusFlags,
};
use mysql_proxy_protocol::packets::*;
use proptest::prelude::*;
use proptest::sample::Index;

const CASES: u32 = 2000;

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn bytes_no_nul(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..max)
}

fn b(v: Vec<u8>) -> Bytes {
    Bytes::from(v)
}

/// Small edits of a valid encoding, to reach the decoders' corner cases
/// far more often than random bytes would.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    (Just(valid), any::<Index>(), any::<u8>(), 0u8..5).prop_map(|(mut v, i, byte, op)| {
        if v.is_empty() {
            return vec![byte];
        }
        let at = i.index(v.len());
        match op {
            0 => v[at] = byte,
            1 => v.truncate(at),
            2 => v.insert(at, byte),
            3 => {
                v.remove(at);
            }
            _ => v.push(byte),
        }
        v
    })
}

/// Capability sets that change packet layouts, for decoders that need them.
fn layout_caps() -> impl Strategy<Value = Caps> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(p41, tr, st, ext)| {
        let mut c = Caps::empty();
        c.set(Caps::PROTOCOL_41, p41);
        c.set(Caps::TRANSACTIONS, tr);
        c.set(Caps::SESSION_TRACK, st);
        c.set(Caps::MARIADB_CLIENT_EXTENDED_METADATA, ext);
        c
    })
}

// ---------------------------------------------------------------- values

fn column_type() -> impl Strategy<Value = ColumnType> {
    prop::sample::select(
        (0u8..=255)
            .filter_map(ColumnType::from_u8)
            .collect::<Vec<_>>(),
    )
}

fn handshake_v10() -> impl Strategy<Value = HandshakeV10> {
    (
        (
            bytes_no_nul(40),
            any::<u32>(),
            any::<u64>(),
            any::<u8>(),
            any::<u16>(),
        ),
        (
            any::<u8>(),
            any::<[u8; 10]>(),
            any::<bool>(),
            any::<[u8; 8]>(),
            any_bytes(40),
        ),
        (any::<bool>(), bytes_no_nul(30), 1u8..=255),
    )
        .prop_map(
            |(
                (version, id, caps, charset, status),
                (data_len, mut reserved, nul, part1, part2_src),
                (name_nul, mut name, fill),
            )| {
                let mut caps = Caps(caps);
                if caps.contains(Caps::CLIENT_MYSQL) {
                    caps = Caps(caps.0 & 0xFFFF_FFFF);
                } else {
                    reserved[6..].fill(0);
                }
                let mut data = part1.to_vec();
                let mut data_nul = false;
                if caps.contains(Caps::SECURE_CONNECTION) {
                    let wire = usize::from(data_len).saturating_sub(8).max(13);
                    let n = wire - usize::from(nul);
                    let mut part2: Vec<u8> = part2_src.iter().copied().cycle().take(n).collect();
                    part2.resize(n, fill);
                    if !nul {
                        // Otherwise the decoder would take the last 0 for
                        // the terminator.
                        if let Some(last) = part2.last_mut() {
                            *last = fill;
                        }
                    }
                    data.extend_from_slice(&part2);
                    data_nul = nul;
                }
                let (plugin, plugin_nul) = if caps.contains(Caps::PLUGIN_AUTH) {
                    if name_nul {
                        (Some(b(name)), true)
                    } else if name.is_empty() {
                        (None, false)
                    } else {
                        name.push(fill);
                        (Some(b(name)), false)
                    }
                } else {
                    (None, false)
                };
                HandshakeV10 {
                    protocol_version: 10,
                    server_version: b(version),
                    connection_id: id,
                    auth_plugin_data: b(data),
                    capabilities: caps,
                    character_set: charset,
                    status_flags: StatusFlags(status),
                    auth_plugin_data_len: data_len,
                    reserved,
                    auth_plugin_data_nul: data_nul,
                    auth_plugin_name: plugin,
                    auth_plugin_name_nul: plugin_nul,
                }
            },
        )
}

fn client_caps_and_filler() -> impl Strategy<Value = (Caps, [u8; 23])> {
    (any::<u64>(), any::<[u8; 23]>()).prop_map(|(c, mut filler)| {
        let mut caps = Caps(c);
        caps.insert(Caps::PROTOCOL_41);
        if caps.contains(Caps::CLIENT_MYSQL) {
            caps = Caps(caps.0 & 0xFFFF_FFFF);
        } else {
            filler[19..].fill(0);
        }
        (caps, filler)
    })
}

fn handshake_response() -> impl Strategy<Value = HandshakeResponse41> {
    (
        client_caps_and_filler(),
        (any::<u32>(), any::<u8>(), bytes_no_nul(20), any_bytes(300)),
        (
            prop::option::of(bytes_no_nul(20)),
            prop::option::of(bytes_no_nul(30)),
            prop::option::of(any_bytes(60)),
            prop::option::of(any::<u8>()),
        ),
    )
        .prop_map(
            |((caps, filler), (max, charset, user, mut auth), (db, plugin, attrs, zstd))| {
                if caps.contains(Caps::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
                } else if caps.contains(Caps::SECURE_CONNECTION) {
                    auth.truncate(255);
                } else {
                    auth.retain(|&x| x != 0);
                }
                // Optional fields: a flagged field may only be absent if
                // every later flagged field is absent too.
                let db = db.filter(|_| caps.contains(Caps::CONNECT_WITH_DB));
                let db_ok = db.is_some() || !caps.contains(Caps::CONNECT_WITH_DB);
                let plugin = plugin.filter(|_| db_ok && caps.contains(Caps::PLUGIN_AUTH));
                let plugin_ok = db_ok && (plugin.is_some() || !caps.contains(Caps::PLUGIN_AUTH));
                let attrs = attrs.filter(|_| plugin_ok && caps.contains(Caps::CONNECT_ATTRS));
                let attrs_ok =
                    plugin_ok && (attrs.is_some() || !caps.contains(Caps::CONNECT_ATTRS));
                let zstd = zstd.filter(|_| attrs_ok && caps.contains(Caps::ZSTD_COMPRESSION));
                HandshakeResponse41 {
                    capabilities: caps,
                    max_packet_size: max,
                    character_set: charset,
                    filler,
                    username: b(user),
                    auth_response: b(auth),
                    database: db.map(b),
                    auth_plugin_name: plugin.map(b),
                    connect_attrs: attrs.map(b),
                    zstd_compression_level: zstd,
                }
            },
        )
}

fn ok_packet() -> impl Strategy<Value = (OkPacket, Caps)> {
    (
        layout_caps(),
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        any::<u16>(),
        any::<u16>(),
        prop::option::of(any_bytes(40)),
        prop::option::of(any_bytes(40)),
    )
        .prop_map(|(caps, fe, rows, id, status, warnings, info, state)| {
            let p41 = caps.contains(Caps::PROTOCOL_41);
            let status = if p41 || caps.contains(Caps::TRANSACTIONS) {
                StatusFlags(status)
            } else {
                StatusFlags::empty()
            };
            let warnings = if p41 { warnings } else { 0 };
            let (info, state) = if caps.contains(Caps::SESSION_TRACK) {
                let state = state.filter(|_| status.contains(StatusFlags::SESSION_STATE_CHANGED));
                let info = if state.is_some() {
                    Some(info.unwrap_or_default())
                } else {
                    info
                };
                (info, state)
            } else {
                (info.filter(|i| !i.is_empty()), None)
            };
            let ok = OkPacket {
                header: if fe { 0xFE } else { 0x00 },
                affected_rows: rows,
                last_insert_id: id,
                status,
                warnings,
                info: info.map(b),
                session_state_info: state.map(b),
            };
            (ok, caps)
        })
}

fn err_packet() -> impl Strategy<Value = ErrPacket> {
    (
        any::<u16>(),
        prop::option::of(any::<[u8; 5]>()),
        any_bytes(60),
    )
        .prop_map(|(code, state, mut msg)| {
            if state.is_none() && msg.first() == Some(&b'#') {
                msg.remove(0);
            }
            ErrPacket {
                code,
                sql_state: state,
                message: b(msg),
            }
        })
}

fn column_definition() -> impl Strategy<Value = (ColumnDefinition41, Caps)> {
    (
        prop::collection::vec(any_bytes(20), 6),
        prop::option::of(any_bytes(20)),
        (
            any::<u16>(),
            any::<u32>(),
            column_type(),
            any::<u16>(),
            any::<u8>(),
        ),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..20)),
    )
        .prop_map(|(names, ext, (cs, len, t, flags, dec), defaults)| {
            let caps = if ext.is_some() {
                Caps::MARIADB_CLIENT_EXTENDED_METADATA
            } else {
                Caps::empty()
            };
            let mut n = names.into_iter().map(b);
            let mut next = || n.next().unwrap_or_default();
            let c = ColumnDefinition41 {
                catalog: next(),
                schema: next(),
                table: next(),
                org_table: next(),
                name: next(),
                org_name: next(),
                extended_metadata: ext.map(b),
                character_set: cs,
                column_length: len,
                column_type: t,
                flags: ColumnFlags(flags),
                decimals: dec,
                default_values: defaults.map(b),
            };
            (c, caps)
        })
}

fn binary_row() -> impl Strategy<Value = (Vec<ColumnType>, BinaryRow)> {
    prop::collection::vec((column_type(), prop::option::of(any_bytes(300))), 0..20).prop_map(
        |cols| {
            let types = cols.iter().map(|(t, _)| *t).collect();
            let values = cols
                .into_iter()
                .map(|(t, v)| {
                    v.map(|mut v| {
                        if let Some(n) = t.binary_fixed_len() {
                            v.resize(n, 7);
                        }
                        b(v)
                    })
                })
                .collect();
            (types, BinaryRow { values })
        },
    )
}

// ------------------------------------------------------------ properties

fn check_bytes_rt<T>(
    input: &[u8],
    decode: impl Fn(&Bytes) -> Result<T, mysql_proxy_protocol::DecodeError>,
    encode: impl Fn(&T) -> Bytes,
) -> Result<(), TestCaseError> {
    let payload = Bytes::copy_from_slice(input);
    if let Ok(v) = decode(&payload) {
        prop_assert_eq!(&encode(&v)[..], input);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn handshake_v10_value_rt(h in handshake_v10()) {
        let wire = h.to_bytes();
        prop_assert_eq!(HandshakeV10::decode(&wire).unwrap(), h);
    }

    #[test]
    fn handshake_v10_bytes_rt(x in prop_oneof![
        any_bytes(120),
        handshake_v10().prop_flat_map(|h| mutated(h.to_bytes().to_vec())),
    ]) {
        check_bytes_rt(&x, HandshakeV10::decode, HandshakeV10::to_bytes)?;
    }

    #[test]
    fn handshake_response_value_rt(r in handshake_response()) {
        let wire = r.to_bytes();
        prop_assert_eq!(HandshakeResponse41::decode(&wire).unwrap(), r);
    }

    #[test]
    fn handshake_response_bytes_rt(x in prop_oneof![
        any_bytes(120),
        handshake_response().prop_flat_map(|r| mutated(r.to_bytes().to_vec())),
    ]) {
        check_bytes_rt(&x, HandshakeResponse41::decode, HandshakeResponse41::to_bytes)?;
        // Attribute parsing never panics either.
        if let Ok(r) = HandshakeResponse41::decode(&Bytes::copy_from_slice(&x)) {
            let _ = r.connect_attrs();
        }
    }

    #[test]
    fn ssl_request_rt((caps, filler) in client_caps_and_filler(), max in any::<u32>(), cs in any::<u8>(),
                      noise in any_bytes(40)) {
        let s = SslRequest { capabilities: caps, max_packet_size: max, character_set: cs, filler };
        let wire = s.to_bytes();
        prop_assert_eq!(wire.len(), 32);
        prop_assert_eq!(SslRequest::decode(&wire).unwrap(), s);
        check_bytes_rt(&noise, |p| SslRequest::decode(p), SslRequest::to_bytes)?;
    }

    #[test]
    fn ok_value_rt((ok, caps) in ok_packet()) {
        let wire = ok.to_bytes(caps);
        prop_assert_eq!(OkPacket::decode(&wire, caps).unwrap(), ok);
    }

    #[test]
    fn ok_bytes_rt(caps in layout_caps(), x in prop_oneof![
        any_bytes(60),
        ok_packet().prop_flat_map(|(ok, caps)| mutated(ok.to_bytes(caps).to_vec())),
    ]) {
        check_bytes_rt(&x, |p| OkPacket::decode(p, caps), |v| v.to_bytes(caps))?;
    }

    #[test]
    fn err_rt(e in err_packet(), x in prop_oneof![
        any_bytes(60),
        err_packet().prop_flat_map(|e| mutated(e.to_bytes().to_vec())),
    ]) {
        prop_assert_eq!(ErrPacket::decode(&e.to_bytes()).unwrap(), e);
        check_bytes_rt(&x, ErrPacket::decode, ErrPacket::to_bytes)?;
    }

    #[test]
    fn eof_rt(w in any::<u16>(), s in any::<u16>(), x in any_bytes(8)) {
        let e = EofPacket::new(w, StatusFlags(s));
        prop_assert_eq!(EofPacket::decode(&e.to_bytes()).unwrap(), e);
        check_bytes_rt(&x, |p| EofPacket::decode(p), EofPacket::to_bytes)?;
    }

    #[test]
    fn column_definition_value_rt((c, caps) in column_definition()) {
        let wire = c.to_bytes();
        prop_assert_eq!(ColumnDefinition41::decode(&wire, caps).unwrap(), c);
    }

    #[test]
    fn column_definition_bytes_rt(caps in layout_caps(), x in prop_oneof![
        any_bytes(60),
        column_definition().prop_flat_map(|(c, _)| mutated(c.to_bytes().to_vec())),
    ]) {
        check_bytes_rt(&x, |p| ColumnDefinition41::decode(p, caps), ColumnDefinition41::to_bytes)?;
    }

    #[test]
    fn text_row_rt(values in prop::collection::vec(prop::option::of(any_bytes(300)), 0..20),
                   x in any_bytes(60), n in 0usize..8) {
        let row = TextRow { values: values.into_iter().map(|v| v.map(b)).collect() };
        let wire = row.to_bytes();
        prop_assert_eq!(TextRow::decode(&wire, row.values.len()).unwrap(), row);
        check_bytes_rt(&x, |p| TextRow::decode(p, n), TextRow::to_bytes)?;
    }

    #[test]
    fn binary_row_rt((types, row) in binary_row(), x in any_bytes(60)) {
        let mut wire = BytesMut::new();
        row.encode_types(types.iter().copied(), &mut wire);
        let wire = wire.freeze();
        prop_assert_eq!(BinaryRow::decode_types(&wire, types.iter().copied()).unwrap(), row);
        let enc = |r: &BinaryRow| {
            let mut out = BytesMut::new();
            r.encode_types(types.iter().copied(), &mut out);
            out.freeze()
        };
        check_bytes_rt(&x, |p| BinaryRow::decode_types(p, types.iter().copied()), enc)?;
    }

    #[test]
    fn binary_row_mutated((types, x) in binary_row().prop_flat_map(|(types, row)| {
        let mut wire = BytesMut::new();
        row.encode_types(types.iter().copied(), &mut wire);
        (Just(types), mutated(wire.to_vec()))
    })) {
        let enc = |r: &BinaryRow| {
            let mut out = BytesMut::new();
            r.encode_types(types.iter().copied(), &mut out);
            out.freeze()
        };
        check_bytes_rt(&x, |p| BinaryRow::decode_types(p, types.iter().copied()), enc)?;
    }

    #[test]
    fn stmt_prepare_ok_rt(id in any::<u32>(), c in any::<u16>(), p in any::<u16>(), w in any::<u16>(),
                          m in prop::option::of(any::<u8>()), x in any_bytes(16)) {
        let v = StmtPrepareOk { statement_id: id, num_columns: c, num_params: p, warnings: w, metadata_follows: m };
        prop_assert_eq!(StmtPrepareOk::decode(&v.to_bytes()).unwrap(), v);
        check_bytes_rt(&x, |p| StmtPrepareOk::decode(p), StmtPrepareOk::to_bytes)?;
    }

    #[test]
    fn auth_packets_rt(name in bytes_no_nul(30), data in any_bytes(40), x in any_bytes(60)) {
        let a = AuthSwitchRequest { plugin_name: b(name), plugin_data: b(data.clone()) };
        prop_assert_eq!(AuthSwitchRequest::decode(&a.to_bytes()).unwrap(), a);
        check_bytes_rt(&x, AuthSwitchRequest::decode, AuthSwitchRequest::to_bytes)?;
        let m = AuthMoreData { data: b(data.clone()) };
        prop_assert_eq!(AuthMoreData::decode(&m.to_bytes()).unwrap(), m);
        check_bytes_rt(&x, AuthMoreData::decode, AuthMoreData::to_bytes)?;
        let r = AuthSwitchResponse { data: b(data) };
        prop_assert_eq!(AuthSwitchResponse::decode(&r.to_bytes()).unwrap(), r);
    }

    #[test]
    fn connect_attrs_never_panic(x in any_bytes(60)) {
        let _ = parse_connect_attrs(&Bytes::from(x));
    }
}
