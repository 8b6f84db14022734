//! Starting and stopping the engine: event threads, one listener per address
//! a plugin asks for, and the graceful shutdown that waits for sessions.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use mysql_proxy_plugin_abi::{HostHandle, PluginBox};

use crate::address;
use crate::backend::health::{HealthChecker, HealthConfig, StopChecking};
use crate::backend::{BackendRegistry, BackendSettings};
use crate::host::CoreHost;
use crate::listener::{Acceptor, EventThreads, Listener, StopAccepting};
use crate::net::Limits;
use crate::session::ListenerContext;
use crate::sessions::SessionTracker;

/// Engine settings (the plugin-specific ones travel with each listener).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Network event threads, the current one included (default: cores).
    pub event_threads: usize,
    /// Sessions of non-administrative listeners beyond this are refused
    /// with ERR 1040; 0 for no limit.
    pub max_connections: usize,
    /// Time from a client's connection to the end of its login; zero for
    /// no limit.
    pub login_timeout: Duration,
    /// Largest packet accepted from a client or server, in bytes.
    pub max_packet_size: usize,
    /// How long a shutdown waits for sessions to finish their command.
    pub shutdown_grace: Duration,
    /// Active health checks of the backends.
    pub health: HealthConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            event_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections: 0,
            login_timeout: Duration::from_secs(10),
            max_packet_size: 1 << 30,
            shutdown_grace: Duration::from_secs(10),
            health: HealthConfig::default(),
        }
    }
}

/// A plugin that was loaded and initialised.
pub struct LoadedPlugin {
    pub name: String,
    pub plugin: PluginBox,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("plugin {plugin}: {source}")]
    Address {
        plugin: String,
        source: address::AddressError,
    },
    #[error("plugin {plugin}: cannot listen on {address}: {source}")]
    Listen {
        plugin: String,
        address: String,
        source: std::io::Error,
    },
}

/// The engine before it starts listening.
pub struct Engine {
    config: EngineConfig,
    registry: Arc<BackendRegistry>,
    /// Set by plugins through the host during their `init`.
    settings: Arc<Mutex<BackendSettings>>,
    logger: slog::Logger,
    sessions: Arc<SessionTracker>,
}

impl Engine {
    pub fn new(config: EngineConfig, logger: slog::Logger) -> Self {
        Self {
            registry: Arc::new(BackendRegistry::new(logger.clone())),
            settings: Arc::default(),
            logger,
            sessions: SessionTracker::new(config.max_connections),
            config,
        }
    }

    /// The host object to give each plugin's `init`.
    pub fn host(&self) -> HostHandle {
        CoreHost {
            registry: Arc::clone(&self.registry),
            sessions: Arc::clone(&self.sessions),
            health: self.config.health.clone(),
            settings: Arc::clone(&self.settings),
            logger: self.logger.clone(),
        }
        .handle()
    }

    pub fn registry(&self) -> Arc<BackendRegistry> {
        Arc::clone(&self.registry)
    }

    /// Binds every listener the plugins ask for and starts accepting. Must
    /// run inside an actix system.
    pub async fn start(&self, plugins: Vec<LoadedPlugin>) -> Result<Running, EngineError> {
        let threads = Arc::new(EventThreads::new(self.config.event_threads));
        let settings = *self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        let mut listeners = Vec::new();
        let mut running_plugins = Vec::new();
        for loaded in plugins {
            let plugin = Arc::new(loaded.plugin);
            for (ndx, spec) in plugin.listeners().into_iter().enumerate() {
                let addr = address::parse_address(spec.address().as_str()).map_err(|source| {
                    EngineError::Address {
                        plugin: loaded.name.clone(),
                        source,
                    }
                })?;
                let socket = Acceptor::bind(&addr).map_err(|source| EngineError::Listen {
                    plugin: loaded.name.clone(),
                    address: spec.address().to_string(),
                    source,
                })?;
                slog::info!(
                    self.logger,
                    "{} listening on port {}",
                    spec.name(),
                    socket.local_name()
                );
                let context = Arc::new(ListenerContext {
                    plugin: Arc::clone(&plugin),
                    plugin_name: Arc::from(loaded.name.as_str()),
                    listener_ndx: u32::try_from(ndx).unwrap_or(u32::MAX),
                    registry: Arc::clone(&self.registry),
                    logger: self.logger.new(slog::o!("plugin" => loaded.name.clone())),
                    connect_timeout: Duration::from_millis(spec.connect_timeout_ms()),
                    balance: settings.balance,
                    pool: settings.pool,
                    limits: Limits {
                        read_timeout: Duration::from_millis(spec.read_timeout_ms()),
                        write_timeout: Duration::from_millis(spec.write_timeout_ms()),
                        max_packet_size: self.config.max_packet_size,
                    },
                    sessions: Arc::clone(&self.sessions),
                    counted: !spec.administrative(),
                    login_timeout: Some(self.config.login_timeout).filter(|t| !t.is_zero()),
                    buffered_result_limit: settings.buffered_result_limit,
                });
                listeners.push(Listener::new(socket, context, Arc::clone(&threads)).start());
            }
            running_plugins.push((loaded.name, plugin));
        }
        let health = (!self.config.health.interval.is_zero()).then(|| {
            HealthChecker::new(
                Arc::clone(&self.registry),
                self.config.health.clone(),
                self.logger.new(slog::o!("component" => "health")),
            )
            .start()
        });
        Ok(Running {
            health,
            listeners,
            plugins: running_plugins,
            sessions: Arc::clone(&self.sessions),
            registry: Arc::clone(&self.registry),
            threads,
            grace: self.config.shutdown_grace,
            logger: self.logger.clone(),
        })
    }
}

/// The engine while it runs.
pub struct Running {
    health: Option<Addr<HealthChecker>>,
    listeners: Vec<Addr<Listener>>,
    plugins: Vec<(String, Arc<PluginBox>)>,
    sessions: Arc<SessionTracker>,
    registry: Arc<BackendRegistry>,
    threads: Arc<EventThreads>,
    grace: Duration,
    logger: slog::Logger,
}

impl Running {
    /// Stops accepting, lets every session finish its current command and
    /// close, waits for them (at most the grace period), closes the pooled
    /// server connections (with COM_QUIT, so the servers do not count them
    /// as aborted clients), then stops the plugins and event threads.
    pub async fn shutdown(self) {
        for listener in &self.listeners {
            let _ = listener.send(StopAccepting).await;
        }
        if let Some(health) = &self.health {
            let _ = health.send(StopChecking).await;
        }
        self.sessions.begin_shutdown();
        let live = self.sessions.live();
        if live > 0 {
            slog::info!(self.logger, "waiting for {} session(s) to finish", live);
        }
        if tokio::time::timeout(self.grace, self.sessions.all_closed())
            .await
            .is_err()
        {
            slog::warn!(
                self.logger,
                "{} session(s) still busy after {:?}; closing them",
                self.sessions.live(),
                self.grace
            );
        }
        for backend in self.registry.all() {
            backend.pool.clear();
        }
        for (_, plugin) in &self.plugins {
            plugin.stop();
        }
        self.threads.stop();
    }

    /// Number of live client sessions.
    pub fn live_sessions(&self) -> usize {
        self.sessions.live()
    }

    /// The addresses actually bound (useful with port 0).
    pub fn plugin_names(&self) -> Vec<String> {
        self.plugins.iter().map(|(name, _)| name.clone()).collect()
    }
}
