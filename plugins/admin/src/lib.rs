//! The admin plugin: a SQL port (`--admin-address`, default :4041) where the
//! one configured user (`--admin-username`/`--admin-password`, checked by the
//! proxy itself with mysql_native_password) can inspect the proxy with any
//! MySQL client: `SELECT * FROM backends`, `SELECT * FROM help`. With
//! `--admin-lua-script`, the script's `read_query` answers every command
//! instead, as in MySQL Proxy 0.8 (COMPAT 3.1; docs/LUA.md), in the Lua
//! state the proxy plugin's script shares.

mod queries;

use mysql_proxy_plugin_abi::script::{load_script_engine, ScriptBox};
use mysql_proxy_plugin_abi::{
    abi_stable::{export_root_module, std_types::RVec},
    AuthDecision, ConnectDecision, Hooks, HooksBox, HostHandle, Injection, ListenerSpec,
    OkResponse, OptionKind, OptionSpec, Plugin, PluginDefinition, PluginModuleRef, PluginOptions,
    QueryDecision, Response, Session, SqlError,
};
use mysql_proxy_protocol::auth::{printable_scramble, verify_native_password};
use mysql_proxy_protocol::constants::Command;
use mysql_proxy_protocol::packets::{HandshakeResponse41, HandshakeV10};

/// The version the admin port announces (MySQL Proxy's).
const SERVER_VERSION: &[u8] = b"5.0.99-agent-admin";
/// What a client gets when the script did not answer (0.8's words).
const NEED_A_RESULT: &str = "need a resultset + proxy.PROXY_SEND_RESULT";

#[export_root_module]
fn root() -> PluginModuleRef {
    mysql_proxy_plugin_abi::root_module::<AdminPlugin>()
}

/// The running admin plugin.
pub struct AdminPlugin {
    address: String,
    username: String,
    password: String,
    host: HostHandle,
    /// `--admin-lua-script`, run by the Lua runtime library.
    script: Option<ScriptBox>,
}

impl PluginDefinition for AdminPlugin {
    const NAME: &'static str = "admin";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn options() -> Vec<OptionSpec> {
        use OptionKind::*;
        vec![
            OptionSpec::new("admin-address", String, "<host:port>", "listening address:port of the admin-server (default: :4041)"),
            OptionSpec::new("admin-username", String, "<string>", "username to allow to log in (required)"),
            OptionSpec::new("admin-password", String, "<string>", "password to allow to log in (required)"),
            OptionSpec::new("admin-lua-script", Filename, "<filename>", "script whose read_query answers the admin port's commands (default: the built-in admin queries)"),
        ]
    }

    fn init(options: &PluginOptions, host: HostHandle) -> Result<Self, String> {
        let username = options
            .get("admin-username")
            .filter(|u| !u.is_empty())
            .ok_or("--admin-username needs to be set")?;
        let password = options
            .get("admin-password")
            .filter(|p| !p.is_empty())
            .ok_or("--admin-password cannot be empty")?;
        let script = options
            .get("admin-lua-script")
            .map(|path| {
                let engine = load_script_engine()?;
                engine.open()(path.into(), host.clone())
                    .into_result()
                    .map_err(String::from)
            })
            .transpose()
            .map_err(|e| format!("--admin-lua-script: {e}"))?;
        Ok(Self {
            address: options.get("admin-address").unwrap_or(":4041").to_string(),
            username: username.to_string(),
            password: password.to_string(),
            host,
            script,
        })
    }
}

impl Plugin for AdminPlugin {
    type Hooks = AdminSession;

    fn listeners(&self) -> Vec<ListenerSpec> {
        let mut listener = ListenerSpec::new("admin", &self.address);
        listener.administrative = true;
        vec![listener]
    }

    fn new_session(&self, _session: &Session<'_>) -> AdminSession {
        AdminSession {
            username: self.username.clone(),
            password: self.password.clone(),
            host: self.host.clone(),
            scramble: printable_scramble(rand::random()),
            script: self.script.as_ref().map(|script| script.new_session()),
        }
    }
}

