//! Active health checks: an actor that connects to every backend on an
//! interval and marks it up or down, so a dead backend is routed around and a
//! recovered one comes back by itself.
//!
//! With credentials (`--health-check-user`/`--health-check-password`) a
//! check logs in with mysql_native_password and pings; without them, a
//! well-formed server handshake counts as alive, and the check still logs in
//! (as [`CHECK_USER_WITHOUT_CREDENTIALS`], which is refused): a connection
//! closed right after the handshake counts as a connection error against
//! the proxy's host, and a server with name resolution on (MariaDB's and
//! MySQL's default) blocks the host after `max_connect_errors` of them, all
//! clients of the proxy with it. Sessions whose client leaves before logging
//! in end their server connection the same way ([`decline_login`]).
//!
//! A server that answers but refuses the health-check login is alive (with
//! credentials, its error is logged): a typo in the credentials must not
//! take every backend down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use mysql_proxy_plugin_abi::BackendState;
use mysql_proxy_protocol::auth::native_password_scramble;
use mysql_proxy_protocol::codec;
use mysql_proxy_protocol::constants::{CapabilityFlags, Command, CHARSET_UTF8MB4_GENERAL_CI};
use mysql_proxy_protocol::packets::{ErrPacket, HandshakeResponse41, HandshakeV10};

use crate::backends::{Backend, BackendCounters, BackendRegistry};
use crate::session::{Conn, ConnError, RawPacket, Stream};

/// The auth plugin a health check can log in with.
const NATIVE_PASSWORD: &[u8] = b"mysql_native_password";

/// The account a check without credentials logs in as, with no password:
/// one no server has, so the login ends in "access denied" (which blocks
/// neither the host nor an account) and the server's log names the proxy.
/// Sixteen characters, the longest user name older MySQL servers accept.
const CHECK_USER_WITHOUT_CREDENTIALS: &str = "mysql-proxy-ping";

/// How backends are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Time between checks of a backend; zero turns checks off.
    pub interval: Duration,
    /// How long one check may take before the backend counts as down.
    pub timeout: Duration,
    /// Login for the check; `None` checks the handshake only.
    pub user: Option<String>,
    pub password: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            user: None,
            password: String::new(),
        }
    }
}

/// The actor running the checks.
pub struct HealthChecker {
    registry: Arc<BackendRegistry>,
    config: Arc<HealthConfig>,
    /// Backends with a check in flight (a slow check is not doubled up).
    busy: HashMap<u32, Arc<AtomicBool>>,
    logger: slog::Logger,
}

impl HealthChecker {
    pub fn new(registry: Arc<BackendRegistry>, config: HealthConfig, logger: slog::Logger) -> Self {
        Self {
            registry,
            config: Arc::new(config),
            busy: HashMap::new(),
            logger,
        }
    }

    /// Starts a check of every backend that is not offline and not already
    /// being checked.
    fn check_all(&mut self) {
        for backend in self.registry.all() {
            if backend.state() == BackendState::Offline {
                continue;
            }
            let busy = Arc::clone(self.busy.entry(backend.ndx).or_default());
            if busy.swap(true, Ordering::AcqRel) {
                continue;
            }
            let config = Arc::clone(&self.config);
            let logger = self.logger.clone();
            actix_rt::spawn(async move {
                let outcome = tokio::time::timeout(config.timeout, check(&backend, &config)).await;
                match outcome {
                    Ok(Ok(())) => backend.mark_up("health check passed"),
                    Ok(Err(Failure::Down(reason))) => {
                        backend.mark_down(&format!("health check failed: {reason}"))
                    }
                    Ok(Err(Failure::Refused(message))) => {
                        slog::warn!(
                            logger,
                            "backend {}: health-check login refused ({}); counting it as up",
                            backend.name,
                            message
                        );
                        backend.mark_up("health check: server answers");
                    }
                    Err(_) => backend.mark_down(&format!(
                        "health check failed: no answer within {} ms",
                        config.timeout.as_millis()
                    )),
                }
                busy.store(false, Ordering::Release);
            });
        }
    }
}

/// Stop checking (at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopChecking;

impl Handler<StopChecking> for HealthChecker {
    type Result = ();

    fn handle(&mut self, _: StopChecking, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Actor for HealthChecker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.registry.set_health_checked(true);
        self.check_all();
        ctx.run_interval(self.config.interval, |checker, _| checker.check_all());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.registry.set_health_checked(false);
    }
}

/// Why a check failed.
enum Failure {
    /// The backend cannot serve clients.
    Down(String),
    /// The backend answered but refused the health-check login.
    Refused(String),
}

impl From<ConnError> for Failure {
    fn from(error: ConnError) -> Self {
        Failure::Down(error.to_string())
    }
}

