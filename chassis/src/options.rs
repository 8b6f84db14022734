//! The options the chassis knows, whoever declares them: the description of
//! one option ([`OptDesc`]) and of a group of them ([`OptGroup`]), the
//! chassis' own options and their names, and the names and short forms the
//! help options take. The command line ([`crate::cli`]), the config file
//! ([`crate::config`]) and the plugin loader ([`crate::loader`]) all read
//! these; this module depends on nothing else in the crate.

use mysql_proxy_plugin_abi::{OptionKind, OptionSpec};

/// One option as the chassis handles it, whoever declared it.
#[derive(Debug, Clone, PartialEq)]
pub struct OptDesc {
    /// Long name without the dashes (also the config-file key).
    pub name: String,
    pub short: Option<char>,
    pub kind: OptionKind,
    /// Placeholder shown in help, without angle brackets (clap adds them).
    pub value_name: String,
    pub help: String,
    /// Whether the `[mysql-proxy]` section of the config file may set it
    /// (`--version`, `--defaults-file` and `--help*` cannot be).
    pub in_file: bool,
}

impl OptDesc {
    fn chassis(
        name: &str,
        short: Option<char>,
        kind: OptionKind,
        value_name: &str,
        help: &str,
    ) -> Self {
        Self {
            name: name.to_string(),
            short,
            kind,
            value_name: value_name.to_string(),
            help: help.to_string(),
            in_file: true,
        }
    }

    /// A plugin's option, as declared over the ABI.
    pub fn from_spec(spec: &OptionSpec) -> Self {
        let short = char::from(spec.short);
        Self {
            name: spec.name.to_string(),
            short: (spec.short != 0).then_some(short),
            kind: spec.kind,
            value_name: spec
                .value_name
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
            help: spec.help.to_string(),
            in_file: true,
        }
    }

    fn not_in_file(mut self) -> Self {
        self.in_file = false;
        self
    }
}

/// The options of one group: the chassis' ("Application Options") or one
/// plugin's (`--help-<plugin>`).
#[derive(Debug, Clone)]
pub struct OptGroup {
    /// Empty for the chassis; the plugin name (as given in `--plugins`) otherwise.
    pub plugin: String,
    pub options: Vec<OptDesc>,
}

/// Names of the chassis options that `crate::config` reads.
pub mod names {
    pub const VERSION: &str = "version";
    pub const DEFAULTS_FILE: &str = "defaults-file";
    pub const VERBOSE_SHUTDOWN: &str = "verbose-shutdown";
    pub const DAEMON: &str = "daemon";
    pub const USER: &str = "user";
    pub const BASEDIR: &str = "basedir";
    pub const PID_FILE: &str = "pid-file";
    pub const PLUGIN_DIR: &str = "plugin-dir";
    pub const PLUGINS: &str = "plugins";
    pub const LOG_LEVEL: &str = "log-level";
    pub const LOG_FILE: &str = "log-file";
    pub const LOG_USE_SYSLOG: &str = "log-use-syslog";
    pub const LOG_BACKTRACE_ON_CRASH: &str = "log-backtrace-on-crash";
    pub const KEEPALIVE: &str = "keepalive";
    pub const MAX_OPEN_FILES: &str = "max-open-files";
    pub const EVENT_THREADS: &str = "event-threads";
    pub const MAX_CONNECTIONS: &str = "max-connections";
    pub const LOGIN_TIMEOUT: &str = "login-timeout";
    pub const LUA_PATH: &str = "lua-path";
    pub const LUA_CPATH: &str = "lua-cpath";
    pub const HEALTH_CHECK_INTERVAL: &str = "health-check-interval";
    pub const HEALTH_CHECK_TIMEOUT: &str = "health-check-timeout";
    pub const HEALTH_CHECK_USER: &str = "health-check-user";
    pub const HEALTH_CHECK_PASSWORD: &str = "health-check-password";
}

