//! The connection life cycle as an explicit state machine: each phase is a
//! variant of [`Phase`], each transition a method that consumes the session's
//! current phase and returns the next one. `Session::run` walks them, and
//! reads like the chart in `core/LIFECYCLE.md`.

use std::sync::Arc;

use bytes::Bytes;
use mysql_proxy_plugin_abi::{
    AuthDecision, AuthResultDecision, ConnectDecision, HandshakeDecision, Response,
};
use mysql_proxy_protocol::codec;
use mysql_proxy_protocol::constants::{
    CapabilityFlags, Command, AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER, ERR_HEADER, OK_HEADER,
};
use mysql_proxy_protocol::packets::{HandshakeResponse41, HandshakeV10, SslRequest};

use super::relay;
use super::reply;
use super::state::{client_error, known, read_mail, text, ClientStage, LoginProgress, Session};
use crate::backend::server::{LoginState, ServerConn, FORMAT_CAPABILITIES};
use crate::backend::BackendLease;
use crate::error::SessionError;
use crate::net::Awake;
use crate::sessions::Woken;

/// Capabilities the proxy never lets client and server negotiate: TLS and
/// compression are not relayed, and MariaDB's progress reports and metadata
/// caching (and MySQL's optional metadata) change the shape of responses the
/// relay tracks. They are removed from the greeting the client sees and
/// from the login the server receives, so that a client that sets one
/// anyway still gets a plain session.
const MASKED_CAPABILITIES: CapabilityFlags = CapabilityFlags(
    CapabilityFlags::SSL.0
        | CapabilityFlags::COMPRESS.0
        | CapabilityFlags::ZSTD_COMPRESSION.0
        | CapabilityFlags::MARIADB_CLIENT_PROGRESS.0
        | CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA.0
        | CapabilityFlags::OPTIONAL_RESULTSET_METADATA.0,
);

/// Capabilities also masked while the connection pool is on: they change
/// the format of responses (or, for query attributes, of commands), and a
/// pooled connection keeps what its first client negotiated, so one client
/// would get another's format.
const POOL_MASKED_CAPABILITIES: CapabilityFlags = FORMAT_CAPABILITIES;

/// The phases of a connection.
pub(super) enum Phase {
    /// A client was accepted; no backend yet.
    ConnectServer,
    /// Connected to a backend; its handshake is expected.
    ReadHandshake,
    /// A handshake was sent to the client; its auth response is expected.
    ReadAuth,
    /// The auth response went to the backend; its verdict is expected (the
    /// exchange may take several round trips).
    ReadAuthResult,
    /// Authenticated: one client command after another.
    Command,
    /// The connection ends; the error (if any) says why.
    Disconnect(Option<SessionError>),
}

impl Session {
    /// Walks the life cycle until the connection ends.
    ///
    /// The session stays boxed, and the futures of the login and of the
    /// disconnection are boxed while they run: a future is as large as its
    /// largest state, and an idle session (waiting in `command_phase`)
    /// should only pay for that state, not for the login's.
    pub async fn run(mut self: Box<Self>) {
        let mut phase = Phase::ConnectServer;
        loop {
            phase = match phase {
                Phase::Command => self.command_phase().await,
                Phase::Disconnect(reason) => {
                    Box::pin(self.disconnect(reason)).await;
                    return;
                }
                login => match self.context.login_timeout {
                    // The session is at accept here: the whole login runs
                    // under the limit.
                    Some(limit) => tokio::time::timeout(limit, Box::pin(self.log_in(login)))
                        .await
                        .unwrap_or(Phase::Disconnect(Some(SessionError::LoginTimeout(limit)))),
                    None => Box::pin(self.log_in(login)).await,
                },
            };
        }
    }

    /// The login phases, from `phase` until the session reaches the command
    /// phase or ends: one future (one allocation) for all of them.
    async fn log_in(&mut self, mut phase: Phase) -> Phase {
        loop {
            phase = match phase {
                Phase::ConnectServer => self.connect_server().await,
                Phase::ReadHandshake => self.read_handshake().await,
                Phase::ReadAuth => self.read_auth().await,
                Phase::ReadAuthResult => self.read_auth_result().await,
                done @ (Phase::Command | Phase::Disconnect(_)) => return done,
            };
        }
    }

