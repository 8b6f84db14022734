//! The config file (`--defaults-file`), how its values combine with the
//! command line, and the typed, validated chassis settings.
//!
//! The file is MySQL Proxy's GLib key file: only the `[mysql-proxy]` group is
//! read, `key = value` lines whose keys are the long option names, `#`
//! comments. It is parsed here by hand rather than with the `config` crate:
//! that crate's INI backend (rust-ini) strips quotes, accepts `:` as a
//! separator, knows other escape sequences and replaces a repeated group
//! instead of merging it, whereas COMPAT 1.3 asks for GKeyFile's rules (quotes
//! kept, `\s \n \t \r \\` escapes with an invalid one an error, a bare key an
//! error); the whole format takes under a hundred lines.
//!
//! Merge rule (fixing MySQL Proxy's quirks a, b and c): for every option of
//! every type, a value given on the command line wins, otherwise the file's
//! value is used, and a value means the same wherever it was written (a
//! reverse flag such as `no-proxy = true` is `--no-proxy`; a timeout from the
//! file is used as written).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use mysql_proxy_core::HealthConfig;
use mysql_proxy_plugin_abi::{LogLevel, OptionKind};

use crate::logging::parse_level;
use crate::options::{names, OptDesc, OptGroup};

/// The only group of the file that is read.
pub const GROUP: &str = "mysql-proxy";

/// Why the config file could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("can't read the config file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} isn't a regular file", .path.display())]
    NotRegular { path: PathBuf },
    #[error("permissions of {} aren't secure (0660 or stricter required)", .path.display())]
    Insecure { path: PathBuf },
    #[error("{}:{line}: {message}", .path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One `key = value` line of the `[mysql-proxy]` group, value not yet
/// unescaped (GKeyFile interprets escapes only when a value is read, so a bad
/// escape in a key nobody reads is no error).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: String,
    raw: String,
    line: usize,
}

/// A loaded `--defaults-file`.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultsFile {
    pub path: PathBuf,
    entries: Vec<Entry>,
}

