//! Connection-phase packets: the server greeting, the client's SSL request
//! and handshake response, and the authentication exchange that follows.

use bytes::{BufMut, Bytes, BytesMut};

use super::share;
use crate::constants::{CapabilityFlags, StatusFlags, AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER};
use crate::lenenc::{put_lenenc_bytes, put_null_terminated, DecodeError, Reader};

/// Length of the scramble part sent before the capability flags.
const AUTH_DATA_PART1_LEN: usize = 8;
/// Minimum length of the second scramble part on the wire (12 bytes + NUL).
const AUTH_DATA_PART2_MIN_LEN: usize = 13;

/// Initial handshake packet (protocol version 10) sent by the server.
///
/// MariaDB announces its extended capabilities by *clearing* bit 0
/// (`CLIENT_MYSQL`/`LONG_PASSWORD`) and putting them in the last four of the
/// ten reserved bytes; they end up in the upper half of `capabilities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    /// Always 10 (anything else is rejected).
    pub protocol_version: u8,
    /// E.g. `8.0.36` or `5.5.5-10.11.6-MariaDB-0+deb12u1` (no NUL).
    pub server_version: Bytes,
    pub connection_id: u32,
    /// Full scramble: the 8-byte first part followed by the second part
    /// without its trailing NUL (20 bytes for both MySQL and MariaDB).
    pub auth_plugin_data: Bytes,
    /// Server capabilities; encode writes them from this field (so removing
    /// a flag here is enough to hide it from the client).
    pub capabilities: CapabilityFlags,
    pub character_set: u8,
    pub status_flags: StatusFlags,
    /// The "length of auth-plugin-data" byte as sent (21 in practice, 0
    /// without `PLUGIN_AUTH`); kept verbatim for byte-exact re-encoding.
    pub auth_plugin_data_len: u8,
    /// The ten reserved bytes as sent (zero in practice). When `CLIENT_MYSQL`
    /// is cleared, bytes 6..10 carry the extended capabilities: they are then
    /// zero here and written from `capabilities` on encode.
    pub reserved: [u8; 10],
    /// Whether the second scramble part ended with a NUL on the wire.
    pub auth_plugin_data_nul: bool,
    /// Default authentication plugin (with `PLUGIN_AUTH`).
    pub auth_plugin_name: Option<Bytes>,
    /// Whether the plugin name was NUL-terminated: MySQL 5.5.7-5.5.9 sent it
    /// without the terminator (bug #59453).
    pub auth_plugin_name_nul: bool,
}

impl HandshakeV10 {
    /// A greeting as a MySQL/MariaDB server would build it, for when the
    /// proxy itself plays the server. The scramble is usually 20 bytes.
    pub fn new(
        server_version: &[u8],
        connection_id: u32,
        scramble: &[u8],
        capabilities: CapabilityFlags,
        character_set: u8,
        status_flags: StatusFlags,
        auth_plugin_name: &[u8],
    ) -> Self {
        let plugin_auth = capabilities.contains(CapabilityFlags::PLUGIN_AUTH);
        HandshakeV10 {
            protocol_version: 10,
            server_version: Bytes::copy_from_slice(server_version),
            connection_id,
            auth_plugin_data: Bytes::copy_from_slice(scramble),
            capabilities,
            character_set,
            status_flags,
            auth_plugin_data_len: if plugin_auth {
                u8::try_from(scramble.len() + 1).unwrap_or(u8::MAX)
            } else {
                0
            },
            reserved: [0; 10],
            auth_plugin_data_nul: true,
            auth_plugin_name: plugin_auth.then(|| Bytes::copy_from_slice(auth_plugin_name)),
            auth_plugin_name_nul: true,
        }
    }