    /// `connect_server`: let the plugin pick a backend or answer itself,
    /// then connect, trying the next eligible backend on failure.
    async fn connect_server(&mut self) -> Phase {
        let decision = known(self.call_hook(|hooks, session| hooks.connect_server(session)));
        let (wanted, fresh) = match decision {
            Err(error) => return self.refuse(error).await,
            Ok(Some(ConnectDecision::Default)) => (None, false),
            Ok(Some(ConnectDecision::Backend(ndx))) => (Some(ndx), false),
            Ok(Some(ConnectDecision::Fresh(ndx))) => (Some(ndx), true),
            Ok(Some(ConnectDecision::Reply(response))) => {
                // A pooled connection the hook took goes back unused.
                if let Some(taken) = self.server.take() {
                    self.release(taken, false).await;
                }
                return self.greet_without_server(response).await;
            }
            Ok(_) => return Phase::Disconnect(Some(SessionError::UnknownDecision)),
        };
        if self.server.is_some() {
            // The hook took a pooled connection (`set_backend_ndx`): the
            // client is greeted by it.
            return Phase::ReadHandshake;
        }
        match self.connect_backend(wanted, fresh).await {
            Ok(server) => {
                let backend = server.lease.backend();
                self.state.backend_ndx = Some(backend.ndx);
                self.state.server_address = backend.name.as_str().into();
                self.server = Some(server);
                Phase::ReadHandshake
            }
            Err(error) => Phase::Disconnect(Some(error)),
        }
    }

    /// Connects to the wanted backend if it is usable, else to the one the
    /// balancing policy picks; every backend that fails is marked down and
    /// the next one tried, so the client sees a failure only when none is
    /// left. Connecting includes receiving the server's handshake: a server
    /// that accepts but never greets is as down as one that refuses.
    async fn connect_backend(
        &mut self,
        mut wanted: Option<u32>,
        mut fresh: bool,
    ) -> Result<ServerConn, SessionError> {
        let registry = Arc::clone(&self.context.registry);
        loop {
            let wanted_one = wanted
                .take()
                .and_then(|ndx| registry.get(ndx))
                .filter(|b| b.is_usable() && !self.failed_backends.contains(&b.ndx))
                .map(BackendLease::new);
            // A fresh connection was asked of the wanted backend only.
            let fresh = std::mem::take(&mut fresh) && wanted_one.is_some();
            let candidate =
                wanted_one.or_else(|| registry.claim(self.context.balance, &self.failed_backends));
            let Some(lease) = candidate else {
                slog::error!(self.logger, "Cannot connect, all backends are down.");
                return Err(SessionError::NoBackend);
            };
            let pooled = if fresh {
                Err(lease)
            } else {
                ServerConn::from_pool(lease, self.context.limits, &self.context.pool, None)
            };
            let lease = match pooled {
                Ok(server) => {
                    slog::debug!(
                        self.logger,
                        "reusing a pooled connection to {}",
                        server.name()
                    );
                    return Ok(server);
                }
                Err(lease) => lease,
            };
            let backend = Arc::clone(lease.backend());
            match ServerConn::open(lease, self.context.limits, self.context.connect_timeout).await {
                Some(server) => return Ok(server),
                None => self.failed_backends.push(backend.ndx),
            }
        }
    }

    /// `connect_server` answered with a reply: a handshake of the plugin's
    /// own (the session goes on without a backend) or a refusal.
    async fn greet_without_server(&mut self, response: Response) -> Phase {
        let greeting = match &response {
            Response::Raw(packets) => packets
                .first()
                .and_then(|p| HandshakeV10::decode(&Bytes::copy_from_slice(p.as_slice())).ok()),
            _ => None,
        };
        let payloads = reply::encode(&response, self.capabilities, 0);
        if let Err(error) = self.client.send_payloads(0, &payloads).await {
            return Phase::Disconnect(Some(client_error(error)));
        }
        match greeting {
            Some(greeting) => {
                self.adopt_greeting(&greeting);
                self.state.login = LoginProgress::Greeted;
                self.stage = ClientStage::Expecting(u8::try_from(payloads.len()).unwrap_or(1));
                Phase::ReadAuth
            }
            None => Phase::Disconnect(None),
        }
    }

    /// Records what the client is told about the server.
    fn adopt_greeting(&mut self, greeting: &HandshakeV10) {
        self.greeting_capabilities = greeting.capabilities;
        self.state.server_capabilities = greeting.capabilities.0;
        self.state.server_thread_id = greeting.connection_id;
        self.state.server_version = text(&greeting.server_version);
    }

    /// The capabilities client and server must not negotiate through this
    /// session (see [`MASKED_CAPABILITIES`]).
    pub(super) fn masked_capabilities(&self) -> CapabilityFlags {
        if self.context.pool.max_idle > 0 {
            MASKED_CAPABILITIES | POOL_MASKED_CAPABILITIES
        } else {
            MASKED_CAPABILITIES
        }
    }