/// The chassis' own options (COMPAT 1.2), in MySQL Proxy's help order.
pub fn chassis_options() -> OptGroup {
    use names::*;
    use OptionKind::{Filename, Flag, Integer, String as Str, StringList};
    let options = vec![
        OptDesc::chassis(VERSION, Some('V'), Flag, "", "Show version").not_in_file(),
        OptDesc::chassis(
            DEFAULTS_FILE,
            None,
            Filename,
            "file",
            "configuration file ([mysql-proxy] section of an INI file)",
        )
        .not_in_file(),
        OptDesc::chassis(
            VERBOSE_SHUTDOWN,
            None,
            Flag,
            "",
            "Always log the exit code when shutting down",
        ),
        OptDesc::chassis(DAEMON, None, Flag, "", "Start in daemon-mode"),
        OptDesc::chassis(
            USER,
            None,
            Str,
            "user",
            "Run mysql-proxy as user (only when started as root)",
        ),
        OptDesc::chassis(
            BASEDIR,
            None,
            Str,
            "absolute path",
            "Base directory to prepend to relative paths in the config \
             (default: the directory above the binary's)",
        ),
        OptDesc::chassis(
            PID_FILE,
            None,
            Filename,
            "file",
            "PID file in case we are started as daemon",
        ),
        OptDesc::chassis(
            PLUGIN_DIR,
            None,
            Filename,
            "path",
            "path to the plugins (searched before the binary's directory)",
        ),
        OptDesc::chassis(
            PLUGINS,
            None,
            StringList,
            "name",
            "plugins to load, repeatable or comma-separated (default: proxy)",
        ),
        OptDesc::chassis(
            LOG_LEVEL,
            None,
            Str,
            "level",
            "log all messages of level or higher: error, critical, warning, message, info, \
             debug (default: critical)",
        ),
        OptDesc::chassis(
            LOG_FILE,
            None,
            Filename,
            "file",
            "log all messages in a file",
        ),
        OptDesc::chassis(LOG_USE_SYSLOG, None, Flag, "", "log all messages to syslog"),
        OptDesc::chassis(
            LOG_BACKTRACE_ON_CRASH,
            None,
            Flag,
            "",
            "try to log a backtrace when crashing",
        ),
        OptDesc::chassis(
            KEEPALIVE,
            None,
            Flag,
            "",
            "try to restart the proxy if it crashed",
        ),
        OptDesc::chassis(
            MAX_OPEN_FILES,
            None,
            Integer,
            "n",
            "maximum number of open files (ulimit -n; default: leave it alone)",
        ),
        OptDesc::chassis(
            EVENT_THREADS,
            None,
            Integer,
            "n",
            "number of event-handling threads (default: the number of cores)",
        ),
        OptDesc::chassis(
            MAX_CONNECTIONS,
            None,
            Integer,
            "n",
            "refuse clients beyond n open sessions with ERR 1040 Too many connections; the admin and debug ports are not counted (default: 0, no limit)",
        ),
        OptDesc::chassis(
            LOGIN_TIMEOUT,
            None,
            OptionKind::Double,
            "seconds",
            "close a client that has not finished its login this long after it connected, with ERR 1043 Bad handshake, as MySQL's connect_timeout; 0 for no limit (default: 10)",
        ),
        OptDesc::chassis(LUA_PATH, None, Str, "path", "set the LUA_PATH"),
        OptDesc::chassis(LUA_CPATH, None, Str, "path", "set the LUA_CPATH"),
        OptDesc::chassis(
            HEALTH_CHECK_INTERVAL,
            None,
            OptionKind::Double,
            "seconds",
            "check every backend this often; 0 turns health checks off (default: 2)",
        ),
        OptDesc::chassis(
            HEALTH_CHECK_TIMEOUT,
            None,
            OptionKind::Double,
            "seconds",
            "a check not done within this marks the backend down (default: 1)",
        ),
        OptDesc::chassis(
            HEALTH_CHECK_USER,
            None,
            Str,
            "user",
            "log in as this user and ping (default: none: a server handshake counts as alive)",
        ),
        OptDesc::chassis(
            HEALTH_CHECK_PASSWORD,
            None,
            Str,
            "password",
            "password of --health-check-user (default: empty)",
        ),
    ];
    OptGroup {
        plugin: String::new(),
        options,
    }
}

/// Long names of the help options: `--help` (also `-h`, `-?`), `--help-all`.
pub const HELP: &str = "help";
pub const HELP_ALL: &str = "help-all";

/// The long name of `--help-<plugin>`.
pub fn help_plugin_id(plugin: &str) -> String {
    format!("help-{plugin}")
}

/// Names taken by the help options for these groups (so a plugin option cannot
/// reuse them).
pub fn help_option_names(groups: &[OptGroup]) -> Vec<String> {
    let mut taken = vec![HELP.to_string(), HELP_ALL.to_string()];
    taken.extend(help_groups(groups).map(|g| help_plugin_id(&g.plugin)));
    taken
}

/// The plugin groups that get a `--help-<plugin>` (those with options, as in
/// GLib).
pub fn help_groups(groups: &[OptGroup]) -> impl Iterator<Item = &OptGroup> {
    groups
        .iter()
        .filter(|g| !g.plugin.is_empty() && !g.options.is_empty())
}

/// Short forms taken by the help options.
pub const HELP_SHORTS: [char; 2] = ['h', '?'];
