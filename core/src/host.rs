//! The host object plugins receive: logging, the backend registry, the
//! process list and KILL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mysql_proxy_plugin_abi::{
    abi_stable::{
        nonexhaustive_enum::NonExhaustive,
        sabi_trait::TD_Opaque,
        std_types::{RErr, RNone, ROk, ROption, RResult, RSome, RStr, RString, RVec},
    },
    BackendInfo, BackendInfoFfi, BackendInfoFfi_TO, BackendState_NE, BackendType_NE, HostFfi,
    HostFfi_TO, HostHandle, LogLevel, ResponseColumn, ResultSetResponse, SqlError,
};
use mysql_proxy_protocol::constants::{ColumnType, OK_HEADER};
use mysql_proxy_protocol::packets::ComQuery;

use crate::backend::courtesy::{self, error_text};
use crate::backend::{Backend, BackendRegistry, BackendSettings, HealthConfig};
use crate::logging;
use crate::net::Stream;
use crate::sessions::{Control, SessionTracker};

/// Implements [`HostFfi`] over the engine's registry, sessions and logger.
#[derive(Clone)]
pub struct CoreHost {
    pub registry: Arc<BackendRegistry>,
    pub sessions: Arc<SessionTracker>,
    /// The health checks' login and timeout, which `KILL QUERY` uses too.
    pub health: HealthConfig,
    /// What plugins set with `set_option`, read by the engine at start.
    pub settings: Arc<Mutex<BackendSettings>>,
    pub logger: slog::Logger,
}

impl CoreHost {
    pub fn handle(&self) -> HostHandle {
        HostFfi_TO::from_ptr(
            mysql_proxy_plugin_abi::abi_stable::std_types::RArc::new(self.clone()),
            TD_Opaque,
        )
    }

    /// `KILL QUERY`: the query session `id` runs on its backend is killed
    /// there, over a connection of the proxy's own, in the background (as
    /// MySQL's KILL QUERY returns before the query has stopped).
    fn kill_query(&self, id: u64) -> Result<(), SqlError> {
        let snapshot = self
            .sessions
            .snapshot(id)
            .ok_or_else(|| unknown_thread(id))?;
        let Some(user) = self.health.user.clone() else {
            return Err(SqlError::new(
                1105,
                "HY000",
                "(proxy) KILL QUERY needs --health-check-user: an account allowed to kill \
                 other sessions' queries (CONNECTION ADMIN or SUPER)",
            ));
        };
        if snapshot.state != "query" {
            // Nothing runs: nothing to kill, as on a server.
            return Ok(());
        }
        let backend = snapshot
            .backend
            .and_then(|(_, ndx)| self.registry.get(ndx))
            .ok_or_else(|| {
                SqlError::new(
                    1105,
                    "HY000",
                    "(proxy) the session has no backend connection",
                )
            })?;
        let password = self.health.password.clone();
        let timeout = self.health.timeout;
        let thread = snapshot.server_thread_id;
        let logger = self.logger.clone();
        actix_rt::spawn(async move {
            let killed = tokio::time::timeout(
                timeout,
                kill_query_on(&backend.addr, &user, &password, thread, timeout),
            )
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())));
            match killed {
                Ok(()) => slog::info!(
                    logger,
                    "KILL QUERY {}: killed the query of thread {} on {}",
                    id,
                    thread,
                    backend.name
                ),
                Err(reason) => slog::warn!(
                    logger,
                    "KILL QUERY {}: thread {} on {}: {}",
                    id,
                    thread,
                    backend.name,
                    reason
                ),
            }
        });
        Ok(())
    }
}

/// MySQL's answer to KILL of a thread that does not exist.
fn unknown_thread(id: u64) -> SqlError {
    SqlError::new(1094, "HY000", format!("Unknown thread id: {id}"))
}

/// Logs in to a backend and has it kill the query of its thread `thread`.
async fn kill_query_on(
    address: &crate::address::Address,
    user: &str,
    password: &str,
    thread: u32,
    timeout: Duration,
) -> Result<(), String> {
    let stream = Stream::connect(address).await.map_err(|e| e.to_string())?;
    let mut conn = courtesy::greeted_login(stream, timeout, user, password)
        .await
        .map_err(|e| format!("login as {user} failed: {e:?}"))?;
    let kill = ComQuery::new(format!("KILL QUERY {thread}")).to_bytes();
    let reply = courtesy::command(&mut conn, &kill)
        .await
        .map_err(|e| e.to_string())?;
    let _ = courtesy::quit(&mut conn).await;
    if reply.first_byte() == Some(OK_HEADER) {
        Ok(())
    } else {
        Err(error_text(&reply.payload))
    }
}

