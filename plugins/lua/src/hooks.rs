//! A MySQL Proxy 0.8 script as the proxy plugin's hooks: each hook of the
//! plugin ABI runs the script's hook of the same name (when it defines
//! one) and turns what it returned, with `proxy.response` and
//! `proxy.queries`, into the host's decision, as 0.8's proxy plugin did
//! (docs/LUA.md; the hooks and their return values as 0.8 defined them).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use mlua::{Lua, MultiValue, Table, Value};
use mysql_proxy_plugin_abi::abi_stable::std_types::RVec;
use mysql_proxy_plugin_abi::{
    AuthDecision, AuthResultDecision, ConnectDecision, HandshakeDecision, Hooks, HostHandle,
    InjectedResult, Injection, LogLevel, QueryDecision, Response, ResultDecision, Session,
    SqlError,
};
use mysql_proxy_protocol::constants::CapabilityFlags;
use mysql_proxy_protocol::packets::{HandshakeResponse41, HandshakeV10};

use crate::connection::{Captured, SessionAccess};
use crate::constants::{PROXY_IGNORE_RESULT, PROXY_SEND_QUERY, PROXY_SEND_RESULT};
use crate::injection::{self, InjectionMeta};
use crate::queries::{self, Queries, Queued};
use crate::response;
use crate::runtime::{Connection, Keys, Outcome, Runtime, ScriptError};

/// The message a client gets when the script cannot be loaded (0.8's).
const FAILED_TO_LOAD: &str = "MySQL Proxy Lua script failed to load. Check the error log.";
/// ... or when its top level fails.
const FAILED_TO_EXECUTE: &str = "MySQL Proxy Lua script failed to execute. Check the error log.";

/// A script shared by every connection of the plugin.
pub struct Script {
    runtime: Arc<Runtime>,
    path: PathBuf,
    host: HostHandle,
}

impl Script {
    /// The script at `path` in `runtime` (the file is read when the first
    /// connection needs it, as in 0.8).
    pub fn new(path: &Path, runtime: Arc<Runtime>, host: HostHandle) -> Self {
        Self {
            runtime,
            path: path.to_path_buf(),
            host,
        }
    }

    /// The hooks of a new connection.
    pub fn hooks(&self) -> ScriptHooks {
        ScriptHooks {
            connection: Some(self.runtime.connection(&self.path)),
            runtime: Arc::clone(&self.runtime),
            host: self.host.clone(),
            captured: Captured::default(),
            queries: Queries::new(),
            in_flight: VecDeque::new(),
        }
    }
}

/// One connection's hooks running the script.
pub struct ScriptHooks {
    runtime: Arc<Runtime>,
    /// `None` once the connection is closed.
    connection: Option<Connection>,
    host: HostHandle,
    captured: Captured,
    /// The connection's `proxy.queries`.
    queries: Queries,
    /// The injections handed to the host, in its order: what
    /// `read_query_result` tells the script of each, and the entry itself
    /// (to show the ones still queued in `proxy.queries`).
    in_flight: VecDeque<(InjectionMeta, Queued)>,
}