impl DefaultsFile {
    /// Checks the file's type and permissions (no bits for "other"), then
    /// reads and parses it.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let read_error = |source| FileError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if !meta.is_file() {
            return Err(FileError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        if meta.permissions().mode() & 0o007 != 0 {
            return Err(FileError::Insecure {
                path: path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|_| FileError::Syntax {
            path: path.to_path_buf(),
            line: 0,
            message: "the file is not valid UTF-8".to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses key-file text (see the module doc for the rules).
    pub fn parse(path: &Path, text: &str) -> Result<Self, FileError> {
        let syntax = |line: usize, message: String| FileError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut entries = Vec::new();
        let mut group: Option<String> = None;
        for (ndx, line) in text.lines().enumerate() {
            let number = ndx + 1;
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let name = header
                    .trim_end()
                    .strip_suffix(']')
                    .ok_or_else(|| syntax(number, format!("invalid group name: {line}")))?;
                group = Some(name.to_string());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(syntax(
                    number,
                    format!("'{line}' is not a key = value pair, a [group] or a # comment"),
                ));
            };
            let key = key.trim_end();
            if key.is_empty() {
                return Err(syntax(number, "a key name is missing before '='".into()));
            }
            let Some(current) = &group else {
                return Err(syntax(
                    number,
                    "the file does not start with a group (e.g. [mysql-proxy])".into(),
                ));
            };
            if current == GROUP {
                entries.push(Entry {
                    key: key.to_string(),
                    raw: value.trim().to_string(),
                    line: number,
                });
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The last entry for `key` (a later line overrides an earlier one).
    fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// Keys of the `[mysql-proxy]` group that no option knows, with their line.
    pub fn unknown_keys(&self, known: &HashSet<&str>) -> Vec<(&str, usize)> {
        self.entries
            .iter()
            .filter(|e| !known.contains(e.key.as_str()))
            .map(|e| (e.key.as_str(), e.line))
            .collect()
    }
}

/// Interprets GKeyFile escapes; with `separator`, also splits at separators
/// that are not escaped.
fn unescape(raw: &str, separator: Option<char>) -> Result<Vec<String>, String> {
    let mut parts = vec![String::new()];
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        let current = parts.last_mut().ok_or("internal: no current part")?;
        if c == '\\' {
            let escaped = match chars.next() {
                Some('s') => ' ',
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('\\') => '\\',
                Some(c) if Some(c) == separator => c,
                Some(c) => return Err(format!("invalid escape sequence '\\{c}'")),
                None => return Err("the value ends with a lone '\\'".to_string()),
            };
            current.push(escaped);
        } else if Some(c) == separator {
            parts.push(String::new());
        } else {
            current.push(c);
        }
    }
    Ok(parts)
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    CommandLine,
    File { path: PathBuf, line: usize },
}

/// The effective value(s) of one option.
#[derive(Debug, Clone, PartialEq)]
pub struct Given {
    /// Flags: `["true"]` or `["false"]`; lists: one entry per element or
    /// occurrence; everything else: one entry (the last wins).
    pub values: Vec<String>,
    pub origin: Origin,
}

impl Given {
    /// The single (last) value.
    fn value(&self) -> &str {
        self.values.last().map_or("", String::as_str)
    }

    fn problem(&self, key: &str, message: String) -> Problem {
        Problem {
            key: key.to_string(),
            origin: self.origin.clone(),
            message,
        }
    }
}

/// One invalid option value.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The option (= config key) at fault.
    pub key: String,
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::CommandLine => write!(f, "--{}: {}", self.key, self.message),
            Origin::File { path, line } => {
                write!(
                    f,
                    "{}:{}: {}: {}",
                    path.display(),
                    line,
                    self.key,
                    self.message
                )
            }
        }
    }
}

/// The two places values come from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// Option name -> values given on the command line.
    pub cli: &'a BTreeMap<String, Vec<String>>,
    pub file: Option<&'a DefaultsFile>,
}

impl Sources<'_> {
    /// The effective value of `option`: the command line's if given there,
    /// else the file's (converted per type), else `None`.
    pub fn get(&self, option: &OptDesc) -> Result<Option<Given>, Problem> {
        if let Some(values) = self.cli.get(&option.name) {
            return Ok(Some(Given {
                values: values.clone(),
                origin: Origin::CommandLine,
            }));
        }
        let Some(file) = self.file.filter(|_| option.in_file) else {
            return Ok(None);
        };
        let Some(entry) = file.entry(&option.name) else {
            return Ok(None);
        };
        let origin = Origin::File {
            path: file.path.clone(),
            line: entry.line,
        };
        let problem = |message: String| Problem {
            key: option.name.clone(),
            origin: origin.clone(),
            message,
        };
        let values = match option.kind {
            OptionKind::Flag => match entry.raw.as_str() {
                "true" | "1" => vec!["true".to_string()],
                "false" | "0" => vec!["false".to_string()],
                other => return Err(problem(format!("expected true or false, got '{other}'"))),
            },
            OptionKind::StringList => unescape(&entry.raw, Some(','))
                .map_err(problem)?
                .into_iter()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect(),
            _ => unescape(&entry.raw, None).map_err(problem)?,
        };
        Ok(Some(Given { values, origin }))
    }
}

/// Collects problems while reading several options.
#[derive(Debug, Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn get(&mut self, sources: &Sources<'_>, option: &OptDesc) -> Option<Given> {
        match sources.get(option) {
            Ok(given) => given,
            Err(problem) => {
                self.problems.push(problem);
                None
            }
        }
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<Problem>> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}

/// Resolves `path` against `basedir` if it is relative (COMPAT 1.4).
pub fn resolve(basedir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() || path.as_os_str().is_empty() {
        path.to_path_buf()
    } else {
        basedir.join(path)
    }
}

