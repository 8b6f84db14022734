//! What every session of one listener shares: its plugin, the backends,
//! the timeouts and limits, the pool settings, the live sessions.

use std::sync::Arc;
use std::time::Duration;

use mysql_proxy_plugin_abi::PluginBox;

use crate::backend::{BackendRegistry, BalancePolicy, PoolSpec};
use crate::net::Limits;
use crate::sessions::SessionTracker;

/// Per-listener settings every session of that listener shares.
pub struct ListenerContext {
    pub plugin: Arc<PluginBox>,
    /// Shared by every session's entry in the process list.
    pub plugin_name: Arc<str>,
    pub listener_ndx: u32,
    pub registry: Arc<BackendRegistry>,
    pub logger: slog::Logger,
    pub connect_timeout: Duration,
    pub balance: BalancePolicy,
    pub pool: PoolSpec,
    pub limits: Limits,
    pub sessions: Arc<SessionTracker>,
    /// Whether its sessions count toward `--max-connections` (not for
    /// administrative ports).
    pub counted: bool,
    /// The time a client has from its connection to the end of its login
    /// (`--login-timeout`); none for no limit.
    pub login_timeout: Option<Duration>,
    /// See [`crate::backend::BackendSettings::buffered_result_limit`].
    pub buffered_result_limit: u64,
}