impl ScriptHooks {
    /// Runs hook `hook` with `args`, `proxy.connection` reaching `session`
    /// and `proxy.queries` the connection's queue (checked before every
    /// hook, as 0.8 set it again, in case a script replaced it).
    fn call(
        &mut self,
        session: &mut Session<'_>,
        hook: &str,
        args: impl FnOnce(&Lua, &Table, &Keys) -> mlua::Result<MultiValue>,
    ) -> Result<Outcome, ScriptError> {
        let Some(connection) = self.connection.as_mut() else {
            return Ok(Outcome::Absent);
        };
        let access = SessionAccess {
            session,
            captured: &self.captured,
        };
        let queries = &self.queries;
        let outcome =
            self.runtime
                .call_hook(connection, hook, Some(access), |lua, private, keys| {
                    // Installed once per connection (a userdata made per hook
                    // call would make garbage at every query), again only if
                    // the script put something else there.
                    let installed = matches!(
                        private.raw_get::<Value>(&keys.queries)?,
                        Value::UserData(queue) if queue.is::<Queries>()
                    );
                    if !installed {
                        queries.install(private)?;
                    }
                    args(lua, private, keys)
                });
        match &outcome {
            Err(ScriptError::Hook { .. }) => self.log(LogLevel::Critical, &outcome_text(&outcome)),
            // The script never ran for this connection: no later hook of
            // it runs either (its disconnect_client would load the file
            // again and run the top level a second time).
            Err(ScriptError::Load(_) | ScriptError::Execute(_)) => self.connection = None,
            _ => {}
        }
        outcome
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, message.into());
    }

    /// The decision number a hook returned; a hook error counts as none
    /// (logged by `call`); a script that could not be loaded or run is the
    /// client's error, as 0.8 reports it.
    fn decision(&self, outcome: Result<Outcome, ScriptError>) -> Result<Option<i64>, SqlError> {
        match outcome {
            Ok(Outcome::Returned(decision)) => Ok(decision),
            Ok(Outcome::Absent) | Err(ScriptError::Hook { .. }) => Ok(None),
            Err(ScriptError::Stopped { hook, message }) => {
                self.log(
                    LogLevel::Critical,
                    &format!("({hook}) {message} (--proxy-lua-hook-timeout)"),
                );
                Err(SqlError::new(
                    1105,
                    "HY000",
                    format!(
                        "MySQL Proxy Lua script: {hook}() ran too long and was stopped. \
                         Check the error log."
                    ),
                ))
            }
            Err(error @ (ScriptError::Load(_) | ScriptError::Execute(_))) => {
                self.log(LogLevel::Critical, &error.to_string());
                let message = match error {
                    ScriptError::Load(_) => FAILED_TO_LOAD,
                    _ => FAILED_TO_EXECUTE,
                };
                Err(SqlError::new(1105, "07000", message))
            }
        }
    }

    /// `proxy.response` as a reply; an invalid one as the error 0.8 sends.
    fn response(&self) -> Response {
        let read = self
            .connection
            .as_ref()
            .and_then(|connection| {
                self.runtime.with_private(connection, |lua, private| {
                    let value: Value = private.get("response")?;
                    Ok(response::from_value(lua, &value))
                })
            })
            .unwrap_or_else(|| Ok(Err(response::ResponseError::NotATable { found: "nothing" })));
        match read {
            Ok(Ok((response, warnings))) => {
                for warning in warnings {
                    self.log(LogLevel::Warning, &warning);
                }
                response
            }
            Ok(Err(error)) => {
                self.log(LogLevel::Critical, &format!("proxy.response: {error}"));
                Response::Error(error.client_error())
            }
            Err(error) => {
                self.log(LogLevel::Critical, &format!("proxy.response: {error}"));
                Response::Error(SqlError::new(1105, "07000", response::HANDLING_FAILED))
            }
        }
    }

    /// Hands queued entries to the host, noting what `read_query_result`
    /// will need to know of each.
    fn enqueue(&mut self, session: &Session<'_>, queued: Vec<Queued>, queue: &mut RVec<Injection>) {
        for entry in queued {
            queue.push(queries::to_injection(&entry));
            self.in_flight.push_back((
                meta(session, &entry.packet, entry.resultset_is_needed),
                entry,
            ));
        }
    }
}

impl Hooks for ScriptHooks {
    fn connect_server(&mut self, session: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        let outcome = self.call(session, "connect_server", |_, _, _| Ok(MultiValue::new()));
        let decision = self.decision(outcome)?;
        let chosen = session.backend_ndx().into_option();
        Ok(match decision {
            Some(PROXY_SEND_RESULT) => ConnectDecision::Reply(self.response()),
            // The pooled connection the script took, if any.
            Some(PROXY_IGNORE_RESULT) if session.has_server() => ConnectDecision::Default,
            _ => {
                let taken = session.has_server();
                if taken {
                    // Taken but not asked for: back to the pool, and a new
                    // connection to the chosen backend (0.8's rule).
                    session.set_backend_ndx(None.into());
                }
                match chosen {
                    Some(ndx) if taken => ConnectDecision::Fresh(ndx),
                    Some(ndx) => ConnectDecision::Backend(ndx),
                    None => ConnectDecision::Default,
                }
            }
        })
    }

    fn read_handshake(
        &mut self,
        session: &mut Session<'_>,
        handshake: &[u8],
    ) -> Result<HandshakeDecision, SqlError> {
        if let Ok(greeting) = HandshakeV10::decode(&Bytes::copy_from_slice(handshake)) {
            self.captured.scramble = greeting.auth_plugin_data.to_vec();
            self.captured.greeting_auth_plugin = greeting
                .auth_plugin_name
                .map(|name| name.to_vec())
                .unwrap_or_default();
        }
        let outcome = self.call(session, "read_handshake", |_, _, _| Ok(MultiValue::new()));
        Ok(match self.decision(outcome)? {
            // SEND_QUERY: 0.8's deprecated alias here.
            Some(PROXY_SEND_RESULT | PROXY_SEND_QUERY) => HandshakeDecision::Reply(self.response()),
            _ => HandshakeDecision::Forward,
        })
    }

    fn read_auth(
        &mut self,
        session: &mut Session<'_>,
        auth: &[u8],
    ) -> Result<AuthDecision, SqlError> {
        if let Ok(login) = HandshakeResponse41::decode(&Bytes::copy_from_slice(auth)) {
            self.captured.auth_response = login.auth_response.to_vec();
        }
        self.queries.reset();
        let outcome = self.call(session, "read_auth", |_, _, _| Ok(MultiValue::new()));
        Ok(match self.decision(outcome)? {
            Some(PROXY_SEND_RESULT) => AuthDecision::Reply(self.response()),
            Some(PROXY_SEND_QUERY) => match self.queries.take().into_iter().next() {
                // The first entry goes to the server instead of the
                // client's auth packet.
                Some(entry) => AuthDecision::Rewrite(RVec::from(entry.packet)),
                None => AuthDecision::Forward,
            },
            _ => AuthDecision::Forward,
        })
    }