    /// `read_handshake`: the backend's greeting, with the capabilities the
    /// proxy cannot relay removed.
    async fn read_handshake(&mut self) -> Phase {
        let Some(server) = self.server.as_mut() else {
            return Phase::Disconnect(Some(SessionError::NoServerConnection));
        };
        let packet = match server.greeting.take() {
            Some(packet) => packet,
            None => match server.conn.read_packet().await {
                Ok(packet) => packet,
                Err(error) => return Phase::Disconnect(Some(server.error(error))),
            },
        };
        if packet.first_byte() == Some(ERR_HEADER) {
            // The server refuses us (e.g. too many connections): pass it on.
            let _ = self.client.write_all(&packet.raw).await;
            return Phase::Disconnect(None);
        }
        let mut greeting = match HandshakeV10::decode(&packet.payload) {
            Ok(greeting) => greeting,
            Err(error) => {
                return Phase::Disconnect(Some(SessionError::BackendProtocol {
                    backend: server.name().to_string(),
                    message: format!("bad handshake: {error}"),
                }))
            }
        };
        greeting.capabilities.remove(self.masked_capabilities());
        self.adopt_greeting(&greeting);
        let payload = greeting.to_bytes();
        let decision =
            known(self.call_hook(|hooks, session| {
                hooks.read_handshake(session, payload.as_ref().into())
            }));
        let (to_send, close) = match decision {
            Err(error) => return self.refuse(error).await,
            Ok(Some(HandshakeDecision::Forward)) => (vec![payload], false),
            Ok(Some(HandshakeDecision::Rewrite(bytes))) => {
                match HandshakeV10::decode(&Bytes::copy_from_slice(bytes.as_slice())) {
                    Ok(rewritten) => self.adopt_greeting(&rewritten),
                    Err(_) => slog::warn!(self.logger, "plugin rewrote the handshake unparsably"),
                }
                (vec![Bytes::from(bytes.into_vec())], false)
            }
            Ok(Some(HandshakeDecision::Reply(response))) => {
                (reply::encode(&response, self.capabilities, 0), true)
            }
            Ok(_) => return Phase::Disconnect(Some(SessionError::UnknownDecision)),
        };
        if let Err(error) = self.client.send_payloads(packet.seq, &to_send).await {
            return Phase::Disconnect(Some(client_error(error)));
        }
        if close {
            return Phase::Disconnect(None);
        }
        self.state.login = LoginProgress::Greeted;
        if let Some(sent) = to_send.first() {
            self.greeting_frame = codec::frame(packet.seq, sent);
        }
        self.stage = ClientStage::Expecting(packet.seq.wrapping_add(1));
        Phase::ReadAuth
    }

