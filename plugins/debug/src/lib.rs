//! The debug plugin (`--plugins=debug`): a port (`--debug-address`, default
//! :4043) where any MySQL client, with any credentials, sends Lua instead
//! of SQL. Each query text runs as a chunk in the Lua state every plugin's
//! scripts share (`proxy.global`, loaded modules), and what it returns
//! comes back as a result set, as MySQL Proxy 0.8's debug plugin did
//! (docs/LUA.md). It has no access control at all: a development tool,
//! to be bound to a local address.

use mysql_proxy_plugin_abi::script::{load_script_engine, ScriptEngineRef};
use mysql_proxy_plugin_abi::{
    abi_stable::{export_root_module, std_types::RVec},
    AuthDecision, ConnectDecision, Hooks, HostHandle, Injection, ListenerSpec, OkResponse,
    OptionKind, OptionSpec, Plugin, PluginDefinition, PluginModuleRef, PluginOptions,
    QueryDecision, Response, ResponseColumn, ResultSetResponse, Session, SqlError,
};
use mysql_proxy_protocol::auth::printable_scramble;
use mysql_proxy_protocol::constants::{ColumnType, Command};
use mysql_proxy_protocol::packets::HandshakeV10;

/// The version the debug port announces (MySQL Proxy's).
const SERVER_VERSION: &[u8] = b"5.1.99-proxy-debug";

/// Queries client programs send on their own at start-up, answered
/// without Lua (prefix, case-insensitive) as 0.8 answered them.
const CLIENT_QUERIES: &[(&str, &str, &str)] = &[
    (
        "select @@version_comment limit 1",
        "@@version_comment",
        "MySQL Enterprise Agent",
    ),
    ("select user()", "USER()", "root"),
];

#[export_root_module]
fn root() -> PluginModuleRef {
    mysql_proxy_plugin_abi::root_module::<DebugPlugin>()
}

/// The running debug plugin.
pub struct DebugPlugin {
    address: String,
    engine: ScriptEngineRef,
    host: HostHandle,
}

impl PluginDefinition for DebugPlugin {
    const NAME: &'static str = "debug";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn options() -> Vec<OptionSpec> {
        vec![OptionSpec::new(
            "debug-address",
            OptionKind::String,
            "<host:port>",
            "listening address:port of the debug-server (default: :4043)",
        )]
    }

    fn init(options: &PluginOptions, host: HostHandle) -> Result<Self, String> {
        Ok(Self {
            address: options.get("debug-address").unwrap_or(":4043").to_string(),
            engine: load_script_engine().map_err(|e| format!("--plugins=debug: {e}"))?,
            host,
        })
    }
}

impl Plugin for DebugPlugin {
    type Hooks = DebugSession;

    fn listeners(&self) -> Vec<ListenerSpec> {
        let mut listener = ListenerSpec::new("debug", &self.address);
        listener.administrative = true;
        vec![listener]
    }

    fn new_session(&self, _session: &Session<'_>) -> DebugSession {
        DebugSession {
            engine: self.engine,
            host: self.host.clone(),
        }
    }
}

/// One debug connection: the proxy plays the server.
pub struct DebugSession {
    engine: ScriptEngineRef,
    host: HostHandle,
}

impl Hooks for DebugSession {
    fn connect_server(&mut self, session: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        let connection_id = u32::try_from(session.connection_id()).unwrap_or(u32::MAX);
        let scramble = printable_scramble(rand::random());
        let greeting = HandshakeV10::local(SERVER_VERSION, connection_id, &scramble);
        Ok(ConnectDecision::greeting(&greeting.to_bytes()))
    }

    /// Any user, any password.
    fn read_auth(
        &mut self,
        _session: &mut Session<'_>,
        _auth: &[u8],
    ) -> Result<AuthDecision, SqlError> {
        Ok(AuthDecision::Reply(Response::Ok(OkResponse::default())))
    }

    fn read_query(
        &mut self,
        _session: &mut Session<'_>,
        packet: &[u8],
        _queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
        let Some((&code, rest)) = packet.split_first() else {
            return Err(SqlError::new(1105, "07000", "(debug) empty command"));
        };
        let response = match Command::from_u8(code) {
            Some(Command::Query) => self.answer(&String::from_utf8_lossy(rest))?,
            Some(Command::InitDb | Command::Ping) => Response::Ok(OkResponse::default()),
            Some(Command::Quit) => return Ok(QueryDecision::Forward),
            other => {
                let name = other.map_or("COM_UNKNOWN", |command| command.name());
                return Err(SqlError::new(1105, "07000", format!("unknown {name}")));
            }
        };
        Ok(QueryDecision::Reply(response))
    }
}

impl DebugSession {
    /// A query's answer: a client program's start-up query, or the
    /// values of the query run as Lua.
    fn answer(&self, query: &str) -> Result<Response, SqlError> {
        let lowered = query.trim_start().to_ascii_lowercase();
        if let Some((_, column, value)) = CLIENT_QUERIES
            .iter()
            .find(|(prefix, _, _)| lowered.starts_with(prefix))
        {
            return Ok(Response::ResultSet(ResultSetResponse {
                columns: RVec::from(vec![ResponseColumn {
                    name: (*column).into(),
                    column_type: ColumnType::VarString as u8,
                }]),
                rows: RVec::from(vec![RVec::from(vec![abi_stable::std_types::RSome(
                    RVec::from(value.as_bytes().to_vec()),
                )])]),
            }));
        }
        (self.engine.evaluate())(query.into(), self.host.clone())
            .into_result()
            .map(Response::ResultSet)
    }
}
