//! The login phase's pool branch: a client greeted by a pooled connection
//! logs in on it with COM_CHANGE_USER (or, with
//! `--proxy-pool-no-change-user`, by a check against the connection's own
//! login), after the connection was made to fit the client (its
//! connection-bound capabilities, its multi-statements option). Charted in
//! `core/LIFECYCLE.md`, "The pool path".

use std::sync::Arc;

use bytes::Bytes;
use mysql_proxy_plugin_abi::{Response, SqlError};
use mysql_proxy_protocol::codec;
use mysql_proxy_protocol::constants::{CapabilityFlags, OK_HEADER};
use mysql_proxy_protocol::packets::{
    parse_connect_attrs, AuthSwitchRequest, ComChangeUser, ComInitDb, ComResetConnection,
    HandshakeResponse41, HandshakeV10,
};

use super::lifecycle::Phase;
use super::state::{client_error, text, ClientStage, Session};
use crate::backend::courtesy;
use crate::backend::pool::{Login, PoolReset};
use crate::backend::server::{LoginState, ServerConn, TAKE_BOUND_CAPABILITIES};
use crate::backend::BackendLease;
use crate::error::SessionError;

impl Session {
    /// Records the client's login on the server connection: what the pool
    /// files the connection under if it is pooled later.
    pub(super) fn note_login(&mut self, greeting: Bytes, auth: &HandshakeResponse41) {
        // Copies: slices would keep the whole read buffer they were cut from
        // alive for the life of the session.
        let copy = |field: Option<&Bytes>| Bytes::copy_from_slice(field.map_or(&[][..], |f| f));
        self.login = Some(Login {
            greeting,
            username: copy(Some(&auth.username)),
            auth_response: copy(Some(&auth.auth_response)),
            auth_plugin: copy(auth.auth_plugin_name.as_ref()),
            // A pooled connection keeps what its first client negotiated.
            capabilities: match self.server.as_ref().and_then(ServerConn::pooled) {
                Some(pooled) => pooled.capabilities,
                None => self.capabilities,
            },
            character_set: auth.character_set,
            attributes: copy(auth.connect_attrs.as_ref()),
            database: copy(auth.database.as_ref()),
            thread_id: self.state.server_thread_id,
            server_status: self.state.server_status,
            pristine: false,
        });
    }

    pub(super) fn is_pooled(&self) -> bool {
        self.server.as_ref().and_then(ServerConn::pooled).is_some()
    }

    /// The client logs in on a pooled connection: COM_CHANGE_USER with its
    /// credentials (the server checks them and resets the session), or,
    /// with `--proxy-pool-no-change-user`, a local check against the
    /// connection's own login (the session was reset when it was pooled).
    ///
    /// A connection opened by a client with other connection-bound (or,
    /// where they are not masked, format) capabilities is first exchanged
    /// for one that matches.
    pub(super) async fn pooled_login(&mut self, auth: &HandshakeResponse41, auth_seq: u8) -> Phase {
        let bound = self.capabilities.intersection(TAKE_BOUND_CAPABILITIES);
        let mismatch = self
            .server
            .as_ref()
            .and_then(ServerConn::pooled)
            .is_some_and(|p| p.capabilities.intersection(TAKE_BOUND_CAPABILITIES) != bound);
        // A client without plugin auth cannot be asked for another answer:
        // it keeps the connection it was greeted by.
        if mismatch && self.capabilities.contains(CapabilityFlags::PLUGIN_AUTH) {
            let (auth, auth_seq) = match self.change_connection(auth, auth_seq, bound).await {
                Ok(answered) => answered,
                Err(phase) => return phase,
            };
            return if self.is_pooled() {
                self.log_in_pooled(&auth, auth_seq).await
            } else {
                self.send_login(auth, auth_seq).await
            };
        }
        self.log_in_pooled(auth, auth_seq).await
    }

