//! A session's connection to its backend: opened new or taken from the
//! backend's pool, where its login stands ([`LoginState`]), and how it is
//! put back into the pool or ended politely when the session is done with it.

use std::sync::Arc;
use std::time::Duration;

use mysql_proxy_protocol::codec::HEADER_LEN;
use mysql_proxy_protocol::constants::{CapabilityFlags, ERR_HEADER, OK_HEADER};
use mysql_proxy_protocol::packets::{ComResetConnection, ComSetOption};

use super::courtesy::{self, error_text};
use super::pool::{Login, PoolSpec, PooledConn};
use super::registry::{BackendCounters, BackendLease};
use crate::error::SessionError;
use crate::net::{Conn, ConnError, Limits, ParkedStream, RawPacket, Stream};

/// Capabilities that set how the server behaves for the whole life of a
/// connection (COM_CHANGE_USER keeps them): affected-row counts (found
/// rows), LOAD DATA LOCAL, multiple results, ... With the pool on, a pooled
/// connection is given only to a client that asked for the same ones.
/// CLIENT_MULTI_STATEMENTS is not among them: COM_SET_OPTION sets it.
pub const CONNECTION_BOUND_CAPABILITIES: CapabilityFlags = CapabilityFlags(
    CapabilityFlags::FOUND_ROWS.0
        | CapabilityFlags::LOCAL_FILES.0
        | CapabilityFlags::IGNORE_SPACE.0
        | CapabilityFlags::INTERACTIVE.0
        | CapabilityFlags::MULTI_RESULTS.0
        | CapabilityFlags::PS_MULTI_RESULTS.0
        | CapabilityFlags::MARIADB_CLIENT_STMT_BULK_OPERATIONS.0,
);

/// Capabilities that change the format of responses (or, for query
/// attributes, of commands). A connection keeps what its first client
/// negotiated; with the pool on they are masked for every client.
pub const FORMAT_CAPABILITIES: CapabilityFlags = CapabilityFlags(
    CapabilityFlags::DEPRECATE_EOF.0
        | CapabilityFlags::SESSION_TRACK.0
        | CapabilityFlags::MARIADB_CLIENT_EXTENDED_METADATA.0
        | CapabilityFlags::MARIADB_CLIENT_BULK_UNIT_RESULTS.0
        | CapabilityFlags::QUERY_ATTRIBUTES.0,
);

/// What a pooled connection must share with the client that takes it.
pub const TAKE_BOUND_CAPABILITIES: CapabilityFlags =
    CapabilityFlags(CONNECTION_BOUND_CAPABILITIES.0 | FORMAT_CAPABILITIES.0);

/// COM_SET_OPTION's argument turning multi-statements on (what
/// session/command.rs compares a client's COM_SET_OPTION with).
pub use mysql_proxy_protocol::constants::MYSQL_OPTION_MULTI_STATEMENTS_ON as MULTI_STATEMENTS_ON;

/// Where the login of a server connection stands.
pub enum LoginState {
    /// A new connection: the server greeted and waits for a login.
    Greeted,
    /// From the pool, logged in as someone (this login): the client's login
    /// must become a COM_CHANGE_USER (or be checked against this one), and
    /// until it is sent the connection may go back to the pool unused.
    Pooled(Box<Login>),
    /// The client's login went to the server, whose verdict is awaited;
    /// `reply_due` is the sequence id the server expects while it waits for
    /// the client's next auth packet (after an auth switch or more data).
    Sent { reply_due: Option<u8> },
    /// The server accepted the session's login: only now may the connection
    /// go to the pool as that login.
    LoggedIn,
}

/// The backend side of a session.
pub struct ServerConn {
    pub conn: Conn,
    /// Keeps the backend's `connected_clients` count while held.
    pub lease: BackendLease,
    /// The handshake, read while connecting, until the session takes it.
    pub greeting: Option<RawPacket>,
    pub login: LoginState,
    /// Added to the sequence ids of server packets relayed to the client
    /// during authentication (a pooled connection's COM_CHANGE_USER starts
    /// its own sequence at 0, the client's login continues its handshake's).
    pub auth_seq_shift: u8,
}

impl ServerConn {
    pub fn name(&self) -> &str {
        &self.lease.backend().name
    }

