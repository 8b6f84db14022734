//! The admin plugin: a SQL port (`--admin-address`, default :4041) where the
//! one configured user (`--admin-username`/`--admin-password`, checked by the
//! proxy itself with mysql_native_password) can inspect the proxy with any
//! MySQL client: `SELECT * FROM backends`, `SELECT * FROM help`.

mod queries;

use mysql_proxy_plugin_abi::{
    abi_stable::{export_root_module, std_types::RVec},
    AuthDecision, ConnectDecision, Hooks, HostHandle, Injection, ListenerSpec, OkResponse,
    OptionKind, OptionSpec, Plugin, PluginDefinition, PluginModuleRef, PluginOptions,
    QueryDecision, Response, Session, SqlError,
};
use mysql_proxy_protocol::auth::verify_native_password;
use mysql_proxy_protocol::constants::{
    CapabilityFlags, Command, StatusFlags, CHARSET_LATIN1_SWEDISH_CI,
};
use mysql_proxy_protocol::packets::{HandshakeResponse41, HandshakeV10};
use rand::Rng;

/// The version the admin port announces (MySQL Proxy's).
const SERVER_VERSION: &[u8] = b"5.0.99-agent-admin";
const AUTH_PLUGIN: &[u8] = b"mysql_native_password";

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
            OptionSpec::new("admin-lua-script", Filename, "<filename>", "script to execute by the admin plugin (not needed: the admin queries are built in)"),
        ]
    }

    fn init(options: &PluginOptions, host: HostHandle) -> Result<Self, String> {
        if let Some(script) = options.get("admin-lua-script") {
            return Err(format!(
                "--admin-lua-script={script}: Lua scripting is not available in this version"
            ));
        }
        let username = options
            .get("admin-username")
            .filter(|u| !u.is_empty())
            .ok_or("--admin-username needs to be set")?;
        let password = options
            .get("admin-password")
            .filter(|p| !p.is_empty())
            .ok_or("--admin-password cannot be empty")?;
        Ok(Self {
            address: options.get("admin-address").unwrap_or(":4041").to_string(),
            username: username.to_string(),
            password: password.to_string(),
            host,
        })
    }
}

impl Plugin for AdminPlugin {
    type Hooks = AdminSession;

    fn listeners(&self) -> Vec<ListenerSpec> {
        vec![ListenerSpec::new("admin", &self.address)]
    }

    fn new_session(&self, _session: &Session<'_>) -> AdminSession {
        AdminSession {
            username: self.username.clone(),
            password: self.password.clone(),
            host: self.host.clone(),
            scramble: random_scramble(),
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
}

impl Hooks for AdminSession {
    fn connect_server(&mut self, session: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        let capabilities = CapabilityFlags::PROTOCOL_41
            | CapabilityFlags::SECURE_CONNECTION
            | CapabilityFlags::LONG_PASSWORD
            | CapabilityFlags::PLUGIN_AUTH
            | CapabilityFlags::CONNECT_WITH_DB;
        let greeting = HandshakeV10::new(
            SERVER_VERSION,
            u32::try_from(session.connection_id()).unwrap_or(u32::MAX),
            &self.scramble,
            capabilities,
            CHARSET_LATIN1_SWEDISH_CI,
            StatusFlags::AUTOCOMMIT,
            AUTH_PLUGIN,
        );
        let packet = RVec::from(greeting.to_bytes().to_vec());
        Ok(ConnectDecision::Reply(Response::Raw(RVec::from(vec![
            packet,
        ]))))
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
        _session: &mut Session<'_>,
        packet: &[u8],
        _queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
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

/// A challenge of 20 printable characters, as MySQL Proxy's admin port sends.
fn random_scramble() -> [u8; 20] {
    let mut rng = rand::thread_rng();
    let mut scramble = [0u8; 20];
    for byte in &mut scramble {
        *byte = rng.gen_range(33..=126);
    }
    scramble
}
