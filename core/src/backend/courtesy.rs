//! The proxy's own short exchanges with servers, outside any client's
//! command: logins (health checks, and the refused login that ends a
//! connection no client logged in on), the empty auth answer that ends an
//! abandoned login, commands such as COM_RESET_CONNECTION, and the COM_QUIT
//! that says goodbye. Each ends the exchange the way the server expects, so
//! that it counts neither an aborted client nor a connection error against
//! the proxy's host (which, with name resolution on, blocks the host after
//! `max_connect_errors`).

use std::time::Duration;

use bytes::Bytes;
use mysql_proxy_protocol::auth::native_password_scramble;
use mysql_proxy_protocol::codec;
use mysql_proxy_protocol::constants::{
    CapabilityFlags, AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER, CHARSET_UTF8MB4_GENERAL_CI,
    EOF_HEADER, ERR_HEADER, NULL_VALUE, OK_HEADER,
};
use mysql_proxy_protocol::lenenc::Reader;
use mysql_proxy_protocol::packets::{
    AuthSwitchRequest, ComQuery, ComQuit, ErrPacket, HandshakeResponse41, HandshakeV10,
};

use crate::net::{Conn, ConnError, Limits, RawPacket, Stream};

/// The auth plugin the proxy's own logins use.
const NATIVE_PASSWORD: &[u8] = b"mysql_native_password";

/// The account a check without credentials logs in as, with no password:
/// one no server has, so the login ends in "access denied" (which blocks
/// neither the host nor an account) and the server's log names the proxy.
/// Sixteen characters, the longest user name older MySQL servers accept.
pub const CHECK_USER_WITHOUT_CREDENTIALS: &str = "mysql-proxy-ping";

/// COM_QUIT to a logged-in server, which closes the connection after it:
/// nothing to wait for.
pub async fn quit(conn: &mut Conn) -> Result<(), ConnError> {
    conn.write_all(&ComQuit::FRAME).await
}

/// Sends the proxy's own command to a server at rest and reads the first
/// packet of its answer (all there is for the commands used here: OK, EOF or
/// ERR).
pub async fn command(conn: &mut Conn, payload: &[u8]) -> Result<RawPacket, ConnError> {
    conn.write_all(&codec::frame(0, payload)).await?;
    conn.read_packet().await
}

/// Runs a query that answers one row of one column (text protocol) and
/// returns that value, empty for NULL. `deprecate_eof`: the connection's
/// results end with an OK instead of EOF packets.
pub async fn query_value(conn: &mut Conn, sql: &str, deprecate_eof: bool) -> Result<Bytes, String> {
    let query = ComQuery::new(sql.as_bytes().to_vec()).to_bytes();
    let broken = |what: &str| format!("unexpected {what} in the answer to {sql}");
    let first = command(conn, &query).await.map_err(|e| e.to_string())?;
    match first.first_byte() {
        Some(ERR_HEADER) => return Err(error_text(&first.payload)),
        Some(1) => {}
        _ => return Err(broken("column count")),
    }
    // The column definition, and its EOF before the rows.
    let skip = if deprecate_eof { 1 } else { 2 };
    for _ in 0..skip {
        conn.read_packet().await.map_err(|e| e.to_string())?;
    }
    let row = conn.read_packet().await.map_err(|e| e.to_string())?;
    let mut reader = Reader::new(&row.payload);
    let value = match row.first_byte() {
        Some(NULL_VALUE) => Bytes::new(),
        _ => Bytes::copy_from_slice(reader.lenenc_bytes().map_err(|_| broken("row"))?),
    };
    // The result's terminator (EOF, or OK with DEPRECATE_EOF).
    let end = conn.read_packet().await.map_err(|e| e.to_string())?;
    if end.first_byte() != Some(EOF_HEADER) {
        return Err(broken("end of the result"));
    }
    Ok(value)
}

/// Ends a connection whose server waits for a login that will not come
/// (its client left, or was refused, before logging in) with a login as
/// [`CHECK_USER_WITHOUT_CREDENTIALS`], refused, rather than a close the
/// server would count as a connection error of the proxy's host (see the
/// module's note); waits at most `within` for the refusal.
pub async fn decline_login(conn: &mut Conn, within: Duration) {
    let login = login(conn, &[], CHECK_USER_WITHOUT_CREDENTIALS, "", 0);
    let _ = tokio::time::timeout(within, login).await;
}

/// Ends a login whose client left while the server waited for its next
/// auth packet (sequence id `seq`): an empty one, an empty password to
/// every auth plugin, so that the server ends the exchange itself (in
/// "access denied", or OK for an account without a password) rather than
/// count a broken handshake against the proxy's host. Waits at most
/// `within`.
pub async fn decline_auth_round(conn: &mut Conn, seq: u8, within: Duration) {
    let exchange = async {
        conn.write_all(&codec::frame(seq, &[])).await?;
        let reply = conn.read_packet().await?;
        auth_rounds(conn, "", reply).await?;
        // An account without a password let it in.
        quit(conn).await?;
        Ok::<_, LoginError>(())
    };
    let _ = tokio::time::timeout(within, exchange).await;
}

