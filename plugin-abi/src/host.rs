//! What the host offers plugins: logging, the backend registry, the
//! process list and KILL.

use abi_stable::{
    sabi_trait,
    std_types::{RArc, RBox, RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::{ResultSetResponse, SqlError};

/// Log levels, most severe first (MySQL Proxy's names). Exhaustive: the set
/// is MySQL Proxy's and fixed.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Critical,
    Warning,
    Message,
    Info,
    Debug,
}

impl LogLevel {
    /// The level's name as used by `--log-level`.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Warning => "warning",
            LogLevel::Message => "message",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// Health of a backend.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = 1, traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum BackendState {
    /// Not connected to yet (or woken up after being down for a while).
    Unknown,
    /// The last connect succeeded.
    Up,
    /// The last connect failed; no new clients are sent to it.
    Down,
    /// Taken out by an operator: existing sessions stay, no new ones.
    Offline,
}

impl BackendState {
    /// The lower-case name shown by the admin interface.
    pub fn name(self) -> &'static str {
        match self {
            BackendState::Unknown => "unknown",
            BackendState::Up => "up",
            BackendState::Down => "down",
            BackendState::Offline => "offline",
        }
    }
}

/// Role of a backend.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = 1, traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum BackendType {
    /// From `--proxy-backend-addresses`: takes reads and writes.
    ReadWrite,
    /// From `--proxy-read-only-backend-addresses`.
    ReadOnly,
}

impl BackendType {
    /// The short name shown by the admin interface (`rw` / `ro`).
    pub fn name(self) -> &'static str {
        match self {
            BackendType::ReadWrite => "rw",
            BackendType::ReadOnly => "ro",
        }
    }
}

/// One backend as the host shows it to plugins: a live view (each call
/// reads the current value), appended to in compatible releases like
/// [`crate::SessionFfi`].
#[sabi_trait]
pub trait BackendInfoFfi: Send + Sync + 'static {
    /// 0-based index (order of registration).
    fn ndx(&self) -> u32;
    /// Normalized address, e.g. `127.0.0.1:3306`.
    fn address(&self) -> RStr<'_>;
    fn state(&self) -> BackendState_NE;
    fn backend_type(&self) -> BackendType_NE;
    /// Client connections currently using it.
    fn connected_clients(&self) -> u64;
    /// Authenticated server connections waiting in its pool.
    fn idle_connections(&self) -> u64;
    /// Share of new clients under the `weighted` policy (default 1).
    fn weight(&self) -> u32;
    /// Connections to it that succeeded / failed (clients and health checks
    /// alike).
    fn connects(&self) -> u64;
    fn connect_failures(&self) -> u64;
    /// Client commands relayed to it.
    fn queries(&self) -> u64;
    /// Bytes relayed to and from it.
    fn bytes(&self) -> u64;
    /// Client sessions it ended by failing (lost connection, timeout,
    /// protocol error).
    fn errors(&self) -> u64;
    /// When the state last changed, in seconds since the Unix epoch.
    fn state_since(&self) -> u64;
    /// Why the state last changed, e.g. `health check failed: connection
    /// refused`.
    #[sabi(last_prefix_field)]
    fn state_reason(&self) -> RString;
}

/// A backend's view, owned by the plugin that asked for it.
pub type BackendInfo = BackendInfoFfi_TO<RBox<()>>;

/// The host, as plugins see it. Cheap to clone and usable from any thread.
#[sabi_trait]
pub trait HostFfi: Send + Sync + Clone + 'static {
    /// Writes a line to the proxy's log.
    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// All registered backends, in index order.
    fn backends(&self) -> RVec<BackendInfo>;

    /// Registers a backend; returns its index. The address may end in
    /// `@<weight>` (e.g. `db1:3306@3`). Fails on an unparsable or duplicate
    /// address (the message says which).
    fn add_backend(&self, address: RStr<'_>, backend_type: BackendType_NE)
        -> RResult<u32, RString>;

    /// Sets a backend's state (e.g. `Offline` to drain it); `reason` is
    /// logged and shown with the state.
    fn set_backend_state(
        &self,
        ndx: u32,
        state: BackendState_NE,
        reason: RStr<'_>,
    ) -> RResult<(), RString>;

    /// Sets one of the host's settings of how sessions use the backends
    /// (those every session shares, whichever listener accepted it), by
    /// name: `balance` (least-connections, round-robin, weighted,
    /// first-available), `pool-max-idle`, `pool-min-idle` (counts),
    /// `pool-idle-timeout` (seconds), `pool-reset` (change-user,
    /// reset-connection). Call it from `init`: the engine reads them when it
    /// starts. Fails naming the setting and what it expects; an unknown
    /// name fails too, so a plugin can tell what a host understands.
    fn set_option(&self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;

    /// The process list: a row per client session of every listener (its
    /// connection id, plugin, user, client address, backend, default
    /// database, state `login` / `idle` / `query`, command and its text
    /// truncated, seconds in that state, bytes in and out). The host renders
    /// the table, so that a column it adds needs no new plugin.
    fn connections(&self) -> ResultSetResponse;

    /// `KILL <id>` (`query_only` false): ends client session `id`, between
    /// its commands or in the middle of one (its client's connection is
    /// closed, as MySQL closes a killed connection). `KILL QUERY <id>`
    /// (`query_only` true): asks the session's backend, over a connection of
    /// the proxy's own (logged in as `--health-check-user`), to kill the
    /// query the session is running there; the session stays up and its
    /// client gets the server's error for the query. Fails with 1094
    /// "Unknown thread id" for a session that does not exist.
    #[sabi(last_prefix_field)]
    fn kill(&self, id: u64, query_only: bool) -> RResult<(), SqlError>;
}

/// The host handle given to a plugin's `init`.
pub type HostHandle = HostFfi_TO<RArc<()>>;
