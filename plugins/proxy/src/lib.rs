//! The proxy plugin: listens on `--proxy-address` and relays every client to
//! a backend from `--proxy-backend-addresses`, the way MySQL Proxy 0.8 does:
//! without a script, authentication passes through to the backend and
//! commands and results are relayed unchanged; with `--proxy-lua-script`,
//! the script's hooks decide (docs/LUA.md).

use mysql_proxy_plugin_abi::script::{load_script_engine, ScriptBox};
use mysql_proxy_plugin_abi::{
    abi_stable::{
        export_root_module,
        nonexhaustive_enum::NonExhaustive,
        std_types::{RResult, RVec},
    },
    AuthDecision, AuthResultDecision, BackendType, ConnectDecision, HandshakeDecision, Hooks,
    HooksBox, HostHandle, InjectedResult, Injection, ListenerSpec, LogLevel, OptionKind,
    OptionSpec, Plugin, PluginDefinition, PluginModuleRef, PluginOptions, QueryDecision,
    ResultDecision, Session, SqlError,
};

/// Backend used when `--proxy-backend-addresses` is not given.
const DEFAULT_BACKEND: &str = "127.0.0.1:3306";

#[export_root_module]
fn root() -> PluginModuleRef {
    mysql_proxy_plugin_abi::root_module::<ProxyPlugin>()
}

/// The running proxy plugin.
pub struct ProxyPlugin {
    /// `None` with `--no-proxy`: the plugin is loaded but does not listen.
    listener: Option<ListenerSpec>,
    /// `--proxy-lua-script`, run by the Lua runtime library.
    script: Option<ScriptBox>,
}

impl PluginDefinition for ProxyPlugin {
    const NAME: &'static str = "proxy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn options() -> Vec<OptionSpec> {
        use OptionKind::*;
        vec![
            OptionSpec::new("proxy-address", String, "<host:port>", "listening address:port of the proxy-server (default: :4040)").with_short('P'),
            OptionSpec::new("proxy-read-only-backend-addresses", StringList, "<host:port>", "address:port of the remote slave-server (default: not set)").with_short('r'),
            OptionSpec::new("proxy-backend-addresses", StringList, "<host:port>", "address:port of the remote backend-servers (default: 127.0.0.1:3306)").with_short('b'),
            OptionSpec::new("proxy-skip-profiling", Flag, "", "disables profiling of queries (accepted, no effect)"),
            OptionSpec::new("proxy-fix-bug-25371", Flag, "", "fix bug #25371 (mysqld > 5.1.12) for older libmysql versions (accepted, no effect)"),
            OptionSpec::new("proxy-lua-script", Filename, "<file>", "filename of the lua script (default: not set)").with_short('s'),
            OptionSpec::new("proxy-lua-hook-timeout", Double, "<seconds>", "stop a script's hook (or a chunk of the debug port) running longer than this and give its client an error; 0 for no limit (default: 5)"),
            OptionSpec::new("no-proxy", Flag, "", "don't start the proxy-module (default: enabled)"),
            OptionSpec::new("proxy-pool-no-change-user", Flag, "", "don't use CHANGE_USER to reset the connection coming from the pool: clients must log in as the pooled connection's user (checked by the proxy), and COM_RESET_CONNECTION resets the session (default: CHANGE_USER)"),
            OptionSpec::new("proxy-pool-max-idle", Integer, "<n>", "keep up to n idle authenticated server connections per backend for the next clients; 0 turns the pool off (default: 0)"),
            OptionSpec::new("proxy-pool-min-idle", Integer, "<n>", "idle pooled connections never closed for being idle too long (default: 0)"),
            OptionSpec::new("proxy-pool-idle-timeout", Double, "<seconds>", "close pooled connections idle longer than this, above --proxy-pool-min-idle (default: 300)"),
            OptionSpec::new("proxy-connect-timeout", Double, "<seconds>", "connect timeout in seconds (default: 2.0 seconds)"),
            OptionSpec::new("proxy-read-timeout", Double, "<seconds>", "read timeout in seconds (default: 8 hours)"),
            OptionSpec::new("proxy-write-timeout", Double, "<seconds>", "write timeout in seconds (default: 8 hours)"),
            OptionSpec::new("proxy-buffered-result-limit", Integer, "<MiB>", "the most of one injected query's result a session buffers for a script (resultset_is_needed); beyond it the client gets an error; 0 for no limit (default: 64)"),
            OptionSpec::new("proxy-balance", String, "<policy>", "how new clients are spread over the read/write backends: least-connections, round-robin, weighted (weights as host:port@weight) or first-available (default: least-connections)"),
        ]
    }

    fn init(options: &PluginOptions, host: HostHandle) -> Result<Self, String> {
        if options.flag("no-proxy") {
            return Ok(Self {
                listener: None,
                script: None,
            });
        }
        if let Some(seconds) = options.get("proxy-lua-hook-timeout") {
            let engine = load_script_engine()?;
            engine.set_option()("hook-timeout".into(), seconds.into())
                .into_result()
                .map_err(|e| format!("--proxy-lua-hook-timeout: {e}"))?;
        }
        let script = options
            .get("proxy-lua-script")
            .map(|path| {
                let engine = load_script_engine()?;
                engine.open()(path.into(), host.clone())
                    .into_result()
                    .map_err(String::from)
            })
            .transpose()
            .map_err(|e| format!("--proxy-lua-script: {e}"))?;
        let mut listener =
            ListenerSpec::new("proxy", options.get("proxy-address").unwrap_or(":4040"));
        for (option, field) in [
            ("proxy-connect-timeout", &mut listener.connect_timeout_ms),
            ("proxy-read-timeout", &mut listener.read_timeout_ms),
            ("proxy-write-timeout", &mut listener.write_timeout_ms),
        ] {
            // Negative means "use the default", as in MySQL Proxy.
            if let Some(seconds) = options.double(option)? {
                if seconds > 0.0 {
                    *field = (seconds * 1000.0).round() as u64;
                }
            }
        }
        // The pool and the balancing rule are the host's: every session of
        // every listener shares the backends.
        let mut settings: Vec<(&str, String)> = [
            ("proxy-balance", "balance"),
            ("proxy-pool-max-idle", "pool-max-idle"),
            ("proxy-pool-min-idle", "pool-min-idle"),
            ("proxy-pool-idle-timeout", "pool-idle-timeout"),
            ("proxy-buffered-result-limit", "buffered-result-limit"),
        ]
        .into_iter()
        .filter_map(|(option, setting)| options.get(option).map(|v| (setting, v.to_string())))
        .collect();
        if options.flag("proxy-pool-no-change-user") {
            settings.push(("pool-reset", "reset-connection".to_string()));
        }
        for (setting, value) in settings {
            if let RResult::RErr(message) = host.set_option(setting.into(), value.as_str().into()) {
                return Err(format!("--proxy-{message}"));
            }
        }
        let mut read_write = options.list("proxy-backend-addresses");
        if read_write.is_empty() {
            read_write.push(DEFAULT_BACKEND);
        }
        let backends = read_write
            .into_iter()
            .map(|a| (a, BackendType::ReadWrite))
            .chain(
                options
                    .list("proxy-read-only-backend-addresses")
                    .into_iter()
                    .map(|a| (a, BackendType::ReadOnly)),
            );
        for (address, backend_type) in backends {
            let added = host.add_backend(address.into(), NonExhaustive::new(backend_type));
            if let RResult::RErr(message) = added {
                return Err(message.to_string());
            }
            let kind = match backend_type {
                BackendType::ReadOnly => "read-only",
                _ => "read/write",
            };
            host.log(
                LogLevel::Message,
                format!("added {kind} backend: {address}").as_str().into(),
            );
        }
        Ok(Self {
            listener: Some(listener),
            script,
        })
    }
}

