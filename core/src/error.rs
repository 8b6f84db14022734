//! Why a session ended or a command failed: who is at fault, whether the
//! connection survives, and the one place that turns that into an ERR packet
//! for the client.

use std::io;

use mysql_proxy_plugin_abi::SqlError;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Backend,
    Plugin,
    Internal,
}

/// A failure that ends a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("client connection failed: {0}")]
    ClientIo(io::Error),
    #[error("client timed out")]
    ClientTimeout,
    #[error("client sent a packet of {size} bytes (max_allowed_packet is {max})")]
    ClientPacketTooLarge { size: usize, max: usize },
    #[error("client sent sequence id {got} where {expected} was due")]
    ClientOutOfOrder { expected: u8, got: u8 },
    #[error("client asked for TLS, which was not offered")]
    ClientTlsNotOffered,
    #[error("client speaks the compressed protocol, which was not offered")]
    ClientCompressed,
    #[error("client protocol error: {0}")]
    ClientProtocol(String),
    /// The login did not end within the login timeout (a client too slow,
    /// or one sending a byte at a time to hold a connection).
    #[error("the login took longer than {0:?}")]
    LoginTimeout(std::time::Duration),
    #[error("backend {backend} closed the connection")]
    BackendClosed { backend: String },
    #[error("backend {backend} connection failed: {error}")]
    BackendIo { backend: String, error: io::Error },
    #[error("backend {backend} timed out")]
    BackendTimeout { backend: String },
    #[error("backend {backend} protocol error: {message}")]
    BackendProtocol { backend: String, message: String },
    /// The server closed the connection of an idle session (its
    /// `wait_timeout`, a `KILL` from another session, a restart).
    #[error("backend {backend} ended the idle session: {detail}")]
    BackendEndedSession { backend: String, detail: String },
    #[error("all backends are down")]
    NoBackend,
    #[error("no backend for this connection")]
    NoServerConnection,
    #[error("plugin refused: {0}")]
    PluginRefused(String),
    #[error("plugin returned a decision this host does not know")]
    UnknownDecision,
    /// Ended by `KILL` on the admin port.
    #[error("killed")]
    Killed,
}

impl SessionError {
    pub fn fault(&self) -> Fault {
        match self {
            SessionError::ClientClosed
            | SessionError::ClientIo(_)
            | SessionError::ClientTimeout
            | SessionError::ClientPacketTooLarge { .. }
            | SessionError::ClientOutOfOrder { .. }
            | SessionError::ClientTlsNotOffered
            | SessionError::ClientCompressed
            | SessionError::ClientProtocol(_)
            | SessionError::LoginTimeout(_) => Fault::Client,
            SessionError::BackendClosed { .. }
            | SessionError::BackendIo { .. }
            | SessionError::BackendTimeout { .. }
            | SessionError::BackendProtocol { .. }
            | SessionError::BackendEndedSession { .. }
            | SessionError::NoBackend => Fault::Backend,
            SessionError::PluginRefused(_)
            | SessionError::UnknownDecision
            | SessionError::NoServerConnection => Fault::Plugin,
            SessionError::Killed => Fault::Internal,
        }
    }

    /// Whether the end of the session is routine (not worth a warning).
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            SessionError::ClientClosed
                | SessionError::PluginRefused(_)
                | SessionError::BackendEndedSession { .. }
                | SessionError::Killed
        )
    }

    /// The error the client is told about, if the protocol still allows
    /// telling it anything.
    ///
    /// A lost backend is not reported in an ERR packet: the codes clients
    /// use for it (2013 "Lost connection", 2006 "gone away") are client-side
    /// codes, and client libraries reject an ERR packet carrying one as
    /// malformed. Closing the connection, as a crashed server would, makes
    /// the client report 2013 for the in-flight command itself.
    pub fn client_error(&self) -> Option<SqlError> {
        match self {
            SessionError::ClientClosed
            | SessionError::ClientIo(_)
            | SessionError::ClientTimeout
            // Told in a compressed frame, the only kind it reads.
            | SessionError::ClientCompressed
            | SessionError::PluginRefused(_)
            | SessionError::BackendClosed { .. }
            | SessionError::BackendIo { .. }
            | SessionError::BackendTimeout { .. }
            | SessionError::BackendEndedSession { .. }
            // As a killed server connection: closed without a word.
            | SessionError::Killed => None,
            SessionError::ClientPacketTooLarge { .. } => Some(SqlError::new(
                1153,
                "08S01",
                "Got a packet bigger than 'max_allowed_packet' bytes",
            )),
            SessionError::ClientOutOfOrder { .. } => {
                Some(SqlError::new(1156, "08S01", "Got packets out of order"))
            }
            // What MariaDB answers when TLS is asked for and not available.
            SessionError::ClientTlsNotOffered => {
                Some(SqlError::new(1043, "08S01", "Bad handshake"))
            }
            // As MySQL's connect_timeout: the handshake failed.
            SessionError::LoginTimeout(limit) => Some(SqlError::new(
                1043,
                "08S01",
                format!(
                    "Bad handshake: the login took longer than {} s (--login-timeout)",
                    limit.as_secs_f64()
                ),
            )),
            SessionError::ClientProtocol(message) => Some(SqlError::new(
                1105,
                "08S01",
                format!("(proxy) protocol error: {message}"),
            )),
            SessionError::BackendProtocol { backend, message } => Some(SqlError::new(
                1105,
                "08S01",
                format!("(proxy) malformed packet from backend {backend}: {message}"),
            )),
            SessionError::NoBackend => Some(SqlError::new(
                1105,
                "07000",
                "(proxy) all backends are down",
            )),
            SessionError::NoServerConnection => Some(SqlError::new(
                1105,
                "07000",
                "(proxy) this connection has no backend and the plugin did not answer",
            )),
            SessionError::UnknownDecision => Some(SqlError::new(
                1105,
                "HY000",
                "(proxy) plugin returned a decision this proxy does not support",
            )),
        }
    }
}