    /// Puts the pooled connection the client was greeted by back, and takes
    /// one with the client's connection-bound capabilities `bound` from
    /// the pool, or opens a new one. Its server greeted with another
    /// challenge than the one the client answered, so the client is asked
    /// to answer that one: an auth switch request naming the connection's
    /// auth plugin, with its challenge. Returns the client's login with the
    /// new answer, and that answer's sequence id.
    async fn change_connection(
        &mut self,
        auth: &HandshakeResponse41,
        auth_seq: u8,
        bound: CapabilityFlags,
    ) -> Result<(HandshakeResponse41, u8), Phase> {
        let Some(greeted_by) = self.server.take() else {
            return Err(Phase::Disconnect(Some(SessionError::NoServerConnection)));
        };
        let backend = Arc::clone(greeted_by.lease.backend());
        self.release(greeted_by, false).await;
        let limits = self.context.limits;
        let lease = BackendLease::new(Arc::clone(&backend));
        let mut server = match ServerConn::from_pool(lease, limits, &self.context.pool, Some(bound))
        {
            Ok(server) => server,
            Err(lease) => match ServerConn::open(lease, limits, self.context.connect_timeout).await
            {
                Some(server) => server,
                None => return Err(Phase::Disconnect(Some(SessionError::NoBackend))),
            },
        };
        slog::debug!(
            self.logger,
            "login moved to another connection to {} (connection-bound capabilities differ)",
            backend.name
        );
        let greeted = server.greeting.take();
        let greeting_frame = match server.pooled() {
            Some(pooled) => pooled.greeting.clone(),
            None => greeted.as_ref().map(|g| g.raw.clone()).unwrap_or_default(),
        };
        let greeting = greeted.and_then(|g| HandshakeV10::decode(&g.payload).ok());
        self.server = Some(server);
        let Some(greeting) = greeting else {
            return Err(Phase::Disconnect(Some(SessionError::BackendProtocol {
                backend: backend.name.clone(),
                message: "bad handshake".to_string(),
            })));
        };
        let plugin = greeting
            .auth_plugin_name
            .unwrap_or_else(|| Bytes::from_static(b"mysql_native_password"));
        let switch = AuthSwitchRequest::with_challenge(plugin.clone(), &greeting.auth_plugin_data);
        let seq = auth_seq.wrapping_add(1);
        let asked = self.client.send_payloads(seq, &[switch.to_bytes()]).await;
        let answer = match asked {
            Ok(next) => self.client.read_packet_numbered(next).await,
            Err(error) => Err(error),
        }
        .map_err(|error| Phase::Disconnect(Some(client_error(error))))?;
        self.stage = ClientStage::Expecting(answer.last_seq.wrapping_add(1));
        let mut answered = auth.clone();
        answered.auth_response = answer.payload;
        answered.auth_plugin_name = Some(plugin);
        self.note_login(greeting_frame, &answered);
        Ok((answered, answer.last_seq))
    }

    /// Sends the client's login to a new server connection, whose sequence
    /// starts at 1 where the client's continues from `auth_seq`.
    async fn send_login(&mut self, mut auth: HandshakeResponse41, auth_seq: u8) -> Phase {
        auth.capabilities.remove(self.masked_capabilities());
        let Some(server) = self.server.as_mut() else {
            return Phase::Disconnect(Some(SessionError::NoServerConnection));
        };
        server.login = LoginState::Sent { reply_due: None };
        if let Err(error) = server
            .conn
            .write_all(&codec::frame(1, &auth.to_bytes()))
            .await
        {
            return Phase::Disconnect(Some(server.error(error)));
        }
        server.auth_seq_shift = auth_seq.wrapping_sub(1);
        Phase::ReadAuthResult
    }