impl HostFfi for CoreHost {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        logging::log(&self.logger, level, message.as_str());
    }

    fn backends(&self) -> RVec<BackendInfo> {
        self.registry
            .all()
            .into_iter()
            .map(|backend| BackendInfoFfi_TO::from_value(BackendView(backend), TD_Opaque))
            .collect()
    }

    fn add_backend(
        &self,
        address: RStr<'_>,
        backend_type: BackendType_NE,
    ) -> RResult<u32, RString> {
        let Ok(backend_type) = backend_type.into_enum() else {
            return RErr(
                format!("{address}: a backend type this mysql-proxy does not know").into(),
            );
        };
        match self.registry.add(address.as_str(), backend_type) {
            Ok(ndx) => ROk(ndx),
            Err(message) => RErr(message.into()),
        }
    }

    fn set_backend_state(
        &self,
        ndx: u32,
        state: BackendState_NE,
        reason: RStr<'_>,
    ) -> RResult<(), RString> {
        let Ok(state) = state.into_enum() else {
            return RErr("a backend state this mysql-proxy does not know".into());
        };
        match self.registry.get(ndx) {
            Some(backend) => {
                backend.set_state(state, reason.as_str());
                ROk(())
            }
            None => RErr(format!("no backend with index {ndx}").into()),
        }
    }

    fn set_option(&self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set(name.as_str(), value.as_str())
            .map_err(RString::from)
            .into()
    }

    fn connections(&self) -> ResultSetResponse {
        let columns = [
            ("id", ColumnType::LongLong),
            ("plugin", ColumnType::VarString),
            ("user", ColumnType::VarString),
            ("client_address", ColumnType::VarString),
            ("backend", ColumnType::VarString),
            ("db", ColumnType::VarString),
            ("state", ColumnType::VarString),
            ("command", ColumnType::VarString),
            ("info", ColumnType::VarString),
            ("time", ColumnType::LongLong),
            ("bytes_in", ColumnType::LongLong),
            ("bytes_out", ColumnType::LongLong),
        ];
        let rows = self
            .sessions
            .snapshots()
            .into_iter()
            .map(|session| {
                let backend = session.backend.map(|(name, _)| name);
                RVec::from(vec![
                    value(session.id),
                    value(session.plugin),
                    value(session.user),
                    value(session.client_address),
                    backend.map_or(RNone, value),
                    value(session.db),
                    value(session.state),
                    session.command.map_or(RNone, value),
                    session.info.map_or(RNone, value),
                    value(session.time),
                    value(session.bytes_in),
                    value(session.bytes_out),
                ])
            })
            .collect();
        ResultSetResponse {
            columns: columns
                .into_iter()
                .map(|(name, column_type)| ResponseColumn {
                    name: name.into(),
                    column_type: column_type as u8,
                })
                .collect(),
            rows,
        }
    }

    fn kill(&self, id: u64, query_only: bool) -> RResult<(), SqlError> {
        let killed = if query_only {
            self.kill_query(id)
        } else {
            // The query it runs is killed on its backend too (when the
            // proxy may): closing its connection would leave the server
            // running it, holding its locks, until it next looks at the
            // connection.
            if self.health.user.is_some() {
                let _ = self.kill_query(id);
            }
            self.sessions
                .send(id, Control::Kill)
                .map_err(|_| unknown_thread(id))
        };
        killed.into()
    }
}

/// A backend as plugins see it: every call reads the current value.
struct BackendView(Arc<Backend>);

impl BackendInfoFfi for BackendView {
    fn ndx(&self) -> u32 {
        self.0.ndx
    }
    fn address(&self) -> RStr<'_> {
        self.0.name.as_str().into()
    }
    fn state(&self) -> BackendState_NE {
        NonExhaustive::new(self.0.state())
    }
    fn backend_type(&self) -> BackendType_NE {
        NonExhaustive::new(self.0.backend_type)
    }
    fn connected_clients(&self) -> u64 {
        self.0.connected_clients()
    }
    fn idle_connections(&self) -> u64 {
        self.0.pool.len() as u64
    }
    fn weight(&self) -> u32 {
        self.0.weight
    }
    fn connects(&self) -> u64 {
        load(&self.0.counters.connects)
    }
    fn connect_failures(&self) -> u64 {
        load(&self.0.counters.connect_failures)
    }
    fn queries(&self) -> u64 {
        load(&self.0.counters.queries)
    }
    fn bytes(&self) -> u64 {
        load(&self.0.counters.bytes)
    }
    fn errors(&self) -> u64 {
        load(&self.0.counters.errors)
    }
    fn state_since(&self) -> u64 {
        self.0.state_change().1
    }
    fn state_reason(&self) -> RString {
        self.0.state_change().0.into()
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A table cell.
fn value(value: impl ToString) -> ROption<RVec<u8>> {
    RSome(RVec::from(value.to_string().into_bytes()))
}