    /// `read_auth`: the client's auth response.
    async fn read_auth(&mut self) -> Phase {
        let packet = match self
            .client
            .read_packet_numbered(self.next_client_seq())
            .await
        {
            Ok(packet) => packet,
            Err(error) => return Phase::Disconnect(Some(client_error(error))),
        };
        self.stage = ClientStage::Expecting(packet.last_seq.wrapping_add(1));
        if packet.payload.len() == SslRequest::LEN
            && SslRequest::decode(&packet.payload)
                .is_ok_and(|request| request.capabilities.contains(CapabilityFlags::SSL))
        {
            // An SSLRequest although the greeting offered no TLS: refused as
            // a server without TLS refuses it. (A full login with the flag
            // set is no request for TLS: the flag is masked like the others.)
            return Phase::Disconnect(Some(SessionError::ClientTlsNotOffered));
        }
        let auth = match HandshakeResponse41::decode(&packet.payload) {
            Ok(auth) => auth,
            Err(error) => {
                return Phase::Disconnect(Some(SessionError::ClientProtocol(format!(
                    "bad auth response: {error}"
                ))))
            }
        };
        if !auth.capabilities.contains(CapabilityFlags::PROTOCOL_41) {
            let _ = self
                .client
                .send_payloads(self.next_client_seq(), &[reply::PROTOCOL_40_REFUSAL])
                .await;
            return Phase::Disconnect(None);
        }
        // A client that sets COMPRESS although it was not offered may
        // compress anyway (Connector/Python does): its first command tells.
        self.check_compression = auth.capabilities.contains(CapabilityFlags::COMPRESS)
            && !self
                .greeting_capabilities
                .contains(CapabilityFlags::COMPRESS);
        self.capabilities = CapabilityFlags(auth.capabilities.0 & self.greeting_capabilities.0);
        self.state.client_capabilities = auth.capabilities.0;
        self.state.username = text(&auth.username);
        self.state.default_db = text(auth.database.as_deref().unwrap_or_default());
        self.state.server_db = self.state.default_db.clone();
        self.state.auth_plugin_name = text(auth.auth_plugin_name.as_deref().unwrap_or_default());

        let decision =
            known(self.call_hook(|hooks, session| {
                hooks.read_auth(session, packet.payload.as_ref().into())
            }));
        self.note_login(self.greeting_frame.clone(), &auth);
        let to_server = match decision {
            Err(error) => return self.refuse(error).await,
            Ok(Some(AuthDecision::Forward)) if self.is_pooled() => {
                return self.pooled_login(&auth, packet.last_seq).await;
            }
            Ok(Some(AuthDecision::Rewrite(bytes))) if self.is_pooled() => {
                return match HandshakeResponse41::decode(&Bytes::copy_from_slice(bytes.as_slice()))
                {
                    Ok(rewritten) => self.pooled_login(&rewritten, packet.last_seq).await,
                    Err(error) => Phase::Disconnect(Some(SessionError::PluginRefused(format!(
                        "rewritten auth response is not valid: {error}"
                    )))),
                };
            }
            Ok(Some(AuthDecision::Forward))
                if auth.capabilities.intersects(self.masked_capabilities()) =>
            {
                let mut payload = packet.payload.to_vec();
                HandshakeResponse41::remove_capabilities(&mut payload, self.masked_capabilities());
                codec::frame(packet.seq, &payload)
            }
            Ok(Some(AuthDecision::Forward)) => packet.raw.clone(),
            Ok(Some(AuthDecision::Rewrite(bytes))) => {
                let mut payload = bytes.into_vec();
                HandshakeResponse41::remove_capabilities(&mut payload, self.masked_capabilities());
                codec::frame(packet.seq, &payload)
            }
            Ok(Some(AuthDecision::Reply(response))) => {
                if self.is_pooled() {
                    // The plugin lets the client in itself: it must not get
                    // the pooled connection's previous login with it.
                    self.server = None;
                }
                let refused = matches!(response, Response::Error(_));
                if let Err(error) = self.send_response(&response).await {
                    return Phase::Disconnect(Some(error));
                }
                return if refused {
                    Phase::Disconnect(None)
                } else {
                    Phase::Command
                };
            }
            Ok(_) => return Phase::Disconnect(Some(SessionError::UnknownDecision)),
        };
        let Some(server) = self.server.as_mut() else {
            // No backend: the plugin let the client in.
            let ok = Response::Ok(Default::default());
            return match self.send_response(&ok).await {
                Ok(()) => Phase::Command,
                Err(error) => Phase::Disconnect(Some(error)),
            };
        };
        server.login = LoginState::Sent { reply_due: None };
        if let Err(error) = server.conn.write_all(&to_server).await {
            return Phase::Disconnect(Some(server.error(error)));
        }
        Phase::ReadAuthResult
    }

    /// `read_auth_result`: relays the auth exchange (auth switches, extra
    /// rounds of any auth plugin) until the server says OK or ERR.
    async fn read_auth_result(&mut self) -> Phase {
        loop {
            let Some(server) = self.server.as_mut() else {
                return Phase::Disconnect(Some(SessionError::NoServerConnection));
            };
            let from = match relay::next_packet_either(&mut self.client, &mut server.conn).await {
                Ok(from) => from,
                Err(relay::Either::Client(error)) => {
                    return Phase::Disconnect(Some(client_error(error)))
                }
                Err(relay::Either::Server(error)) => {
                    return Phase::Disconnect(Some(server.error(error)))
                }
            };
            let packet = match from {
                relay::Either::Client(packet) => {
                    // The client's next auth round goes straight to the server.
                    server.login = LoginState::Sent { reply_due: None };
                    let raw = packet.with_seq_shift(server.auth_seq_shift.wrapping_neg());
                    if let Err(error) = server.conn.write_all(&raw).await {
                        return Phase::Disconnect(Some(server.error(error)));
                    }
                    continue;
                }
                relay::Either::Server(packet) => packet,
            };
            let shift = server.auth_seq_shift;
            // What the server's packet means is settled before the hook
            // sees it: after an OK the connection is logged in, and a hook
            // may park it (`set_backend_ndx`) as MySQL Proxy's scripts do.
            match packet.first_byte() {
                Some(OK_HEADER) => {
                    server.login = LoginState::LoggedIn;
                    self.state.login = LoginProgress::LoggedIn;
                }
                Some(ERR_HEADER) => {}
                Some(AUTH_SWITCH_HEADER | AUTH_MORE_DATA_HEADER) => {
                    server.login = LoginState::Sent {
                        reply_due: Some(packet.last_seq.wrapping_add(1)),
                    };
                }
                _ => {
                    return Phase::Disconnect(Some(SessionError::BackendProtocol {
                        backend: self.state.server_address.to_string(),
                        message: "unexpected packet during authentication".to_string(),
                    }))
                }
            }
            let decision = known(self.call_hook(|hooks, session| {
                hooks.read_auth_result(session, packet.payload.as_ref().into())
            }));
            let sent = match decision {
                Err(error) => return self.refuse(error).await,
                Ok(Some(AuthResultDecision::Forward)) => {
                    self.client.write_all(&packet.with_seq_shift(shift)).await
                }
                Ok(Some(AuthResultDecision::Replace(response))) => {
                    let payloads =
                        reply::encode(&response, self.capabilities, self.state.server_status);
                    self.client
                        .send_payloads(packet.seq.wrapping_add(shift), &payloads)
                        .await
                        .map(|_| ())
                }
                Ok(_) => return Phase::Disconnect(Some(SessionError::UnknownDecision)),
            };
            if let Err(error) = sent {
                return Phase::Disconnect(Some(client_error(error)));
            }
            match packet.first_byte() {
                Some(OK_HEADER) => return Phase::Command,
                Some(ERR_HEADER) => return Phase::Disconnect(None),
                _ => continue,
            }
        }
    }