    fn read_auth_result(
        &mut self,
        session: &mut Session<'_>,
        result: &[u8],
    ) -> Result<AuthResultDecision, SqlError> {
        if result.first() == Some(&0) {
            self.captured.server_logged_in = true;
        }
        let packet = result.to_vec();
        let outcome = self.call(session, "read_auth_result", |lua, _, _| {
            let auth = lua.create_table()?;
            auth.set("packet", lua.create_string(&packet)?)?;
            Ok(MultiValue::from_vec(vec![Value::Table(auth)]))
        });
        Ok(match self.decision(outcome)? {
            Some(PROXY_SEND_RESULT) => AuthResultDecision::Replace(self.response()),
            _ => AuthResultDecision::Forward,
        })
    }

    fn read_query(
        &mut self,
        session: &mut Session<'_>,
        packet: &[u8],
        queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
        self.in_flight.clear();
        // `proxy.queries` emptied and `proxy.response` reset before each
        // read_query (`proxy.response` only here, as in 0.8).
        self.queries.reset();
        let outcome = self.call(session, "read_query", |lua, private, keys| {
            private.raw_set(&keys.response, lua.create_table()?)?;
            Ok(MultiValue::from_vec(vec![Value::String(
                lua.create_string(packet)?,
            )]))
        });
        // A stopped hook fails its command; the session goes on.
        let stopped = matches!(outcome, Err(ScriptError::Stopped { .. }));
        let decision = match self.decision(outcome) {
            Ok(decision) => decision,
            Err(error) => {
                // A script that cannot run: 0.8 closes the connection
                // after telling the client.
                if !stopped {
                    session.set_close_after_reply(true);
                }
                return Err(error);
            }
        };
        let queued = self.queries.take();
        Ok(match decision {
            Some(PROXY_SEND_QUERY) if !queued.is_empty() => {
                self.enqueue(session, queued, queue);
                QueryDecision::SendQueue
            }
            Some(PROXY_SEND_RESULT) => {
                let response = self.response();
                self.enqueue(session, queued, queue);
                QueryDecision::Reply(response)
            }
            _ => {
                if !queued.is_empty() || decision == Some(PROXY_SEND_QUERY) {
                    self.log(
                        LogLevel::Critical,
                        "(read_query) proxy.queries: the entries queued are discarded \
                         (return proxy.PROXY_SEND_QUERY with a non-empty queue to send them)",
                    );
                }
                QueryDecision::Forward
            }
        })
    }

    fn read_query_result(
        &mut self,
        session: &mut Session<'_>,
        result: &InjectedResult<'_>,
        queue: &mut RVec<Injection>,
    ) -> Result<ResultDecision, SqlError> {
        let meta = match self.in_flight.pop_front() {
            Some((meta, _)) => meta,
            None => meta(
                session,
                result.query().as_slice(),
                !result.packets().is_empty(),
            ),
        };
        // What is still queued is the script's to change.
        self.queries.reset();
        self.queries
            .put_back(self.in_flight.drain(..).map(|(_, entry)| entry).collect());
        let outcome = self.call(session, "read_query_result", |lua, _, _| {
            Ok(MultiValue::from_vec(vec![injection::create(
                lua, result, &meta,
            )?]))
        });
        let decision = self.decision(outcome)?;
        // The queue as the script left it.
        queue.clear();
        let queued = self.queries.take();
        self.enqueue(session, queued, queue);
        Ok(match decision {
            Some(PROXY_SEND_RESULT) => ResultDecision::Replace(self.response()),
            Some(PROXY_IGNORE_RESULT) => ResultDecision::Ignore,
            _ => ResultDecision::Forward,
        })
    }

    fn disconnect_client(&mut self, session: &mut Session<'_>) {
        // Load and run failures are not reported here (0.8 ignores them).
        let _ = self.call(
            session,
            "disconnect_client",
            |_, _, _| Ok(MultiValue::new()),
        );
        if let Some(connection) = self.connection.take() {
            self.runtime.close(connection);
        }
    }
}

/// What `read_query_result` tells the script of an injection: its command,
/// whether its result is buffered, and the capabilities its response was
/// written with.
fn meta(session: &Session<'_>, packet: &[u8], buffered: bool) -> InjectionMeta {
    InjectionMeta {
        command: packet.first().copied().unwrap_or(0),
        buffered,
        capabilities: CapabilityFlags(
            session.client_capabilities() & session.server_capabilities(),
        ),
    }
}

/// A hook's failure as a log line.
fn outcome_text(outcome: &Result<Outcome, ScriptError>) -> String {
    match outcome {
        Err(error) => error.to_string(),
        Ok(outcome) => format!("{outcome:?}"),
    }
}