/// Splits `--plugins` values at commas, trims them, drops empty names and
/// repeats (a plugin is loaded once).
fn plugin_names(values: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// The settings needed before plugins are loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Early {
    /// `--basedir`; default: the parent of the binary's directory. Absolute.
    pub basedir: PathBuf,
    /// `--plugin-dir`, basedir-relative if relative; default: none (only the
    /// binary's directory is searched).
    pub plugin_dir: Option<PathBuf>,
    /// `--plugins`, in order, each once; default: `proxy`. An explicitly
    /// empty `--plugins=` loads nothing.
    pub plugins: Vec<String>,
}

impl Early {
    /// Reads `--basedir`, `--plugin-dir` and `--plugins` from `sources`.
    /// `default_basedir` is the parent of the binary's directory.
    pub fn resolve(
        sources: &Sources<'_>,
        chassis: &OptGroup,
        default_basedir: &Path,
    ) -> Result<Self, Vec<Problem>> {
        let mut check = Checker::default();
        let option = |name: &str| chassis.options.iter().find(|o| o.name == name);
        let mut get = |name: &str| option(name).and_then(|o| check.get(sources, o));

        let basedir_given = get(names::BASEDIR);
        let plugin_dir = get(names::PLUGIN_DIR);
        let plugins = get(names::PLUGINS);

        let basedir = match basedir_given {
            Some(given) if Path::new(given.value()).is_absolute() => PathBuf::from(given.value()),
            Some(given) => {
                check.problems.push(given.problem(
                    names::BASEDIR,
                    format!("must be an absolute path, got '{}'", given.value()),
                ));
                default_basedir.to_path_buf()
            }
            None => default_basedir.to_path_buf(),
        };
        let early = Early {
            plugin_dir: plugin_dir.map(|g| resolve(&basedir, g.value())),
            plugins: plugins.map_or_else(|| vec!["proxy".to_string()], |g| plugin_names(&g.values)),
            basedir,
        };
        check.finish(early)
    }
}

/// The chassis settings (COMPAT 1.2), typed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ChassisConfig {
    /// `--basedir`, `--plugin-dir`, `--plugins` (see [`Early`]).
    pub early: Early,
    /// `--verbose-shutdown`: log the final "shutting down normally" line at
    /// critical instead of message level. Default: off.
    pub verbose_shutdown: bool,
    /// `--daemon`: detach into the background. Default: off.
    pub daemon: bool,
    /// `--user`: switch to this user once listeners are bound (root only).
    /// Default: none (stay who we are).
    pub user: Option<String>,
    /// `--pid-file`, basedir-relative if relative. Default: none.
    pub pid_file: Option<PathBuf>,
    /// `--log-level`. Default: critical.
    pub log_level: LogLevel,
    /// `--log-file`, basedir-relative if relative. Default: none (stderr).
    pub log_file: Option<PathBuf>,
    /// `--log-use-syslog`. Default: off. Excludes `log_file`.
    pub log_use_syslog: bool,
    /// `--log-backtrace-on-crash`: log a backtrace with a panic. Default: off.
    pub log_backtrace_on_crash: bool,
    /// `--keepalive`: restart the worker if it dies from a signal. Default: off.
    pub keepalive: bool,
    /// `--max-open-files`: the RLIMIT_NOFILE to set. Default: 0 (leave it).
    pub max_open_files: u64,
    /// `--event-threads`, at least 1. Default: the number of cores (MySQL
    /// Proxy's default was 1).
    pub event_threads: usize,
    /// `--max-connections`: sessions beyond it are refused with ERR 1040.
    /// Default: 0 (no limit).
    pub max_connections: usize,
    /// `--login-timeout`: time from a client's connection to the end of
    /// its login. Default: 10 s; zero for no limit.
    pub login_timeout: Duration,
    /// `--lua-path`: forced `LUA_PATH`. Default: none (keep the environment's,
    /// or `<basedir>/lib/mysql-proxy/lua/?.lua`).
    pub lua_path: Option<String>,
    /// `--lua-cpath`: forced `LUA_CPATH`. Default: none (as `lua_path`, `?.so`).
    pub lua_cpath: Option<String>,
    /// `--health-check-*`: active backend checks. Default: every 2 s, 1 s
    /// timeout, handshake only (no login).
    pub health: HealthConfig,
}