    /// The command phase: one client command at a time until the client
    /// quits, something fails, or the proxy shuts down.
    async fn command_phase(&mut self) -> Phase {
        self.state.login = LoginProgress::LoggedIn;
        self.show_identity();
        loop {
            if self.context.sessions.is_shutting_down() {
                return Phase::Disconnect(None);
            }
            self.client.release_idle_buffer();
            if let Some(server) = self.server.as_mut() {
                server.conn.release_idle_buffer();
            }
            // The server connection is watched too: a server that ends the
            // session (its wait_timeout, a KILL, a restart) must close the
            // client's connection as it would close a direct client's, not
            // at the client's next command.
            let server = self.server.as_ref().map(|server| &server.conn);
            let woken = self
                .mailbox
                .or_interrupted(self.client.readable(server))
                .await;
            match woken {
                Woken::ShuttingDown => return Phase::Disconnect(None),
                Woken::Mail => match read_mail(&self.mailbox) {
                    Some(end) => return Phase::Disconnect(Some(end)),
                    None => continue,
                },
                Woken::Ready(Err(error)) => return Phase::Disconnect(Some(client_error(error))),
                Woken::Ready(Ok(Awake::Client)) => {}
                // Rare: boxed, so that the idle session does not carry its future.
                Woken::Ready(Ok(Awake::Server)) => {
                    return Box::pin(self.server_ended_session()).await
                }
            }
            self.at_rest = true;
            // A command starts a new exchange: sequence id 0, answered from 1.
            self.stage = ClientStage::Expecting(1);
            let packet = match self.client.read_packet_numbered(0).await {
                Ok(packet) => packet,
                Err(error) => return Phase::Disconnect(Some(client_error(error))),
            };
            self.stage = ClientStage::Expecting(packet.last_seq.wrapping_add(1));
            if self.compresses_unasked(&packet.payload) {
                return Box::pin(self.refuse_compression()).await;
            }
            let command = packet.first_byte();
            if command == Some(Command::Quit as u8) && self.context.pool.max_idle > 0 {
                // Keep the server connection for the next client instead of
                // letting the server close it.
                return Phase::Disconnect(None);
            }
            self.at_rest = false;
            self.bytes_in += packet.raw.len() as u64;
            self.mailbox.show_command();
            self.command = Some(packet.payload.clone());
            // Boxed for the same reason as the phases in `run`.
            if let Err(error) = Box::pin(self.execute(&packet)).await {
                return Phase::Disconnect(Some(error));
            }
            self.command = None;
            let shown = std::mem::take(&mut self.command_shown);
            self.mailbox.show_idle(self.bytes_in, self.bytes_out, shown);
            if command == Some(Command::Quit as u8) || self.state.close_after_reply {
                return Phase::Disconnect(None);
            }
        }
    }

    /// Shows who the session is in the process list (after the login, and
    /// when a command changed it).
    pub(super) fn show_identity(&self) {
        let backend = self
            .server
            .as_ref()
            .map(|server| (server.name(), server.lease.backend().ndx));
        self.mailbox.show_identity(
            &self.state.username,
            &self.state.default_db,
            backend,
            self.state.server_thread_id,
        );
    }
}