    /// Attributes a connection failure to this backend.
    pub fn error(&self, error: ConnError) -> SessionError {
        let backend = self.name().to_string();
        match error {
            ConnError::Closed => SessionError::BackendClosed { backend },
            ConnError::Timeout => SessionError::BackendTimeout { backend },
            ConnError::Io(error) => SessionError::BackendIo { backend, error },
            error @ (ConnError::TooLarge { .. } | ConnError::OutOfOrder { .. }) => {
                SessionError::BackendProtocol {
                    backend,
                    message: error.to_string(),
                }
            }
        }
    }

    /// The pooled login, while the client's has not been sent.
    pub fn pooled(&self) -> Option<&Login> {
        match &self.login {
            LoginState::Pooled(login) => Some(login),
            _ => None,
        }
    }

    /// Connects to the leased backend and reads its handshake within
    /// `connect_timeout`: a server that accepts but never greets is as down
    /// as one that refuses. Success marks the backend up; a failure marks
    /// it down (which empties its pool and logs the change).
    pub async fn open(
        lease: BackendLease,
        limits: Limits,
        connect_timeout: Duration,
    ) -> Option<ServerConn> {
        let backend = lease.backend();
        let attempt = tokio::time::timeout(connect_timeout, async {
            let stream = Stream::connect(&backend.addr)
                .await
                .map_err(|e| e.to_string())?;
            let mut conn = Conn::new(stream, limits);
            let greeting = conn.read_packet().await.map_err(|e| match e {
                ConnError::Closed => "closed before sending its handshake".to_string(),
                ConnError::Timeout => "no handshake".to_string(),
                other => format!("bad handshake: {other}"),
            })?;
            if greeting.first_byte() == Some(ERR_HEADER) {
                // E.g. 1040 "Too many connections": another backend may
                // take the client.
                return Err(format!(
                    "refused the connection ({})",
                    error_text(&greeting.payload)
                ));
            }
            Ok::<_, String>((conn, greeting))
        });
        let failure = match attempt.await {
            Ok(Ok((conn, greeting))) => {
                BackendCounters::add(&backend.counters.connects, 1);
                backend.mark_up("client connected");
                return Some(ServerConn {
                    conn,
                    lease,
                    greeting: Some(greeting),
                    login: LoginState::Greeted,
                    auth_seq_shift: 0,
                });
            }
            Ok(Err(reason)) => reason,
            Err(_) => format!(
                "no connection and handshake within {} ms",
                connect_timeout.as_millis()
            ),
        };
        BackendCounters::add(&backend.counters.connect_failures, 1);
        backend.mark_down(&format!("connect failed: {failure}"));
        None
    }

    /// A connection from the leased backend's pool, if the pool is on and
    /// has a live one (with `bound` capabilities, when given: see
    /// [`TAKE_BOUND_CAPABILITIES`]); else the lease back. It comes
    /// with the handshake its first client was sent: the next client must
    /// answer that same challenge.
    pub fn from_pool(
        lease: BackendLease,
        limits: Limits,
        spec: &PoolSpec,
        bound: Option<CapabilityFlags>,
    ) -> Result<ServerConn, BackendLease> {
        if spec.max_idle == 0 {
            return Err(lease);
        }
        let backend = lease.backend();
        let pooled = match bound {
            None => backend.pool.take(spec),
            Some(bound) => backend.pool.take_matching(spec, |pooled| {
                pooled
                    .login
                    .capabilities
                    .intersection(TAKE_BOUND_CAPABILITIES)
                    == bound
            }),
        };
        match pooled {
            Some(pooled) => {
                let (stream, login) = pooled.into_parts();
                Self::resume(lease, limits, stream, LoginState::Pooled(Box::new(login)))
            }
            None => Err(lease),
        }
    }

    /// A parked connection resumed on this event thread (the lease back if
    /// its socket cannot be), its login where `login` says. A connection
    /// still to be given the session's login ([`LoginState::Pooled`]) comes
    /// with the handshake its first client was sent: the session's client
    /// is greeted with it, the same challenge.
    pub fn resume(
        lease: BackendLease,
        limits: Limits,
        stream: ParkedStream,
        login: LoginState,
    ) -> Result<ServerConn, BackendLease> {
        let Ok(stream) = stream.resume() else {
            return Err(lease);
        };
        let greeting = match &login {
            LoginState::Pooled(pooled) => {
                let frame = &pooled.greeting;
                let seq = frame.get(3).copied().unwrap_or(0);
                Some(RawPacket {
                    payload: frame.slice(HEADER_LEN.min(frame.len())..),
                    raw: frame.clone(),
                    seq,
                    last_seq: seq,
                })
            }
            _ => None,
        };
        Ok(ServerConn {
            conn: Conn::new(stream, limits),
            lease,
            greeting,
            login,
            auth_seq_shift: 0,
        })
    }