/// One admin connection: the proxy plays the server.
pub struct AdminSession {
    username: String,
    password: String,
    host: HostHandle,
    /// The challenge sent in this connection's handshake.
    scramble: [u8; 20],
    /// The admin script's hooks for this connection.
    script: Option<HooksBox>,
}

impl Hooks for AdminSession {
    fn connect_server(&mut self, session: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        let connection_id = u32::try_from(session.connection_id()).unwrap_or(u32::MAX);
        let greeting = HandshakeV10::local(SERVER_VERSION, connection_id, &self.scramble);
        Ok(ConnectDecision::greeting(&greeting.to_bytes()))
    }

    fn read_auth(
        &mut self,
        _session: &mut Session<'_>,
        auth: &[u8],
    ) -> Result<AuthDecision, SqlError> {
        let auth = HandshakeResponse41::decode(&bytes::Bytes::copy_from_slice(auth))
            .map_err(|e| SqlError::new(1043, "08S01", format!("Bad handshake: {e}")))?;
        if auth.username.as_ref() != self.username.as_bytes() {
            return Err(SqlError::new(1045, "28000", "unknown user"));
        }
        if !verify_native_password(
            self.password.as_bytes(),
            &self.scramble,
            &auth.auth_response,
        ) {
            return Err(SqlError::new(1045, "28000", "password doesn't match"));
        }
        Ok(AuthDecision::Reply(Response::Ok(OkResponse::default())))
    }

    fn read_query(
        &mut self,
        session: &mut Session<'_>,
        packet: &[u8],
        queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
        if let Some(script) = &mut self.script {
            return scripted_answer(script, session, packet, queue);
        }
        let response = match packet.split_first() {
            Some((&code, text)) if code == Command::Query as u8 => {
                queries::answer(&String::from_utf8_lossy(text), &self.host)?
            }
            Some((&code, _)) if code == Command::Ping as u8 => Response::Ok(OkResponse::default()),
            Some((&code, _)) if code == Command::Quit as u8 => return Ok(QueryDecision::Forward),
            _ => {
                return Err(SqlError::new(
                    1105,
                    "07000",
                    "[admin] we only handle text-based queries (COM_QUERY)",
                ))
            }
        };
        Ok(QueryDecision::Reply(response))
    }
}

/// The admin script's answer to a command, as 0.8's admin plugin took it:
/// only `proxy.response` with `PROXY_SEND_RESULT` is an answer; anything
/// else (nothing, queued queries, another number, an error) is an error
/// that ends the connection. A `LOAD ...` query is refused without
/// asking the script (the admin port has no server to send a file to).
fn scripted_answer(
    script: &mut HooksBox,
    session: &mut Session<'_>,
    packet: &[u8],
    queue: &mut RVec<Injection>,
) -> Result<QueryDecision, SqlError> {
    let is_load = match packet.split_first() {
        Some((&code, text)) if code == Command::Query as u8 => text
            .get(..5)
            .is_some_and(|start| start.eq_ignore_ascii_case(b"LOAD ")),
        _ => false,
    };
    let decision = if is_load {
        Ok(QueryDecision::SendQueue)
    } else {
        Hooks::read_query(script, session, packet, queue)
    };
    // Queued queries are never run: the admin port has no server.
    queue.clear();
    if packet.first() == Some(&(Command::Quit as u8)) {
        return Ok(QueryDecision::Forward);
    }
    let message = match decision {
        Ok(QueryDecision::Reply(response)) => return Ok(QueryDecision::Reply(response)),
        Ok(QueryDecision::Forward) => NEED_A_RESULT.to_string(),
        Ok(_) => format!("{NEED_A_RESULT} ... got something else"),
        Err(error) => {
            session.set_close_after_reply(true);
            return Err(error);
        }
    };
    session.set_close_after_reply(true);
    Err(SqlError::new(1105, "07000", message))
}
