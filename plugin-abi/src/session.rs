//! Per-connection data exchanged with hooks: the session state the host
//! keeps, the decisions hooks return, responses a hook can send to the client,
//! and injected queries with their results.

use abi_stable::{
    sabi_trait,
    sabi_types::{RMut, RRef},
    std_types::{RBox, ROption, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// A listening address a plugin asks the host to accept connections on.
///
/// A plain struct on the plugin's side; it crosses the boundary as a
/// [`ListenerFfi`] object, so that a setting added in a later ABI version
/// reads as its default from a plugin built before it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    /// The address in MySQL Proxy syntax: `host:port`, `:port` (all IPv4
    /// interfaces), `[ipv6]:port`, a host alone (port 3306), or the path of
    /// a Unix socket.
    pub address: String,
    /// A short name for logs, e.g. `proxy` or `admin`.
    pub name: String,
    /// How long to wait for a backend connection to be established, in
    /// milliseconds (MySQL Proxy's `--proxy-connect-timeout`).
    pub connect_timeout_ms: u64,
    /// How long to wait for a peer to send what the protocol expects next,
    /// in milliseconds (`--proxy-read-timeout`).
    pub read_timeout_ms: u64,
    /// How long to wait for a peer to accept what is written to it, in
    /// milliseconds (`--proxy-write-timeout`).
    pub write_timeout_ms: u64,
    /// An administrative port (e.g. the admin plugin's): its clients are
    /// not counted toward `--max-connections`, so an operator can still
    /// get in when the proxy is full. Default: false.
    pub administrative: bool,
}

impl ListenerSpec {
    /// MySQL Proxy's default timeouts: connect 2 s, read and write 8 hours.
    pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
    pub const DEFAULT_READ_TIMEOUT_MS: u64 = 8 * 3600 * 1000;
    pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 8 * 3600 * 1000;

    /// A listener with MySQL Proxy's default timeouts.
    pub fn new(name: &str, address: &str) -> Self {
        Self {
            address: address.into(),
            name: name.into(),
            connect_timeout_ms: Self::DEFAULT_CONNECT_TIMEOUT_MS,
            read_timeout_ms: Self::DEFAULT_READ_TIMEOUT_MS,
            write_timeout_ms: Self::DEFAULT_WRITE_TIMEOUT_MS,
            administrative: false,
        }
    }
}

/// A listener as the host reads it. Methods after the `last_prefix_field`
/// of the version that introduced them have defaults: the host gets the
/// default from a plugin built before they existed.
#[sabi_trait]
pub trait ListenerFfi: Send + Sync + 'static {
    fn address(&self) -> RStr<'_>;
    fn name(&self) -> RStr<'_>;
    fn connect_timeout_ms(&self) -> u64;
    fn read_timeout_ms(&self) -> u64;
    #[sabi(last_prefix_field)]
    fn write_timeout_ms(&self) -> u64;
    /// Since 0.2.2. Whether this is an administrative port, not counted
    /// toward `--max-connections`.
    fn administrative(&self) -> bool {
        false
    }
}

impl ListenerFfi for ListenerSpec {
    fn address(&self) -> RStr<'_> {
        self.address.as_str().into()
    }
    fn name(&self) -> RStr<'_> {
        self.name.as_str().into()
    }
    fn connect_timeout_ms(&self) -> u64 {
        self.connect_timeout_ms
    }
    fn read_timeout_ms(&self) -> u64 {
        self.read_timeout_ms
    }
    fn write_timeout_ms(&self) -> u64 {
        self.write_timeout_ms
    }
    fn administrative(&self) -> bool {
        self.administrative
    }
}

/// An owned listener declaration.
pub type ListenerBox = ListenerFfi_TO<RBox<()>>;