    /// The greeting of a port the proxy answers itself (the admin and
    /// debug ports): 4.1 protocol, mysql_native_password with `scramble`,
    /// latin1, autocommit.
    pub fn local(server_version: &[u8], connection_id: u32, scramble: &[u8]) -> Self {
        Self::new(
            server_version,
            connection_id,
            scramble,
            CapabilityFlags::PROTOCOL_41
                | CapabilityFlags::SECURE_CONNECTION
                | CapabilityFlags::LONG_PASSWORD
                | CapabilityFlags::PLUGIN_AUTH
                | CapabilityFlags::CONNECT_WITH_DB,
            crate::constants::CHARSET_LATIN1_SWEDISH_CI,
            StatusFlags::AUTOCOMMIT,
            b"mysql_native_password",
        )
    }

    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "HandshakeV10 protocol_version");
        let protocol_version = r.u8()?;
        if protocol_version != 10 {
            return Err(r.invalid());
        }
        r.set_context("HandshakeV10 server_version");
        let server_version = share(payload, r.null_terminated()?);
        r.set_context("HandshakeV10 connection_id");
        let connection_id = r.u32_le()?;
        r.set_context("HandshakeV10 auth_plugin_data");
        let part1 = r.fixed(AUTH_DATA_PART1_LEN)?;
        r.set_context("HandshakeV10 filler");
        if r.u8()? != 0 {
            return Err(r.invalid());
        }
        // Pre-4.1 servers stop after the lower capability flags; they are
        // not supported, so the remaining header fields are mandatory.
        r.set_context("HandshakeV10 capability_flags");
        let caps_low = r.u16_le()?;
        let character_set = r.u8()?;
        let status_flags = StatusFlags(r.u16_le()?);
        let caps_high = r.u16_le()?;
        let auth_plugin_data_len = r.u8()?;
        let mut reserved: [u8; 10] = r.array()?;
        let lower = u32::from(caps_low) | u32::from(caps_high) << 16;
        let upper = if lower & CapabilityFlags::CLIENT_MYSQL.lower32() == 0 {
            let ext = u32::from_le_bytes([reserved[6], reserved[7], reserved[8], reserved[9]]);
            // These bytes now live in `capabilities`; zero them so that two
            // greetings with equal capabilities compare equal.
            reserved[6..].fill(0);
            ext
        } else {
            0
        };
        let capabilities = CapabilityFlags::from_parts(lower, upper);

        r.set_context("HandshakeV10 auth_plugin_data part 2");
        let mut auth_plugin_data_nul = false;
        let auth_plugin_data = if capabilities.contains(CapabilityFlags::SECURE_CONNECTION) {
            let n = usize::from(auth_plugin_data_len)
                .saturating_sub(AUTH_DATA_PART1_LEN)
                .max(AUTH_DATA_PART2_MIN_LEN);
            let mut part2 = r.fixed(n)?;
            if let Some((0, head)) = part2.split_last() {
                part2 = head;
                auth_plugin_data_nul = true;
            }
            let mut all = BytesMut::with_capacity(part1.len() + part2.len());
            all.put_slice(part1);
            all.put_slice(part2);
            all.freeze()
        } else {
            share(payload, part1)
        };

        r.set_context("HandshakeV10 auth_plugin_name");
        let mut auth_plugin_name = None;
        let mut auth_plugin_name_nul = false;
        if capabilities.contains(CapabilityFlags::PLUGIN_AUTH) && !r.is_empty() {
            let name = match r.null_terminated() {
                Ok(name) => {
                    auth_plugin_name_nul = true;
                    name
                }
                Err(_) => r.rest(),
            };
            auth_plugin_name = Some(share(payload, name));
        }
        r.finish()?;
        Ok(HandshakeV10 {
            protocol_version,
            server_version,
            connection_id,
            auth_plugin_data,
            capabilities,
            character_set,
            status_flags,
            auth_plugin_data_len,
            reserved,
            auth_plugin_data_nul,
            auth_plugin_name,
            auth_plugin_name_nul,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let data = &self.auth_plugin_data[..];
        let (part1, part2) = data.split_at(data.len().min(AUTH_DATA_PART1_LEN));
        out.reserve(64 + self.server_version.len() + data.len());
        out.put_u8(self.protocol_version);
        put_null_terminated(out, &self.server_version);
        out.put_u32_le(self.connection_id);
        out.put_slice(part1);
        // A short scramble is padded so the layout stays parseable.
        out.put_bytes(0, AUTH_DATA_PART1_LEN - part1.len());
        out.put_u8(0);
        let lower = self.capabilities.lower32();
        out.put_u16_le(lower as u16);
        out.put_u8(self.character_set);
        out.put_u16_le(self.status_flags.0);
        out.put_u16_le((lower >> 16) as u16);
        out.put_u8(self.auth_plugin_data_len);
        out.put_slice(&self.reserved[..6]);
        if self.capabilities.contains(CapabilityFlags::CLIENT_MYSQL) {
            out.put_slice(&self.reserved[6..]);
        } else {
            out.put_u32_le(self.capabilities.upper32());
        }
        if self
            .capabilities
            .contains(CapabilityFlags::SECURE_CONNECTION)
        {
            let wire_len = usize::from(self.auth_plugin_data_len)
                .saturating_sub(AUTH_DATA_PART1_LEN)
                .max(AUTH_DATA_PART2_MIN_LEN);
            out.put_slice(part2);
            let mut written = part2.len();
            if self.auth_plugin_data_nul {
                out.put_u8(0);
                written += 1;
            }
            // The peer reads exactly `wire_len` bytes here.
            out.put_bytes(0, wire_len.saturating_sub(written));
        }
        if self.capabilities.contains(CapabilityFlags::PLUGIN_AUTH) {
            if let Some(name) = &self.auth_plugin_name {
                out.put_slice(name);
                if self.auth_plugin_name_nul {
                    out.put_u8(0);
                }
            }
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// True when the server is MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.server_version.windows(7).any(|w| w == b"MariaDB")
    }

    /// `major * 10000 + minor * 100 + patch`, e.g. 100_119 for `10.1.19`.
    ///
    /// MariaDB prefixes its version with `5.5.5-` so that old replication
    /// clients accept it; that prefix is skipped, so
    /// `5.5.5-10.11.6-MariaDB` gives 101_106.
    pub fn server_version_number(&self) -> Option<u32> {
        let v = &self.server_version[..];
        let v = match v.strip_prefix(b"5.5.5-") {
            Some(rest) if self.is_mariadb() => rest,
            _ => v,
        };
        let mut parts = [0u32; 3];
        let mut rest = v;
        for (i, part) in parts.iter_mut().enumerate() {
            if i > 0 {
                rest = rest.strip_prefix(b".")?;
            }
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 4 {
                return None;
            }
            let (num, tail) = rest.split_at(digits);
            *part = num
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
            rest = tail;
        }
        let [major, minor, patch] = parts;
        if minor > 99 || patch > 99 {
            return None;
        }
        major.checked_mul(10_000)?.checked_add(minor * 100 + patch)
    }
}

/// The 32-byte prefix shared by `SslRequest` and `HandshakeResponse41`.
struct ClientPrefix {
    capabilities: CapabilityFlags,
    max_packet_size: u32,
    character_set: u8,
    filler: [u8; 23],
}

impl ClientPrefix {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let lower = r.u32_le()?;
        let max_packet_size = r.u32_le()?;
        let character_set = r.u8()?;
        let mut filler: [u8; 23] = r.array()?;
        // Same convention as the greeting: a client talking to MariaDB
        // clears CLIENT_MYSQL and sends its extended capabilities here.
        let upper = if lower & CapabilityFlags::CLIENT_MYSQL.lower32() == 0 {
            let ext = u32::from_le_bytes([filler[19], filler[20], filler[21], filler[22]]);
            filler[19..].fill(0);
            ext
        } else {
            0
        };
        if lower & CapabilityFlags::PROTOCOL_41.lower32() == 0 {
            // HandshakeResponse320 (pre-4.1) has a different layout.
            return Err(r.invalid());
        }
        Ok(ClientPrefix {
            capabilities: CapabilityFlags::from_parts(lower, upper),
            max_packet_size,
            character_set,
            filler,
        })
    }

    fn encode(
        out: &mut BytesMut,
        capabilities: CapabilityFlags,
        max_packet_size: u32,
        character_set: u8,
        filler: &[u8; 23],
    ) {
        out.put_u32_le(capabilities.lower32());
        out.put_u32_le(max_packet_size);
        out.put_u8(character_set);
        out.put_slice(&filler[..19]);
        if capabilities.contains(CapabilityFlags::CLIENT_MYSQL) {
            out.put_slice(&filler[19..]);
        } else {
            out.put_u32_le(capabilities.upper32());
        }
    }
}

