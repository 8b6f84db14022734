//! Active health checks: an actor that connects to every backend on an
//! interval and marks it up or down, so a dead backend is routed around and a
//! recovered one comes back by itself.
//!
//! With credentials (`--health-check-user`/`--health-check-password`) a
//! check logs in with mysql_native_password and pings; without them, a
//! well-formed server handshake counts as alive, and the check still logs in
//! (as [`CHECK_USER_WITHOUT_CREDENTIALS`], which is refused): a connection
//! closed right after the handshake counts as a connection error against
//! the proxy's host, and a server with name resolution on (MariaDB's and
//! MySQL's default) blocks the host after `max_connect_errors` of them, all
//! clients of the proxy with it. Sessions whose client leaves before logging
//! in end their server connection the same way
//! ([`decline_login`](super::courtesy::decline_login)).
//!
//! A server that answers but refuses the health-check login is alive (with
//! credentials, its error is logged): a typo in the credentials must not
//! take every backend down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use mysql_proxy_plugin_abi::BackendState;
use mysql_proxy_protocol::constants::OK_HEADER;
use mysql_proxy_protocol::packets::ComPing;

use super::courtesy::{
    command, error_text, greeted_login, quit, LoginError, CHECK_USER_WITHOUT_CREDENTIALS,
};
use super::registry::{Backend, BackendCounters, BackendRegistry};
use crate::net::{ConnError, Stream};

/// How backends are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Time between checks of a backend; zero turns checks off.
    pub interval: Duration,
    /// How long one check may take before the backend counts as down.
    pub timeout: Duration,
    /// Login for the check; `None` checks the handshake only.
    pub user: Option<String>,
    pub password: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            user: None,
            password: String::new(),
        }
    }
}

/// The actor running the checks.
pub struct HealthChecker {
    registry: Arc<BackendRegistry>,
    config: Arc<HealthConfig>,
    /// Backends with a check in flight (a slow check is not doubled up).
    busy: HashMap<u32, Arc<AtomicBool>>,
    logger: slog::Logger,
}

impl HealthChecker {
    pub fn new(registry: Arc<BackendRegistry>, config: HealthConfig, logger: slog::Logger) -> Self {
        Self {
            registry,
            config: Arc::new(config),
            busy: HashMap::new(),
            logger,
        }
    }

    /// Starts a check of every backend that is not offline and not already
    /// being checked.
    fn check_all(&mut self) {
        for backend in self.registry.all() {
            if backend.state() == BackendState::Offline {
                continue;
            }
            let busy = Arc::clone(self.busy.entry(backend.ndx).or_default());
            if busy.swap(true, Ordering::AcqRel) {
                continue;
            }
            let config = Arc::clone(&self.config);
            let logger = self.logger.clone();
            actix_rt::spawn(async move {
                let outcome = tokio::time::timeout(config.timeout, check(&backend, &config)).await;
                match outcome {
                    Ok(Ok(())) => backend.mark_up("health check passed"),
                    Ok(Err(Failure::Down(reason))) => {
                        backend.mark_down(&format!("health check failed: {reason}"))
                    }
                    Ok(Err(Failure::Refused(message))) => {
                        slog::warn!(
                            logger,
                            "backend {}: health-check login refused ({}); counting it as up",
                            backend.name,
                            message
                        );
                        backend.mark_up("health check: server answers");
                    }
                    Err(_) => backend.mark_down(&format!(
                        "health check failed: no answer within {} ms",
                        config.timeout.as_millis()
                    )),
                }
                busy.store(false, Ordering::Release);
            });
        }
    }
}

/// Stop checking (at shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopChecking;

impl Handler<StopChecking> for HealthChecker {
    type Result = ();

    fn handle(&mut self, _: StopChecking, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Actor for HealthChecker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.registry.set_health_checked(true);
        self.check_all();
        ctx.run_interval(self.config.interval, |checker, _| checker.check_all());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.registry.set_health_checked(false);
    }
}

/// Why a check failed.
enum Failure {
    /// The backend cannot serve clients.
    Down(String),
    /// The backend answered but refused the health-check login.
    Refused(String),
}

impl From<ConnError> for Failure {
    fn from(error: ConnError) -> Self {
        Failure::Down(error.to_string())
    }
}

impl From<LoginError> for Failure {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::Refused(reason) => Failure::Refused(reason),
            LoginError::Broken(reason) => Failure::Down(reason),
        }
    }
}

/// One check of one backend.
async fn check(backend: &Backend, config: &HealthConfig) -> Result<(), Failure> {
    let stream = match Stream::connect(&backend.addr).await {
        Ok(stream) => stream,
        Err(error) => {
            BackendCounters::add(&backend.counters.connect_failures, 1);
            return Err(Failure::Down(error.to_string()));
        }
    };
    BackendCounters::add(&backend.counters.connects, 1);
    let (user, password) = match &config.user {
        Some(user) => (user.as_str(), config.password.as_str()),
        None => (CHECK_USER_WITHOUT_CREDENTIALS, ""),
    };
    let mut conn = match greeted_login(stream, config.timeout, user, password).await {
        Ok(conn) => conn,
        // The refusal it was logging in for.
        Err(LoginError::Refused(_)) if config.user.is_none() => return Ok(()),
        Err(failure) => return Err(failure.into()),
    };
    let reply = command(&mut conn, &ComPing::PAYLOAD).await?;
    if reply.first_byte() != Some(OK_HEADER) {
        return Err(Failure::Down(format!(
            "ping answered: {}",
            error_text(&reply.payload)
        )));
    }
    let _ = quit(&mut conn).await;
    Ok(())
}
