//! The log: MySQL Proxy's line format (`YYYY-MM-DD HH:MM:SS: (<level>)
//! <message>`, local time), written to stderr, a `--log-file` or syslog, and
//! filtered by `--log-level`. It is a slog drain, so the core and plugins (via
//! the host) log through the same `slog::Logger`. A message takes one line:
//! [`one_line`] collapses those that carry newlines.
//!
//! Lines are written synchronously under a mutex, one `write` per line: there
//! is no buffer to flush at exit, and lines from several threads never mix.
//! The destination can change while the logger is in use: start-up logs to
//! stderr until the options are known, and SIGHUP reopens the log file (so a
//! logrotate-style rename starts a new file).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mysql_proxy_plugin_abi::LogLevel;
use nix::syslog::{Facility, Priority, Severity};
use slog::{Drain, OwnedKVList, Record, KV};

use mysql_proxy_core::logging as core_logging;

pub use core_logging::parse_level;

/// Why a log destination could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("can't open log-file {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where lines go.
#[derive(Debug)]
enum Destination {
    Stderr,
    /// `--log-file`, opened for appending; the path is kept for reopening.
    File {
        path: PathBuf,
        file: File,
    },
    /// `--log-use-syslog`: syslog(3) with the default ident and facility.
    Syslog,
}

/// The state shared by every clone of [`Log`] and by the drain.
#[derive(Debug)]
struct Sink {
    destination: Mutex<Destination>,
    /// The least severe [`LogLevel`] written, as its `u8` discriminant
    /// (atomic so that filtering takes no lock).
    level: AtomicU8,
}

impl Sink {
    fn enabled(&self, level: LogLevel) -> bool {
        level as u8 <= self.level.load(Ordering::Relaxed)
    }

    fn destination(&self) -> MutexGuard<'_, Destination> {
        // A thread that panicked while writing leaves the destination intact.
        self.destination
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, level: LogLevel, message: &str) {
        let mut destination = self.destination();
        write_to(&mut destination, level, message);
    }
}

fn write_to(destination: &mut Destination, level: LogLevel, message: &str) {
    match destination {
        Destination::Stderr => write_stderr(&format_line(level, message)),
        Destination::File { file, .. } => {
            let line = format_line(level, message);
            // If the file cannot be written, the line still goes somewhere.
            if file.write_all(line.as_bytes()).is_err() {
                write_stderr(&line);
            }
        }
        Destination::Syslog => {
            let priority = Priority::new(syslog_severity(level), Facility::LOG_USER);
            if nix::syslog::syslog(priority, message).is_err() {
                write_stderr(&format_line(level, message));
            }
        }
    }
}

/// Writes a complete line to stderr.
pub fn write_stderr(line: &str) {
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One log line, newline included.
pub fn format_line(level: LogLevel, message: &str) -> String {
    format!(
        "{}: ({}) {}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        level.name(),
        message
    )
}

/// Collapses a message to one line: some library errors carry newlines.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// MySQL Proxy's mapping of its levels to syslog severities.
fn syslog_severity(level: LogLevel) -> Severity {
    match level {
        LogLevel::Error => Severity::LOG_CRIT,
        LogLevel::Critical => Severity::LOG_ERR,
        LogLevel::Warning => Severity::LOG_WARNING,
        LogLevel::Message => Severity::LOG_NOTICE,
        LogLevel::Info => Severity::LOG_INFO,
        LogLevel::Debug => Severity::LOG_DEBUG,
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o660)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// The slog drain over a [`Sink`].
struct SinkDrain(Arc<Sink>);

impl Drain for SinkDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = core_logging::from_slog(record.level());
        if !self.0.enabled(level) {
            return Ok(());
        }
        let mut message = record.msg().to_string();
        let mut pairs = Pairs::default();
        // Serializing into a Vec<String> cannot fail.
        let _ = record.kv().serialize(record, &mut pairs);
        let _ = values.serialize(record, &mut pairs);
        if !pairs.0.is_empty() {
            message.push_str(&format!(" [{}]", pairs.0.join(", ")));
        }
        self.0.write(level, &message);
        Ok(())
    }

    fn is_enabled(&self, level: slog::Level) -> bool {
        self.0.enabled(core_logging::from_slog(level))
    }
}

/// Key-value pairs of a record and its logger, rendered `key=value` after the
/// message (MySQL Proxy lines have none, but the core adds context such as
/// the plugin name).
#[derive(Default)]
struct Pairs(Vec<String>);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments<'_>) -> slog::Result {
        self.0.push(format!("{key}={value}"));
        Ok(())
    }
}

/// The process' log. Clones share the destination and the level.
#[derive(Clone)]
pub struct Log {
    sink: Arc<Sink>,
    logger: slog::Logger,
}