/// `SSLRequest`: the truncated handshake response a client sends before
/// starting TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslRequest {
    /// Client capabilities (MariaDB extended ones in the upper half).
    pub capabilities: CapabilityFlags,
    pub max_packet_size: u32,
    pub character_set: u8,
    /// The 23 reserved bytes as sent (zero in practice). When `CLIENT_MYSQL`
    /// is cleared, the last four carry the extended capabilities: they are
    /// then zero here and written from `capabilities` on encode.
    pub filler: [u8; 23],
}

impl SslRequest {
    pub const LEN: usize = 32;

    pub fn new(capabilities: CapabilityFlags, max_packet_size: u32, character_set: u8) -> Self {
        SslRequest {
            capabilities,
            max_packet_size,
            character_set,
            filler: [0; 23],
        }
    }

    /// Whether a client's first packet is an SSL request rather than a full
    /// handshake response (which is always longer than 32 bytes).
    pub fn matches(payload: &[u8]) -> bool {
        payload.len() == Self::LEN
            && payload
                .get(1)
                .is_some_and(|b| b & (CapabilityFlags::SSL.0 >> 8) as u8 != 0)
    }

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "SslRequest");
        let p = ClientPrefix::decode(&mut r)?;
        r.finish()?;
        Ok(SslRequest {
            capabilities: p.capabilities,
            max_packet_size: p.max_packet_size,
            character_set: p.character_set,
            filler: p.filler,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(Self::LEN);
        ClientPrefix::encode(
            out,
            self.capabilities,
            self.max_packet_size,
            self.character_set,
            &self.filler,
        );
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// `HandshakeResponse41`: the client's answer to the greeting.
///
/// The client's own capability bits in the packet decide its layout, so
/// `decode` needs nothing but the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse41 {
    /// Client capabilities (MariaDB extended ones in the upper half).
    pub capabilities: CapabilityFlags,
    pub max_packet_size: u32,
    pub character_set: u8,
    /// Reserved bytes as sent; see [`SslRequest::filler`].
    pub filler: [u8; 23],
    pub username: Bytes,
    /// Length-encoded with `PLUGIN_AUTH_LENENC_CLIENT_DATA`, 1-byte length
    /// with `SECURE_CONNECTION`, NUL-terminated otherwise.
    pub auth_response: Bytes,
    /// With `CONNECT_WITH_DB`. `None` also when the flag is set but the
    /// packet ends before the field (servers accept that).
    pub database: Option<Bytes>,
    /// With `PLUGIN_AUTH`; `None` when the packet ends before it.
    pub auth_plugin_name: Option<Bytes>,
    /// With `CONNECT_ATTRS`: the content of the length-encoded attribute
    /// block, kept raw (see [`parse_connect_attrs`]).
    pub connect_attrs: Option<Bytes>,
    /// With `ZSTD_COMPRESSION` (MySQL 8.0.18+).
    pub zstd_compression_level: Option<u8>,
}

impl HandshakeResponse41 {
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "HandshakeResponse41");
        let p = ClientPrefix::decode(&mut r)?;
        let caps = p.capabilities;
        r.set_context("HandshakeResponse41 username");
        let username = share(payload, r.null_terminated()?);
        r.set_context("HandshakeResponse41 auth_response");
        let auth_response = if caps.contains(CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            r.lenenc_bytes()?
        } else if caps.contains(CapabilityFlags::SECURE_CONNECTION) {
            let n = r.u8()?;
            r.fixed(usize::from(n))?
        } else {
            r.null_terminated()?
        };
        let auth_response = share(payload, auth_response);

        // The optional trailing fields: each is present only if its flag is
        // set and the packet has not ended yet.
        r.set_context("HandshakeResponse41 database");
        let database = if caps.contains(CapabilityFlags::CONNECT_WITH_DB) && !r.is_empty() {
            Some(share(payload, r.null_terminated()?))
        } else {
            None
        };
        r.set_context("HandshakeResponse41 auth_plugin_name");
        let auth_plugin_name = if caps.contains(CapabilityFlags::PLUGIN_AUTH) && !r.is_empty() {
            Some(share(payload, r.null_terminated()?))
        } else {
            None
        };
        r.set_context("HandshakeResponse41 connect_attrs");
        let connect_attrs = if caps.contains(CapabilityFlags::CONNECT_ATTRS) && !r.is_empty() {
            Some(share(payload, r.lenenc_bytes()?))
        } else {
            None
        };
        r.set_context("HandshakeResponse41 zstd_compression_level");
        let zstd_compression_level =
            if caps.contains(CapabilityFlags::ZSTD_COMPRESSION) && !r.is_empty() {
                Some(r.u8()?)
            } else {
                None
            };
        r.finish()?;
        Ok(HandshakeResponse41 {
            capabilities: caps,
            max_packet_size: p.max_packet_size,
            character_set: p.character_set,
            filler: p.filler,
            username,
            auth_response,
            database,
            auth_plugin_name,
            connect_attrs,
            zstd_compression_level,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let caps = self.capabilities;
        out.reserve(
            64 + self.username.len()
                + self.auth_response.len()
                + self.database.as_ref().map_or(0, Bytes::len)
                + self.auth_plugin_name.as_ref().map_or(0, Bytes::len)
                + self.connect_attrs.as_ref().map_or(0, Bytes::len),
        );
        ClientPrefix::encode(
            out,
            caps,
            self.max_packet_size,
            self.character_set,
            &self.filler,
        );
        put_null_terminated(out, &self.username);
        if caps.contains(CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            put_lenenc_bytes(out, &self.auth_response);
        } else if caps.contains(CapabilityFlags::SECURE_CONNECTION) {
            // The 1-byte length form cannot carry more than 255 bytes.
            let data = self.auth_response.get(..255).unwrap_or(&self.auth_response);
            out.put_u8(data.len() as u8);
            out.put_slice(data);
        } else {
            put_null_terminated(out, &self.auth_response);
        }

        // Optional fields are positional: one that is absent but followed by
        // a present one is written empty so the later one stays readable.
        let db = caps
            .contains(CapabilityFlags::CONNECT_WITH_DB)
            .then_some(&self.database);
        let plugin = caps
            .contains(CapabilityFlags::PLUGIN_AUTH)
            .then_some(&self.auth_plugin_name);
        let attrs = caps
            .contains(CapabilityFlags::CONNECT_ATTRS)
            .then_some(&self.connect_attrs);
        let zstd = caps
            .contains(CapabilityFlags::ZSTD_COMPRESSION)
            .then_some(self.zstd_compression_level)
            .flatten();
        // Walk backwards: a flagged field is written if it is present or if
        // any later field is written.
        let zstd_written = zstd.is_some();
        let attrs_needed = match attrs {
            Some(a) => a.is_some() || zstd_written,
            None => false,
        };
        let after_plugin = attrs_needed || zstd_written;
        let plugin_needed = match plugin {
            Some(p) => p.is_some() || after_plugin,
            None => false,
        };
        let after_db = plugin_needed || after_plugin;
        let db_needed = match db {
            Some(d) => d.is_some() || after_db,
            None => false,
        };
        if let Some(db) = db.filter(|_| db_needed) {
            put_null_terminated(out, db.as_deref().unwrap_or_default());
        }
        if let Some(plugin) = plugin.filter(|_| plugin_needed) {
            put_null_terminated(out, plugin.as_deref().unwrap_or_default());
        }
        if let Some(attrs) = attrs.filter(|_| attrs_needed) {
            put_lenenc_bytes(out, attrs.as_deref().unwrap_or_default());
        }
        if let Some(level) = zstd {
            out.put_u8(level);
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// Removes `flags` from the capabilities of an encoded response (an
    /// `SSLRequest` too: they share the prefix), in place and leaving every
    /// other byte as it is; returns whether any of them was set. The
    /// extended (MariaDB) half lives in the filler only when `CLIENT_MYSQL`
    /// is cleared, which this never changes.
    pub fn remove_capabilities(payload: &mut [u8], flags: CapabilityFlags) -> bool {
        let mut changed = false;
        let mut clear = |field: Option<&mut [u8]>, mask: u32| {
            let field = field.and_then(|f| <&mut [u8; 4]>::try_from(f).ok())?;
            let value = u32::from_le_bytes(*field);
            changed |= value & mask != 0;
            *field = (value & !mask).to_le_bytes();
            Some(value)
        };
        let lower = clear(payload.get_mut(..4), flags.lower32());
        if lower.is_some_and(|lower| lower & CapabilityFlags::CLIENT_MYSQL.lower32() == 0) {
            clear(payload.get_mut(28..32), flags.upper32());
        }
        changed
    }

    /// Decoded connection attributes (`_client_name`, `program_name`, ...).
    pub fn connect_attrs(&self) -> Result<Vec<(Bytes, Bytes)>, DecodeError> {
        match &self.connect_attrs {
            Some(raw) => parse_connect_attrs(raw),
            None => Ok(Vec::new()),
        }
    }
}

/// Splits a raw connection-attribute block into key/value pairs (both
/// length-encoded strings on the wire), sharing `raw`'s buffer.
pub fn parse_connect_attrs(raw: &Bytes) -> Result<Vec<(Bytes, Bytes)>, DecodeError> {
    let mut r = Reader::with_context(raw, "connection attributes");
    let mut out = Vec::new();
    while !r.is_empty() {
        let k = r.lenenc_bytes()?;
        let v = r.lenenc_bytes()?;
        out.push((share(raw, k), share(raw, v)));
    }
    Ok(out)
}

/// `AuthSwitchRequest` (`0xFE`): the server asks the client to
/// authenticate with another plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    pub plugin_name: Bytes,
    /// Plugin-specific data, raw (for `mysql_native_password` the 20-byte
    /// scramble followed by a NUL).
    pub plugin_data: Bytes,
}

impl AuthSwitchRequest {
    /// The switch to `plugin_name` with `challenge` as a server sends it:
    /// servers end the challenge with a NUL (for `mysql_native_password`,
    /// the 20-byte scramble and a NUL), which clients expect.
    pub fn with_challenge(plugin_name: Bytes, challenge: &[u8]) -> Self {
        let mut plugin_data = BytesMut::with_capacity(challenge.len() + 1);
        plugin_data.put_slice(challenge);
        plugin_data.put_u8(0);
        AuthSwitchRequest {
            plugin_name,
            plugin_data: plugin_data.freeze(),
        }
    }

    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "AuthSwitchRequest");
        if r.u8()? != AUTH_SWITCH_HEADER {
            return Err(r.invalid());
        }
        r.set_context("AuthSwitchRequest plugin_name");
        let plugin_name = share(payload, r.null_terminated()?);
        let plugin_data = share(payload, r.rest());
        Ok(AuthSwitchRequest {
            plugin_name,
            plugin_data,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(2 + self.plugin_name.len() + self.plugin_data.len());
        out.put_u8(AUTH_SWITCH_HEADER);
        put_null_terminated(out, &self.plugin_name);
        out.put_slice(&self.plugin_data);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// The client's reply to an `AuthSwitchRequest` (or to `AuthMoreData`):
/// opaque plugin data filling the whole payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSwitchResponse {
    pub data: Bytes,
}

impl AuthSwitchResponse {
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        Ok(AuthSwitchResponse {
            data: payload.clone(),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.data);
    }

    pub fn to_bytes(&self) -> Bytes {
        self.data.clone()
    }
}

/// `AuthMoreData` (`0x01`): extra authentication data from the server
/// (e.g. `caching_sha2_password`'s fast-auth result or public key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthMoreData {
    pub data: Bytes,
}

impl AuthMoreData {
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "AuthMoreData");
        if r.u8()? != AUTH_MORE_DATA_HEADER {
            return Err(r.invalid());
        }
        Ok(AuthMoreData {
            data: share(payload, r.rest()),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(1 + self.data.len());
        out.put_u8(AUTH_MORE_DATA_HEADER);
        out.put_slice(&self.data);
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

    #[test]
    fn an_auth_switch_with_a_challenge_ends_it_with_a_nul() {
        let switch = AuthSwitchRequest::with_challenge(
            Bytes::from_static(b"mysql_native_password"),
            &[7; 20],
        );
        let mut expected = b"\xfemysql_native_password\0".to_vec();
        expected.extend_from_slice(&[7; 20]);
        expected.push(0);
        let bytes = switch.to_bytes();
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(AuthSwitchRequest::decode(&bytes).unwrap(), switch);
        assert_eq!(switch.plugin_data.len(), 21);
    }

    #[test]
    fn removing_capabilities_changes_only_their_bits() {
        let masked = CapabilityFlags::COMPRESS
            | CapabilityFlags::SSL
            | CapabilityFlags::MARIADB_CLIENT_PROGRESS;
        for client_mysql in [false, true] {
            let mut caps = CapabilityFlags::PROTOCOL_41
                | CapabilityFlags::SECURE_CONNECTION
                | CapabilityFlags::PLUGIN_AUTH
                | CapabilityFlags::COMPRESS
                | CapabilityFlags::MARIADB_CLIENT_PROGRESS
                | CapabilityFlags::MARIADB_CLIENT_STMT_BULK_OPERATIONS;
            if client_mysql {
                caps |= CapabilityFlags::CLIENT_MYSQL;
            }
            let response = HandshakeResponse41 {
                capabilities: caps,
                max_packet_size: 1 << 24,
                character_set: 45,
                filler: [0; 23],
                username: Bytes::from_static(b"app"),
                auth_response: Bytes::from_static(&[7; 20]),
                database: None,
                auth_plugin_name: Some(Bytes::from_static(b"mysql_native_password")),
                connect_attrs: None,
                zstd_compression_level: None,
            };
            let mut payload = response.to_bytes().to_vec();
            assert!(HandshakeResponse41::remove_capabilities(
                &mut payload,
                masked
            ));
            let decoded = HandshakeResponse41::decode(&Bytes::from(payload.clone())).unwrap();
            let mut expected = response.clone();
            expected.capabilities = caps.difference(masked);
            if client_mysql {
                // Without MariaDB's convention the extended half is not sent.
                expected.capabilities = CapabilityFlags(expected.capabilities.0 & 0xffff_ffff);
            }
            assert_eq!(decoded, expected);
            assert!(!HandshakeResponse41::remove_capabilities(
                &mut payload,
                masked
            ));
        }
    }

    #[test]
    fn removing_capabilities_from_a_short_packet_leaves_it_alone() {
        let mut payload = vec![0x20, 0];
        assert!(!HandshakeResponse41::remove_capabilities(
            &mut payload,
            CapabilityFlags::COMPRESS
        ));
        assert_eq!(payload, [0x20, 0]);
    }

    /// A greeting captured from MariaDB 10.11 (Debian 12 package).
    fn mariadb_greeting() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.19-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&[0x2a, 0, 0, 0]); // connection id 42
        p.extend_from_slice(b"Ab3$kL9!"); // scramble part 1
        p.push(0);
        p.extend_from_slice(&[0xfe, 0xff]); // caps low: no CLIENT_MYSQL
        p.push(45); // utf8mb4_general_ci
        p.extend_from_slice(&[0x02, 0x00]); // autocommit
        p.extend_from_slice(&[0xff, 0x81]); // caps high
        p.push(21);
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[0x1d, 0, 0, 0]); // extended caps
        p.extend_from_slice(b"pQ7&wE2#zX1^\0"); // part 2 + NUL
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn mariadb_greeting_round_trips() {
        let wire = Bytes::from(mariadb_greeting());
        let h = HandshakeV10::decode(&wire).unwrap();
        assert_eq!(&h.server_version[..], b"5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(h.connection_id, 42);
        assert_eq!(&h.auth_plugin_data[..], b"Ab3$kL9!pQ7&wE2#zX1^");
        assert_eq!(
            h.auth_plugin_name.as_deref(),
            Some(&b"mysql_native_password"[..])
        );
        assert!(h.is_mariadb());
        assert_eq!(h.server_version_number(), Some(101_119));
        let caps = h.capabilities;
        assert!(!caps.contains(CapabilityFlags::CLIENT_MYSQL));
        assert!(caps.contains(CapabilityFlags::SSL));
        assert!(caps.contains(CapabilityFlags::PLUGIN_AUTH));
        assert!(caps.contains(CapabilityFlags::MARIADB_CLIENT_PROGRESS));
        assert!(caps.contains(CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA));
        assert_eq!(&h.to_bytes()[..], &wire[..]);

        // What the engine does: hide some capabilities and re-encode.
        let mut h2 = h.clone();
        h2.capabilities.remove(
            CapabilityFlags::SSL
                | CapabilityFlags::COMPRESS
                | CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA
                | CapabilityFlags::MARIADB_CLIENT_PROGRESS,
        );
        let re = HandshakeV10::decode(&h2.to_bytes()).unwrap();
        assert_eq!(re, h2);
        assert!(!re.capabilities.contains(CapabilityFlags::SSL));
        assert!(!re
            .capabilities
            .contains(CapabilityFlags::MARIADB_CLIENT_PROGRESS));
        assert!(re
            .capabilities
            .contains(CapabilityFlags::MARIADB_CLIENT_STMT_BULK_OPERATIONS));
    }

    #[test]
    fn mysql8_greeting_and_constructor() {
        let caps = CapabilityFlags(0xdfff_ffff);
        let h = HandshakeV10::new(
            b"8.0.36",
            7,
            b"0123456789abcdefghij",
            caps,
            255,
            StatusFlags::AUTOCOMMIT,
            b"caching_sha2_password",
        );
        let wire = h.to_bytes();
        assert_eq!(
            wire.len(),
            1 + 7 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 13 + 22
        );
        let d = HandshakeV10::decode(&wire).unwrap();
        assert_eq!(d, h);
        assert_eq!(d.server_version_number(), Some(80_036));
        assert!(!d.is_mariadb());
    }

    #[test]
    fn greeting_rejects() {
        let good = mariadb_greeting();
        for cut in 0..good.len() - 1 {
            let b = Bytes::copy_from_slice(&good[..cut]);
            // Truncations either fail or (inside the plugin name) decode to
            // something that re-encodes to the same bytes.
            if let Ok(h) = HandshakeV10::decode(&b) {
                assert_eq!(h.to_bytes(), b);
            }
        }
        let mut bad = good.clone();
        bad[0] = 9;
        assert!(HandshakeV10::decode(&Bytes::from(bad)).is_err());
        let mut trailing = good;
        trailing.push(1);
        assert!(HandshakeV10::decode(&Bytes::from(trailing)).is_err());
    }

    #[test]
    fn version_numbers() {
        let mut h = HandshakeV10::new(
            b"",
            0,
            &[0; 20],
            CapabilityFlags::PROTOCOL_41,
            8,
            StatusFlags(0),
            b"",
        );
        for (v, n) in [
            (&b"5.7.44-log"[..], Some(50_744)),
            (b"10.6.12-MariaDB", Some(100_612)),
            (b"5.5.5-10.6.12-MariaDB-log", Some(100_612)),
            (b"5.5.5-custom", Some(50_505)),
            (b"8.0", None),
            (b"abc", None),
            (b"", None),
        ] {
            h.server_version = Bytes::from_static(v);
            assert_eq!(h.server_version_number(), n, "{v:?}");
        }
    }

    fn response_wire(caps: u32, ext: u32, tail: &[u8]) -> Bytes {
        let mut p = Vec::new();
        p.extend_from_slice(&caps.to_le_bytes());
        p.extend_from_slice(&(16u32 << 20).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&[0; 19]);
        p.extend_from_slice(&ext.to_le_bytes());
        p.extend_from_slice(tail);
        Bytes::from(p)
    }

    #[test]
    fn handshake_response_mariadb_client() {
        let caps = CapabilityFlags::PROTOCOL_41
            | CapabilityFlags::SECURE_CONNECTION
            | CapabilityFlags::PLUGIN_AUTH
            | CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CONNECT_WITH_DB
            | CapabilityFlags::CONNECT_ATTRS
            | CapabilityFlags::MULTI_RESULTS;
        let mut tail = b"app\0\x14".to_vec();
        tail.extend_from_slice(&[0xAA; 20]);
        tail.extend_from_slice(b"shop\0mysql_native_password\0");
        let attrs = b"\x0c_client_name\x0alibmariadb";
        tail.push(attrs.len() as u8);
        tail.extend_from_slice(attrs);
        let wire = response_wire(caps.lower32(), 0x1c, &tail);
        let r = HandshakeResponse41::decode(&wire).unwrap();
        assert_eq!(&r.username[..], b"app");
        assert_eq!(r.auth_response.len(), 20);
        assert_eq!(r.database.as_deref(), Some(&b"shop"[..]));
        assert_eq!(
            r.auth_plugin_name.as_deref(),
            Some(&b"mysql_native_password"[..])
        );
        assert!(r
            .capabilities
            .contains(CapabilityFlags::MARIADB_CLIENT_STMT_BULK_OPERATIONS));
        let attrs = r.connect_attrs().unwrap();
        assert_eq!(attrs.len(), 1);
        assert_eq!(&attrs[0].1[..], b"libmariadb");
        assert_eq!(r.to_bytes(), wire);
        assert!(!SslRequest::matches(&wire));
    }

    #[test]
    fn handshake_response_variants() {
        // Old-style: NUL-terminated auth response, nothing optional.
        let caps = CapabilityFlags::PROTOCOL_41 | CapabilityFlags::LONG_PASSWORD;
        let wire = response_wire(caps.lower32(), 0, b"root\0secret\0");
        let r = HandshakeResponse41::decode(&wire).unwrap();
        assert_eq!(&r.auth_response[..], b"secret");
        assert_eq!(r.to_bytes(), wire);

        // CONNECT_WITH_DB set but the packet ends after the auth response.
        let caps = caps | CapabilityFlags::CONNECT_WITH_DB | CapabilityFlags::SECURE_CONNECTION;
        let wire = response_wire(caps.lower32(), 0, b"root\0\x00");
        let r = HandshakeResponse41::decode(&wire).unwrap();
        assert_eq!(r.database, None);
        assert_eq!(r.to_bytes(), wire);

        // Plugin name present, database absent: encoding writes an empty
        // database so the plugin name stays in place.
        let caps2 = caps | CapabilityFlags::PLUGIN_AUTH;
        let mut r2 =
            HandshakeResponse41::decode(&response_wire(caps2.lower32(), 0, b"u\0\x00db\0plug\0"))
                .unwrap();
        r2.database = None;
        let re = HandshakeResponse41::decode(&r2.to_bytes()).unwrap();
        assert_eq!(re.database.as_deref(), Some(&b""[..]));
        assert_eq!(re.auth_plugin_name.as_deref(), Some(&b"plug"[..]));

        // Pre-4.1 layout is refused.
        let wire = response_wire(CapabilityFlags::LONG_PASSWORD.lower32(), 0, b"u\0\0");
        assert!(HandshakeResponse41::decode(&wire).is_err());
    }

    #[test]
    fn ssl_request() {
        let caps = CapabilityFlags::PROTOCOL_41
            | CapabilityFlags::SSL
            | CapabilityFlags::MARIADB_CLIENT_PROGRESS;
        let s = SslRequest::new(caps, 1 << 24, 45);
        let wire = s.to_bytes();
        assert_eq!(wire.len(), 32);
        assert!(SslRequest::matches(&wire));
        assert_eq!(SslRequest::decode(&wire).unwrap(), s);
        assert!(SslRequest::decode(&wire[..31]).is_err());
    }

    #[test]
    fn auth_exchange_packets() {
        let wire = Bytes::from_static(b"\xfemysql_native_password\0abcdefghij0123456789\0");
        let a = AuthSwitchRequest::decode(&wire).unwrap();
        assert_eq!(&a.plugin_name[..], b"mysql_native_password");
        assert_eq!(a.plugin_data.len(), 21);
        assert_eq!(a.to_bytes(), wire);
        assert!(AuthSwitchRequest::decode(&Bytes::from_static(b"\xfe")).is_err());

        let wire = Bytes::from_static(b"\x01\x03");
        let m = AuthMoreData::decode(&wire).unwrap();
        assert_eq!(&m.data[..], b"\x03");
        assert_eq!(m.to_bytes(), wire);

        let r = AuthSwitchResponse::decode(&Bytes::from_static(b"xyz")).unwrap();
        assert_eq!(&r.to_bytes()[..], b"xyz");
    }
}