    /// Sets the connection's multi-statements option (COM_SET_OPTION) before
    /// the client's login on a pooled connection: the option outlives
    /// COM_CHANGE_USER.
    pub async fn set_multi_statements(&mut self, on: bool) -> Result<(), SessionError> {
        let set_option = ComSetOption::multi_statements(on).to_bytes();
        self.login = LoginState::Sent { reply_due: None };
        match courtesy::command(&mut self.conn, &set_option).await {
            // EOF, or OK with DEPRECATE_EOF.
            Ok(reply) if reply.first_byte() != Some(ERR_HEADER) => Ok(()),
            Ok(reply) => Err(SessionError::BackendProtocol {
                backend: self.name().to_string(),
                message: format!("COM_SET_OPTION refused: {}", error_text(&reply.payload)),
            }),
            Err(error) => Err(self.error(error)),
        }
    }

    /// Puts the connection into its backend's pool as `login`; a connection
    /// the session logged in on is first reset (COM_RESET_CONNECTION): what
    /// its client left behind that no status flag shows (LOCK TABLES,
    /// GET_LOCK, a temporary table, user variables) must not be held or
    /// seen while it waits for its next client. The reset must come within
    /// `within`: a server slow to answer is not worth keeping. Gives the
    /// connection back if it stays out of the pool, and says why.
    pub async fn park(
        mut self,
        mut login: Login,
        spec: &PoolSpec,
        within: Duration,
    ) -> Result<(), (ServerConn, String)> {
        if matches!(self.login, LoginState::LoggedIn) {
            let reset = courtesy::command(&mut self.conn, &ComResetConnection::PAYLOAD);
            let outcome = tokio::time::timeout(within, reset).await;
            let failure = match outcome {
                Ok(Ok(reply)) if reply.first_byte() == Some(OK_HEADER) => None,
                Ok(Ok(reply)) => Some(format!("answer 0x{:02x}", reply.first_byte().unwrap_or(0))),
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some("no answer".to_string()),
            };
            if let Some(failure) = failure {
                return Err((self, format!("reset failed ({failure})")));
            }
            // The reset keeps the default database, which the client may
            // have changed with a `USE` the proxy did not see: asked now,
            // so that a returning client of the same login and database
            // needs no round trip at all.
            let deprecate_eof = login.capabilities.contains(CapabilityFlags::DEPRECATE_EOF);
            let asked = courtesy::query_value(&mut self.conn, "SELECT DATABASE()", deprecate_eof);
            login.database = match tokio::time::timeout(within, asked).await {
                Ok(Ok(database)) => database,
                Ok(Err(error)) => {
                    return Err((self, format!("SELECT DATABASE() failed ({error})")))
                }
                Err(_) => return Err((self, "SELECT DATABASE(): no answer".to_string())),
            };
            login.pristine = true;
        }
        let backend = Arc::clone(self.lease.backend());
        // Not at rest (bytes pending) or not detachable: closed here.
        let Some(stream) = self.conn.park() else {
            return Ok(());
        };
        let pooled = PooledConn::new(stream, login);
        backend.pool.park(pooled, spec);
        Ok(())
    }

    /// Ends a connection the session leaves without pooling it, politely
    /// where the server waits for something: a new connection that never
    /// got a login is given a refused one, a login waiting for the client's
    /// next auth round an empty answer (each bounded by `within`), and with
    /// `goodbye` a logged-in connection says COM_QUIT (the pool kept the
    /// client's own). The server then counts no aborted connection or
    /// connection error of the proxy's host.
    pub async fn end(mut self, goodbye: bool, within: Duration) {
        match self.login {
            LoginState::Greeted => courtesy::decline_login(&mut self.conn, within).await,
            LoginState::Sent {
                reply_due: Some(seq),
            } => courtesy::decline_auth_round(&mut self.conn, seq, within).await,
            LoginState::LoggedIn if goodbye => {
                let _ = courtesy::quit(&mut self.conn).await;
            }
            _ => {}
        }
    }
}
