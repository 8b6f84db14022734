//! Command-phase packets the proxy sends to servers on its own (health
//! checks, the pool's resets and re-logins, goodbyes, KILL QUERY): typed, so
//! that no caller lays out a command payload by hand.
//!
//! Each payload starts with its [`Command`] byte; framing is the codec's
//! business ([`crate::codec::frame`]), except for [`ComQuit::FRAME`], built
//! at compile time for a socket written outside any connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::{share, HandshakeResponse41};
use crate::codec::{header, HEADER_LEN};
use crate::constants::{
    CapabilityFlags, Command, MYSQL_OPTION_MULTI_STATEMENTS_OFF, MYSQL_OPTION_MULTI_STATEMENTS_ON,
};
use crate::lenenc::{put_lenenc_bytes, put_null_terminated, DecodeError, Reader};

/// Reads a payload's command byte, which must be `command`.
fn expect_command(r: &mut Reader<'_>, command: Command) -> Result<(), DecodeError> {
    if r.u8()? != command.as_u8() {
        return Err(r.invalid());
    }
    Ok(())
}

/// A command without arguments: its command byte is the whole payload.
macro_rules! bare_command {
    ($(#[$doc:meta])* $name:ident, $command:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl $name {
            /// The whole payload.
            pub const PAYLOAD: [u8; 1] = [Command::$command as u8];

            pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
                let mut r = Reader::with_context(payload, $what);
                expect_command(&mut r, Command::$command)?;
                r.finish()?;
                Ok($name)
            }

            pub fn encode(&self, out: &mut BytesMut) {
                out.put_slice(&Self::PAYLOAD);
            }

            pub fn to_bytes(&self) -> Bytes {
                Bytes::from_static(&Self::PAYLOAD)
            }
        }
    };
}

bare_command!(
    /// `COM_QUIT`: the client's goodbye; the server closes the connection
    /// without answering.
    ComQuit,
    Quit,
    "COM_QUIT"
);

bare_command!(
    /// `COM_PING`: answered with OK.
    ComPing,
    Ping,
    "COM_PING"
);

bare_command!(
    /// `COM_RESET_CONNECTION`: resets the session (variables, temporary
    /// tables, locks, prepared statements) but keeps the login and the
    /// default database; answered with OK.
    ComResetConnection,
    ResetConnection,
    "COM_RESET_CONNECTION"
);

impl ComQuit {
    /// COM_QUIT framed whole as the first packet of an exchange (sequence
    /// id 0): a goodbye written without framing anything at run time, even
    /// to a bare socket (a pooled connection's, parked).
    pub const FRAME: [u8; HEADER_LEN + 1] = {
        let [a, b, c, seq] = header(Self::PAYLOAD.len(), 0);
        let [quit] = Self::PAYLOAD;
        [a, b, c, seq, quit]
    };
}

/// `COM_INIT_DB`: makes `database` the default database; answered with OK
/// or ERR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComInitDb {
    /// The name as sent: the rest of the payload, not NUL-terminated.
    pub database: Bytes,
}

