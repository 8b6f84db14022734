//! The proxy plugin: listens on `--proxy-address` and relays every client to
//! a backend from `--proxy-backend-addresses`, the way MySQL Proxy 0.8 does
//! without a script (authentication passes through to the backend; commands
//! and results are relayed unchanged).

use mysql_proxy_plugin_abi::{
    abi_stable::{export_root_module, nonexhaustive_enum::NonExhaustive, std_types::RResult},
    BackendType, Hooks, HostHandle, ListenerSpec, LogLevel, OptionKind, OptionSpec, Plugin,
    PluginDefinition, PluginModuleRef, PluginOptions, Session,
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
            OptionSpec::new("no-proxy", Flag, "", "don't start the proxy-module (default: enabled)"),
            OptionSpec::new("proxy-pool-no-change-user", Flag, "", "don't use CHANGE_USER to reset the connection coming from the pool: clients must log in as the pooled connection's user (checked by the proxy), and COM_RESET_CONNECTION resets the session (default: CHANGE_USER)"),
            OptionSpec::new("proxy-pool-max-idle", Integer, "<n>", "keep up to n idle authenticated server connections per backend for the next clients; 0 turns the pool off (default: 0)"),
            OptionSpec::new("proxy-pool-min-idle", Integer, "<n>", "idle pooled connections never closed for being idle too long (default: 0)"),
            OptionSpec::new("proxy-pool-idle-timeout", Double, "<seconds>", "close pooled connections idle longer than this, above --proxy-pool-min-idle (default: 300)"),
            OptionSpec::new("proxy-connect-timeout", Double, "<seconds>", "connect timeout in seconds (default: 2.0 seconds)"),
            OptionSpec::new("proxy-read-timeout", Double, "<seconds>", "read timeout in seconds (default: 8 hours)"),
            OptionSpec::new("proxy-write-timeout", Double, "<seconds>", "write timeout in seconds (default: 8 hours)"),
            OptionSpec::new("proxy-balance", String, "<policy>", "how new clients are spread over the read/write backends: least-connections, round-robin, weighted (weights as host:port@weight) or first-available (default: least-connections)"),
        ]
    }

    fn init(options: &PluginOptions, host: HostHandle) -> Result<Self, String> {
        if let Some(script) = options.get("proxy-lua-script") {
            return Err(format!(
                "--proxy-lua-script={script}: Lua scripting is not available in this version"
            ));
        }
        if options.flag("no-proxy") {
            return Ok(Self { listener: None });
        }
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
        })
    }
}

impl Plugin for ProxyPlugin {
    type Hooks = RelayHooks;

    fn listeners(&self) -> Vec<ListenerSpec> {
        self.listener.iter().cloned().collect()
    }

    fn new_session(&self, _session: &Session<'_>) -> RelayHooks {
        RelayHooks
    }
}

/// Without a script every hook keeps its default: relay unchanged.
pub struct RelayHooks;

impl Hooks for RelayHooks {}