/// On a new connection to a server: reads its greeting and logs in with
/// it (see [`login`]), each wait bounded by `timeout`. A greeting that is
/// an ERR (e.g. 1040 "Too many connections") or malformed breaks the
/// exchange.
pub async fn greeted_login(
    stream: Stream,
    timeout: Duration,
    user: &str,
    password: &str,
) -> Result<Conn, LoginError> {
    let limits = Limits {
        read_timeout: timeout,
        write_timeout: timeout,
        max_packet_size: 1 << 24,
    };
    let mut conn = Conn::new(stream, limits);
    let packet = conn.read_packet().await?;
    if packet.first_byte() == Some(ERR_HEADER) {
        return Err(LoginError::Broken(error_text(&packet.payload)));
    }
    let greeting = HandshakeV10::decode(&packet.payload)
        .map_err(|e| LoginError::Broken(format!("bad handshake: {e}")))?;
    let challenge = &greeting.auth_plugin_data;
    login(&mut conn, challenge, user, password, packet.last_seq).await?;
    Ok(conn)
}

/// Logs in with mysql_native_password (see [`auth_rounds`] for what
/// follows); `challenge` is the greeting's auth data.
pub async fn login(
    conn: &mut Conn,
    challenge: &[u8],
    user: &str,
    password: &str,
    greeting_seq: u8,
) -> Result<(), LoginError> {
    let capabilities = CapabilityFlags::PROTOCOL_41
        | CapabilityFlags::SECURE_CONNECTION
        | CapabilityFlags::LONG_PASSWORD
        | CapabilityFlags::PLUGIN_AUTH;
    let response = HandshakeResponse41 {
        capabilities,
        max_packet_size: 1 << 24,
        character_set: CHARSET_UTF8MB4_GENERAL_CI,
        filler: [0; 23],
        username: Bytes::copy_from_slice(user.as_bytes()),
        auth_response: scramble(password, challenge),
        database: None,
        auth_plugin_name: Some(Bytes::from_static(NATIVE_PASSWORD)),
        connect_attrs: None,
        zstd_compression_level: None,
    };
    let frame = codec::frame(greeting_seq.wrapping_add(1), &response.to_bytes());
    conn.write_all(&frame).await?;
    let reply = conn.read_packet().await?;
    auth_rounds(conn, password, reply).await
}

/// Follows the server's answers to a login until it says OK or ERR: an auth
/// switch to mysql_native_password gets the password's scramble; a switch
/// to another plugin, or a request for more auth data, gets an empty
/// answer (an empty password to any plugin), so that the server ends the
/// login itself instead of the proxy breaking it off. At most a few rounds.
async fn auth_rounds(
    conn: &mut Conn,
    password: &str,
    mut reply: RawPacket,
) -> Result<(), LoginError> {
    let mut foreign_plugin = None;
    for _ in 0..3 {
        let answer = match reply.first_byte() {
            Some(OK_HEADER) => return Ok(()),
            Some(ERR_HEADER) => {
                let error = error_text(&reply.payload);
                return Err(LoginError::Refused(match foreign_plugin {
                    Some(plugin) => format!("the server wants auth plugin {plugin} ({error})"),
                    None => error,
                }));
            }
            Some(AUTH_SWITCH_HEADER) => {
                let switch = AuthSwitchRequest::decode(&reply.payload).map_err(|error| {
                    LoginError::Broken(format!("bad auth switch request: {error}"))
                })?;
                if switch.plugin_name == NATIVE_PASSWORD {
                    scramble(password, &switch.plugin_data)
                } else {
                    foreign_plugin =
                        Some(String::from_utf8_lossy(&switch.plugin_name).into_owned());
                    Bytes::new()
                }
            }
            // More auth data for the plugin in use.
            Some(AUTH_MORE_DATA_HEADER) => Bytes::new(),
            _ => {
                return Err(LoginError::Broken(
                    "unexpected reply to the login".to_string(),
                ))
            }
        };
        let frame = codec::frame(reply.last_seq.wrapping_add(1), &answer);
        conn.write_all(&frame).await?;
        reply = conn.read_packet().await?;
    }
    Err(LoginError::Refused(
        "the server keeps asking for more auth data".to_string(),
    ))
}

/// The mysql_native_password response (empty for an empty password).
fn scramble(password: &str, challenge: &[u8]) -> Bytes {
    if password.is_empty() {
        return Bytes::new();
    }
    let challenge = challenge.get(..20).unwrap_or(challenge);
    Bytes::copy_from_slice(&native_password_scramble(password.as_bytes(), challenge))
}

/// An ERR packet's code and message, for logs and state reasons.
pub fn error_text(payload: &Bytes) -> String {
    match ErrPacket::decode(payload) {
        Ok(error) => format!("error {}: {}", error.code, error.message_lossy()),
        Err(_) => "malformed error packet".to_string(),
    }
}

/// Why one of the proxy's own logins did not get in.
#[derive(Debug)]
pub enum LoginError {
    /// The server answered and refused the login (its error, or the auth
    /// plugin it wanted).
    Refused(String),
    /// The exchange broke: the connection failed or the server's answer
    /// made no sense.
    Broken(String),
}

impl From<ConnError> for LoginError {
    fn from(error: ConnError) -> Self {
        LoginError::Broken(error.to_string())
    }
}