/// What the host knows about one client connection, handed to every hook:
/// an object of the host's whose methods read the session's state (kept
/// current by the host between hooks) and change what a hook may change.
///
/// Methods are appended in compatible releases (after the
/// `last_prefix_field` of the first one); a plugin built against an older
/// release simply does not see the newer ones.
#[sabi_trait]
pub trait SessionFfi {
    /// The host's id for this client connection (unique in the process).
    fn connection_id(&self) -> u64;
    /// Index of the listener (in the order the plugin declared them) that
    /// accepted the connection.
    fn listener_ndx(&self) -> u32;
    /// The client's address (`ip:port`).
    fn client_address(&self) -> RStr<'_>;
    /// The proxy's local address the client connected to (`ip:port`).
    fn local_address(&self) -> RStr<'_>;
    /// Index (0-based, in [`crate::HostFfi::backends`] order) of the backend
    /// of the session's server connection, or the one chosen with
    /// [`set_backend_ndx`](Self::set_backend_ndx) while none of it was
    /// pooled; `RNone` while there is none.
    fn backend_ndx(&self) -> ROption<u32>;
    /// The backend's address (`ip:port`), empty while there is no server
    /// connection.
    fn server_address(&self) -> RStr<'_>;
    /// The server's connection id, from its handshake (0 until then).
    fn server_thread_id(&self) -> u32;
    /// The server's version string, from its handshake.
    fn server_version(&self) -> RStr<'_>;
    /// Capabilities offered in the handshake sent to the client.
    fn server_capabilities(&self) -> u64;
    /// Capabilities the client asked for in its auth response.
    fn client_capabilities(&self) -> u64;
    /// The user name from the client's auth response.
    fn username(&self) -> RStr<'_>;
    /// The client's current default schema (from the auth response, then
    /// COM_INIT_DB and COM_CHANGE_USER; a `USE` statement is not seen);
    /// empty if none.
    fn default_db(&self) -> RStr<'_>;
    /// The auth plugin named by the client's auth response.
    fn auth_plugin_name(&self) -> RStr<'_>;
    /// The server status flags of the last OK/EOF the server sent (in
    /// transaction, autocommit, ...), injected queries' included.
    fn server_status(&self) -> u16;
    /// Whether the connection closes once the reply to the current client
    /// command has been written.
    fn close_after_reply(&self) -> bool;
    /// Closes the connection once the reply to the current client command
    /// has been written (`true`), or not.
    #[sabi(last_prefix_field)]
    fn set_close_after_reply(&mut self, close: bool);

    // Since 0.2.1.

    /// Changes the session's server connection, at once (MySQL Proxy's
    /// `proxy.connection.backend_ndx = n`, 0-based here):
    ///
    /// - `RNone`: the server connection goes into its backend's pool as it
    ///   is (not reset: a later session of the same user may take it with
    ///   its default database and session variables) and the session has
    ///   none until a hook takes one;
    /// - `RSome(n)`: a pooled connection of backend `n` logged in as the
    ///   session's user (before the client's login: any, which the login
    ///   then changes to the client's user with COM_CHANGE_USER) becomes the
    ///   session's, its current one going into its own backend's pool; when
    ///   none is pooled, only the choice is remembered
    ///   ([`backend_ndx`](Self::backend_ndx)) and the current connection
    ///   stays.
    ///
    /// A connection is never handed to a session of another user, nor to
    /// one whose client negotiated other capabilities. A connection whose
    /// login is under way is not parked (the call logs why and changes
    /// nothing); one in a transaction is, with a warning in the log: the
    /// transaction goes with it. Between commands (in `read_query` before
    /// deciding, `read_query_result`, `read_auth_result` on the server's
    /// OK, `connect_server`, `disconnect_client`) is where this makes sense.
    fn set_backend_ndx(&mut self, ndx: ROption<u32>);

    /// Whether the session holds a server connection now.
    fn has_server(&self) -> bool;

    /// The default schema of the session's server connection, which
    /// differs from the client's (`default_db`) after a swap to a
    /// connection that was on another; empty if none.
    fn server_default_db(&self) -> RStr<'_>;
}