impl Plugin for ProxyPlugin {
    type Hooks = ProxyHooks;

    fn listeners(&self) -> Vec<ListenerSpec> {
        self.listener.iter().cloned().collect()
    }

    fn new_session(&self, _session: &Session<'_>) -> ProxyHooks {
        ProxyHooks(self.script.as_ref().map(|script| script.new_session()))
    }
}

/// A connection's hooks: the script's, or, without a script, every hook's
/// default (relay unchanged).
pub struct ProxyHooks(Option<HooksBox>);

/// The script's hook if there is a script, else the default one.
macro_rules! scripted {
    ($self:ident, $hook:ident($($arg:expr),*)) => {
        match &mut $self.0 {
            Some(script) => Hooks::$hook(script, $($arg),*),
            None => NoScript.$hook($($arg),*),
        }
    };
}

/// The hooks' defaults.
struct NoScript;

impl Hooks for NoScript {}

impl Hooks for ProxyHooks {
    fn connect_server(&mut self, session: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        scripted!(self, connect_server(session))
    }

    fn read_handshake(
        &mut self,
        session: &mut Session<'_>,
        handshake: &[u8],
    ) -> Result<HandshakeDecision, SqlError> {
        scripted!(self, read_handshake(session, handshake))
    }

    fn read_auth(
        &mut self,
        session: &mut Session<'_>,
        auth: &[u8],
    ) -> Result<AuthDecision, SqlError> {
        scripted!(self, read_auth(session, auth))
    }

    fn read_auth_result(
        &mut self,
        session: &mut Session<'_>,
        result: &[u8],
    ) -> Result<AuthResultDecision, SqlError> {
        scripted!(self, read_auth_result(session, result))
    }

    fn read_query(
        &mut self,
        session: &mut Session<'_>,
        packet: &[u8],
        queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
        scripted!(self, read_query(session, packet, queue))
    }

    fn read_query_result(
        &mut self,
        session: &mut Session<'_>,
        result: &InjectedResult<'_>,
        queue: &mut RVec<Injection>,
    ) -> Result<ResultDecision, SqlError> {
        scripted!(self, read_query_result(session, result, queue))
    }

    fn disconnect_client(&mut self, session: &mut Session<'_>) {
        scripted!(self, disconnect_client(session))
    }
}
