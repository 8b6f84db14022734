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

use std::collections::HashSet;
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

/// The actor running the checks. Each check runs as a task of its own; its
/// verdict comes back to the actor as a message ([`Verdict`]), which the
/// actor applies to the backend's state: the health results reach a
/// backend's state one at a time, through one mailbox.
pub struct HealthChecker {
    registry: Arc<BackendRegistry>,
    config: Arc<HealthConfig>,
    /// Backends with a check in flight (a slow check is not doubled up).
    busy: HashSet<u32>,
    logger: slog::Logger,
}

impl HealthChecker {
    pub fn new(registry: Arc<BackendRegistry>, config: HealthConfig, logger: slog::Logger) -> Self {
        Self {
            registry,
            config: Arc::new(config),
            busy: HashSet::new(),
            logger,
        }
    }

    /// Starts a check of every backend that is not offline and not already
    /// being checked.
    fn check_all(&mut self, ctx: &mut Context<Self>) {
        for backend in self.registry.all() {
            if backend.state() == BackendState::Offline || !self.busy.insert(backend.ndx) {
                continue;
            }
            let config = Arc::clone(&self.config);
            let checker = ctx.address();
            actix_rt::spawn(async move {
                let outcome = tokio::time::timeout(config.timeout, check(&backend, &config))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failure::Down(format!(
                            "no answer within {} ms",
                            config.timeout.as_millis()
                        )))
                    });
                checker.do_send(Verdict { backend, outcome });
            });
        }
    }
}

/// The outcome of one check of one backend, for the checker to apply.
#[derive(Message)]
#[rtype(result = "()")]
struct Verdict {
    backend: Arc<Backend>,
    outcome: Result<(), Failure>,
}

impl Handler<Verdict> for HealthChecker {
    type Result = ();

    fn handle(&mut self, verdict: Verdict, _: &mut Self::Context) {
        let Verdict { backend, outcome } = verdict;
        self.busy.remove(&backend.ndx);
        match outcome {
            Ok(()) => backend.mark_up("health check passed"),
            Err(Failure::Down(reason)) => {
                backend.mark_down(&format!("health check failed: {reason}"))
            }
            Err(Failure::Refused(message)) => {
                slog::warn!(
                    self.logger,
                    "backend {}: health-check login refused ({}); counting it as up",
                    backend.name,
                    message
                );
                backend.mark_up("health check: server answers");
            }
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
        self.check_all(ctx);
        ctx.run_interval(self.config.interval, |checker, ctx| checker.check_all(ctx));
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