impl ComInitDb {
    pub fn new(database: impl Into<Bytes>) -> Self {
        ComInitDb {
            database: database.into(),
        }
    }

    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "COM_INIT_DB");
        expect_command(&mut r, Command::InitDb)?;
        Ok(ComInitDb {
            database: share(payload, r.rest()),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(1 + self.database.len());
        out.put_u8(Command::InitDb.as_u8());
        out.put_slice(&self.database);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// `COM_QUERY` in its plain form: the statement text after the command
/// byte. With `CLIENT_QUERY_ATTRIBUTES` negotiated the payload carries a
/// parameter block first, which this type does not lay out: it is for
/// connections without it (the proxy's own logins ask for none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComQuery {
    pub query: Bytes,
}

impl ComQuery {
    pub fn new(query: impl Into<Bytes>) -> Self {
        ComQuery {
            query: query.into(),
        }
    }

    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "COM_QUERY");
        expect_command(&mut r, Command::Query)?;
        Ok(ComQuery {
            query: share(payload, r.rest()),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(1 + self.query.len());
        out.put_u8(Command::Query.as_u8());
        out.put_slice(&self.query);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// `COM_SET_OPTION`: sets a connection option; the only one defined is
/// multi-statements ([`MYSQL_OPTION_MULTI_STATEMENTS_ON`] /
/// [`MYSQL_OPTION_MULTI_STATEMENTS_OFF`]). Answered with EOF (an OK under
/// DEPRECATE_EOF) or ERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComSetOption {
    pub option: u16,
}

impl ComSetOption {
    /// Turns multi-statements on or off.
    pub fn multi_statements(on: bool) -> Self {
        let option = if on {
            MYSQL_OPTION_MULTI_STATEMENTS_ON
        } else {
            MYSQL_OPTION_MULTI_STATEMENTS_OFF
        };
        ComSetOption { option }
    }

    /// Whether it turns multi-statements on (`Some(true)`) or off; `None`
    /// for an option value no server defines.
    pub fn multi_statements_on(&self) -> Option<bool> {
        match self.option {
            MYSQL_OPTION_MULTI_STATEMENTS_ON => Some(true),
            MYSQL_OPTION_MULTI_STATEMENTS_OFF => Some(false),
            _ => None,
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "COM_SET_OPTION");
        expect_command(&mut r, Command::SetOption)?;
        let option = r.u16_le()?;
        r.finish()?;
        Ok(ComSetOption { option })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(3);
        out.put_u8(Command::SetOption.as_u8());
        out.put_u16_le(self.option);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// `COM_CHANGE_USER`: logs the connection in anew (the session is reset
/// as by COM_RESET_CONNECTION, and the default database is the one given).
///
/// The layout depends on the capabilities the connection was opened with,
/// by which the server parses it, so `decode` and `encode` take them (as
/// [`super::OkPacket`]'s do). Every field the capabilities call for is
/// written, empty if need be; `decode` accordingly wants all of them, and
/// refuses the shorter forms old clients may send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComChangeUser {
    pub username: Bytes,
    /// With `SECURE_CONNECTION` a 1-byte length precedes it (so at most
    /// 255 bytes are sent), else it is NUL-terminated.
    pub auth_response: Bytes,
    /// Empty for none.
    pub database: Bytes,
    /// Two bytes here (the handshake response has one).
    pub character_set: u16,
    /// With `PLUGIN_AUTH`.
    pub auth_plugin_name: Bytes,
    /// With `CONNECT_ATTRS`: the content of the length-encoded attribute
    /// block, kept raw (see [`super::parse_connect_attrs`]); empty for none.
    pub connect_attrs: Bytes,
}

impl ComChangeUser {
    /// The COM_CHANGE_USER that logs in with the credentials of a client's
    /// handshake response: its user, auth response (an answer to the
    /// challenge of the connection's greeting), database, character set,
    /// auth plugin and connection attributes (MariaDB records them anew for
    /// the session).
    pub fn from_handshake_response(auth: &HandshakeResponse41) -> Self {
        ComChangeUser {
            username: auth.username.clone(),
            auth_response: auth.auth_response.clone(),
            database: auth.database.clone().unwrap_or_default(),
            character_set: u16::from(auth.character_set),
            auth_plugin_name: auth.auth_plugin_name.clone().unwrap_or_default(),
            connect_attrs: auth.connect_attrs.clone().unwrap_or_default(),
        }
    }

    pub fn decode(payload: &Bytes, capabilities: CapabilityFlags) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "COM_CHANGE_USER");
        expect_command(&mut r, Command::ChangeUser)?;
        r.set_context("COM_CHANGE_USER username");
        let username = share(payload, r.null_terminated()?);
        r.set_context("COM_CHANGE_USER auth_response");
        let auth_response = if capabilities.contains(CapabilityFlags::SECURE_CONNECTION) {
            let n = r.u8()?;
            r.fixed(usize::from(n))?
        } else {
            r.null_terminated()?
        };
        let auth_response = share(payload, auth_response);
        r.set_context("COM_CHANGE_USER database");
        let database = share(payload, r.null_terminated()?);
        r.set_context("COM_CHANGE_USER character_set");
        let character_set = r.u16_le()?;
        r.set_context("COM_CHANGE_USER auth_plugin_name");
        let auth_plugin_name = if capabilities.contains(CapabilityFlags::PLUGIN_AUTH) {
            share(payload, r.null_terminated()?)
        } else {
            Bytes::new()
        };
        r.set_context("COM_CHANGE_USER connect_attrs");
        let connect_attrs = if capabilities.contains(CapabilityFlags::CONNECT_ATTRS) {
            share(payload, r.lenenc_bytes()?)
        } else {
            Bytes::new()
        };
        r.finish()?;
        Ok(ComChangeUser {
            username,
            auth_response,
            database,
            character_set,
            auth_plugin_name,
            connect_attrs,
        })
    }

    pub fn encode(&self, capabilities: CapabilityFlags, out: &mut BytesMut) {
        out.reserve(
            16 + self.username.len()
                + self.auth_response.len()
                + self.database.len()
                + self.auth_plugin_name.len()
                + self.connect_attrs.len(),
        );
        out.put_u8(Command::ChangeUser.as_u8());
        put_null_terminated(out, &self.username);
        if capabilities.contains(CapabilityFlags::SECURE_CONNECTION) {
            // The 1-byte length form cannot carry more than 255 bytes.
            let data = self.auth_response.get(..255).unwrap_or(&self.auth_response);
            out.put_u8(u8::try_from(data.len()).unwrap_or(u8::MAX));
            out.put_slice(data);
        } else {
            put_null_terminated(out, &self.auth_response);
        }
        put_null_terminated(out, &self.database);
        out.put_u16_le(self.character_set);
        if capabilities.contains(CapabilityFlags::PLUGIN_AUTH) {
            put_null_terminated(out, &self.auth_plugin_name);
        }
        if capabilities.contains(CapabilityFlags::CONNECT_ATTRS) {
            put_lenenc_bytes(out, &self.connect_attrs);
        }
    }

    pub fn to_bytes(&self, capabilities: CapabilityFlags) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(capabilities, &mut out);
        out.freeze()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bare_commands_are_their_command_byte() {
        assert_eq!(ComQuit.to_bytes(), &[Command::Quit as u8][..]);
        assert_eq!(ComPing.to_bytes(), &[Command::Ping as u8][..]);
        assert_eq!(
            ComResetConnection.to_bytes(),
            &[Command::ResetConnection as u8][..]
        );
        let mut out = BytesMut::new();
        ComResetConnection.encode(&mut out);
        assert_eq!(&out[..], &[31]);
        assert_eq!(ComQuit::decode(&[1]), Ok(ComQuit));
        assert!(ComQuit::decode(&[1, 0]).is_err());
        assert!(ComQuit::decode(&[14]).is_err());
        assert!(ComPing::decode(&[]).is_err());
        assert_eq!(ComResetConnection::decode(&[31]), Ok(ComResetConnection));
    }

    #[test]
    fn com_quit_frame_is_the_framed_payload() {
        assert_eq!(ComQuit::FRAME, [1, 0, 0, 0, 1]);
        assert_eq!(
            &ComQuit::FRAME[..],
            &crate::codec::frame(0, &ComQuit.to_bytes())[..]
        );
    }

    #[test]
    fn com_init_db_and_com_query_carry_their_text() {
        let init = ComInitDb::new(&b"shop"[..]).to_bytes();
        assert_eq!(&init[..], b"\x02shop");
        assert_eq!(ComInitDb::decode(&init).unwrap().database, &b"shop"[..]);
        assert!(ComInitDb::decode(&Bytes::from_static(b"\x03shop")).is_err());
        let query = ComQuery::new(&b"SELECT 1"[..]).to_bytes();
        assert_eq!(&query[..], b"\x03SELECT 1");
        assert_eq!(ComQuery::decode(&query).unwrap().query, &b"SELECT 1"[..]);
        assert!(ComQuery::decode(&Bytes::new()).is_err());
    }

    #[test]
    fn com_set_option_multi_statements() {
        let on = ComSetOption::multi_statements(true);
        let off = ComSetOption::multi_statements(false);
        assert_eq!(&on.to_bytes()[..], &[27, 0, 0]);
        assert_eq!(&off.to_bytes()[..], &[27, 1, 0]);
        assert_eq!(on.multi_statements_on(), Some(true));
        assert_eq!(off.multi_statements_on(), Some(false));
        assert_eq!(ComSetOption { option: 7 }.multi_statements_on(), None);
        assert_eq!(ComSetOption::decode(&[27, 1, 0]), Ok(off));
        assert!(ComSetOption::decode(&[27, 1]).is_err());
        assert!(ComSetOption::decode(&[27, 1, 0, 0]).is_err());
    }

    fn client_response() -> HandshakeResponse41 {
        HandshakeResponse41 {
            capabilities: CapabilityFlags::PROTOCOL_41,
            max_packet_size: 1 << 24,
            character_set: 45,
            filler: [0; 23],
            username: Bytes::from_static(b"app"),
            auth_response: Bytes::from_static(&[9; 20]),
            database: Some(Bytes::from_static(b"shop")),
            auth_plugin_name: Some(Bytes::from_static(b"mysql_native_password")),
            connect_attrs: Some(Bytes::from_static(b"\x01k\x01v")),
            zstd_compression_level: None,
        }
    }

    #[test]
    fn com_change_user_layout_follows_the_capabilities() {
        let change = ComChangeUser::from_handshake_response(&client_response());
        let full = CapabilityFlags::SECURE_CONNECTION
            | CapabilityFlags::PLUGIN_AUTH
            | CapabilityFlags::CONNECT_ATTRS;
        let mut expected = b"\x11app\0\x14".to_vec();
        expected.extend_from_slice(&[9; 20]);
        expected.extend_from_slice(b"shop\0\x2d\0mysql_native_password\0\x04\x01k\x01v");
        let bytes = change.to_bytes(full);
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(ComChangeUser::decode(&bytes, full).unwrap(), change);

        // Old layout: NUL-terminated auth response, nothing after the
        // character set.
        let old = CapabilityFlags::PROTOCOL_41;
        let mut expected = b"\x11app\0".to_vec();
        expected.extend_from_slice(&[9; 20]);
        expected.extend_from_slice(b"\0shop\0\x2d\0");
        let bytes = change.to_bytes(old);
        assert_eq!(&bytes[..], &expected[..]);
        let decoded = ComChangeUser::decode(&bytes, old).unwrap();
        assert_eq!(decoded.auth_plugin_name, Bytes::new());
        assert_eq!(decoded.connect_attrs, Bytes::new());
        assert_eq!(decoded.to_bytes(old), bytes);
    }

    #[test]
    fn com_change_user_without_database_plugin_or_attributes() {
        let mut auth = client_response();
        auth.database = None;
        auth.auth_plugin_name = None;
        auth.connect_attrs = None;
        auth.auth_response = Bytes::from(vec![7u8; 300]);
        let change = ComChangeUser::from_handshake_response(&auth);
        let caps = CapabilityFlags::SECURE_CONNECTION
            | CapabilityFlags::PLUGIN_AUTH
            | CapabilityFlags::CONNECT_ATTRS;
        let bytes = change.to_bytes(caps);
        // At most 255 bytes of auth response; empty fields still written.
        let mut expected = b"\x11app\0\xff".to_vec();
        expected.extend_from_slice(&[7; 255]);
        expected.extend_from_slice(b"\0\x2d\0\0\0");
        assert_eq!(&bytes[..], &expected[..]);
        assert!(ComChangeUser::decode(&bytes, caps).is_ok());
        // Cut before the character set, or with trailing bytes: refused.
        assert!(ComChangeUser::decode(&bytes.slice(..bytes.len() - 4), caps).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(ComChangeUser::decode(&Bytes::from(longer), caps).is_err());
    }
}