    /// `pooled_login` on a connection with the client's connection-bound
    /// capabilities.
    async fn log_in_pooled(&mut self, auth: &HandshakeResponse41, auth_seq: u8) -> Phase {
        let Some(pooled) = self.server.as_ref().and_then(ServerConn::pooled).cloned() else {
            return Phase::Disconnect(Some(SessionError::NoServerConnection));
        };
        let reset = self.context.pool.reset;
        let same_login =
            pooled.username == auth.username && pooled.auth_response == auth.auth_response;
        if reset == PoolReset::ResetConnection && !same_login {
            // The connection stays as the pool gave it and goes back.
            let error = SqlError::new(1045, "28000", "(proxy-pool) login failed");
            return self.refuse(error).await;
        }
        // The connection is logged in as this client already (same user,
        // same answer to the same challenge: the same password) and was
        // reset when it was pooled (not so if a plugin parked it between
        // commands): nothing for the server to check, no round trip. Only what COM_CHANGE_USER would set differently sends
        // the login to the server after all: another character set, other
        // connection attributes, or no database where the connection has
        // one (COM_CHANGE_USER clears it; another database is set with
        // COM_INIT_DB).
        let wanted_db = auth.database.as_deref().unwrap_or_default();
        let relogin_needed = reset == PoolReset::ChangeUser
            && !(same_login
                && pooled.pristine
                && pooled.auth_plugin == auth.auth_plugin_name.as_deref().unwrap_or_default()
                && pooled.character_set == auth.character_set
                && same_attributes(&pooled.attributes, auth.connect_attrs.as_ref())
                && (!wanted_db.is_empty() || pooled.database.is_empty()));
        let Some(server) = self.server.as_mut() else {
            return Phase::Disconnect(Some(SessionError::NoServerConnection));
        };
        // Multi-statements follow the client: COM_SET_OPTION when the
        // connection's first client (or its last) chose otherwise.
        let wanted = self
            .capabilities
            .contains(CapabilityFlags::MULTI_STATEMENTS);
        if pooled
            .capabilities
            .contains(CapabilityFlags::MULTI_STATEMENTS)
            != wanted
        {
            if let Err(error) = server.set_multi_statements(wanted).await {
                return Phase::Disconnect(Some(error));
            }
            if let Some(login) = self.login.as_mut() {
                login
                    .capabilities
                    .set(CapabilityFlags::MULTI_STATEMENTS, wanted);
            }
        }
        server.login = LoginState::Sent { reply_due: None };
        if relogin_needed {
            // Laid out by the capabilities the connection was opened with,
            // by which the server parses it.
            let change_user =
                ComChangeUser::from_handshake_response(auth).to_bytes(pooled.capabilities);
            if let Err(error) = server.conn.write_all(&codec::frame(0, &change_user)).await {
                return Phase::Disconnect(Some(server.error(error)));
            }
            // The server answers with sequence 1; the client expects the one
            // after its auth response.
            server.auth_seq_shift = auth_seq;
            return Phase::ReadAuthResult;
        }
        if !pooled.pristine {
            // Parked by a plugin with its session: reset now.
            match courtesy::command(&mut server.conn, &ComResetConnection::PAYLOAD).await {
                Ok(reply) if reply.first_byte() == Some(OK_HEADER) => {}
                Ok(reply) => {
                    return Phase::Disconnect(Some(SessionError::BackendProtocol {
                        backend: server.name().to_string(),
                        message: format!(
                            "COM_RESET_CONNECTION refused: {}",
                            courtesy::error_text(&reply.payload)
                        ),
                    }))
                }
                Err(error) => return Phase::Disconnect(Some(server.error(error))),
            }
        }
        // The connection was reset (its database kept, and noted when it
        // was parked); the client's database is all that may remain to set.
        self.state.server_db = text(&pooled.database);
        if let Some(db) = auth
            .database
            .as_ref()
            .filter(|db| !db.is_empty() && **db != pooled.database)
        {
            let init_db = ComInitDb::new(db.clone()).to_bytes();
            match courtesy::command(&mut server.conn, &init_db).await {
                Ok(reply) if reply.first_byte() == Some(OK_HEADER) => {}
                Ok(reply) => {
                    // E.g. the database does not exist: tell the client.
                    let _ = self
                        .client
                        .send_payloads(auth_seq.wrapping_add(1), &[reply.payload])
                        .await;
                    return Phase::Disconnect(None);
                }
                Err(error) => return Phase::Disconnect(Some(server.error(error))),
            }
            self.state.server_db = text(db);
        }
        server.login = LoginState::LoggedIn;
        match self.send_response(&Response::Ok(Default::default())).await {
            Ok(()) => Phase::Command,
            Err(error) => Phase::Disconnect(Some(error)),
        }
    }
}

/// Whether two connection-attribute blocks say the same, in any order
/// (drivers that keep their attributes in a hash map send them in another
/// order on every connection).
fn same_attributes(pooled: &Bytes, client: Option<&Bytes>) -> bool {
    let client = client.cloned().unwrap_or_default();
    if *pooled == client {
        return true;
    }
    match (parse_connect_attrs(pooled), parse_connect_attrs(&client)) {
        (Ok(mut pooled), Ok(mut client)) => {
            pooled.sort_unstable();
            client.sort_unstable();
            pooled == client
        }
        _ => false,
    }
}