impl ChassisConfig {
    /// The default number of event threads: the number of cores.
    pub fn default_event_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Reads and validates every chassis option, reporting all problems.
    pub fn resolve(
        sources: &Sources<'_>,
        chassis: &OptGroup,
        default_basedir: &Path,
    ) -> Result<Self, Vec<Problem>> {
        let early = Early::resolve(sources, chassis, default_basedir);
        let mut check = Checker::default();
        let early = match early {
            Ok(early) => early,
            Err(problems) => {
                check.problems.extend(problems);
                // Keep going with defaults so that every problem is reported.
                Early {
                    basedir: default_basedir.to_path_buf(),
                    plugin_dir: None,
                    plugins: Vec::new(),
                }
            }
        };
        let mut values = BTreeMap::new();
        let early_names = [names::BASEDIR, names::PLUGIN_DIR, names::PLUGINS];
        for option in &chassis.options {
            // Already read (and checked) by `Early::resolve`.
            if early_names.contains(&option.name.as_str()) {
                continue;
            }
            if let Some(given) = check.get(sources, option) {
                values.insert(option.name.as_str(), given);
            }
        }
        let flag = |name: &str| values.get(name).is_some_and(|g| g.value() == "true");
        let string = |name: &str| values.get(name).map(|g| g.value().to_string());
        let path = |name: &str| values.get(name).map(|g| resolve(&early.basedir, g.value()));

        let log_level = match values.get(names::LOG_LEVEL) {
            None => LogLevel::Critical,
            Some(given) => parse_level(given.value()).unwrap_or_else(|| {
                check.problems.push(given.problem(
                    names::LOG_LEVEL,
                    format!(
                        "unknown log level '{}' (expected error, critical, warning, \
                         message, info or debug)",
                        given.value()
                    ),
                ));
                LogLevel::Critical
            }),
        };
        let max_open_files = match values.get(names::MAX_OPEN_FILES) {
            None => 0,
            Some(given) => given.value().trim().parse::<u64>().unwrap_or_else(|_| {
                check.problems.push(given.problem(
                    names::MAX_OPEN_FILES,
                    format!("expected a number >= 0, got '{}'", given.value()),
                ));
                0
            }),
        };
        let event_threads = match values.get(names::EVENT_THREADS) {
            None => Self::default_event_threads(),
            Some(given) => match given.value().trim().parse::<i64>() {
                Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => {
                    check.problems.push(given.problem(
                        names::EVENT_THREADS,
                        format!("expected a number >= 1, got '{}'", given.value()),
                    ));
                    1
                }
            },
        };
        let max_connections = match values.get(names::MAX_CONNECTIONS) {
            None => 0,
            Some(given) => given.value().trim().parse::<usize>().unwrap_or_else(|_| {
                check.problems.push(given.problem(
                    names::MAX_CONNECTIONS,
                    format!("expected a number >= 0, got '{}'", given.value()),
                ));
                0
            }),
        };
        // `zero_allowed`: whether 0 means something (e.g. "off").
        let mut seconds = |name: &str, default: Duration, zero_allowed: bool| match values.get(name)
        {
            None => default,
            Some(given) => match given.value().trim().parse::<f64>() {
                Ok(secs) if secs.is_finite() && (secs > 0.0 || (zero_allowed && secs == 0.0)) => {
                    Duration::from_secs_f64(secs)
                }
                _ => {
                    let bound = if zero_allowed { ">= 0" } else { "> 0" };
                    check.problems.push(given.problem(
                        name,
                        format!(
                            "expected a number of seconds {bound}, got '{}'",
                            given.value()
                        ),
                    ));
                    default
                }
            },
        };
        let login_timeout = seconds(names::LOGIN_TIMEOUT, Duration::from_secs(10), true);
        let defaults = HealthConfig::default();
        let health = HealthConfig {
            interval: seconds(names::HEALTH_CHECK_INTERVAL, defaults.interval, true),
            timeout: seconds(names::HEALTH_CHECK_TIMEOUT, defaults.timeout, false),
            user: string(names::HEALTH_CHECK_USER),
            password: string(names::HEALTH_CHECK_PASSWORD).unwrap_or_default(),
        };
        let log_use_syslog = flag(names::LOG_USE_SYSLOG);
        if log_use_syslog && values.contains_key(names::LOG_FILE) {
            if let Some(given) = values.get(names::LOG_USE_SYSLOG) {
                check.problems.push(given.problem(
                    names::LOG_USE_SYSLOG,
                    "--log-file and --log-use-syslog can't be used together".to_string(),
                ));
            }
        }
        let config = ChassisConfig {
            verbose_shutdown: flag(names::VERBOSE_SHUTDOWN),
            daemon: flag(names::DAEMON),
            user: string(names::USER),
            pid_file: path(names::PID_FILE),
            log_level,
            log_file: path(names::LOG_FILE),
            log_use_syslog,
            log_backtrace_on_crash: flag(names::LOG_BACKTRACE_ON_CRASH),
            keepalive: flag(names::KEEPALIVE),
            max_open_files,
            event_threads,
            max_connections,
            login_timeout,
            lua_path: string(names::LUA_PATH),
            lua_cpath: string(names::LUA_CPATH),
            health,
            early,
        };
        check.finish(config)
    }
}