impl Log {
    /// A log to stderr showing `level` and everything more severe.
    pub fn stderr(level: LogLevel) -> Self {
        let sink = Arc::new(Sink {
            destination: Mutex::new(Destination::Stderr),
            level: AtomicU8::new(level as u8),
        });
        let logger = slog::Logger::root(SinkDrain(Arc::clone(&sink)), slog::o!());
        Self { sink, logger }
    }

    /// The slog logger writing to this log (for the core and plugins).
    pub fn logger(&self) -> &slog::Logger {
        &self.logger
    }

    /// Logs `message` at `level`.
    pub fn log(&self, level: LogLevel, message: &str) {
        if self.sink.enabled(level) {
            self.sink.write(level, message);
        }
    }

    /// Logs `message` whatever the configured level (fatal errors).
    pub fn force(&self, level: LogLevel, message: &str) {
        self.sink.write(level, message);
    }

    /// Shows `level` and everything more severe from now on.
    pub fn set_level(&self, level: LogLevel) {
        self.sink.level.store(level as u8, Ordering::Relaxed);
    }

    /// Appends to `path` from now on (created mode 0660 minus the umask).
    pub fn to_file(&self, path: &Path) -> Result<(), LogError> {
        let file = open_append(path)?;
        *self.sink.destination() = Destination::File {
            path: path.to_path_buf(),
            file,
        };
        Ok(())
    }

    /// Logs to syslog from now on.
    pub fn to_syslog(&self) {
        *self.sink.destination() = Destination::Syslog;
    }

    /// Whether lines go to stderr (so a fatal error is visible there anyway).
    pub fn is_stderr(&self) -> bool {
        matches!(*self.sink.destination(), Destination::Stderr)
    }

    /// The log file, if logging to one.
    pub fn file_path(&self) -> Option<PathBuf> {
        match &*self.sink.destination() {
            Destination::File { path, .. } => Some(path.clone()),
            _ => None,
        }
    }

    /// Closes and reopens the log file (SIGHUP, after a log rotation). A no-op
    /// for stderr and syslog. On failure the old file stays in use.
    pub fn reopen(&self) -> Result<(), LogError> {
        let mut destination = self.sink.destination();
        if let Destination::File { path, file } = &mut *destination {
            *file = open_append(path)?;
        }
        Ok(())
    }

    /// Logs from a panic hook: never waits for the lock (the panicking thread
    /// may hold it), falling back to stderr.
    fn log_from_panic(&self, message: &str) {
        match self.sink.destination.try_lock() {
            Ok(mut destination) => write_to(&mut destination, LogLevel::Critical, message),
            Err(_) => write_stderr(&format_line(LogLevel::Critical, message)),
        }
    }

    /// Makes panics (a bug in any thread) go to the log at critical level,
    /// with a backtrace if `backtrace` (`--log-backtrace-on-crash`), instead
    /// of to a stderr nobody may be reading.
    pub fn install_panic_hook(&self, backtrace: bool) {
        let log = self.clone();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed");
            log.log_from_panic(&format!("thread '{name}' {info}"));
            if backtrace {
                let trace = std::backtrace::Backtrace::force_capture();
                for line in trace.to_string().lines() {
                    log.log_from_panic(line);
                }
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let line = format_line(LogLevel::Critical, "plugin proxy 0.1.0 started");
        // "YYYY-MM-DD HH:MM:SS: (critical) ..."
        assert_eq!(
            line.len(),
            19 + ": (critical) plugin proxy 0.1.0 started\n".len()
        );
        assert_eq!(&line[4..5], "-");
        assert_eq!(&line[10..11], " ");
        assert!(
            line.ends_with(": (critical) plugin proxy 0.1.0 started\n"),
            "{line}"
        );
    }

    #[test]
    fn file_filter_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mp.log");
        let log = Log::stderr(LogLevel::Message);
        log.to_file(&path).unwrap();
        log.set_level(LogLevel::Warning);
        slog::warn!(log.logger(), "shown {}", 1; "plugin" => "proxy");
        slog::info!(log.logger(), "hidden (message level)");
        log.log(LogLevel::Critical, "also shown");
        let rotated = dir.path().join("mp.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen().unwrap();
        log.log(LogLevel::Error, "after rotation");

        let old = std::fs::read_to_string(&rotated).unwrap();
        let lines: Vec<&str> = old.lines().collect();
        assert_eq!(lines.len(), 2, "{old}");
        assert!(
            lines[0].ends_with(": (warning) shown 1 [plugin=proxy]"),
            "{old}"
        );
        assert!(lines[1].ends_with(": (critical) also shown"), "{old}");
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(
            new.trim_end().ends_with(": (error) after rotation"),
            "{new}"
        );
    }
}
