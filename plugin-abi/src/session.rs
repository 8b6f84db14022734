//! Per-connection data exchanged with hooks: the session state the host
//! keeps, the decisions hooks return, responses a hook can send to the client,
//! and injected queries with their results.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

/// A listening address a plugin asks the host to accept connections on.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    /// The address in MySQL Proxy syntax: `host:port`, `:port` (all IPv4
    /// interfaces), `[ipv6]:port`, or a host alone (port 3306).
    pub address: RString,
    /// A short name for logs, e.g. `proxy` or `admin`.
    pub name: RString,
    /// How long to wait for a backend connection to be established, in
    /// milliseconds (MySQL Proxy's `--proxy-connect-timeout`).
    pub connect_timeout_ms: u64,
    /// How long to wait for a peer to send what the protocol expects next,
    /// in milliseconds (`--proxy-read-timeout`).
    pub read_timeout_ms: u64,
    /// How long to wait for a peer to accept what is written to it, in
    /// milliseconds (`--proxy-write-timeout`).
    pub write_timeout_ms: u64,
    /// How the host picks a backend for a client when the plugin leaves the
    /// choice to it.
    pub balance: BalancePolicy,
    /// Reuse of authenticated server connections between clients.
    pub pool: PoolSpec,
}

/// The connection pool of a listener's sessions: when a client leaves an
/// idle session, its authenticated server connection is kept for the next
/// client of the same backend instead of being closed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    /// Idle connections kept per backend; 0 turns the pool off.
    pub max_idle: u32,
    /// Idle connections never closed for being idle too long.
    pub min_idle: u32,
    /// Idle connections beyond `min_idle` are closed after this long, in
    /// milliseconds.
    pub idle_timeout_ms: u64,
    /// How a pooled connection is handed to its next client.
    pub reset: PoolReset,
}

/// How a pooled connection is handed to a new client.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolReset {
    /// COM_CHANGE_USER with the new client's credentials: the server checks
    /// them and resets all session state.
    ChangeUser,
    /// No round trip for the login: the client must log in as the user the
    /// connection was opened with, with the same password (checked by the
    /// proxy); COM_RESET_CONNECTION then resets the session state
    /// (`--proxy-pool-no-change-user`).
    ResetConnection,
}

/// The host's rule for picking a read-write backend for a new client.
/// Backends that are down or offline are never picked.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalancePolicy {
    /// Fewest connected clients; ties go to the lowest index (MySQL Proxy
    /// 0.8's rule, the default).
    LeastConnections,
    /// Each backend in turn.
    RoundRobin,
    /// In proportion to the backends' weights (smooth weighted round-robin).
    Weighted,
    /// The first usable one in index order: an ordered failover list.
    FirstAvailable,
}

impl BalancePolicy {
    /// Every policy with its option value.
    pub const ALL: [(&'static str, BalancePolicy); 4] = [
        ("least-connections", BalancePolicy::LeastConnections),
        ("round-robin", BalancePolicy::RoundRobin),
        ("weighted", BalancePolicy::Weighted),
        ("first-available", BalancePolicy::FirstAvailable),
    ];

    /// Parses an option value such as `round-robin`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }
}

impl ListenerSpec {
    /// A listener with MySQL Proxy's default timeouts: connect 2 s, read and
    /// write 8 hours.
    pub fn new(name: &str, address: &str) -> Self {
        Self {
            address: address.into(),
            name: name.into(),
            connect_timeout_ms: 2_000,
            read_timeout_ms: 8 * 3600 * 1000,
            write_timeout_ms: 8 * 3600 * 1000,
            balance: BalancePolicy::LeastConnections,
            pool: PoolSpec {
                max_idle: 0,
                min_idle: 0,
                idle_timeout_ms: 300_000,
                reset: PoolReset::ChangeUser,
            },
        }
    }
}

/// What the host knows about one client connection, handed to every hook.
///
/// The host owns it and keeps it current between hooks; hooks read it and may
/// set the fields documented as writable.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct SessionState {
    /// The host's id for this client connection (unique in the process).
    pub connection_id: u64,
    /// Index of the listener (in the order the plugin declared them) that
    /// accepted the connection.
    pub listener_ndx: u32,
    /// The client's address (`ip:port`).
    pub client_address: RString,
    /// The proxy's local address the client connected to (`ip:port`).
    pub local_address: RString,
    /// Index (0-based, in [`crate::HostFfi::backends`] order) of the backend
    /// this connection uses; `RNone` while there is none.
    pub backend_ndx: ROption<u32>,
    /// The backend's address (`ip:port`), empty while there is no backend.
    pub server_address: RString,
    /// The server's connection id, from its handshake (0 until then).
    pub server_thread_id: u32,
    /// The server's version string, from its handshake.
    pub server_version: RString,
    /// Capabilities offered in the handshake sent to the client.
    pub server_capabilities: u64,
    /// Capabilities the client asked for in its auth response.
    pub client_capabilities: u64,
    /// The user name from the client's auth response.
    pub username: RString,
    /// The current default schema (from the auth response, then COM_INIT_DB
    /// and `USE`); empty if none.
    pub default_db: RString,
    /// The auth plugin named by the client's auth response.
    pub auth_plugin_name: RString,
    /// The server status flags of the last OK/EOF relayed (in transaction,
    /// autocommit, ...).
    pub server_status: u16,
    /// Writable: set to true to close the connection once the reply to the
    /// current client command has been written.
    pub close_after_reply: bool,
}

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

/// The server's response to one injected query, handed to `read_query_result`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct InjectedResult {
    /// The id given in [`Injection::id`].
    pub id: i64,
    /// The payload that was sent.
    pub query: RVec<u8>,
    pub kind: ResultKind,
    /// From the final OK packet (0 for result sets).
    pub affected_rows: u64,
    pub last_insert_id: u64,
    /// From the final OK or EOF packet.
    pub warnings: u16,
    pub server_status: u16,
    /// Number of row packets and their total size including headers.
    pub row_count: u64,
    pub bytes: u64,
    /// Microseconds from sending the query to the first and to the last
    /// response packet.
    pub query_time_us: u64,
    pub response_time_us: u64,
    /// The response's packet payloads, in order, when the injection asked
    /// for `buffer_result`; empty otherwise.
    pub packets: RVec<RVec<u8>>,
}

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
