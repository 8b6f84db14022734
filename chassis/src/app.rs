//! The start-up sequence (COMPAT 1.1, in order) and the run: options and
//! config file, plugins, logging, process set-up, then the engine inside the
//! actix system until a signal stops it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use abi_stable::std_types::{RResult, RString, RVec};
use mysql_proxy_core::{Engine, EngineConfig, LoadedPlugin};
use mysql_proxy_plugin_abi::{LogLevel, OptionValue};
use nix::unistd::User;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::cli::{self, Parsed};
use crate::config::{self, ChassisConfig, DefaultsFile, Early, PluginValues, Problem, Sources};
use crate::error::FatalError;
use crate::loader::{self, Module};
use crate::logging::Log;
use crate::options::{self, names, OptGroup};
use crate::process::{self, Readiness};
use crate::signals::{self, Request};

/// Largest packet accepted from a client or server: MySQL's ceiling for
/// `max_allowed_packet` (1 GiB) plus room for the command byte and framing of
/// a packet that size.
const MAX_PACKET_SIZE: usize = (1 << 30) + 4096;

/// How long SIGTERM/SIGINT waits for sessions to finish their command.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs mysql-proxy with `args` (program name first). Returns the exit code
/// of a normal end (`--help`, `--version`, a shutdown signal).
pub fn run(args: &[OsString], log: &Log, readiness: &mut Readiness) -> Result<u8, FatalError> {
    let chassis = options::chassis_options();

    // Pass 1 and the config file: what is needed to find the plugins.
    let pass1 = cli::prescan(args);
    let file = pass1
        .last(names::DEFAULTS_FILE)
        .map(|path| DefaultsFile::load(Path::new(path)))
        .transpose()?;
    if pass1.version {
        print!("{}", cli::version_header());
    }
    let exe_dir = exe_dir()?;
    let default_basedir = exe_dir.parent().unwrap_or(&exe_dir).to_path_buf();
    let early_sources = Sources {
        cli: &pass1.values,
        file: file.as_ref(),
    };
    let early =
        Early::resolve(&early_sources, &chassis, &default_basedir).map_err(FatalError::Invalid)?;

    // Plugins: `--plugin-dir` first, then the binary's own directory (where
    // cargo puts the plugin libraries beside `mysql-proxy`).
    let dirs: Vec<PathBuf> = early
        .plugin_dir
        .iter()
        .cloned()
        .chain(std::iter::once(exe_dir.clone()))
        .collect();
    let modules = loader::load_all(&early.plugins, &dirs, &chassis)?;
    for module in &modules {
        let reported = module.module.name()();
        if reported.as_str() != module.name {
            log.log(
                LogLevel::Warning,
                &format!(
                    "plugin {}: {} calls itself '{}'",
                    module.name,
                    module.path.display(),
                    reported
                ),
            );
        }
    }
    if pass1.version {
        print!(
            "{}",
            cli::version_modules(
                modules
                    .iter()
                    .map(|m| (m.name.as_str(), m.version.as_str()))
            )
        );
        return Ok(0);
    }

    // The final parse, with every plugin's options.
    let mut groups = vec![chassis.clone()];
    groups.extend(modules.iter().map(Module::group));
    let cli_values = match cli::parse(args, &groups)? {
        Parsed::Help(scope) => {
            print!("{}", cli::help_text(&groups, &scope));
            return Ok(0);
        }
        Parsed::Run(values) => values,
    };
    let sources = Sources {
        cli: &cli_values,
        file: file.as_ref(),
    };
    let (config, plugin_values) = resolve_all(&sources, &groups, &default_basedir)?;

    // Logging as configured.
    log.install_panic_hook(config.log_backtrace_on_crash);
    if let Some(path) = &config.log_file {
        log.to_file(path)?;
    } else if config.log_use_syslog {
        log.to_syslog();
    }
    log.set_level(config.log_level);
    if let Some(file) = &file {
        report_unknown_keys(log, file, &groups);
    }

    // The process. Everything that forks runs before any thread exists.
    process::set_lua_paths(&config);
    let user = config
        .user
        .as_deref()
        .map(process::lookup_user)
        .transpose()?;
    if config.daemon {
        *readiness = process::daemonize(log.is_stderr())?;
    }
    if config.keepalive {
        process::keepalive(log)?;
    }
    // Before the pid file: once it exists, SIGTERM is a graceful shutdown.
    let (signal_thread, requests) = signals::listen().map_err(FatalError::Signals)?;
    if let Some(path) = &config.pid_file {
        process::write_pid_file(path)?;
    }
    if config.max_open_files > 0 {
        let (before, after) = process::raise_open_files(config.max_open_files)?;
        log.log(
            LogLevel::Debug,
            &format!("max open file-descriptors (soft/hard): {before} -> {after}"),
        );
    }

    let system = actix_rt::System::new();
    let result = system.block_on(serve(
        &config,
        &modules,
        plugin_values,
        user,
        log,
        readiness,
        requests,
    ));
    signal_thread.close();
    result
}

/// The directory holding the running binary (symlinks resolved).
fn exe_dir() -> Result<PathBuf, FatalError> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(FatalError::NoExecutable)?;
    Ok(exe
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf))
}

