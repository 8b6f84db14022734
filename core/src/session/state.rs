//! The state every phase of a session works on: the client connection,
//! the server connection (once there is one), what was negotiated, and
//! where the client stands in the protocol. The phases that change it are
//! in `lifecycle.rs`, the pool branch of the login in `pooled_login.rs`,
//! the relay of responses in `relay.rs`.

use std::sync::Arc;

use bytes::Bytes;
use mysql_proxy_plugin_abi::{
    abi_stable::nonexhaustive_enum::{GetEnumInfo, NonExhaustive},
    abi_stable::sabi_trait::TD_Opaque,
    abi_stable::std_types::{ROption, RResult, RStr, RString},
    HooksBox, Session as HookSession, SessionFfi, SessionFfi_TO, SqlError,
};
use mysql_proxy_protocol::constants::CapabilityFlags;

use super::context::ListenerContext;
use crate::backend::pool::Login;
use crate::backend::server::ServerConn;
use crate::error::SessionError;
use crate::net::{Conn, ConnError};
use crate::sessions::{Control, Seat, SessionRegistration};

/// Attributes a connection failure to the client.
pub(super) fn client_error(error: ConnError) -> SessionError {
    match error {
        ConnError::Closed => SessionError::ClientClosed,
        ConnError::Timeout => SessionError::ClientTimeout,
        ConnError::Io(error) => SessionError::ClientIo(error),
        ConnError::TooLarge { size, max } => SessionError::ClientPacketTooLarge { size, max },
        ConnError::OutOfOrder { expected, got } => SessionError::ClientOutOfOrder { expected, got },
    }
}

/// Where the client stands in the protocol, so an error can be framed the
/// way the client expects it at that moment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientStage {
    /// No handshake sent yet: errors use the pre-4.1 format with sequence 0.
    BeforeHandshake,
    /// Handshake sent: 4.1 errors continuing the client's sequence.
    Expecting(u8),
    /// Part of a response was already written: nothing can be added.
    MidResponse,
}

/// What the session's plugin sees of it (through [`HookView`]), kept
/// current by the phases.
#[derive(Debug, Default)]
pub struct SessionState {
    pub connection_id: u64,
    pub listener_ndx: u32,
    pub client_address: RString,
    pub local_address: RString,
    /// The backend of the server connection, or the one a plugin chose
    /// while none of it was pooled.
    pub backend_ndx: Option<u32>,
    pub server_address: RString,
    pub server_thread_id: u32,
    pub server_version: RString,
    pub server_capabilities: u64,
    pub client_capabilities: u64,
    pub username: RString,
    pub default_db: RString,
    /// The server connection's default database.
    pub server_db: RString,
    pub auth_plugin_name: RString,
    pub server_status: u16,
    pub close_after_reply: bool,
    pub login: LoginProgress,
}

/// How far the client's login has come: what a plugin's swap of the
/// server connection may do (see `swap.rs`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum LoginProgress {
    /// No handshake sent yet: a pooled connection of any user may be taken
    /// and greet the client.
    #[default]
    NotGreeted,
    /// The handshake went out, the login is under way: the connection is
    /// bound to it.
    Greeted,
    /// The server accepted the login: connections of the same user only.
    LoggedIn,
}

/// The session as its plugin's hooks see it: the state, and what a hook
/// may change (the server connection it may park or swap).
pub(super) struct HookView<'a> {
    pub state: &'a mut SessionState,
    pub server: &'a mut Option<ServerConn>,
    /// The login the server connection is filed under if it is pooled.
    pub login: &'a mut Option<Login>,
    pub context: &'a ListenerContext,
    /// Capabilities in effect between client and server.
    pub capabilities: CapabilityFlags,
    /// Whether the server connection is between commands, so that it may
    /// be parked (not so when the session ends in the middle of one).
    pub at_rest: bool,
    pub logger: &'a slog::Logger,
}

impl SessionFfi for HookView<'_> {
    fn connection_id(&self) -> u64 {
        self.state.connection_id
    }
    fn listener_ndx(&self) -> u32 {
        self.state.listener_ndx
    }
    fn client_address(&self) -> RStr<'_> {
        self.state.client_address.as_rstr()
    }
    fn local_address(&self) -> RStr<'_> {
        self.state.local_address.as_rstr()
    }
    fn backend_ndx(&self) -> ROption<u32> {
        self.state.backend_ndx.into()
    }
    fn server_address(&self) -> RStr<'_> {
        self.state.server_address.as_rstr()
    }
    fn server_thread_id(&self) -> u32 {
        self.state.server_thread_id
    }
    fn server_version(&self) -> RStr<'_> {
        self.state.server_version.as_rstr()
    }
    fn server_capabilities(&self) -> u64 {
        self.state.server_capabilities
    }
    fn client_capabilities(&self) -> u64 {
        self.state.client_capabilities
    }
    fn username(&self) -> RStr<'_> {
        self.state.username.as_rstr()
    }
    fn default_db(&self) -> RStr<'_> {
        self.state.default_db.as_rstr()
    }
    fn auth_plugin_name(&self) -> RStr<'_> {
        self.state.auth_plugin_name.as_rstr()
    }
    fn server_status(&self) -> u16 {
        self.state.server_status
    }
    fn close_after_reply(&self) -> bool {
        self.state.close_after_reply
    }
    fn set_close_after_reply(&mut self, close: bool) {
        self.state.close_after_reply = close;
    }
    fn set_backend_ndx(&mut self, ndx: ROption<u32>) {
        match ndx.into_option() {
            None => self.park_server(),
            Some(ndx) => self.take_server(ndx),
        }
    }
    fn has_server(&self) -> bool {
        self.server.is_some()
    }
    fn server_default_db(&self) -> RStr<'_> {
        self.state.server_db.as_rstr()
    }
}