/// One plugin's option values: (option name, values) for each option given.
pub type PluginValues = Vec<(String, Vec<String>)>;

/// The values of one plugin's options, as its `init` receives them: only the
/// options that were given; filenames resolved against `basedir`; numbers
/// checked.
pub fn plugin_values(
    group: &OptGroup,
    sources: &Sources<'_>,
    basedir: &Path,
) -> Result<PluginValues, Vec<Problem>> {
    let mut check = Checker::default();
    let mut out = Vec::new();
    for option in &group.options {
        let Some(mut given) = check.get(sources, option) else {
            continue;
        };
        match option.kind {
            OptionKind::Filename => {
                for value in &mut given.values {
                    *value = resolve(basedir, value).to_string_lossy().into_owned();
                }
            }
            OptionKind::Integer => {
                if given.value().trim().parse::<i64>().is_err() {
                    let message = format!("expected an integer, got '{}'", given.value());
                    check.problems.push(given.problem(&option.name, message));
                }
            }
            OptionKind::Double => {
                if given.value().trim().parse::<f64>().is_err() {
                    let message = format!("expected a number, got '{}'", given.value());
                    check.problems.push(given.problem(&option.name, message));
                }
            }
            OptionKind::Flag | OptionKind::String | OptionKind::StringList => {}
        }
        out.push((option.name.clone(), given.values));
    }
    check.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::chassis_options;

    fn file(text: &str) -> DefaultsFile {
        DefaultsFile::parse(Path::new("/etc/mp.cnf"), text).unwrap()
    }

    fn cli(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
        map
    }

    fn opt(name: &str, kind: OptionKind) -> OptDesc {
        OptDesc::from_spec(&mysql_proxy_plugin_abi::OptionSpec::new(name, kind, "", ""))
    }

    #[test]
    fn parses_only_the_mysql_proxy_group() {
        let f = file(
            "# comment\n\n[other]\nlog-level = debug\n[mysql-proxy]\n  log-level = info  \n\
             # another\nplugins = proxy, admin\n[x]\nbroken = \\q\n",
        );
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.entry("log-level").unwrap().raw, "info");
        assert_eq!(f.entry("log-level").unwrap().line, 6);
    }

    #[test]
    fn repeated_group_and_key_merge_last_wins() {
        let f = file("[mysql-proxy]\na = 1\n[x]\n[mysql-proxy]\na = 2\nb=\n");
        assert_eq!(f.entry("a").unwrap().raw, "2");
        assert_eq!(f.entry("b").unwrap().raw, "");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = DefaultsFile::parse(Path::new("f"), "[mysql-proxy]\ndaemon\n").unwrap_err();
        assert!(err.to_string().starts_with("f:2: "), "{err}");
        let err = DefaultsFile::parse(Path::new("f"), "a = 1\n").unwrap_err();
        assert!(
            err.to_string().contains("does not start with a group"),
            "{err}"
        );
        let err = DefaultsFile::parse(Path::new("f"), "[mysql-proxy\n").unwrap_err();
        assert!(err.to_string().starts_with("f:1: "), "{err}");
        let err = DefaultsFile::parse(Path::new("f"), "[mysql-proxy]\n = x\n").unwrap_err();
        assert!(err.to_string().starts_with("f:2: "), "{err}");
    }

    #[test]
    fn escapes_and_quotes() {
        assert_eq!(
            unescape(r"a\sb\tc\\d\ne", None).unwrap(),
            vec!["a b\tc\\d\ne"]
        );
        assert_eq!(unescape("\"abc\"", None).unwrap(), vec!["\"abc\""]);
        assert!(unescape(r"a\qb", None).is_err());
        assert!(unescape("a\\", None).is_err());
        assert_eq!(unescape(r"a,b\,c", Some(',')).unwrap(), vec!["a", "b,c"]);
    }

    #[test]
    fn command_line_wins_for_every_type() {
        let f = file(
            "[mysql-proxy]\ndaemon = false\nevent-threads = 4\nlog-level = debug\n\
             proxy-read-timeout = 3.5\nno-proxy = true\n",
        );
        let cli = cli(&[
            ("daemon", "true"),
            ("event-threads", "2"),
            ("log-level", "info"),
            ("proxy-read-timeout", "1.5"),
        ]);
        let sources = Sources {
            cli: &cli,
            file: Some(&f),
        };
        let cfg = ChassisConfig::resolve(&sources, &chassis_options(), Path::new("/base")).unwrap();
        assert!(cfg.daemon);
        assert_eq!(cfg.event_threads, 2);
        assert_eq!(cfg.log_level, LogLevel::Info);

        let group = OptGroup {
            plugin: "proxy".into(),
            options: vec![
                opt("proxy-read-timeout", OptionKind::Double),
                opt("no-proxy", OptionKind::Flag),
                opt("proxy-connect-timeout", OptionKind::Double),
            ],
        };
        let values = plugin_values(&group, &sources, Path::new("/base")).unwrap();
        assert_eq!(
            values,
            vec![
                ("proxy-read-timeout".to_string(), vec!["1.5".to_string()]),
                // A reverse flag from the file means what it means on the
                // command line (quirk a fixed).
                ("no-proxy".to_string(), vec!["true".to_string()]),
            ]
        );
    }

    #[test]
    fn file_values_used_when_not_on_command_line() {
        let f = file(
            "[mysql-proxy]\ndaemon = true\nevent-threads = 3\nplugins = proxy, admin,,proxy\n\
             log-file = log/mp.log\nbasedir = /opt/mp\nproxy-lua-script = s.lua\n\
             proxy-backend-addresses = a:1, b:2\nproxy-connect-timeout = 2.5\n",
        );
        let cli = BTreeMap::new();
        let sources = Sources {
            cli: &cli,
            file: Some(&f),
        };
        let cfg = ChassisConfig::resolve(&sources, &chassis_options(), Path::new("/base")).unwrap();
        assert!(cfg.daemon);
        assert_eq!(cfg.event_threads, 3);
        assert_eq!(cfg.early.plugins, vec!["proxy", "admin"]);
        assert_eq!(cfg.early.basedir, PathBuf::from("/opt/mp"));
        assert_eq!(cfg.log_file, Some(PathBuf::from("/opt/mp/log/mp.log")));

        let group = OptGroup {
            plugin: "proxy".into(),
            options: vec![
                opt("proxy-lua-script", OptionKind::Filename),
                opt("proxy-backend-addresses", OptionKind::StringList),
                opt("proxy-connect-timeout", OptionKind::Double),
            ],
        };
        let values = plugin_values(&group, &sources, &cfg.early.basedir).unwrap();
        assert_eq!(values[0].1, vec!["/opt/mp/s.lua"]);
        assert_eq!(values[1].1, vec!["a:1", "b:2"]);
        assert_eq!(values[2].1, vec!["2.5"]);
    }

    #[test]
    fn defaults() {
        let cli = BTreeMap::new();
        let sources = Sources {
            cli: &cli,
            file: None,
        };
        let cfg = ChassisConfig::resolve(&sources, &chassis_options(), Path::new("/base")).unwrap();
        assert_eq!(cfg.log_level, LogLevel::Critical);
        assert_eq!(cfg.early.plugins, vec!["proxy"]);
        assert_eq!(cfg.early.basedir, PathBuf::from("/base"));
        assert_eq!(cfg.early.plugin_dir, None);
        assert_eq!(cfg.event_threads, ChassisConfig::default_event_threads());
        assert_eq!(cfg.max_open_files, 0);
        assert!(!cfg.daemon && !cfg.keepalive && cfg.user.is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let f = file(
            "[mysql-proxy]\nlog-level = loud\ndaemon = yes\nevent-threads = 0\n\
             log-use-syslog = true\nlog-file = x.log\nproxy-read-timeout = soon\n",
        );
        let cli = cli(&[("basedir", "relative"), ("max-open-files", "-1")]);
        let sources = Sources {
            cli: &cli,
            file: Some(&f),
        };
        let problems =
            ChassisConfig::resolve(&sources, &chassis_options(), Path::new("/base")).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "basedir",
            "log-level",
            "daemon",
            "event-threads",
            "max-open-files",
            "log-use-syslog",
        ] {
            assert!(keys.contains(&key), "{key} missing from {text:?}");
        }
        assert!(text.contains(&"/etc/mp.cnf:2: log-level: unknown log level 'loud' (expected error, critical, warning, message, info or debug)".to_string()), "{text:?}");
        assert!(text.contains(&"--basedir: must be an absolute path, got 'relative'".to_string()));

        let group = OptGroup {
            plugin: "proxy".into(),
            options: vec![opt("proxy-read-timeout", OptionKind::Double)],
        };
        let problems = plugin_values(&group, &sources, Path::new("/")).unwrap_err();
        assert_eq!(problems[0].key, "proxy-read-timeout");
    }

    #[test]
    fn explicitly_empty_plugins_loads_nothing() {
        let cli = cli(&[("plugins", "")]);
        let sources = Sources {
            cli: &cli,
            file: None,
        };
        let early = Early::resolve(&sources, &chassis_options(), Path::new("/b")).unwrap();
        assert!(early.plugins.is_empty());
        let cli = super::BTreeMap::from([(
            "plugins".to_string(),
            vec!["proxy,admin".to_string(), "debug".to_string()],
        )]);
        let sources = Sources {
            cli: &cli,
            file: None,
        };
        let early = Early::resolve(&sources, &chassis_options(), Path::new("/b")).unwrap();
        assert_eq!(early.plugins, vec!["proxy", "admin", "debug"]);
    }

    #[test]
    fn permissions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mp.cnf");
        std::fs::write(&path, "[mysql-proxy]\ndaemon = true\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = DefaultsFile::load(&path).unwrap_err();
        assert!(matches!(err, FileError::Insecure { .. }), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert!(DefaultsFile::load(&path).is_ok());
        let err = DefaultsFile::load(dir.path()).unwrap_err();
        assert!(matches!(err, FileError::NotRegular { .. }), "{err}");
        let err = DefaultsFile::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, FileError::Read { .. }), "{err}");
    }
}