/// The session as hooks see it.
pub type Session<'a> = SessionFfi_TO<'a, RMut<'a, ()>>;

/// A MySQL error: what a hook returns to refuse something, and what the host
/// sends to the client as an ERR packet.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SqlError {
    /// MySQL error code, e.g. 1045 (access denied) or 1105 (unknown error).
    pub code: u16,
    /// Five-character SQLSTATE, e.g. `28000`.
    pub sql_state: RString,
    /// Human-readable message.
    pub message: RString,
}

impl SqlError {
    /// An error with the given code, SQLSTATE and message.
    pub fn new(code: u16, sql_state: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            sql_state: sql_state.into(),
            message: RString::from(message.into()),
        }
    }
}

/// An OK reply generated by a plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct OkResponse {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
    /// Optional human-readable info text (empty for none).
    pub info: RString,
}

/// A column of a result set generated by a plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ResponseColumn {
    pub name: RString,
    /// A `MYSQL_TYPE_*` code, e.g. 253 (VAR_STRING) or 8 (LONGLONG).
    pub column_type: u8,
}

/// A text result set generated by a plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct ResultSetResponse {
    pub columns: RVec<ResponseColumn>,
    /// One entry per row, one value per column; `RNone` is SQL NULL.
    pub rows: RVec<RVec<ROption<RVec<u8>>>>,
}

/// A reply a plugin sends to the client instead of (or before) the server's.
/// The host adds packet headers and sequence ids and honours the client's
/// capabilities (e.g. CLIENT_DEPRECATE_EOF); plugins never write them.
///
/// Unlike the decision enums this one is exhaustive: a new variant is a new
/// ABI version (refused at load time), since a host could not honour a reply
/// it cannot encode.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum Response {
    /// An OK packet (status: the session's current status flags).
    Ok(OkResponse),
    /// An ERR packet.
    Error(SqlError),
    /// A text result set: column count, column definitions, rows, end marker.
    ResultSet(ResultSetResponse),
    /// Packets sent as given (payloads only; the host frames them). Used for
    /// what has no typed form, e.g. a handshake built by the plugin.
    Raw(RVec<RVec<u8>>),
}

/// A query a hook queues for the server in place of (or in addition to) the
/// client's command.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Injection {
    /// Any value the plugin chooses; handed back in [`InjectedResult::id`].
    pub id: i64,
    /// The complete command payload (first byte: the COM_* code).
    pub payload: RVec<u8>,
    /// True: the host buffers the whole response and hands it to
    /// `read_query_result`, which decides whether the client sees it.
    /// False: the response is streamed to the client as it arrives and
    /// `read_query_result` only sees a summary.
    pub buffer_result: bool,
}

/// How a server response ended.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = 1, traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ResultKind {
    /// An OK packet (no result set).
    Ok,
    /// An ERR packet.
    Error,
    /// One or more result sets.
    ResultSet,
    /// Anything else (e.g. the reply to COM_STATISTICS).
    Other,
}

/// The server's response to one injected query, handed to
/// `read_query_result`: an object of the host's, read through its methods
/// (appended in compatible releases, like [`SessionFfi`]'s).
#[sabi_trait]
pub trait InjectedResultFfi {
    /// The id given in [`Injection::id`].
    fn id(&self) -> i64;
    /// The payload that was sent.
    fn query(&self) -> RSlice<'_, u8>;
    /// How the response ended.
    fn kind(&self) -> ResultKind_NE;
    /// From the response's first packet when it is an OK (0 for result
    /// sets).
    fn affected_rows(&self) -> u64;
    fn last_insert_id(&self) -> u64;
    /// From the final OK or EOF packet.
    fn warnings(&self) -> u16;
    fn server_status(&self) -> u16;
    /// Number of row packets (of every result set of the response) and
    /// their total size, headers included.
    fn row_count(&self) -> u64;
    fn bytes(&self) -> u64;
    /// Microseconds from sending the query to the first and to the last
    /// response packet.
    fn query_time_us(&self) -> u64;
    fn response_time_us(&self) -> u64;
    /// The response's packet payloads, in order, when the injection asked
    /// for `buffer_result`; empty otherwise.
    #[sabi(last_prefix_field)]
    fn packets(&self) -> RSlice<'_, RVec<u8>>;
}

