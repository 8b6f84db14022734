//! A plugin changing the session's server connection from inside a hook
//! (`SessionFfi::set_backend_ndx`, MySQL Proxy's
//! `proxy.connection.backend_ndx`): parking it in its backend's pool, or
//! taking a pooled connection of another backend for the session's user.
//! Both happen at once, without I/O, so that the hook sees the result
//! (`has_server`) before it decides. Charted in `core/LIFECYCLE.md`,
//! "Swapping server connections".

use std::sync::Arc;

use bytes::Bytes;
use mysql_proxy_plugin_abi::abi_stable::std_types::RString;
use mysql_proxy_protocol::constants::{CapabilityFlags, StatusFlags};

use super::state::{text, HookView, LoginProgress};
use crate::backend::pool::{Login, PoolSpec, PooledConn};
use crate::backend::server::{LoginState, ServerConn, TAKE_BOUND_CAPABILITIES};
use crate::backend::BackendLease;

/// Capabilities a connection taken in the middle of a session must share
/// with the session's client: those a pooled connection must share with
/// any client that takes it, and the multi-statements option (which a
/// login on a pooled connection sets, but a swap has no round trip for).
const SWAP_BOUND_CAPABILITIES: CapabilityFlags =
    CapabilityFlags(TAKE_BOUND_CAPABILITIES.0 | CapabilityFlags::MULTI_STATEMENTS.0);

impl HookView<'_> {
    /// The pool's settings for a connection a plugin parks: the configured
    /// pool's, but with no limit on idle connections when the pool is off
    /// (the plugin manages its connections, as MySQL Proxy's scripts did;
    /// each parked connection was a session's, so they stay few).
    fn plugin_pool(&self) -> PoolSpec {
        let spec = self.context.pool;
        if spec.max_idle == 0 {
            PoolSpec {
                max_idle: u32::MAX,
                ..spec
            }
        } else {
            spec
        }
    }

    /// Whether the session's server connection, if it has one, could go
    /// into the pool now: between commands, its login settled and known
    /// (taken from the pool for this login, or logged in as the session's
    /// user).
    fn current_may_be_parked(&self) -> bool {
        match self.server.as_ref() {
            None => true,
            Some(server) => {
                self.at_rest
                    && match server.login {
                        LoginState::LoggedIn => self.login.is_some(),
                        LoginState::Pooled(_) => true,
                        LoginState::Greeted | LoginState::Sent { .. } => false,
                    }
            }
        }
    }

    /// `backend_ndx = None`: the server connection into its backend's pool,
    /// as it is.
    pub(super) fn park_server(&mut self) {
        if !self.at_rest {
            slog::debug!(
                self.logger,
                "plugin asked to park the server connection in the middle of a command; \
                 it is closed instead"
            );
            return;
        }
        let Some(server) = self.server.take() else {
            self.state.backend_ndx = None;
            return;
        };
        let login = match &server.login {
            LoginState::LoggedIn => self.login.take().map(|mut login| {
                // Its session goes with it, unreset.
                login.database = Bytes::copy_from_slice(self.state.server_db.as_bytes());
                login.server_status = self.state.server_status;
                login.pristine = false;
                login
            }),
            // Taken for this session's login, which never reached it: it
            // goes back as it came.
            LoginState::Pooled(login) => Some(Login::clone(login)),
            LoginState::Greeted | LoginState::Sent { .. } => None,
        };
        let Some(login) = login else {
            slog::warn!(
                self.logger,
                "plugin asked to park the server connection to {} while its login is \
                 under way (or after COM_CHANGE_USER); it stays",
                server.name()
            );
            *self.server = Some(server);
            return;
        };
        if StatusFlags(self.state.server_status)
            .intersects(StatusFlags::IN_TRANS | StatusFlags::IN_TRANS_READONLY)
        {
            slog::warn!(
                self.logger,
                "plugin parked the server connection to {} in the middle of a transaction: \
                 the transaction stays open on it",
                server.name()
            );
        }
        let backend = Arc::clone(server.lease.backend());
        let spec = self.plugin_pool();
        match server.conn.park() {
            Some(stream) => {
                let parked = backend.pool.park(PooledConn::new(stream, login), &spec);
                let outcome = if parked {
                    "parked"
                } else {
                    "closed: its pool is full"
                };
                slog::debug!(
                    self.logger,
                    "plugin parked the server connection to {}: {}",
                    backend.name,
                    outcome
                );
            }
            // Bytes pending: not between commands after all.
            None => slog::warn!(
                self.logger,
                "server connection to {} closed instead of parked: it was not at rest",
                backend.name
            ),
        }
        self.state.backend_ndx = None;
        self.state.server_address = RString::new();
    }

    /// `backend_ndx = Some(ndx)`: a pooled connection of backend `ndx` for
    /// the session's user, if there is one; else only the choice is
    /// remembered.
    pub(super) fn take_server(&mut self, ndx: u32) {
        let Some(backend) = self.context.registry.get(ndx) else {
            slog::warn!(
                self.logger,
                "plugin chose backend {} which does not exist",
                ndx
            );
            return;
        };
        self.state.backend_ndx = Some(ndx);
        if self
            .server
            .as_ref()
            .is_some_and(|server| server.lease.backend().ndx == ndx)
        {
            return;
        }
        let for_login = match self.state.login {
            LoginProgress::NotGreeted => true,
            LoginProgress::LoggedIn => false,
            LoginProgress::Greeted => {
                slog::warn!(
                    self.logger,
                    "plugin chose backend {} during the login: the login stays on its connection",
                    ndx
                );
                return;
            }
        };
        if !self.current_may_be_parked() {
            slog::warn!(
                self.logger,
                "plugin chose backend {} while the server connection cannot be parked (its \
                 login under way, or a command in flight): it stays",
                ndx
            );
            return;
        }
        let spec = self.plugin_pool();
        let user = self.state.username.as_bytes();
        let bound = self.capabilities.intersection(SWAP_BOUND_CAPABILITIES);
        let pooled = backend.pool.take_matching(&spec, |pooled| {
            for_login
                || (pooled.login.username == user
                    && pooled
                        .login
                        .capabilities
                        .intersection(SWAP_BOUND_CAPABILITIES)
                        == bound)
        });
        let Some(pooled) = pooled else {
            return;
        };
        let (stream, login) = pooled.into_parts();
        let (thread_id, database, status) =
            (login.thread_id, text(&login.database), login.server_status);
        let lease = BackendLease::new(Arc::clone(&backend));
        let (login_state, kept) = if for_login {
            (LoginState::Pooled(Box::new(login)), None)
        } else {
            (LoginState::LoggedIn, Some(login))
        };
        let Ok(taken) = ServerConn::resume(lease, self.context.limits, stream, login_state) else {
            return;
        };
        // The current connection goes to its own backend's pool.
        self.park_server();
        self.state.backend_ndx = Some(ndx);
        self.state.server_address = backend.name.as_str().into();
        self.state.server_thread_id = thread_id;
        self.state.server_db = database;
        if !for_login {
            self.state.server_status = status;
            *self.login = kept;
        }
        slog::debug!(
            self.logger,
            "plugin took a pooled server connection to {}",
            backend.name
        );
        *self.server = Some(taken);
    }
}