/// Every option's effective value, typed and validated; all problems at once.
fn resolve_all(
    sources: &Sources<'_>,
    groups: &[OptGroup],
    default_basedir: &Path,
) -> Result<(ChassisConfig, Vec<PluginValues>), FatalError> {
    let mut problems: Vec<Problem> = Vec::new();
    let (chassis, plugins) = groups
        .split_first()
        .ok_or(FatalError::Invalid(Vec::new()))?;
    let config = ChassisConfig::resolve(sources, chassis, default_basedir)
        .map_err(|p| problems.extend(p))
        .ok();
    let basedir = config
        .as_ref()
        .map_or(default_basedir, |c| c.early.basedir.as_path());
    let mut values = Vec::new();
    for group in plugins {
        match config::plugin_values(group, sources, basedir) {
            Ok(v) => values.push(v),
            Err(p) => problems.extend(p),
        }
    }
    match config {
        Some(config) if problems.is_empty() => Ok((config, values)),
        _ => Err(FatalError::Invalid(problems)),
    }
}

/// Keys of the `[mysql-proxy]` group that no loaded option knows are ignored
/// (they may belong to a plugin not loaded this time). One that looks like
/// a misspelt known option is most likely a mistake that would otherwise
/// go unnoticed (`max-conections = 5` doing nothing), so it is logged at
/// the level shown by default, with the option meant; others at warning.
fn report_unknown_keys(log: &Log, file: &DefaultsFile, groups: &[OptGroup]) {
    let known: HashSet<&str> = groups
        .iter()
        .flat_map(|g| g.options.iter())
        .filter(|o| o.in_file)
        .map(|o| o.name.as_str())
        .collect();
    for (key, line) in file.unknown_keys(&known) {
        let place = format!("{}:{}", file.path.display(), line);
        match nearest(key, known.iter().copied()) {
            Some(meant) => log.log(
                LogLevel::Critical,
                &format!("{place}: unknown option '{key}' ignored; did you mean '{meant}'?"),
            ),
            None => log.log(
                LogLevel::Warning,
                &format!("{place}: ignoring '{key}' (no loaded plugin has this option)"),
            ),
        }
    }
}

/// The candidate closest to `key` in edit distance, if close enough to be
/// a slip of the keyboard: at most one edit per four characters (and at
/// least one), ties going to the first.
fn nearest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = (key.chars().count() / 4).max(1);
    candidates
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, candidate)| (*distance, *candidate))
        .map(|(_, candidate)| candidate)
}

/// Edits (insertion, deletion, substitution, swap of neighbours) turning
/// `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Inside the actix system: initialises the plugins, starts the engine (binds
/// every listener), drops privileges, and handles signals (`requests`) until
/// one asks for shutdown. Signals that arrive during start-up wait in the
/// channel.
async fn serve(
    config: &ChassisConfig,
    modules: &[Module],
    plugin_values: Vec<PluginValues>,
    user: Option<User>,
    log: &Log,
    readiness: &mut Readiness,
    mut requests: UnboundedReceiver<Request>,
) -> Result<u8, FatalError> {
    let engine = Engine::new(
        EngineConfig {
            event_threads: config.event_threads,
            max_connections: config.max_connections,
            login_timeout: config.login_timeout,
            max_packet_size: MAX_PACKET_SIZE,
            shutdown_grace: SHUTDOWN_GRACE,
            health: config.health.clone(),
        },
        log.logger().clone(),
    );
    let mut plugins = Vec::with_capacity(modules.len());
    for (module, values) in modules.iter().zip(plugin_values) {
        let values: RVec<OptionValue> = values
            .into_iter()
            .map(|(name, values)| OptionValue {
                name: name.into(),
                values: values.into_iter().map(RString::from).collect(),
            })
            .collect();
        match module.module.init()(values, engine.host()) {
            RResult::ROk(plugin) => plugins.push(LoadedPlugin {
                name: module.name.clone(),
                plugin,
            }),
            RResult::RErr(message) => {
                return Err(FatalError::PluginInit {
                    name: module.name.clone(),
                    message: message.into_string(),
                })
            }
        }
    }
    let running = engine
        .start(plugins)
        .await
        .map_err(|e| FatalError::Engine(e.to_string()))?;
    if let Some(user) = &user {
        process::drop_privileges(user, log.file_path().as_deref())?;
    }
    for module in modules {
        log.log(
            LogLevel::Critical,
            &format!("plugin {} {} started", module.name, module.version),
        );
    }
    readiness.ready();

    while let Some(request) = requests.recv().await {
        match request {
            // Nothing to reopen when logging to stderr or syslog.
            Request::ReopenLog if log.file_path().is_none() => {}
            Request::ReopenLog => {
                log.log(LogLevel::Message, "received a SIGHUP, closing log file");
                match log.reopen() {
                    Ok(()) => log.log(LogLevel::Message, "re-opened log file after SIGHUP"),
                    Err(e) => log.log(LogLevel::Critical, &e.to_string()),
                }
            }
            Request::Shutdown { signal } => {
                log.log(
                    LogLevel::Message,
                    &format!("received {signal}, shutting down"),
                );
                break;
            }
        }
    }
    running.shutdown().await;
    let level = if config.verbose_shutdown {
        LogLevel::Critical
    } else {
        LogLevel::Message
    };
    log.log(level, "shutting down normally, exit code is: 0");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_option_finds_the_one_meant() {
        let known = ["max-connections", "proxy-address", "log-level", "daemon"];
        let nearest = |key| nearest(key, known.iter().copied());
        assert_eq!(nearest("max-conections"), Some("max-connections"));
        assert_eq!(nearest("proxy-adress"), Some("proxy-address"));
        assert_eq!(nearest("log-levle"), Some("log-level"));
        assert_eq!(nearest("deamon"), Some("daemon"));
        assert_eq!(nearest("admin-username"), None);
        assert_eq!(nearest("x"), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