impl Session {
    /// Calls one of the plugin's hooks with the session's view.
    pub fn call_hook<R>(&mut self, hook: impl FnOnce(&mut HooksBox, HookSession<'_>) -> R) -> R {
        let mut view = HookView {
            state: &mut self.state,
            server: &mut self.server,
            login: &mut self.login,
            context: &self.context,
            capabilities: self.capabilities,
            at_rest: !self.ending_mid_command,
            logger: &self.logger,
        };
        hook(
            &mut self.hooks,
            SessionFfi_TO::from_ptr(&mut view, TD_Opaque),
        )
    }
}

pub(super) struct Session {
    pub context: Arc<ListenerContext>,
    pub hooks: HooksBox,
    pub state: SessionState,
    pub client: Conn,
    pub server: Option<ServerConn>,
    /// Capabilities in effect between client and server (those both sides
    /// announced); the relay tracks responses with them.
    pub capabilities: CapabilityFlags,
    /// Capabilities of the handshake the client saw.
    pub greeting_capabilities: CapabilityFlags,
    pub stage: ClientStage,
    /// Backends that failed to connect for this client, not tried again.
    pub failed_backends: Vec<u32>,
    /// The handshake frame the client was sent (kept with the connection if
    /// it is pooled: the next client must answer the same challenge).
    pub greeting_frame: Bytes,
    /// The client's login, once its auth response was read.
    pub login: Option<Login>,
    /// True while the session waits for the next client command: the only
    /// moment its server connection may be pooled.
    pub at_rest: bool,
    /// Set when the session ends in the middle of a command: the server
    /// connection may then have a response in flight.
    pub ending_mid_command: bool,
    /// Set when the client's login asked for compression that was not
    /// offered, until its first command shows whether it compresses.
    pub check_compression: bool,
    /// The session's mailbox (control messages) and what it shows of
    /// itself in the process list.
    pub mailbox: SessionRegistration,
    /// Its place under `--max-connections`, given back when it ends.
    _seat: Option<Seat>,
    /// Bytes of commands received from the client, and of responses
    /// relayed to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The command running (kept to show it in the process list if it
    /// lasts), and whether it is shown.
    pub command: Option<Bytes>,
    pub command_shown: bool,
    pub logger: slog::Logger,
}

impl Session {
    pub fn new(
        context: Arc<ListenerContext>,
        hooks: HooksBox,
        state: SessionState,
        client: Conn,
        seat: Option<Seat>,
    ) -> Self {
        let logger = context.logger.new(slog::o!(
            "conn" => state.connection_id,
            "client" => state.client_address.to_string(),
        ));
        let mailbox = context.sessions.register(
            state.connection_id,
            &context.plugin_name,
            &state.client_address,
        );
        Self {
            context,
            hooks,
            state,
            client,
            server: None,
            capabilities: CapabilityFlags(0),
            greeting_capabilities: CapabilityFlags(0),
            stage: ClientStage::BeforeHandshake,
            failed_backends: Vec::new(),
            greeting_frame: Bytes::new(),
            login: None,
            at_rest: false,
            ending_mid_command: false,
            check_compression: false,
            mailbox,
            _seat: seat,
            bytes_in: 0,
            bytes_out: 0,
            command: None,
            command_shown: false,
            logger,
        }
    }
}

/// Reads a session's mailbox (between commands, or while it waits for a
/// response): the error that ends the session, if a message asks for that.
pub(super) fn read_mail(mailbox: &SessionRegistration) -> Option<SessionError> {
    mailbox
        .take_mail()
        .into_iter()
        .map(|message| match message {
            Control::Kill => SessionError::Killed,
        })
        .next()
}

/// Protocol text (a name, a version) for the session state: as sent when it
/// is UTF-8, the usual case and the cheap check, else with replacement
/// characters.
pub(super) fn text(bytes: &[u8]) -> RString {
    match std::str::from_utf8(bytes) {
        Ok(valid) => valid.into(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned().into(),
    }
}

/// A hook's result with the decision unwrapped: `Ok(None)` is a decision
/// variant this host does not know (from a newer plugin ABI).
pub(super) fn known<E: GetEnumInfo, S, I>(
    result: RResult<NonExhaustive<E, S, I>, SqlError>,
) -> Result<Option<E>, SqlError> {
    result
        .into_result()
        .map(|decision| decision.into_enum().ok())
}
