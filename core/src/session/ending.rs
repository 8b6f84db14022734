//! How a session ends: the client told why where the protocol allows it,
//! the `disconnect_client` hook, and the server connection pooled or ended
//! politely (charted in `core/LIFECYCLE.md`, "The pool path").

use mysql_proxy_plugin_abi::SqlError;
use mysql_proxy_protocol::constants::{StatusFlags, ERR_HEADER};

use super::lifecycle::Phase;
use super::reply;
use super::state::{ClientStage, Session};
use crate::backend::courtesy;
use crate::backend::pool::Login;
use crate::backend::server::{LoginState, ServerConn};
use crate::backend::BackendCounters;
use crate::error::SessionError;

impl Session {
    /// The server spoke or closed while the session was idle: it ended the
    /// session. What it said (an ERR, e.g. MariaDB's notice of a timeout)
    /// is passed on to the client, whose connection is then closed.
    pub(super) async fn server_ended_session(&mut self) -> Phase {
        let Some(server) = self.server.as_mut() else {
            return Phase::Disconnect(None);
        };
        // A server that ends a session sends at most one packet, and has
        // sent it already; a partial one is not waited for long.
        let said = tokio::time::timeout(self.context.connect_timeout, server.conn.read_packet());
        let detail = match said.await {
            Ok(Ok(packet)) if packet.first_byte() == Some(ERR_HEADER) => {
                let _ = self.client.write_all(&packet.raw).await;
                format!("sent {}", courtesy::error_text(&packet.payload))
            }
            Ok(Ok(packet)) => format!(
                "sent an unexpected packet (0x{:02x})",
                packet.first_byte().unwrap_or(0)
            ),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "sent an incomplete packet".to_string(),
        };
        Phase::Disconnect(Some(SessionError::BackendEndedSession {
            backend: server.name().to_string(),
            detail,
        }))
    }

    /// Sends a hook's refusal and ends the connection.
    pub(super) async fn refuse(&mut self, error: SqlError) -> Phase {
        let message = error.message.to_string();
        self.send_error(&error).await;
        Phase::Disconnect(Some(SessionError::PluginRefused(message)))
    }

    /// Tells the client about an error where the protocol allows it.
    async fn send_error(&mut self, error: &SqlError) {
        let (seq, payload) = match self.stage {
            ClientStage::BeforeHandshake => (0, reply::error_payload(error, false)),
            ClientStage::Expecting(seq) => (seq, reply::error_payload(error, true)),
            ClientStage::MidResponse => return,
        };
        let _ = self.client.send_payloads(seq, &[payload]).await;
        self.stage = ClientStage::MidResponse;
    }

    /// `disconnect_client`: tell the client why if possible, log, run the
    /// hook, and drop both sockets (the backend lease goes with them).
    pub(super) async fn disconnect(&mut self, reason: Option<SessionError>) {
        if let Some(error) = &reason {
            if error.fault() == crate::error::Fault::Backend && !error.is_routine() {
                if let Some(server) = &self.server {
                    BackendCounters::add(&server.lease.backend().counters.errors, 1);
                }
            }
            if let Some(sql_error) = error.client_error() {
                self.send_error(&sql_error).await;
            }
            if error.is_routine() {
                slog::debug!(self.logger, "session ended: {}", error);
            } else {
                slog::warn!(self.logger, "session ended: {}", error);
            }
        } else {
            slog::debug!(self.logger, "session closed");
        }
        self.ending_mid_command = reason.is_some() && !self.at_rest;
        self.call_hook(|hooks, session| hooks.disconnect_client(session));
        // After a server failure the connection is lost; after anything else
        // `release` judges from the session's state whether it is reusable.
        let reusable = reason
            .as_ref()
            .is_none_or(|error| error.fault() != crate::error::Fault::Backend);
        if let Some(server) = self.server.take().filter(|_| reusable) {
            // With the pool on, the client's COM_QUIT is not relayed: a
            // connection kept out of the pool says it for the client.
            let goodbye = reason.is_none() && self.context.pool.max_idle > 0;
            self.release(server, goodbye).await;
        }
        self.state.backend_ndx = None;
    }

    /// Done with the server connection: into its backend's pool if it may
    /// go there ([`Session::pool_login`]), else ended, politely where the
    /// server waits for something ([`ServerConn::end`]; `goodbye`: a
    /// logged-in connection says the COM_QUIT the pool kept from it).
    pub(super) async fn release(&mut self, server: ServerConn, goodbye: bool) {
        let within = self.context.connect_timeout;
        let server = match self.pool_login(&server) {
            Some(login) => match server.park(login, &self.context.pool, within).await {
                Ok(()) => {
                    slog::debug!(self.logger, "server connection pooled");
                    return;
                }
                Err((server, why)) => {
                    slog::debug!(
                        self.logger,
                        "server connection to {} not pooled: {}",
                        server.name(),
                        why
                    );
                    server
                }
            },
            None => server,
        };
        server.end(goodbye, within).await;
    }

    /// The login to file the server connection under in its backend's
    /// pool, if it may go there: the pool is on, the backend takes clients,
    /// the proxy is not shutting down, and either the server accepted the
    /// client's login and the session was between commands and not in a
    /// transaction (closing rolls it back at once), or the connection came
    /// from the pool and the client's login was never sent to it (a port
    /// check, a login the proxy refused).
    fn pool_login(&mut self, server: &ServerConn) -> Option<Login> {
        if self.context.pool.max_idle == 0
            || !server.lease.backend().is_usable()
            || self.context.sessions.is_shutting_down()
        {
            return None;
        }
        match &server.login {
            LoginState::LoggedIn => {
                let in_transaction = StatusFlags(self.state.server_status)
                    .intersects(StatusFlags::IN_TRANS | StatusFlags::IN_TRANS_READONLY);
                if !self.at_rest || in_transaction {
                    return None;
                }
                self.login.take()
            }
            LoginState::Pooled(login) => Some(Login::clone(login)),
            LoginState::Greeted | LoginState::Sent { .. } => None,
        }
    }
}