/// An injected query's result as `read_query_result` sees it.
pub type InjectedResult<'a> = InjectedResultFfi_TO<'a, RRef<'a, ()>>;

/// Decision of `connect_server`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 12], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ConnectDecision {
    /// Let the host pick a backend (its balancing rule) and connect.
    Default,
    /// Connect to this backend (0-based index); if it is down or fails, the
    /// host falls back to its own choice.
    Backend(u32),
    /// Connect to no backend: send this to the client. If it is a protocol-10
    /// handshake (`Response::Raw`), the session continues without a server and
    /// the plugin answers every later hook itself; anything else (an error) is
    /// sent and the connection closed.
    Reply(Response),
    /// Since 0.2.2. As `Backend`, with a new connection even when the
    /// backend has pooled ones (MySQL Proxy's rule after a script took a
    /// pooled connection and did not use it).
    Fresh(u32),
}

impl ConnectDecision {
    /// Greets the client with `handshake` (a protocol-10 handshake
    /// payload the plugin built) and goes on without a server: the plugin
    /// plays the server (the admin port, a mock server).
    pub fn greeting(handshake: &[u8]) -> Self {
        ConnectDecision::Reply(Response::Raw(RVec::from(vec![RVec::from(
            handshake.to_vec(),
        )])))
    }
}

/// Decision of `read_handshake`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 12], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum HandshakeDecision {
    /// Send the server's handshake to the client.
    Forward,
    /// Send this handshake payload to the client instead.
    Rewrite(RVec<u8>),
    /// Send this to the client and close the connection (to refuse a client).
    Reply(Response),
}

/// Decision of `read_auth`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 12], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum AuthDecision {
    /// Send the client's auth response to the server (without a server: the
    /// host answers OK).
    Forward,
    /// Send this auth response payload to the server instead.
    Rewrite(RVec<u8>),
    /// Send this to the client as the auth result; nothing goes to the
    /// server. After an OK the command phase starts; after an error the
    /// connection is closed.
    Reply(Response),
}

/// Decision of `read_auth_result`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 12], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum AuthResultDecision {
    /// Send the server's reply to the client.
    Forward,
    /// Send this to the client instead. What happens next still follows the
    /// server's reply (OK: command phase; ERR: close).
    Replace(Response),
}

/// Decision of `read_query`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 12], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum QueryDecision {
    /// Send the client's command to the server and stream the response back.
    /// Anything queued is discarded.
    Forward,
    /// Drop the client's command; send the queued injections one at a time,
    /// calling `read_query_result` for each response. Exactly one response
    /// should reach the client. With an empty queue this acts as `Forward`.
    SendQueue,
    /// Send this to the client; nothing goes to the server (none is needed).
    /// Queued injections, if any, are then sent and their results handed to
    /// `read_query_result` (their results are not shown to the client).
    Reply(Response),
    /// Since 0.2.1. Neither forward the command nor answer it: for the
    /// commands a client expects no answer to (COM_STMT_CLOSE,
    /// COM_STMT_SEND_LONG_DATA, COM_QUIT), e.g. the close of a statement
    /// the plugin prepared itself. A client waits for an answer to any
    /// other command: it gets ERR 1105 instead of nothing.
    Discard,
}

/// Decision of `read_query_result`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 12], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ResultDecision {
    /// Buffered: send the server's result to the client (unless one was
    /// already sent for this command). Streamed: it was already sent.
    Forward,
    /// Buffered only: send this instead of the server's result.
    Replace(Response),
    /// Buffered only: send nothing for this injection.
    Ignore,
}