/// One check of one backend.
async fn check(backend: &Backend, config: &HealthConfig) -> Result<(), Failure> {
    let stream = match Stream::connect(&backend.addr).await {
        Ok(stream) => stream,
        Err(error) => {
            BackendCounters::add(&backend.counters.connect_failures, 1);
            return Err(Failure::Down(error.to_string()));
        }
    };
    BackendCounters::add(&backend.counters.connects, 1);
    let mut conn = Conn::new(stream, config.timeout, config.timeout, 1 << 24);
    let packet = conn.read_packet().await?;
    if packet.first_byte() == Some(0xff) {
        return Err(Failure::Down(error_text(&packet.payload)));
    }
    let greeting = HandshakeV10::decode(&packet.payload)
        .map_err(|e| Failure::Down(format!("bad handshake: {e}")))?;
    let (user, password) = match &config.user {
        Some(user) => (user.as_str(), config.password.as_str()),
        None => (CHECK_USER_WITHOUT_CREDENTIALS, ""),
    };
    let challenge = &greeting.auth_plugin_data;
    match login(&mut conn, challenge, user, password, packet.last_seq).await {
        Ok(()) => {}
        // The refusal it was logging in for.
        Err(Failure::Refused(_)) if config.user.is_none() => return Ok(()),
        Err(failure) => return Err(failure),
    }
    let mut ping = BytesMut::new();
    codec::encode_packet(0, &[Command::Ping as u8], &mut ping);
    conn.write_all(&ping).await?;
    let reply = conn.read_packet().await?;
    if reply.first_byte() != Some(0x00) {
        return Err(Failure::Down(format!(
            "ping answered: {}",
            error_text(&reply.payload)
        )));
    }
    let _ = quit(&mut conn).await;
    Ok(())
}

/// COM_QUIT to a logged-in server, which closes the connection after it:
/// nothing to wait for.
pub(crate) async fn quit(conn: &mut Conn) -> Result<(), ConnError> {
    let mut frame = BytesMut::new();
    codec::encode_packet(0, &[Command::Quit as u8], &mut frame);
    conn.write_all(&frame).await
}

/// Ends a connection whose server waits for a login that will not come
/// (its client left, or was refused, before logging in) with a login as
/// [`CHECK_USER_WITHOUT_CREDENTIALS`], refused, rather than a close the
/// server would count as a connection error of the proxy's host (see the
/// module's note); waits at most `within` for the refusal.
pub(crate) async fn decline_login(conn: &mut Conn, within: Duration) {
    let login = login(conn, &[], CHECK_USER_WITHOUT_CREDENTIALS, "", 0);
    let _ = tokio::time::timeout(within, login).await;
}

/// Ends a login whose client left while the server waited for its next
/// auth packet (sequence id `seq`): an empty one, an empty password to
/// every auth plugin, so that the server ends the exchange itself (in
/// "access denied", or OK for an account without a password) rather than
/// count a broken handshake against the proxy's host. Waits at most
/// `within`.
pub(crate) async fn decline_auth_round(conn: &mut Conn, seq: u8, within: Duration) {
    let exchange = async {
        let mut out = BytesMut::new();
        codec::encode_packet(seq, &[], &mut out);
        conn.write_all(&out).await?;
        let reply = conn.read_packet().await?;
        auth_rounds(conn, "", reply).await?;
        // An account without a password let it in.
        quit(conn).await?;
        Ok::<_, Failure>(())
    };
    let _ = tokio::time::timeout(within, exchange).await;
}

/// Logs in with mysql_native_password (see [`auth_rounds`] for what
/// follows); `challenge` is the greeting's auth data.
async fn login(
    conn: &mut Conn,
    challenge: &[u8],
    user: &str,
    password: &str,
    greeting_seq: u8,
) -> Result<(), Failure> {
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
    let mut out = BytesMut::new();
    let mut payload = BytesMut::new();
    response.encode(&mut payload);
    codec::encode_packet(greeting_seq.wrapping_add(1), &payload, &mut out);
    conn.write_all(&out).await?;
    let reply = conn.read_packet().await?;
    auth_rounds(conn, password, reply).await
}

/// Follows the server's answers to a login until it says OK or ERR: an auth
/// switch to mysql_native_password gets the password's scramble; a switch
/// to another plugin, or a request for more auth data, gets an empty
/// answer (an empty password to any plugin), so that the server ends the
/// login itself instead of the proxy breaking it off. At most a few rounds.
async fn auth_rounds(conn: &mut Conn, password: &str, mut reply: RawPacket) -> Result<(), Failure> {
    let mut foreign_plugin = None;
    for _ in 0..3 {
        let answer = match reply.first_byte() {
            Some(0x00) => return Ok(()),
            Some(0xff) => {
                let error = error_text(&reply.payload);
                return Err(Failure::Refused(match foreign_plugin {
                    Some(plugin) => format!("the server wants auth plugin {plugin} ({error})"),
                    None => error,
                }));
            }
            // Auth switch: `0xfe plugin\0 data`.
            Some(0xfe) => {
                let body = reply.payload.get(1..).unwrap_or_default();
                let (plugin, data) =
                    body.split_at(body.iter().position(|&b| b == 0).unwrap_or(body.len()));
                if plugin == NATIVE_PASSWORD {
                    scramble(password, data.get(1..).unwrap_or_default())
                } else {
                    foreign_plugin = Some(String::from_utf8_lossy(plugin).into_owned());
                    Bytes::new()
                }
            }
            // More auth data for the plugin in use.
            Some(0x01) => Bytes::new(),
            _ => return Err(Failure::Down("unexpected reply to the login".to_string())),
        };
        let mut out = BytesMut::new();
        codec::encode_packet(reply.last_seq.wrapping_add(1), &answer, &mut out);
        conn.write_all(&out).await?;
        reply = conn.read_packet().await?;
    }
    Err(Failure::Refused(
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
pub(crate) fn error_text(payload: &Bytes) -> String {
    match ErrPacket::decode(payload) {
        Ok(error) => format!("error {}: {}", error.code, error.message_lossy()),
        Err(_) => "malformed error packet".to_string(),
    }
}
